package controller

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"portmirror/flows"
	"portmirror/model"
	"portmirror/ofwire"
	"portmirror/service"
	"portmirror/store"
	"portmirror/topology"
)

// incEnv is a controller that is not started: the test feeds it the store's changes and the view's events, runs
// its passes, and sees every bridge's compiled state through onWork.
type incEnv struct {
	t    *testing.T
	ctx  context.Context
	c    *Controller
	svc  *service.Service
	feed <-chan store.Change

	programmed map[string][]flows.Flow
	hosts      []model.Host
	vms        []model.VmInstance
	nics       []model.VmNic // non-default NICs only: they may be destinations
	srcNics    []model.VmNic
	pms        []model.PortMirror
	ports      []string // every NIC's port name: each bridge has them all, so a migrated VM binds
	tunnels    []string
	connected  map[string]bool
	portUp     map[string]map[uint32]bool
	sentinels  int
	keySums    map[uint64]uint64 // bridge key -> the digest of the flows it was seen to compile to
}

func newIncEnv(t *testing.T, hosts, vmsPerHost int) *incEnv {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(ctx, store.Options{InMemory: true, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc := service.New(st, service.Options{Logger: log})
	e := &incEnv{t: t, ctx: ctx, svc: svc, programmed: map[string][]flows.Flow{}, connected: map[string]bool{}, keySums: map[uint64]uint64{},
		portUp: map[string]map[uint32]bool{}}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	cl, err := svc.CreateCluster(ctx, service.ClusterInput{Name: "c"})
	must(err)
	var his []service.HostInput
	for h := range hosts {
		his = append(his, service.HostInput{Name: fmt.Sprintf("h%d", h), ClusterUUID: cl.UUID, DatapathID: fmt.Sprintf("%x", 0xa00+h)})
	}
	_, err = svc.RegisterHosts(ctx, his)
	must(err)
	e.hosts, _ = svc.Hosts(ctx)
	var vis []service.VmInstanceInput
	for h := range hosts {
		for v := range vmsPerHost {
			vi := service.VmInstanceInput{Name: fmt.Sprintf("h%d-v%d", h, v), HostUUID: e.hosts[h].UUID}
			for n := range 2 {
				port := fmt.Sprintf("p%d-%d-%d", h, v, n)
				e.ports = append(e.ports, port)
				vi.Nics = append(vi.Nics, service.VmNicInput{MAC: fmt.Sprintf("02:00:00:%02x:%02x:%02x", h, v, n), IsDefault: n == 0, PortName: port})
			}
			vis = append(vis, vi)
		}
	}
	_, err = svc.CreateVmInstances(ctx, vis)
	must(err)
	e.vms, _ = svc.VmInstances(ctx)
	for _, vm := range e.vms {
		ns, _ := svc.VmNics(ctx, vm.UUID)
		e.srcNics = append(e.srcNics, ns...)
		e.nics = append(e.nics, ns[1])
	}
	for i := range 2 {
		fn, err := svc.CreateFlowNetwork(ctx, service.FlowNetworkInput{Name: fmt.Sprintf("fn%d", i), CIDR: fmt.Sprintf("198.18.%d.0/24", 10+i), ClusterUUIDs: []string{cl.UUID}})
		must(err)
		e.tunnels = append(e.tunnels, model.TunnelPortName(fn.UUID))
		pm, err := svc.CreatePortMirror(ctx, service.PortMirrorInput{Name: fmt.Sprintf("pm%d", i), FlowNetworkUUID: fn.UUID, Enable: i == 0})
		must(err)
		e.pms = append(e.pms, pm)
	}
	feed, stop := svc.Subscribe(1 << 16)
	t.Cleanup(stop)
	e.feed = feed
	c := &Controller{
		opts: Options{FullPassEvery: time.Hour, RetryMin: time.Millisecond, RetryMax: time.Millisecond},
		svc:  svc, log: log, view: topology.NewView(), kick: make(chan struct{}, 1),
		sem: make(chan struct{}, 4), bridges: map[string]*bridge{}, hosts: map[string]*hostManager{},
		reloadInventory: true, tunnels: map[string][]uint32{}, metrics: newMetrics(), inc: newIncState(),
		leadCtx: ctx, runCtx: ctx, ready: make(chan struct{}),
	}
	c.onWork = func(dp string, w *work) {
		fs, err := w.flows.get()
		if err != nil {
			t.Fatalf("bridge %s: %v", dp, err)
		}
		e.programmed[dp] = fs
	}
	t.Cleanup(c.wg.Wait)
	e.c = c
	for h := range hosts {
		e.connect(h)
	}
	return e
}

func (e *incEnv) dp(h int) string { d, _ := model.NormalizeDatapathID(e.hosts[h].DatapathID); return d }

// connect connects host h's bridge: every NIC port (up unless taken down before) and both tunnel ports.
func (e *incEnv) connect(h int) {
	dp := e.dp(h)
	if e.portUp[dp] == nil {
		e.portUp[dp] = map[uint32]bool{}
	}
	var ports []model.SwitchPort
	for i, name := range append(append([]string{}, e.ports...), e.tunnels...) {
		no := uint32(i + 1)
		up, seen := e.portUp[dp][no]
		if !seen {
			up = true
			e.portUp[dp][no] = true
		}
		ports = append(ports, model.SwitchPort{DatapathID: dp, PortNo: no, Name: name, Up: up})
	}
	e.c.view.SwitchConnected(dp, "198.18.0.1:1", time.Now(), ports)
	e.c.view.MarkDirty(dp)
	e.connected[dp] = true
}

// pass hands the controller every store change made since the last pass and runs one pass.
func (e *incEnv) pass() {
	e.t.Helper()
	// The feed delivers on its own goroutine: a sentinel change, committed after the test's, marks the end.
	e.sentinels++
	cl, err := e.svc.CreateCluster(e.ctx, service.ClusterInput{Name: fmt.Sprint("sentinel", e.sentinels)})
	if err != nil {
		e.t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	for done := false; !done; {
		select {
		case ch := <-e.feed:
			e.c.noteChange(ch)
			done = ch.Kind == store.KindCluster && ch.UUID == cl.UUID
		case <-deadline:
			e.t.Fatal("the store's change feed did not deliver the sentinel")
		}
	}
	if err := e.c.pass(e.ctx); err != nil {
		e.t.Fatalf("pass: %v", err)
	}
}

// checkFabric compares the fabric the passes patched with one built anew, and the tunnel ports the controller
// noted per bridge with it.
func (e *incEnv) checkFabric(step string) {
	e.t.Helper()
	c := e.c
	c.mu.Lock()
	kept := c.fabric
	c.fabric = nil
	c.mu.Unlock()
	fresh, err := c.currentFabric(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	c.mu.Lock()
	c.fabric = kept
	c.mu.Unlock()
	if kept == nil {
		return
	}
	if !reflect.DeepEqual(kept.bridges, fresh.bridges) {
		e.t.Fatalf("%s: the patched fabric's bridges differ from a fabric built anew", step)
	}
	if !reflect.DeepEqual(kept.endpoints, fresh.endpoints) {
		e.t.Fatalf("%s: the patched fabric's endpoints differ from a fabric built anew:\n%v\n%v", step, kept.endpoints, fresh.endpoints)
	}
	want := tunnelPorts(&flows.Input{Endpoints: fresh.endpoints})
	for dp := range fresh.bridges {
		if got := c.tunnels[dp]; !slices.Equal(got, want[dp]) {
			e.t.Fatalf("%s: bridge %s: tunnel ports %v noted, %v in a fabric built anew", step, dp, got, want[dp])
		}
	}
}

// checkView compares the view the incremental inventory updates left with one made from the whole inventory.
func (e *incEnv) checkView(step string) {
	e.t.Helper()
	inv, err := topology.LoadInventory(e.ctx, e.svc)
	if err != nil {
		e.t.Fatal(err)
	}
	fresh := topology.NewView()
	fresh.SetInventory(inv)
	for h := range e.hosts {
		dp := e.dp(h)
		if _, ever := e.portUp[dp]; !ever {
			continue
		}
		var ports []model.SwitchPort
		for i, name := range append(append([]string{}, e.ports...), e.tunnels...) {
			no := uint32(i + 1)
			ports = append(ports, model.SwitchPort{DatapathID: dp, PortNo: no, Name: name, Up: e.portUp[dp][no]})
		}
		fresh.SwitchConnected(dp, "198.18.0.1:1", time.Now(), ports)
		if !e.connected[dp] {
			fresh.SwitchDisconnected(dp)
		}
	}
	for _, n := range inv.Nics {
		got, ok1 := e.c.view.Binding(n.UUID)
		want, ok2 := fresh.Binding(n.UUID)
		if ok1 != ok2 || got != want {
			e.t.Fatalf("%s: NIC %s: the view binds it %+v (known %v), a view of the whole inventory %+v (known %v)", step, n.UUID, got, ok1, want, ok2)
		}
	}
}

// check compares the controller's state with a full recomputation: every session's report and fingerprint, and
// every bridge's flows as last handed out.
func (e *incEnv) check(step string) {
	e.t.Helper()
	e.checkView(step)
	e.checkFabric(step)
	in, _, err := e.c.buildInput(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	plan := flows.Analyze(in)
	fps := fingerprints(in, plan)
	e.c.mu.Lock()
	ps := e.c.plan
	e.c.mu.Unlock()
	if len(ps.reports) != len(in.Sessions) || len(ps.fp) != len(in.Sessions) {
		e.t.Fatalf("%s: the controller holds %d reports and %d fingerprints, a full analysis %d sessions", step, len(ps.reports), len(ps.fp), len(in.Sessions))
	}
	for i, s := range in.Sessions {
		if got, want := ps.reports[s.UUID], plan.Reports()[i]; !reflect.DeepEqual(got, want) {
			e.t.Fatalf("%s: session %s: incremental report %+v, full %+v", step, s.UUID, got, want)
		}
		if ps.fp[s.UUID] != fps[s.UUID] {
			e.t.Fatalf("%s: session %s: fingerprint differs from a full analysis", step, s.UUID)
		}
		if ps.rev[s.UUID] != s.Revision {
			e.t.Fatalf("%s: session %s: revision %d, want %d", step, s.UUID, ps.rev[s.UUID], s.Revision)
		}
	}
	// The warm start's oracle: what the controller would record of each bridge (flowRecord) is the key a fresh
	// controller computes from the same state (so that a restart on it compiles nothing) with the digest of the
	// flows a full compile gives, and one key never stands for two sets of flows.
	tunnels := tunnelPorts(in)
	onDP := map[string][]string{}
	for i := range in.Sessions {
		for _, dp := range located(in, &in.Sessions[i]) {
			onDP[dp] = append(onDP[dp], in.Sessions[i].UUID)
		}
	}
	record := e.c.flowRecord()
	for dp := range in.Bridges {
		rec, ok := record[dp]
		if !ok {
			e.t.Fatalf("%s: bridge %s: connected and not recorded", step, dp)
		}
		slices.Sort(onDP[dp])
		if _, fresh := bridgeKey(nil, dp, onDP[dp], fps, in.Bridges[dp].Ports, tunnels[dp]); rec.Key != fresh {
			e.t.Fatalf("%s: bridge %s: recorded with key %x, a fresh controller's key is %x", step, dp, rec.Key, fresh)
		}
		fs := plan.Bridge(dp)
		packed, err := ofwire.PackFlows(fs)
		if err != nil {
			e.t.Fatal(err)
		}
		sum, _, err := flowsDigest(packed)
		if err != nil {
			e.t.Fatal(err)
		}
		if rec.Flows != sum || rec.Count != len(fs) {
			e.t.Fatalf("%s: bridge %s: recorded %d flows of digest %x, a full compile gives %d of digest %x", step, dp, rec.Count, rec.Flows, len(fs), sum)
		}
		if prev, seen := e.keySums[rec.Key]; seen && prev != sum {
			e.t.Fatalf("%s: bridge %s: key %x stands for flows of digest %x and, earlier, %x", step, dp, rec.Key, sum, prev)
		}
		e.keySums[rec.Key] = sum
	}
	for dp := range in.Bridges {
		want := plan.Bridge(dp)
		if got := e.programmed[dp]; !reflect.DeepEqual(got, want) {
			for _, s := range in.Sessions {
				if in.NICs[s.DestinationNIC].DatapathID == dp || in.NICs[s.SourceNIC].DatapathID == dp {
					r, _ := plan.Report(s.UUID)
					var dps []string
					if ent := e.c.inc.sessions[s.UUID]; ent != nil {
						dps = ent.dps
					}
					e.t.Logf("session %s: source %+v, destination %+v, report %+v, indexed on %v", s.UUID, in.NICs[s.SourceNIC], in.NICs[s.DestinationNIC], r, dps)
				}
			}
			e.t.Fatalf("%s: bridge %s: %d flows handed out, a full compile gives %d:\n%s\nwant:\n%s", step, dp, len(got), len(want), flowsText(got), flowsText(want))
		}
	}
}

func flowsText(fs []flows.Flow) string {
	out := ""
	for _, f := range fs {
		out += f.String() + "\n"
	}
	return out
}

// TestIncrementalEqualsFull is the incremental passes' oracle: after any random sequence of changes (sessions
// added, updated and deleted, port mirrors enabled and disabled, VMs created, migrated and deleted, ports going
// down and up, bridges reconnecting), the state the incremental passes leave, every session's verdict and every
// bridge's flows, equals a full recomputation.
func TestIncrementalEqualsFull(t *testing.T) {
	steps := 400
	if testing.Short() {
		steps = 120
	}
	for seed := range uint64(incSeeds()) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			e := newIncEnv(t, 5, 3)
			rng := rand.New(rand.NewPCG(seed, 7))
			e.pass()
			if !e.c.inc.ready {
				t.Fatal("the first pass did not build the incremental state")
			}
			e.check("first pass")
			var sessions []string
			fulls := 0
			dirs := []model.Direction{model.Bidirection, model.Egress, model.Ingress}
			for i := range steps {
				var what string
				switch op := rng.IntN(11); {
				case op <= 2 || len(sessions) == 0:
					src := e.srcNics[rng.IntN(len(e.srcNics))]
					dst := e.nics[rng.IntN(len(e.nics))]
					pm := e.pms[rng.IntN(len(e.pms))]
					s, err := e.svc.AddPortMirrorSession(e.ctx, pm.UUID, service.SessionInput{Name: fmt.Sprint("s", i),
						Type: dirs[rng.IntN(3)], SourceNicUUID: src.UUID, DestinationNicUUID: dst.UUID})
					what = fmt.Sprintf("add session %s→%s: %v", src.PortName, dst.PortName, err)
					if err == nil {
						sessions = append(sessions, s.UUID)
					}
				case op == 3:
					k := rng.IntN(len(sessions))
					err := e.svc.DeletePortMirrorSession(e.ctx, sessions[k])
					sessions = append(sessions[:k], sessions[k+1:]...)
					what = fmt.Sprintf("delete session: %v", err)
				case op == 4:
					pm := e.pms[rng.IntN(len(e.pms))]
					var err error
					if rng.IntN(2) == 0 {
						_, err = e.svc.EnablePortMirror(e.ctx, pm.UUID)
					} else {
						_, err = e.svc.DisablePortMirror(e.ctx, pm.UUID)
					}
					what = fmt.Sprintf("toggle port mirror %s: %v", pm.Name, err)
				case op == 5:
					vm := e.vms[rng.IntN(len(e.vms))]
					h := e.hosts[rng.IntN(len(e.hosts))]
					_, err := e.svc.MigrateVmInstance(e.ctx, vm.UUID, h.UUID)
					what = fmt.Sprintf("migrate %s to %s: %v", vm.Name, h.Name, err)
				case op == 6:
					dp := e.dp(rng.IntN(len(e.hosts)))
					no := uint32(1 + rng.IntN(len(e.ports)+len(e.tunnels)))
					up := !e.portUp[dp][no]
					if e.connected[dp] { // a bridge that is away tells nothing
						e.portUp[dp][no] = up
						name := append(append([]string{}, e.ports...), e.tunnels...)[no-1]
						e.c.view.PortStatus(dp, model.SwitchPort{DatapathID: dp, PortNo: no, Name: name, Up: up}, false)
					}
					what = fmt.Sprintf("port %d of %s up=%v", no, dp, up)
				case op == 7:
					h := rng.IntN(len(e.hosts))
					dp := e.dp(h)
					if e.connected[dp] {
						e.c.view.SwitchDisconnected(dp)
						e.connected[dp] = false
					} else {
						e.connect(h)
					}
					what = fmt.Sprintf("bridge %s connected=%v", dp, e.connected[dp])
				case op == 8:
					s := sessions[rng.IntN(len(sessions))]
					fs := []model.FilterRule{{Protocol: "tcp", DestinationPorts: fmt.Sprint(1 + rng.IntN(1000))}}
					_, err := e.svc.UpdatePortMirrorSession(e.ctx, s, service.SessionUpdate{Filters: &fs})
					what = fmt.Sprintf("filter session: %v", err)
				case op == 9:
					h := e.hosts[rng.IntN(len(e.hosts))]
					port := e.ports[rng.IntN(len(e.ports))]
					res, err := e.svc.CreateVmInstances(e.ctx, []service.VmInstanceInput{{Name: fmt.Sprint("extra", i), HostUUID: h.UUID,
						Nics: []service.VmNicInput{{MAC: fmt.Sprintf("02:01:00:00:%02x:%02x", i>>8, i&0xff), PortName: port}}}})
					what = fmt.Sprintf("create VM on %s with a NIC on %s: %v", h.Name, port, err)
					if err == nil {
						vm, _ := e.svc.VmInstance(e.ctx, res.UUIDs[0])
						e.vms = append(e.vms, vm)
						ns, _ := e.svc.VmNics(e.ctx, vm.UUID)
						e.nics = append(e.nics, ns...)
						e.srcNics = append(e.srcNics, ns...)
					}
				default:
					k := rng.IntN(len(e.vms))
					err := e.svc.DeleteVmInstance(e.ctx, e.vms[k].UUID)
					what = fmt.Sprintf("delete VM %s: %v", e.vms[k].Name, err)
				}
				wasFull := !e.c.inc.ready
				e.pass()
				if wasFull || e.c.inc.lastFull.After(time.Now().Add(-time.Millisecond)) {
					fulls++
				}
				e.check(fmt.Sprintf("step %d (%s)", i, what))
			}
			t.Logf("%d steps, %d sessions at the end, about %d full passes", steps, len(e.c.inc.sessions), fulls)
		})
	}
}

// incSeeds is how many random sequences TestIncrementalEqualsFull runs: 3, or PORTMIRROR_INC_SEEDS.
func incSeeds() int {
	if n, err := strconv.Atoi(os.Getenv("PORTMIRROR_INC_SEEDS")); err == nil && n > 0 {
		return n
	}
	return 3
}

// TestBridgeDigests: the digests a full pass records for every bridge at once are those an incremental pass
// computes for one, and a change of a bridge's ports or of one of its endpoints changes its digest only.
func TestBridgeDigests(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	fab := &fabric{bridges: map[string]flows.Bridge{}, endpoints: map[flows.EndpointKey]flows.Endpoint{}, networks: map[string]model.FlowNetwork{}}
	for n := range 5 {
		fn := fmt.Sprintf("fn-%d", n)
		fab.networks[fn] = model.FlowNetwork{UUID: fn}
	}
	for b := range 40 {
		dp := fmt.Sprintf("%016x", b)
		ports := []uint32{1, 2, uint32(3 + r.IntN(5))}
		fab.bridges[dp] = flows.Bridge{Ports: ports}
		for fn := range fab.networks {
			if r.IntN(2) == 0 {
				fab.setEndpoint(fn, dp, flows.Endpoint{TunnelPort: uint32(100 + r.IntN(3)),
					IP: netip.AddrFrom4([4]byte{198, 18, byte(b), byte(r.IntN(3))})})
			}
		}
	}
	// an endpoint of a flow network the fabric does not hold, and one of a bridge it does not hold: not counted
	fab.setEndpoint("gone", "0000000000000001", flows.Endpoint{TunnelPort: 9})
	fab.setEndpoint("fn-0", "00000000000000ff", flows.Endpoint{TunnelPort: 9})
	all := bridgeDigests(fab)
	if len(all) != len(fab.bridges) {
		t.Fatalf("%d digests for %d bridges", len(all), len(fab.bridges))
	}
	for dp := range fab.bridges {
		if one, ok := bridgeDigest(fab, dp); !ok || one != all[dp] {
			t.Fatalf("bridge %s: digest %x alone, %x among all", dp, one, all[dp])
		}
	}
	if _, ok := bridgeDigest(fab, "00000000000000ff"); ok {
		t.Error("a bridge the fabric does not hold has a digest")
	}
	dp := "0000000000000003"
	fab.bridges[dp] = flows.Bridge{Ports: []uint32{1, 2, 99}}
	k := flows.EndpointKey{FlowNetwork: "fn-1", DatapathID: "0000000000000004"}
	fab.setEndpoint(k.FlowNetwork, k.DatapathID, flows.Endpoint{TunnelPort: 77})
	after := bridgeDigests(fab)
	for d := range fab.bridges {
		if changed := after[d] != all[d]; changed != (d == dp || d == k.DatapathID) {
			t.Errorf("bridge %s: digest changed %v", d, changed)
		}
		if one, _ := bridgeDigest(fab, d); one != after[d] {
			t.Errorf("bridge %s after the change: digest %x alone, %x among all", d, one, after[d])
		}
	}
	// dropped, the bridge's endpoints count no more
	fab.dropEndpoints(k.DatapathID)
	if one, _ := bridgeDigest(fab, k.DatapathID); one != bridgeDigests(fab)[k.DatapathID] {
		t.Errorf("bridge %s without endpoints: digest %x alone, %x among all", k.DatapathID, one, bridgeDigests(fab)[k.DatapathID])
	}
}
