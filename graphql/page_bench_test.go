package graphql

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"portmirror/model"
	"portmirror/service"
	"portmirror/store"
)

// pageFleet is a store of pms port mirrors named pm-N with per sessions each (sessions copy NIC 0 of a host to
// NIC 1 of the next), stored in bulk in an in-memory store.
func pageFleet(tb testing.TB, pms, per int) *service.Service {
	tb.Helper()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	st, err := store.Open(ctx, store.Options{InMemory: true, Logger: log})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = st.Close() })
	hosts := pms * per
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	nic := func(h, j int) string { return fleetUUID(0x50, h*2+j) }
	objs := []any{model.Cluster{UUID: fleetUUID(0x10, 0), Name: "cluster0", CreatedAt: now}}
	for h := range hosts {
		objs = append(objs, model.Host{UUID: fleetUUID(0x20, h), Name: fmt.Sprint("hv", h), ClusterUUID: fleetUUID(0x10, 0),
			Bridge: model.DefaultBridge, DatapathID: fmt.Sprintf("%016x", 0x100000+h), CreatedAt: now},
			model.VmInstance{UUID: fleetUUID(0x40, h), Name: fmt.Sprint("vm", h), HostUUID: fleetUUID(0x20, h), CreatedAt: now})
		for j := range 2 {
			objs = append(objs, model.VmNic{UUID: nic(h, j), VmUUID: fleetUUID(0x40, h), Index: j,
				MAC: fmt.Sprintf("02:%02x:%02x:%02x:%02x:%02x", 0x10|j, h>>16&0xff, h>>8&0xff, h&0xff, j), IsDefault: j == 0,
				PortName: fmt.Sprint("nic", j)})
		}
	}
	for p := range pms {
		objs = append(objs, model.FlowNetwork{UUID: fleetUUID(0x30, p), Name: fmt.Sprint("net", p),
			CIDR: fmt.Sprintf("10.%d.%d.0/24", p>>8&0xff, p&0xff), Encapsulation: model.GRE,
			ClusterUUIDs: []string{fleetUUID(0x10, 0)}, CreatedAt: now},
			model.PortMirror{UUID: fleetUUID(0x60, p), Name: fmt.Sprint("pm-", p), FlowNetworkUUID: fleetUUID(0x30, p),
				State: model.Enabled, CreatedAt: now, UpdatedAt: now})
		for i := range per {
			h := p*per + i
			objs = append(objs, model.Session{UUID: fleetUUID(0x70, h), Name: fmt.Sprint("s", h), Type: model.Bidirection,
				PortMirrorUUID: fleetUUID(0x60, p), SourceNicUUID: nic(h, 0), DestinationNicUUID: nic((h+1)%hosts, 1),
				TunnelKey: uint32(i + 1), CreatedAt: now})
		}
	}
	if err := st.BulkPut(ctx, objs); err != nil {
		tb.Fatal(err)
	}
	return service.New(st, service.Options{Logger: log})
}

// The API pages of bench part scale: 100 port mirrors filtered by name, with every session (api.page_full_p50_ms),
// or as a console lists them, with the count and the first ten (api.page_p50_ms).
const (
	scalePageQuery        = `query($f: String) { portMirrorPage(first: 100, nameContains: $f) { totalCount items { uuid name state sessions { uuid name status } } } }`
	scaleConsolePageQuery = `query($f: String) { portMirrorPage(first: 100, nameContains: $f) { totalCount items { uuid name state sessionCount sessions(first: 10) { uuid name status } } } }`
)

func benchPage(b *testing.B, pms, per int) {
	benchPageQuery(b, pageHandler(b, pms, per), scalePageQuery)
}

func pageHandler(b *testing.B, pms, per int) *Handler {
	svc := pageFleet(b, pms, per)
	h, err := New(Options{Backend: svc, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	return h
}

func benchPageQuery(b *testing.B, h *Handler, query string) {
	benchQuery(b, h, query, map[string]any{"f": "pm-"})
}

// benchQuery posts query (with vars, when given) to h as a loopback client of the daemon would, and reports p50
// besides the mean, and the answer's size; an HTTP error or a GraphQL error ends the benchmark.
func benchQuery(b *testing.B, h *Handler, query string, vars map[string]any) {
	req := map[string]any{"query": query}
	if vars != nil {
		req["variables"] = vars
	}
	body, err := json.Marshal(req)
	if err != nil {
		b.Fatal(err)
	}
	var durs []time.Duration
	size := 0
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
		req.RemoteAddr = "127.0.0.1:40000"
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		start := time.Now()
		h.ServeHTTP(rec, req)
		durs = append(durs, time.Since(start))
		if rec.Code != http.StatusOK || bytes.Contains(rec.Body.Bytes(), []byte(`"errors"`)) {
			b.Fatalf("HTTP %d: %.300s", rec.Code, rec.Body.String())
		}
		size = rec.Body.Len()
	}
	b.StopTimer()
	slices.Sort(durs)
	b.ReportMetric(float64(durs[len(durs)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(size), "resp-bytes")
}

// BenchmarkPortMirrorPage10k: 10,000 port mirrors, 100,000 sessions; the page holds 100 port mirrors, 1,000 sessions.
func BenchmarkPortMirrorPage10k(b *testing.B) { benchPage(b, 10000, 10) }

// BenchmarkPortMirrorPageFat: bench part scale's layout, 100 port mirrors holding 50,000 sessions, all in the page.
func BenchmarkPortMirrorPageFat(b *testing.B) { benchPage(b, 100, 500) }

// BenchmarkPortMirrorPageScale: bench part scale's page at 100 port mirrors of 1,000 sessions, as a console asks
// for it (sessionCount and sessions(first: 10)) and whole (every session).
func BenchmarkPortMirrorPageScale(b *testing.B) {
	h := pageHandler(b, 100, 1000)
	b.Run("console", func(b *testing.B) { benchPageQuery(b, h, scaleConsolePageQuery) })
	b.Run("full", func(b *testing.B) { benchPageQuery(b, h, scalePageQuery) })
}
