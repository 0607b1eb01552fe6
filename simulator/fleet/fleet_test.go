package fleet

import (
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"slices"
	"testing"

	"portmirror/graphql"
	"portmirror/model"
	"portmirror/service"
	"portmirror/simulator/dataplane"
	"portmirror/store"
)

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestZeroTopology: the zero Topology is a small valid fleet, and everything in it follows from the seed.
func TestZeroTopology(t *testing.T) {
	f, err := Build(Topology{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Hosts) != 3 || len(f.VMs) != 9 || len(f.Monitors()) != 3 || len(f.FlowNetworks) != 1 {
		t.Fatalf("zero topology: %d hosts, %d VMs, %d monitors, %d flow networks; want 3, 9, 3, 1",
			len(f.Hosts), len(f.VMs), len(f.Monitors()), len(f.FlowNetworks))
	}
	for _, h := range f.Hosts {
		p, ok := h.Bridge.PortByName(f.FlowNetworks[0].PortName)
		if !ok || p.Tunnel == nil || p.Tunnel.Type != "gre" || p.Tunnel.LocalIP != h.Endpoints[0] {
			t.Errorf("%s: tunnel port %q = %+v, want gre from %v", h.Name, f.FlowNetworks[0].PortName, p, h.Endpoints[0])
		}
		if !f.FlowNetworks[0].CIDR.Contains(h.Endpoints[0]) {
			t.Errorf("%s: endpoint %v outside %v", h.Name, h.Endpoints[0], f.FlowNetworks[0].CIDR)
		}
	}
	for _, n := range f.Monitors() {
		h, no := f.PortOf(n)
		p, _ := h.Bridge.Port(no)
		if !p.NoFlood || p.Name != n.PortName {
			t.Errorf("capture NIC %s: port %+v, want NoFlood named %s", n, p, n.PortName)
		}
	}

	same, _ := Build(Topology{}, Options{})
	other, _ := Build(Topology{Seed: 7}, Options{})
	for i, n := range f.NICs {
		if same.NICs[i].UUID != n.UUID || same.NICs[i].MAC != n.MAC {
			t.Fatalf("same seed, NIC %d differs: %s %v vs %s %v", i, n.UUID, n.MAC, same.NICs[i].UUID, same.NICs[i].MAC)
		}
		if other.NICs[i].UUID == n.UUID || other.NICs[i].MAC == n.MAC {
			t.Fatalf("seeds 0 and 7 give NIC %d the same uuid or MAC: %s %v", i, n.UUID, n.MAC)
		}
	}
	if other.Hosts[0].DatapathID == f.Hosts[0].DatapathID {
		t.Errorf("seeds 0 and 7 give the same datapath id %x", f.Hosts[0].DatapathID)
	}
}

func TestBuildRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		t    Topology
	}{
		{"no host", Topology{Clusters: []ClusterSpec{{}}}},
		{"too many flow networks", Topology{FlowNetworks: MaxFlowNetworks + 1}},
		{"bad encapsulation", Topology{Encapsulation: "IPIP"}},
		{"negative VMs", Topology{Clusters: []ClusterSpec{{Hosts: []HostSpec{{VMs: -1}}}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Build(tc.t, Options{}); err == nil {
				t.Errorf("Build accepted %+v", tc.t)
			}
		})
	}
}

func newService(t *testing.T) *service.Service {
	t.Helper()
	st, err := store.Open(context.Background(), store.Options{InMemory: true, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return service.New(st, service.Options{Logger: quiet()})
}

// TestRegister: through the service and through GraphQL, the stored inventory matches the simulated one: hosts
// with their datapath ids, NICs bound by port name, endpoints equal to the tunnel ports' local IPs.
func TestRegister(t *testing.T) {
	for _, via := range []string{"service", "graphql"} {
		t.Run(via, func(t *testing.T) {
			ctx := context.Background()
			svc := newService(t)
			var api API = svc
			if via == "graphql" {
				h, err := graphql.New(graphql.Options{Backend: svc, Logger: quiet()})
				if err != nil {
					t.Fatal(err)
				}
				srv := httptest.NewServer(h)
				t.Cleanup(srv.Close)
				api = NewClient(srv.URL+"/graphql", "")
			}
			f, err := Build(Topology{Seed: 3, FlowNetworks: 2, Encapsulation: model.VXLAN,
				Clusters: []ClusterSpec{{Hosts: []HostSpec{{VMs: 1, NICsPerVM: 2}}}, {Hosts: []HostSpec{{Monitors: 1}}}}}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Register(ctx, api); err != nil {
				t.Fatal(err)
			}
			for _, h := range f.Hosts {
				got, err := svc.Host(ctx, h.UUID)
				if err != nil {
					t.Fatal(err)
				}
				if got.DatapathID != h.DatapathIDString() || got.ClusterUUID != h.Cluster.UUID || got.Bridge != "br-int" {
					t.Errorf("stored host %+v, want datapath %s in %s", got, h.DatapathIDString(), h.Cluster.Name)
				}
				eps, err := svc.FlowEndpointsOfHost(ctx, h.UUID)
				if err != nil {
					t.Fatal(err)
				}
				var ips []string
				for _, fn := range f.FlowNetworks {
					for _, ep := range eps {
						if ep.FlowNetworkUUID == fn.UUID {
							ips = append(ips, ep.IP)
						}
					}
				}
				want := []string{h.Endpoints[0].String(), h.Endpoints[1].String()}
				if !slices.Equal(ips, want) {
					t.Errorf("%s: stored endpoints %v, want the simulated %v", h.Name, ips, want)
				}
			}
			for _, n := range f.NICs {
				got, err := svc.VmNic(ctx, n.UUID)
				if err != nil {
					t.Fatal(err)
				}
				if got.PortName != n.PortName || got.MAC != n.MAC.String() || got.IsDefault != n.Default {
					t.Errorf("stored NIC %+v, want port %s mac %v default %v", got, n.PortName, n.MAC, n.Default)
				}
			}
			fn, err := svc.FlowNetwork(ctx, f.FlowNetworks[1].UUID)
			if err != nil || fn.Encapsulation != model.VXLAN || len(fn.ClusterUUIDs) != 2 {
				t.Errorf("stored flow network %+v (%v), want VXLAN on both clusters", fn, err)
			}
			// a second registration is refused: the objects exist
			if err := f.Register(ctx, api); err == nil {
				t.Error("registering the same fleet twice succeeded")
			}
		})
	}
}

// TestSendUnderlay: with only NORMAL on every bridge (no controller), a broadcast reaches every other sending NIC
// on every host once and no capture NIC; a unicast reaches its NIC only; nothing comes back to the sender.
func TestSendUnderlay(t *testing.T) {
	f, err := Build(Topology{Seed: 1}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	normal := dataplane.Flow{Actions: []dataplane.Action{dataplane.Output(dataplane.PortNormal)}}
	for _, h := range f.Hosts {
		if err := h.Bridge.AddFlow(normal, false); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range f.Senders() {
		if _, err := f.Send(f.Announce(n)); err != nil {
			t.Fatal(err)
		}
	}
	from := f.Senders()[0]
	d, err := f.Send(BroadcastFrame(from, nicIP(999)))
	if err != nil {
		t.Fatal(err)
	}
	got := map[*NIC]int{}
	for _, a := range d.Arrivals {
		got[a.NIC]++
	}
	for _, n := range f.NICs {
		want := 1
		if n == from || n.Capture {
			want = 0
		}
		if got[n] != want {
			t.Errorf("broadcast from %s: %d at %s, want %d\n%s", from, got[n], n, want, d.Trace)
		}
	}
	to := f.Senders()[len(f.Senders())-1]
	d, err = f.Send(UnicastFrame(from, to, 1))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Arrivals) != 1 || d.Arrivals[0].NIC != to {
		t.Errorf("unicast %s -> %s arrived at %v", from, to, d.Arrivals)
	}
	if f.HostOf(to.VM) == f.HostOf(from.VM) {
		t.Errorf("the test wants the unicast to cross hosts")
	}
}

// TestMoveVM: after a move the VM's NICs are on the new bridge under the same names, the old bridge no longer has
// them, and unicast to the moved NIC reaches it at its new place.
func TestMoveVM(t *testing.T) {
	f, err := Build(Topology{Seed: 2}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range f.Hosts {
		if err := h.Bridge.AddFlow(dataplane.Flow{Actions: []dataplane.Action{dataplane.Output(dataplane.PortNormal)}}, false); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range f.Senders() {
		if _, err := f.Send(f.Announce(n)); err != nil {
			t.Fatal(err)
		}
	}
	vm := f.VMs[0]
	old, to := f.HostOf(vm), f.Hosts[2]
	if err := f.MoveVM(vm, to); err != nil {
		t.Fatal(err)
	}
	n := vm.NICs[0]
	if _, ok := old.Bridge.PortByName(n.PortName); ok {
		t.Errorf("%s still on %s", n.PortName, old.Name)
	}
	h, no := f.PortOf(n)
	if p, ok := to.Bridge.PortByName(n.PortName); h != to || !ok || p.No != no {
		t.Errorf("%s on %v port %d; bridge of %s has %+v", n, h, no, to.Name, p)
	}
	d, err := f.Send(UnicastFrame(f.VMs[1].NICs[0], n, 1))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Arrivals) != 1 || d.Arrivals[0].NIC != n || d.Arrivals[0].Host != to {
		t.Errorf("unicast to the moved NIC arrived at %+v\n%s", d.Arrivals, d.Trace)
	}
}

// TestPlanSessions: planned sessions are distinct, follow the rules (sources are sending NICs, destinations capture
// NICs), are the same for the same seed, and mix local and remote destinations.
func TestPlanSessions(t *testing.T) {
	f, err := Build(Uniform(5, 4, 2, 1), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ss := f.PlanSessions(50)
	if len(ss) != 50 {
		t.Fatalf("planned %d sessions, want 50", len(ss))
	}
	seen := map[[3]string]bool{}
	local, remote := 0, 0
	for _, s := range ss {
		k := [3]string{s.Source.UUID, s.Destination.UUID, string(s.Direction)}
		if seen[k] {
			t.Errorf("duplicate session %+v", k)
		}
		seen[k] = true
		if s.Source.Capture || !s.Destination.Capture || !s.Direction.Valid() {
			t.Errorf("session %s breaks the rules: %s -> %s %s", s.Name, s.Source, s.Destination, s.Direction)
		}
		if f.HostOf(s.Source.VM) == f.HostOf(s.Destination.VM) {
			local++
		} else {
			remote++
		}
	}
	if local == 0 || remote == 0 {
		t.Errorf("%d local and %d remote sessions; want both", local, remote)
	}
	again, _ := Build(Uniform(5, 4, 2, 1), Options{})
	for i, s := range again.PlanSessions(50) {
		if s.Source.UUID != ss[i].Source.UUID || s.Destination.UUID != ss[i].Destination.UUID || s.Direction != ss[i].Direction {
			t.Fatalf("session %d differs for the same seed", i)
		}
	}
	if got := f.PlanSessions(1000); len(got) != 3*len(f.Senders())*len(f.Monitors()) {
		t.Errorf("asking for more than exist: %d sessions, want every combination (%d)", len(got), 3*len(f.Senders())*len(f.Monitors()))
	}
}

// TestClientOperations: the GraphQL client's port mirror and migration calls change the stored state as the
// service's own would, and a refusal comes back with its code and rule.
func TestClientOperations(t *testing.T) {
	ctx := context.Background()
	svc := newService(t)
	h, err := graphql.New(graphql.Options{Backend: svc, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c := NewClient(srv.URL+"/graphql", "")
	f, err := Build(Topology{Seed: 4}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Register(ctx, c); err != nil {
		t.Fatal(err)
	}
	pm, ss, err := f.CreatePortMirror(ctx, c, f.FlowNetworks[0], "pm", false, f.PlanSessions(3))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := svc.Sessions(ctx, pm.UUID); len(got) != 3 {
		t.Fatalf("%d sessions stored, want 3", len(got))
	}
	if _, err := c.EnablePortMirror(ctx, pm.UUID); err != nil {
		t.Fatal(err)
	}
	if got, _ := svc.PortMirror(ctx, pm.UUID); got.State != model.Enabled {
		t.Errorf("after enablePortMirror: %s", got.State)
	}
	if _, err := c.DisablePortMirror(ctx, pm.UUID); err != nil {
		t.Fatal(err)
	}
	if got, _ := svc.PortMirror(ctx, pm.UUID); got.State != model.Disabled {
		t.Errorf("after disablePortMirror: %s", got.State)
	}
	if err := c.DeletePortMirrorSession(ctx, ss[0].UUID); err != nil {
		t.Fatal(err)
	}
	if got, _ := svc.Sessions(ctx, pm.UUID); len(got) != 2 {
		t.Errorf("%d sessions after deleting one, want 2", len(got))
	}
	statuses, err := c.SessionStatuses(ctx)
	if err != nil || len(statuses) != 2 || statuses[0].Status != model.StatusInactive {
		t.Errorf("session statuses %+v (%v), want 2 INACTIVE", statuses, err)
	}
	vm := f.VMs[0]
	if err := f.Migrate(ctx, c, vm, f.Hosts[2]); err != nil {
		t.Fatal(err)
	}
	if got, _ := svc.VmInstance(ctx, vm.UUID); got.HostUUID != f.Hosts[2].UUID {
		t.Errorf("after migrateVmInstance the VM is on %s, want %s", got.HostUUID, f.Hosts[2].UUID)
	}
	_, err = c.AddPortMirrorSession(ctx, pm.UUID, service.SessionInput{Name: "bad", Type: model.Egress,
		SourceNicUUID: f.Senders()[0].UUID, DestinationNicUUID: f.Senders()[0].UUID})
	var ge *GraphQLError
	if !errors.As(err, &ge) || ge.Code != "VALIDATION" || ge.Rule != "SAME_NIC" {
		t.Errorf("a session from a NIC to itself: %v, want VALIDATION SAME_NIC", err)
	}
	if err := c.DeletePortMirror(ctx, pm.UUID); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PortMirror(ctx, pm.UUID); err == nil {
		t.Error("the port mirror survived deletePortMirror")
	}
}
