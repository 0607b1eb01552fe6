package service

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"portmirror/model"
	"portmirror/store"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// clock is a deterministic Now: every call is one millisecond later.
type clock struct{ n atomic.Int64 }

func (c *clock) now() time.Time {
	return time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(c.n.Add(1)) * time.Millisecond)
}

// openService opens a service on a store in dir, or in memory when dir is "".
func openService(t testing.TB, dir string) (*Service, *store.Store) {
	t.Helper()
	st, err := store.Open(context.Background(), store.Options{Dir: dir, InMemory: dir == "", Logger: quiet()})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	c := &clock{}
	return New(st, Options{Logger: quiet(), Now: c.now}), st
}

// fx is the inventory most tests start from:
//
//	cluster alpha (c1): hv1 (h1), hv2 (h2); cluster beta (c2): hv3 (h3)
//	web (vm1) on hv1: n1a default, n1b           monitor (vm2) on hv2: n2a default, n2b, n2c
//	other (vm3) on hv3: n3a default, n3b         qos (vm4) on hv1: n4a default, n4b with QoS
//	flow network mirror-net (fn1) 198.18.0.0/24 on alpha, occupied by port mirror pm-a (pm1, enabled) with
//	session s1: n1a → n2b BIDIRECTION; flow network spare (fn2) 198.18.1.0/29 on alpha, free.
type fx struct {
	t   testing.TB
	svc *Service
	st  *store.Store
	ctx context.Context

	c1, c2, h1, h2, h3, vm1, vm2, vm3, vm4 string
	n1a, n1b, n2a, n2b, n2c, n3a, n3b      string
	n4a, n4b, fn1, fn2, pm1, s1            string
}

const (
	uC1  = "00000000-0000-4000-8000-0000000000c1"
	uC2  = "00000000-0000-4000-8000-0000000000c2"
	uH1  = "00000000-0000-4000-8000-0000000000a1"
	uH2  = "00000000-0000-4000-8000-0000000000a2"
	uH3  = "00000000-0000-4000-8000-0000000000a3"
	uFN1 = "00000000-0000-4000-8000-0000000000f1"
	uFN2 = "00000000-0000-4000-8000-0000000000f2"
)

func nicUUID(vm, i int) string {
	return "00000000-0000-4000-8000-0000000" + string(rune('0'+vm)) + "0" + string(rune('0'+i)) + "01"
}

func newFixture(t testing.TB) *fx {
	t.Helper()
	return newFixtureIn(t, t.TempDir())
}

// newFixtureIn is newFixture on a store in dir, or in memory when dir is "".
func newFixtureIn(t testing.TB, dir string) *fx {
	t.Helper()
	svc, st := openService(t, dir)
	t.Cleanup(func() { st.Close() })
	f := &fx{t: t, svc: svc, st: st, ctx: WithActor(context.Background(), "tester")}
	f.c1 = f.must1(svc.CreateCluster(f.ctx, ClusterInput{UUID: uC1, Name: "alpha"})).(model.Cluster).UUID
	f.c2 = f.must1(svc.CreateCluster(f.ctx, ClusterInput{UUID: uC2, Name: "beta"})).(model.Cluster).UUID
	f.h1 = f.must1(svc.RegisterHost(f.ctx, HostInput{UUID: uH1, Name: "hv1", ClusterUUID: uC1, DatapathID: "0x1"})).(model.Host).UUID
	f.h2 = f.must1(svc.RegisterHost(f.ctx, HostInput{UUID: uH2, Name: "hv2", ClusterUUID: uC1})).(model.Host).UUID
	f.h3 = f.must1(svc.RegisterHost(f.ctx, HostInput{UUID: uH3, Name: "hv3", ClusterUUID: uC2})).(model.Host).UUID
	q := int64(1_000_000)
	vm := func(i int, name, host string, nics ...VmNicInput) string {
		for j := range nics {
			nics[j].UUID = nicUUID(i, j)
			nics[j].MAC = "02:00:00:00:0" + string(rune('0'+i)) + ":0" + string(rune('0'+j))
		}
		return f.must1(svc.CreateVmInstance(f.ctx, VmInstanceInput{Name: name, HostUUID: host, Nics: nics})).(model.VmInstance).UUID
	}
	f.vm1 = vm(1, "web", f.h1, VmNicInput{IsDefault: true}, VmNicInput{})
	f.vm2 = vm(2, "monitor", f.h2, VmNicInput{IsDefault: true}, VmNicInput{}, VmNicInput{})
	f.vm3 = vm(3, "other", f.h3, VmNicInput{IsDefault: true}, VmNicInput{})
	f.vm4 = vm(4, "qos", f.h1, VmNicInput{IsDefault: true}, VmNicInput{QoS: &model.NicQoS{InboundBandwidthBps: &q}})
	f.n1a, f.n1b = nicUUID(1, 0), nicUUID(1, 1)
	f.n2a, f.n2b, f.n2c = nicUUID(2, 0), nicUUID(2, 1), nicUUID(2, 2)
	f.n3a, f.n3b = nicUUID(3, 0), nicUUID(3, 1)
	f.n4a, f.n4b = nicUUID(4, 0), nicUUID(4, 1)
	f.fn1 = f.must1(svc.CreateFlowNetwork(f.ctx, FlowNetworkInput{UUID: uFN1, Name: "mirror-net", CIDR: "198.18.0.0/24", ClusterUUIDs: []string{uC1}})).(model.FlowNetwork).UUID
	f.fn2 = f.must1(svc.CreateFlowNetwork(f.ctx, FlowNetworkInput{UUID: uFN2, Name: "spare", CIDR: "198.18.1.0/29", ClusterUUIDs: []string{uC1}})).(model.FlowNetwork).UUID
	pm := f.must1(svc.CreatePortMirror(f.ctx, PortMirrorInput{Name: "pm-a", FlowNetworkUUID: f.fn1, Enable: true,
		Sessions: []SessionInput{{Name: "s1", Type: model.Bidirection, SourceNicUUID: f.n1a, DestinationNicUUID: f.n2b}}})).(model.PortMirror)
	f.pm1 = pm.UUID
	ss, _ := svc.Sessions(f.ctx, f.pm1)
	f.s1 = ss[0].UUID
	return f
}

func (f *fx) must1(v any, err error) any {
	f.t.Helper()
	if err != nil {
		f.t.Fatalf("fixture: %v", err)
	}
	return v
}

// dump is every object of the store as JSON, for before/after comparisons.
func dump(t testing.TB, st *store.Store) string {
	t.Helper()
	all := map[string]any{
		"clusters": store.List[model.Cluster](st), "hosts": store.List[model.Host](st),
		"vms": store.List[model.VmInstance](st), "nics": store.List[model.VmNic](st),
		"fns": store.List[model.FlowNetwork](st), "eps": store.List[model.FlowEndpoint](st),
		"pms": store.List[model.PortMirror](st), "sessions": store.List[model.Session](st),
	}
	b, err := json.MarshalIndent(all, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func audits(t testing.TB, svc *Service, q AuditQuery) []model.AuditEvent {
	t.Helper()
	evs, err := svc.Audits(context.Background(), q)
	if err != nil {
		t.Fatalf("audits: %v", err)
	}
	return evs
}
