package controller

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"portmirror/flows"
	"portmirror/model"
	"portmirror/service"
	"portmirror/store"
	"portmirror/topology"
)

// inputDP is the datapath of the host the input tests register.
const inputDP = "00000000000000a1"

// newInputTestController returns a controller (not started) on an in-memory store holding a cluster with one host,
// whose bridge has datapath id dpid.
func newInputTestController(t *testing.T, dpid string) (*Controller, *service.Service, model.Cluster) {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(ctx, store.Options{InMemory: true, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc := service.New(st, service.Options{Logger: log})
	cl, err := svc.CreateCluster(ctx, service.ClusterInput{Name: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.RegisterHost(ctx, service.HostInput{Name: "h1", ClusterUUID: cl.UUID, DatapathID: dpid}); err != nil {
		t.Fatal(err)
	}
	return &Controller{svc: svc, view: topology.NewView(), log: log}, svc, cl
}

// loadInventory gives c's view the stored inventory, as a pass does.
func loadInventory(t *testing.T, c *Controller) {
	t.Helper()
	inv, err := topology.LoadInventory(context.Background(), c.svc)
	if err != nil {
		t.Fatal(err)
	}
	c.view.SetInventory(inv)
}

// TestIdleTunnelPortInInput: the input a pass builds gives the compiler a bridge's flow-network tunnel port even
// when no session needs the bridge, so the port's drop flow is compiled for it. Without it a copy arriving before
// its delivery flow (bridges are programmed concurrently) or after its removal reaches the baseline NORMAL, which
// learns the copied frame's source MAC on the tunnel port, and business frames to that MAC are lost (found by
// test/e2e on real OVS, which covers the whole path).
func TestIdleTunnelPortInInput(t *testing.T) {
	ctx := context.Background()
	c, svc, cl := newInputTestController(t, inputDP)
	fn, err := svc.CreateFlowNetwork(ctx, service.FlowNetworkInput{Name: "fn", CIDR: "198.18.100.0/24",
		ClusterUUIDs: []string{cl.UUID}})
	if err != nil {
		t.Fatal(err)
	}
	loadInventory(t, c)
	c.view.SwitchConnected(inputDP, "198.18.0.1:40000", time.Now(), []model.SwitchPort{
		{DatapathID: inputDP, PortNo: 1, Name: "vnet0", Up: true},
		{DatapathID: inputDP, PortNo: 7, Name: model.TunnelPortName(fn.UUID), Up: true},
	})

	in, _, err := c.buildInput(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := flows.Analyze(in).Bridge(inputDP)
	want := []flows.Flow{
		{Priority: flows.PriorityTunnelDrop, Cookie: flows.CookieOurs | flows.KindTunnelDrop, Match: flows.Match{InPort: 7}},
		{Priority: flows.PriorityBaseline, Cookie: flows.CookieOurs | flows.KindBaseline, Actions: []flows.Action{{Type: flows.ActNormal}}},
	}
	if len(got) != len(want) {
		t.Fatalf("idle bridge with a tunnel port: got flows\n%v\nwant\n%v", got, want)
	}
	for i := range got {
		if got[i].String() != want[i].String() {
			t.Errorf("flow %d: got %v, want %v", i, got[i], want[i])
		}
	}
}

// TestFabricFollowsChanges: the bridges and endpoints a pass reuses from the last one are rebuilt when a switch's
// ports change (the tunnel port renumbered) and when flow networks change in the store (a second one, with its
// endpoint), and only then.
func TestFabricFollowsChanges(t *testing.T) {
	ctx := context.Background()
	c, svc, cl := newInputTestController(t, inputDP)
	fn, err := svc.CreateFlowNetwork(ctx, service.FlowNetworkInput{Name: "fn", CIDR: "198.18.100.0/24", ClusterUUIDs: []string{cl.UUID}})
	if err != nil {
		t.Fatal(err)
	}
	loadInventory(t, c)
	ports := func(tunnelNo uint32) []model.SwitchPort {
		return []model.SwitchPort{{DatapathID: inputDP, PortNo: tunnelNo, Name: model.TunnelPortName(fn.UUID), Up: true}}
	}
	c.view.SwitchConnected(inputDP, "198.18.0.1:40000", time.Now(), ports(7))
	tunnel := func(in *flows.Input, fnUUID string) uint32 {
		return in.Endpoints[flows.EndpointKey{FlowNetwork: fnUUID, DatapathID: inputDP}].TunnelPort
	}
	in1, fab1, err := c.buildInput(ctx)
	if err != nil || tunnel(in1, fn.UUID) != 7 {
		t.Fatalf("first input: tunnel port %d (%v), want 7", tunnel(in1, fn.UUID), err)
	}
	if _, fab, _ := c.buildInput(ctx); fab != fab1 {
		t.Error("nothing changed, yet the fabric was rebuilt")
	}
	c.view.SetPorts(inputDP, ports(9))
	in2, fab2, err := c.buildInput(ctx)
	if err != nil || fab2 == fab1 || tunnel(in2, fn.UUID) != 9 {
		t.Fatalf("after the tunnel port moved: port %d (%v), rebuilt %v; want 9, rebuilt", tunnel(in2, fn.UUID), err, fab2 != fab1)
	}
	fn2, err := svc.CreateFlowNetwork(ctx, service.FlowNetworkInput{Name: "fn2", CIDR: "198.18.101.0/24", ClusterUUIDs: []string{cl.UUID}})
	if err != nil {
		t.Fatal(err)
	}
	c.noteChange(store.Change{Kind: store.KindFlowNetwork, UUID: fn2.UUID})
	in3, fab3, err := c.buildInput(ctx)
	if err != nil || fab3 == fab2 {
		t.Fatalf("after a flow network was created: rebuilt %v (%v)", fab3 != fab2, err)
	}
	if _, ok := in3.Endpoints[flows.EndpointKey{FlowNetwork: fn2.UUID, DatapathID: inputDP}]; !ok {
		t.Fatalf("the new flow network's endpoint on %s is not in the input: %v", inputDP, in3.Endpoints)
	}
}
