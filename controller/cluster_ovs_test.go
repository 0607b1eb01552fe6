package controller_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"portmirror/cluster"
	"portmirror/controller"
	"portmirror/internal/ovstest"
	"portmirror/model"
	"portmirror/service"
	"portmirror/store"
)

// member is one controller of an in-process cluster: store, Raft node (on raft's in-memory transport, so that a
// test can cut it off from its peers while it keeps its OpenFlow connections), service and controller.
type member struct {
	id    string
	tr    *raft.InmemTransport
	st    *store.Store
	node  *cluster.Node
	svc   *service.Service
	ctrl  *controller.Controller
	stops []func()
}

func (m *member) stop() {
	for i := len(m.stops) - 1; i >= 0; i-- {
		m.stops[i]()
	}
	m.stops = nil
}

// memberSpec is what a member restarts with: its id, Raft transport address, directory and OpenFlow address.
type memberSpec struct {
	id     string
	addr   raft.ServerAddress
	dir    string // "" keeps the store in memory
	listen string // the OpenFlow listen address ("127.0.0.1:0" for any)
}

func startMembers(t *testing.T, n int) []*member {
	t.Helper()
	specs, peers := memberSpecs(n, false, t)
	trs := make([]*raft.InmemTransport, n)
	for i, sp := range specs {
		_, trs[i] = raft.NewInmemTransport(sp.addr)
	}
	connectAll(trs)
	var ms []*member
	for i, sp := range specs {
		ms = append(ms, startMember(t, sp, trs[i], peers))
	}
	t.Cleanup(func() {
		for _, m := range ms {
			m.stop()
		}
	})
	return ms
}

func memberSpecs(n int, onDisk bool, t *testing.T) ([]memberSpec, []cluster.Peer) {
	var specs []memberSpec
	var peers []cluster.Peer
	for i := range n {
		sp := memberSpec{id: fmt.Sprintf("c%d", i+1), addr: raft.ServerAddress(fmt.Sprintf("inmem-%d", i+1)), listen: "127.0.0.1:0"}
		if onDisk {
			sp.dir = t.TempDir()
		}
		specs = append(specs, sp)
		peers = append(peers, cluster.Peer{ID: sp.id, Addr: string(sp.addr)})
	}
	return specs, peers
}

func connectAll(trs []*raft.InmemTransport) {
	for i, a := range trs {
		for j, b := range trs {
			if i != j && a != nil && b != nil {
				a.Connect(b.LocalAddr(), b)
			}
		}
	}
}

// startMember starts one member on its transport: store (in sp.dir, or in memory), Raft, service, controller.
func startMember(t *testing.T, sp memberSpec, tr *raft.InmemTransport, peers []cluster.Peer) *member {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	m := &member{id: sp.id, tr: tr}
	sto := store.Options{InMemory: true, Logger: quietLogger()}
	raftDir := filepath.Join(t.TempDir(), "raft")
	if sp.dir != "" {
		sto = store.Options{Dir: filepath.Join(sp.dir, "store"), Logger: quietLogger()}
		raftDir = filepath.Join(sp.dir, "raft")
	}
	st, err := store.Open(ctx, sto)
	if err != nil {
		t.Fatal(err)
	}
	m.st = st
	node, err := cluster.Open(ctx, cluster.Options{NodeID: sp.id, Peers: peers, Dir: raftDir,
		Store: st, Logger: quietLogger(), Transport: tr, ApplyTimeout: 5 * time.Second,
		APIAdvertise: "http://" + sp.id + ".invalid", OpenFlowAdvertise: "tcp:127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	st.SetReplicator(node)
	m.node = node
	m.svc = service.New(st, service.Options{Logger: quietLogger()})
	m.svc.SetMembership(node)
	ctrl, err := controller.New(controller.Options{Service: m.svc, Logger: quietLogger(), Listen: sp.listen, Cluster: node})
	if err != nil {
		t.Fatal(err)
	}
	m.ctrl = ctrl
	m.svc.SetLive(ctrl)
	nodeDone, ctrlDone := make(chan struct{}), make(chan struct{})
	go func() { defer close(nodeDone); _ = node.Run(ctx) }()
	go func() { defer close(ctrlDone); _ = ctrl.Run(ctx) }()
	m.stops = []func(){func() { st.Close() }, func() { _ = node.Close() }, func() { cancel(); <-ctrlDone; <-nodeDone }}
	return m
}

// leaderOf waits until exactly one of the members leads and returns it.
func leaderOf(t *testing.T, ms []*member, within time.Duration) *member {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		var l []*member
		for _, m := range ms {
			if ok, _ := m.node.Leading(); ok {
				l = append(l, m)
			}
		}
		if len(l) == 1 {
			return l[0]
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no single leader within %s", within)
	return nil
}

// roleOn is the member's OpenFlow role on the datapath, "" while not connected.
func roleOn(m *member, dpid string) string {
	for _, s := range m.ctrl.Switches() {
		if s.DatapathID == dpid && s.Connected {
			return s.Role
		}
	}
	return ""
}

// flowModsSent is the member's portmirror_flow_mods_sent_total, all commands.
func flowModsSent(t *testing.T, m *member) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	if err := reg.Register(m.ctrl.Collector()); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() == "portmirror_flow_mods_sent_total" {
			for _, m := range mf.GetMetric() {
				total += counterOf(m)
			}
		}
	}
	return total
}

func counterOf(m *dto.Metric) float64 {
	if c := m.GetCounter(); c != nil {
		return c.GetValue()
	}
	return 0
}

// dumpOurs is the bridge's flows as ovs-ofctl prints them without statistics, sorted.
func dumpOurs(t *testing.T, o *ovstest.T) string {
	t.Helper()
	out := o.Ofctl("-O", "OpenFlow13", "--no-stats", "dump-flows", "br0")
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "OFPST_FLOW") {
			lines = append(lines, l)
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func waitUntil(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestClusterRolesFailoverAndPartition: three controllers and a real OVS bridge that connects to all three. The
// leader is the bridge's only MASTER; a leader cut off from its peers stops programming at once and the switch
// refuses it; the new leader takes over without a flow_mod where nothing changed, then programs new changes.
func TestClusterRolesFailoverAndPartition(t *testing.T) {
	ctx := service.WithActor(context.Background(), "cluster-test")
	ms := startMembers(t, 3)
	o := ovstest.Must(t, ovstest.Options{})
	const dpid = "00000000000000c1"
	var targets []string
	for _, m := range ms {
		targets = append(targets, "tcp:"+m.ctrl.Addr().String())
	}
	o.Vsctl("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=dummy", "protocols=OpenFlow13",
		"fail_mode=secure", "other-config:datapath-id="+dpid)
	for i, p := range []string{"vm1", "vm2", "mon"} {
		o.Vsctl("add-port", "br0", p, "--", "set", "interface", p, "type=internal", fmt.Sprintf("ofport_request=%d", i+1))
	}
	o.Vsctl(append([]string{"set-controller", "br0"}, targets...)...)

	l := leaderOf(t, ms, 15*time.Second)
	// Inventory and a port mirror, through the leader's service.
	svc := l.svc
	cl, err := svc.CreateCluster(ctx, service.ClusterInput{Name: "c"})
	if err != nil {
		t.Fatal(err)
	}
	h, err := svc.RegisterHost(ctx, service.HostInput{Name: "hv1", ClusterUUID: cl.UUID, DatapathID: dpid, Bridge: "br0"})
	if err != nil {
		t.Fatal(err)
	}
	const nicVM1, nicVM2, nicMon = "00000000-0000-4000-8000-0000000000d1", "00000000-0000-4000-8000-0000000000d2", "00000000-0000-4000-8000-0000000000d3"
	_, err = svc.CreateVmInstance(ctx, service.VmInstanceInput{Name: "web", HostUUID: h.UUID, Nics: []service.VmNicInput{
		{UUID: nicVM1, MAC: "52:54:00:00:00:01", IsDefault: true, PortName: "vm1"}, {UUID: nicVM2, MAC: "52:54:00:00:00:02", PortName: "vm2"}}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = svc.CreateVmInstance(ctx, service.VmInstanceInput{Name: "mon", HostUUID: h.UUID, Nics: []service.VmNicInput{
		{MAC: "52:54:00:00:00:0a", IsDefault: true}, {UUID: nicMon, MAC: "52:54:00:00:00:0b", PortName: "mon"}}})
	if err != nil {
		t.Fatal(err)
	}
	fn, err := svc.CreateFlowNetwork(ctx, service.FlowNetworkInput{Name: "fn", CIDR: "198.18.0.0/24", ClusterUUIDs: []string{cl.UUID}})
	if err != nil {
		t.Fatal(err)
	}
	pm, err := svc.CreatePortMirror(ctx, service.PortMirrorInput{Name: "pm", FlowNetworkUUID: fn.UUID, Enable: true,
		Sessions: []service.SessionInput{{Name: "s1", Type: model.Bidirection, SourceNicUUID: nicVM1, DestinationNicUUID: nicMon}}})
	if err != nil {
		t.Fatal(err)
	}
	active := func(m *member, pmUUID string) func() bool {
		return func() bool {
			ss, err := m.svc.Sessions(ctx, pmUUID)
			if err != nil || len(ss) == 0 {
				return false
			}
			for _, s := range ss {
				if st, _ := m.svc.SessionStatus(ctx, s); st != model.StatusActive {
					return false
				}
			}
			return true
		}
	}
	waitUntil(t, "the session ACTIVE on the leader", 20*time.Second, active(l, pm.UUID))

	// Exactly one MASTER, the leader; the others SLAVE.
	waitUntil(t, "one MASTER (the leader) and two SLAVEs", 10*time.Second, func() bool {
		for _, m := range ms {
			want := "SLAVE"
			if m == l {
				want = "MASTER"
			}
			if roleOn(m, dpid) != want {
				return false
			}
		}
		return true
	})
	before := dumpOurs(t, o)
	if !strings.Contains(before, "output:3") {
		t.Fatalf("the bridge holds no copy to the capture port:\n%s", before)
	}
	sent := map[string]float64{}
	for _, m := range ms {
		sent[m.id] = flowModsSent(t, m)
		if m != l && sent[m.id] != 0 {
			t.Fatalf("follower %s sent %v flow_mods", m.id, sent[m.id])
		}
	}

	// Cut the leader off from its peers; it keeps its OpenFlow connection.
	l.tr.DisconnectAll()
	for _, m := range ms {
		if m != l {
			m.tr.Disconnect(l.tr.LocalAddr())
		}
	}
	start := time.Now()
	var rest []*member
	for _, m := range ms {
		if m != l {
			rest = append(rest, m)
		}
	}
	l2 := leaderOf(t, rest, 10*time.Second)
	waitUntil(t, "the cut-off leader to stop leading", 5*time.Second, func() bool { ok, _ := l.node.Leading(); return !ok })
	waitUntil(t, "the new leader MASTER of the bridge", 10*time.Second, func() bool { return roleOn(l2, dpid) == "MASTER" })
	waitUntil(t, "the old leader demoted to SLAVE", 10*time.Second, func() bool { return roleOn(l, dpid) == "SLAVE" })
	t.Logf("partition → new leader MASTER in %s", time.Since(start).Round(time.Millisecond))
	waitUntil(t, "the session ACTIVE on the new leader", 10*time.Second, active(l2, pm.UUID))
	if after := dumpOurs(t, o); after != before {
		t.Fatalf("flows changed across the failover:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if d := flowModsSent(t, l2) - sent[l2.id]; d != 0 {
		t.Fatalf("the new leader sent %v flow_mods on a failover where nothing changed", d)
	}
	oldSent := flowModsSent(t, l)

	// A change through the new leader reaches the bridge; the cut-off ex-leader sends nothing.
	if _, err := l2.svc.AddPortMirrorSession(ctx, pm.UUID, service.SessionInput{Name: "s2", Type: model.Egress,
		SourceNicUUID: nicVM2, DestinationNicUUID: nicMon}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "both sessions ACTIVE on the new leader", 10*time.Second, active(l2, pm.UUID))
	if dumpOurs(t, o) == before {
		t.Fatal("the new session changed nothing on the bridge")
	}
	if _, err := l.svc.AddPortMirrorSession(ctx, pm.UUID, service.SessionInput{Name: "s3", Type: model.Ingress,
		SourceNicUUID: nicVM2, DestinationNicUUID: nicMon}); err == nil {
		t.Fatal("the cut-off ex-leader accepted a mutation")
	} else if se := service.AsError(err); se.Code != service.CodeUnavailable {
		t.Fatalf("the cut-off ex-leader refused a mutation with %v, want UNAVAILABLE", err)
	}
	if d := flowModsSent(t, l) - oldSent; d != 0 {
		t.Fatalf("the cut-off ex-leader sent %v flow_mods", d)
	}

	// Heal: the ex-leader catches up as a follower and stays SLAVE.
	for _, m := range rest {
		l.tr.Connect(m.tr.LocalAddr(), m.tr)
		m.tr.Connect(l.tr.LocalAddr(), l.tr)
	}
	waitUntil(t, "the ex-leader to catch up", 10*time.Second, func() bool {
		ss, _ := l.svc.Sessions(ctx, pm.UUID)
		return len(ss) == 2
	})
	if ok, _ := l.node.Leading(); ok && leaderOf(t, ms, time.Second) == l {
		// a re-election may pick it; then it must be MASTER again with a higher generation
		waitUntil(t, "the re-elected ex-leader MASTER", 10*time.Second, func() bool { return roleOn(l, dpid) == "MASTER" })
	} else if r := roleOn(l, dpid); r != "SLAVE" {
		t.Fatalf("the healed ex-leader is %s of the bridge, want SLAVE", r)
	}
}
