package service

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"portmirror/model"
)

// bulkHosts stores n hosts in the cluster in bulk (as the cloud's tooling might have registered them), with every
// field a real host has.
func bulkHosts(t *testing.T, f *fx, cluster string, n int) {
	t.Helper()
	objs := make([]any, 0, n)
	for i := range n {
		objs = append(objs, model.Host{UUID: fmt.Sprintf("20000000-0000-4000-8000-%012d", i), Name: fmt.Sprintf("compute-%05d.rack%02d.example", i, i%40),
			ClusterUUID: cluster, ManagementIP: fmt.Sprintf("10.%d.%d.%d", i>>16&0xff, i>>8&0xff, i&0xff),
			OVSDBAddress: fmt.Sprintf("tcp:10.%d.%d.%d:6640", i>>16&0xff, i>>8&0xff, i&0xff), Bridge: model.DefaultBridge,
			DatapathID: fmt.Sprintf("%016x", 0x100000+i), CreatedAt: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)})
	}
	if err := f.st.BulkPut(f.ctx, objs); err != nil {
		t.Fatal(err)
	}
}

// storeModes are the two ways the store runs: on disk (the daemon) and in memory (tests, benchmarks), where
// Badger has no value log and caps a value at 1 MiB.
var storeModes = []struct {
	name string
	dir  func(t *testing.T) string
}{
	{"on disk", func(t *testing.T) string { return t.TempDir() }},
	{"in memory", func(*testing.T) string { return "" }},
}

// TestAttachLargeCluster attaches a flow network to a cluster of 10k hosts: one transaction with 10k endpoints and
// one audit event. A cluster too large for one transaction is refused as VALIDATION, naming the flow network,
// with nothing changed and the refusal audited.
func TestAttachLargeCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("bulk load")
	}
	for _, mode := range storeModes {
		t.Run(mode.name, func(t *testing.T) {
			f := newFixtureIn(t, mode.dir(t))
			bulkHosts(t, f, f.c2, 10000)
			fn, err := f.svc.CreateFlowNetwork(f.ctx, FlowNetworkInput{Name: "big", CIDR: "198.18.0.0/15"})
			if err != nil {
				t.Fatal(err)
			}
			before := len(audits(t, f.svc, AuditQuery{First: 1000}))
			start := time.Now()
			if _, err := f.svc.AttachFlowNetworkToCluster(f.ctx, fn.UUID, f.c2); err != nil {
				t.Fatalf("attaching a flow network to a cluster of 10,001 hosts: %v", err)
			}
			t.Logf("attached to 10,001 hosts in %v", time.Since(start))
			eps, _ := f.svc.FlowEndpoints(f.ctx, fn.UUID)
			if len(eps) != 10001 {
				t.Fatalf("%d endpoints, want 10001", len(eps))
			}
			evs := audits(t, f.svc, AuditQuery{First: 1000})
			if len(evs) != before+1 || evs[0].Operation != "attachFlowNetworkToCluster" || !evs[0].Success {
				t.Fatalf("audit: %d events (before %d), newest %+v", len(evs), before, evs[0])
			}
			if _, err := f.svc.DetachFlowNetworkFromCluster(f.ctx, fn.UUID, f.c2); err != nil {
				t.Fatal(err)
			}
			if eps, _ := f.svc.FlowEndpoints(f.ctx, fn.UUID); len(eps) != 0 {
				t.Fatalf("%d endpoints after detaching", len(eps))
			}

			// 30k more hosts: more than one transaction holds
			bulkHosts30k(t, f)
			snap := dump(t, f.st)
			before = len(audits(t, f.svc, AuditQuery{First: 1000}))
			_, err = f.svc.AttachFlowNetworkToCluster(f.ctx, fn.UUID, f.c2)
			var se *Error
			if !errors.As(err, &se) || se.Code != CodeValidation || se.Rule != RuleInvalidArgument ||
				!strings.Contains(se.Message, fn.UUID) || !strings.Contains(se.Message, "KiB") {
				t.Fatalf("attaching to 40,001 hosts: got %v, want VALIDATION/INVALID_ARGUMENT naming the flow network and the limit", err)
			}
			t.Logf("refusal: %s", se.Message)
			if dump(t, f.st) != snap {
				t.Fatal("the refused attach changed the store")
			}
			evs = audits(t, f.svc, AuditQuery{First: 1000})
			if len(evs) != before+1 || evs[0].Success || evs[0].Error != se.Message {
				t.Fatalf("audit: %d events (before %d), newest %+v", len(evs), before, evs[0])
			}
		})
	}
}

func bulkHosts30k(t *testing.T, f *fx) {
	t.Helper()
	objs := make([]any, 0, 30000)
	for i := range 30000 {
		objs = append(objs, model.Host{UUID: fmt.Sprintf("30000000-0000-4000-8000-%012d", i), Name: fmt.Sprint("more", i),
			ClusterUUID: f.c2, Bridge: model.DefaultBridge})
	}
	if err := f.st.BulkPut(f.ctx, objs); err != nil {
		t.Fatal(err)
	}
}

// TestCreatePortMirrorManySessions creates a port mirror with MaxSessionsPerCall sessions in one call: it works,
// with one audit event whose detail is bounded and says what it left out. One session more is refused as
// VALIDATION naming the port mirror and the limit, with nothing changed and one audit event.
func TestCreatePortMirrorManySessions(t *testing.T) {
	if testing.Short() {
		t.Skip("bulk")
	}
	for _, mode := range storeModes {
		t.Run(mode.name, func(t *testing.T) {
			l := newMirrorLabIn(t, mode.dir(t), MaxSessionsPerCall+1, 2, "198.18.4.0/24")
			fn := l.must1(l.svc.CreateFlowNetwork(l.ctx, FlowNetworkInput{Name: "many", CIDR: "198.19.0.0/24", ClusterUUIDs: []string{l.c1}})).(model.FlowNetwork)
			in := func(n int) PortMirrorInput {
				in := PortMirrorInput{Name: "many", FlowNetworkUUID: fn.UUID, Enable: true}
				for i, s := range l.srcs[:n] {
					in.Sessions = append(in.Sessions, SessionInput{Name: fmt.Sprint("s", i), Type: model.Bidirection,
						SourceNicUUID: s, DestinationNicUUID: l.dsts[i%2]})
				}
				return in
			}

			snap := dump(t, l.st)
			before := len(audits(t, l.svc, AuditQuery{First: 1000}))
			_, err := l.svc.CreatePortMirror(l.ctx, in(MaxSessionsPerCall+1))
			var se *Error
			if !errors.As(err, &se) || se.Code != CodeValidation || se.Rule != RuleInvalidArgument ||
				!strings.Contains(se.Message, `port mirror "many"`) || !strings.Contains(se.Message, fmt.Sprint(MaxSessionsPerCall)) {
				t.Fatalf("%d sessions: got %v, want VALIDATION/INVALID_ARGUMENT naming the port mirror and the limit", MaxSessionsPerCall+1, err)
			}
			if dump(t, l.st) != snap {
				t.Fatal("the refused createPortMirror changed the store")
			}
			evs := audits(t, l.svc, AuditQuery{First: 1000})
			if len(evs) != before+1 || evs[0].Success || evs[0].Operation != "createPortMirror" {
				t.Fatalf("audit after the refusal: %d events (before %d), newest %+v", len(evs), before, evs[0])
			}
			if len(evs[0].Detail) > maxDetailBytes {
				t.Fatalf("refused event's detail is %d bytes", len(evs[0].Detail))
			}

			start := time.Now()
			pm, err := l.svc.CreatePortMirror(l.ctx, in(MaxSessionsPerCall))
			if err != nil {
				t.Fatalf("%d sessions in one call: %v", MaxSessionsPerCall, err)
			}
			t.Logf("created with %d sessions in %v", MaxSessionsPerCall, time.Since(start))
			ss, _ := l.svc.Sessions(l.ctx, pm.UUID)
			if len(ss) != MaxSessionsPerCall {
				t.Fatalf("%d sessions stored", len(ss))
			}
			for i, s := range ss {
				if s.SourceNicUUID != l.srcs[i] || s.DestinationNicUUID != l.dsts[i%2] || s.TunnelKey != uint32(i%2+1) {
					t.Fatalf("session %d: %+v", i, s)
				}
			}
			evs = audits(t, l.svc, AuditQuery{First: 1000})
			if len(evs) != before+2 || !evs[0].Success || evs[0].ResourceUUID != pm.UUID {
				t.Fatalf("audit: %d events (before the two calls %d), newest %+v", len(evs), before, evs[0])
			}
			if len(evs[0].Detail) > maxDetailBytes {
				t.Fatalf("detail is %d bytes", len(evs[0].Detail))
			}
			var detail struct {
				Input struct {
					Sessions struct {
						Truncated bool  `json:"truncated"`
						Count     int   `json:"count"`
						First     []any `json:"first"`
					} `json:"sessions"`
				} `json:"input"`
				Sessions struct {
					Truncated  bool     `json:"truncated"`
					Count      int      `json:"count"`
					FirstUuids []string `json:"firstUuids"`
				} `json:"sessions"`
				PortMirror model.PortMirror `json:"portMirror"`
			}
			if err := json.Unmarshal([]byte(evs[0].Detail), &detail); err != nil {
				t.Fatalf("detail: %v", err)
			}
			if !detail.Input.Sessions.Truncated || detail.Input.Sessions.Count != MaxSessionsPerCall || len(detail.Input.Sessions.First) != maxDetailList ||
				!detail.Sessions.Truncated || detail.Sessions.Count != MaxSessionsPerCall || len(detail.Sessions.FirstUuids) != maxDetailList ||
				detail.Sessions.FirstUuids[0] != ss[0].UUID || detail.PortMirror.UUID != pm.UUID {
				t.Fatalf("detail does not summarise the sessions: %.600s", evs[0].Detail)
			}
			// the event is found through any of its sessions
			if evs := audits(t, l.svc, AuditQuery{ResourceUUID: ss[len(ss)-1].UUID}); len(evs) != 1 || evs[0].ResourceUUID != pm.UUID {
				t.Fatalf("events of the last session: %+v", evs)
			}
		})
	}
}

// TestDetailBounded holds detailJSON: details up to maxDetailBytes as they are, long lists of larger ones summarised, int64 values exact, and
// a detail that stays too large replaced by a note of its size.
func TestDetailBounded(t *testing.T) {
	big := int64(1<<62 + 1)
	long := make([]model.Session, 3000)
	for i := range long {
		long[i] = model.Session{UUID: fmt.Sprintf("u%d", i), TunnelKey: uint32(i)}
	}
	ints := make([]int64, 5000)
	for i := range ints {
		ints[i] = big
	}
	huge := strings.Repeat("x", maxDetailBytes+1)
	for _, tc := range []struct {
		name   string
		detail any
		want   func(string) bool
	}{
		{"small", map[string]any{"a": []int{1, 2}, "b": ints[:300]}, func(s string) bool { return strings.HasPrefix(s, `{"a":[1,2],"b":[`) }},
		{"long list of objects", map[string]any{"sessions": long, "n": big}, func(s string) bool {
			return len(s) <= maxDetailBytes && strings.Contains(s, `"count":3000`) && strings.Contains(s, `"truncated":true`) &&
				strings.Contains(s, `"firstUuids":["u0","u1",`) && !strings.Contains(s, `"u100"`) && strings.Contains(s, fmt.Sprint(big))
		}},
		{"long list of numbers", ints, func(s string) bool {
			return len(s) <= maxDetailBytes && strings.Contains(s, `"count":5000`) && strings.Contains(s, `"first":[`+fmt.Sprint(big))
		}},
		{"one huge string", map[string]any{"s": huge}, func(s string) bool {
			return s == fmt.Sprintf(`{"bytes":%d,"truncated":true}`, len(huge)+8)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := detailJSON(tc.detail)
			if (len(got) > 0 && !json.Valid([]byte(got))) || !tc.want(got) {
				t.Fatalf("detailJSON = %.400s", got)
			}
		})
	}
}
