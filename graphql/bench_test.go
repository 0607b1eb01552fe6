package graphql

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"portmirror/model"
	"portmirror/service"
	"portmirror/store"
)

// listingQuery is the session listing the benchmark of part 6 (bench/memapi.go) times over HTTP.
const listingQuery = `{ portMirrors { sessions { sourceNic { uuid } destinationNic { uuid } } } }`

// fleetUUID is a uuid whose kind is tag and whose number is n.
func fleetUUID(tag, n int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", tag, n) }

// listingFleet is the listing benchmark's state, shaped as bench/fleet.go shapes it: hosts hosts in ten clusters,
// one VM with ten NICs per host, one port mirror per cluster whose sessions copy NIC 0 of every host of the
// cluster to NIC 1 of the next host: as many sessions as hosts. Stored in bulk in an in-memory store.
func listingFleet(tb testing.TB, hosts int) *service.Service {
	tb.Helper()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	st, err := store.Open(ctx, store.Options{InMemory: true, Logger: log})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = st.Close() })
	const clusters, nics = 10, 10
	per := hosts / clusters
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	nic := func(h, j int) string { return fleetUUID(0x50, h*nics+j) }
	var objs []any
	for c := range clusters {
		objs = append(objs, model.Cluster{UUID: fleetUUID(0x10, c), Name: fmt.Sprint("cluster", c), CreatedAt: now},
			model.FlowNetwork{UUID: fleetUUID(0x30, c), Name: fmt.Sprint("net", c), CIDR: fmt.Sprintf("198.18.%d.0/22", 4*c),
				Encapsulation: model.GRE, ClusterUUIDs: []string{fleetUUID(0x10, c)}, CreatedAt: now},
			model.PortMirror{UUID: fleetUUID(0x60, c), Name: fmt.Sprint("fleet", c), FlowNetworkUUID: fleetUUID(0x30, c),
				State: model.Enabled, CreatedAt: now, UpdatedAt: now})
	}
	for h := range hosts {
		objs = append(objs, model.Host{UUID: fleetUUID(0x20, h), Name: fmt.Sprint("hv", h), ClusterUUID: fleetUUID(0x10, h/per),
			Bridge: model.DefaultBridge, DatapathID: fmt.Sprintf("%016x", 0x100000+h), CreatedAt: now},
			model.VmInstance{UUID: fleetUUID(0x40, h), Name: fmt.Sprint("vm", h), HostUUID: fleetUUID(0x20, h), CreatedAt: now})
		for j := range nics {
			objs = append(objs, model.VmNic{UUID: nic(h, j), VmUUID: fleetUUID(0x40, h), Index: j,
				MAC: fmt.Sprintf("02:%02x:%02x:%02x:%02x:%02x", 0x10|j>>8, h>>16&0xff, h>>8&0xff, h&0xff, j&0xff), IsDefault: j == 0,
				PortName: fmt.Sprint("nic", j)})
		}
	}
	for h := range hosts {
		c, i := h/per, h%per
		next := c*per + (i+1)%per
		objs = append(objs, model.Session{UUID: fleetUUID(0x70, h), Name: fmt.Sprint("hv", h), Type: model.Bidirection,
			PortMirrorUUID: fleetUUID(0x60, c), SourceNicUUID: nic(h, 0), DestinationNicUUID: nic(next, 1),
			TunnelKey: uint32(i + 1), CreatedAt: now})
	}
	if err := st.BulkPut(ctx, objs); err != nil {
		tb.Fatal(err)
	}
	return service.New(st, service.Options{Logger: log})
}

// BenchmarkListSessions10k executes the listing of 10k sessions with both NICs through the HTTP handler, as a
// loopback client of the daemon would (no token configured). It reports p50 besides the mean.
func BenchmarkListSessions10k(b *testing.B) {
	svc := listingFleet(b, 10000)
	h, err := New(Options{Backend: svc, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	benchQuery(b, h, listingQuery, nil)
}

// TestListSessions10kAnswer holds the listing's answer over HTTP against the store: every session of every port
// mirror, in creation order, with both NICs' uuids, and no errors.
func TestListSessions10kAnswer(t *testing.T) {
	if testing.Short() {
		t.Skip("bulk load")
	}
	svc := listingFleet(t, 10000)
	h, err := New(Options{Backend: svc, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	body, _ := json.Marshal(map[string]any{"query": listingQuery})
	resp, err := srv.Client().Post(srv.URL+"/graphql", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	type nicRef struct {
		UUID string `json:"uuid"`
	}
	type sessionRef struct {
		SourceNic      nicRef `json:"sourceNic"`
		DestinationNic nicRef `json:"destinationNic"`
	}
	var got struct {
		Data struct {
			PortMirrors []struct {
				Sessions []sessionRef `json:"sessions"`
			} `json:"portMirrors"`
		} `json:"data"`
		Errors []any `json:"errors"`
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("%v: %.300s", err, raw)
	}
	if len(got.Errors) > 0 {
		t.Fatalf("errors: %v", got.Errors)
	}
	ctx := context.Background()
	pms, _ := svc.PortMirrors(ctx)
	if len(got.Data.PortMirrors) != len(pms) {
		t.Fatalf("%d port mirrors, want %d", len(got.Data.PortMirrors), len(pms))
	}
	n := 0
	for i, pm := range pms {
		ss, _ := svc.Sessions(ctx, pm.UUID)
		want := make([]sessionRef, len(ss))
		for j, s := range ss {
			want[j] = sessionRef{nicRef{s.SourceNicUUID}, nicRef{s.DestinationNicUUID}}
		}
		if !slices.Equal(got.Data.PortMirrors[i].Sessions, want) {
			t.Fatalf("port mirror %d: the sessions differ from the store's", i)
		}
		n += len(ss)
	}
	if n != 10000 {
		t.Fatalf("%d sessions, want 10000", n)
	}
}
