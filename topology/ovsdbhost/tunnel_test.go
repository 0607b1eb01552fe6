package ovsdbhost

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"portmirror/model"
)

const (
	fn1 = "11111111-aaaa-4000-8000-000000000001"
	fn2 = "22222222-bbbb-4000-8000-000000000002"
	fn3 = "33333333-cccc-4000-8000-000000000003"
)

func TestTunnelPorts(t *testing.T) {
	e := startOVSDB(t, false)
	e.vsctl("add-br", "br-int")
	e.vsctl("add-port", "br-int", "vnet0")
	// A port that happens to have fn3's tunnel name but is not ours.
	p3 := model.TunnelPortName(fn3)
	e.vsctl("add-port", "br-int", p3, "--", "set", "interface", p3, "type=gre", "options:remote_ip=203.0.113.9")
	m := startManager(t, HostConfig{Address: e.addr()})

	checkTunnel := func(fn, typ, local string) {
		t.Helper()
		name := model.TunnelPortName(fn)
		if got := e.get("interface", name, "type"); got != typ {
			t.Errorf("%s type = %q, want %q", name, got, typ)
		}
		for k, want := range map[string]string{"remote_ip": "flow", "key": "flow", "local_ip": local} {
			if got := e.get("interface", name, "options:"+k); got != want {
				t.Errorf("%s options:%s = %q, want %q", name, k, got, want)
			}
		}
		if got := e.get("port", name, "external_ids:"+KeyFlowNetwork); got != fn {
			t.Errorf("%s external_ids:%s = %q", name, KeyFlowNetwork, got)
		}
		if got := e.vsctl("port-to-br", name); got != "br-int" {
			t.Errorf("%s is on %q", name, got)
		}
	}

	gen, err := m.SetDesired([]TunnelSpec{
		{FlowNetworkUUID: fn1, LocalIP: "198.18.0.1"},
		{FlowNetworkUUID: fn2, Encapsulation: model.VXLAN, LocalIP: "198.18.1.1"},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitApplied(t, m, gen)
	checkTunnel(fn1, "gre", "198.18.0.1")
	checkTunnel(fn2, "vxlan", "198.18.1.1")
	p1 := model.TunnelPortName(fn1)
	uuidBefore := e.get("interface", p1, "_uuid")

	// A changed endpoint IP is fixed in place.
	gen, err = m.SetDesired([]TunnelSpec{
		{FlowNetworkUUID: fn1, LocalIP: "198.18.0.2"},
		{FlowNetworkUUID: fn2, Encapsulation: model.VXLAN, LocalIP: "198.18.1.1"},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitApplied(t, m, gen)
	checkTunnel(fn1, "gre", "198.18.0.2")
	if got := e.get("interface", p1, "_uuid"); got != uuidBefore {
		t.Errorf("interface %s was recreated (%s -> %s), want fixed in place", p1, uuidBefore, got)
	}

	// Someone tampers with our port: the next pass repairs it.
	e.vsctl("set", "interface", p1, "type=vxlan", "options:key=5")
	m.Refresh()
	eventually(t, 5*time.Second, func() (bool, string) {
		got := e.get("interface", p1, "type") + " " + e.get("interface", p1, "options:key")
		return got == "gre flow", "tunnel " + got
	})

	// Dropping fn1 removes its port and only it.
	gen, err = m.SetDesired([]TunnelSpec{{FlowNetworkUUID: fn2, Encapsulation: model.VXLAN, LocalIP: "198.18.1.1"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitApplied(t, m, gen)
	ports := strings.Fields(e.vsctl("list-ports", "br-int"))
	want := []string{p3, model.TunnelPortName(fn2), "vnet0"}
	if strings.Join(ports, " ") != strings.Join(sorted(want), " ") {
		t.Errorf("ports = %v, want %v", ports, sorted(want))
	}
	if out, err := e.OVS.Vsctl(context.Background(), "get", "interface", p1, "type"); err == nil {
		t.Errorf("interface %s still exists: %s", p1, out)
	}

	// fn3's name is taken by a port that is not ours: refused, and the port is left as it was.
	gen, err = m.SetDesired([]TunnelSpec{
		{FlowNetworkUUID: fn2, Encapsulation: model.VXLAN, LocalIP: "198.18.1.1"},
		{FlowNetworkUUID: fn3, LocalIP: "198.18.2.1"},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() (bool, string) {
		s := m.Status()
		return strings.Contains(s.LastError, p3) && strings.Contains(s.LastError, "not ours"), fmt.Sprintf("status %+v", s)
	})
	if s := m.Status(); s.Applied >= gen {
		t.Errorf("applied %d although generation %d was refused", s.Applied, gen)
	}
	if got := e.get("interface", p3, "options:remote_ip"); got != "203.0.113.9" {
		t.Errorf("foreign port touched: remote_ip %q", got)
	}

	// Bad input is refused and changes nothing.
	before := m.Status().Generation
	for _, bad := range [][]TunnelSpec{
		{{FlowNetworkUUID: fn1, LocalIP: "not-an-ip"}},
		{{FlowNetworkUUID: fn1, LocalIP: "2001:db8::1"}},
		{{FlowNetworkUUID: fn1, LocalIP: "198.18.0.1", Encapsulation: "IPIP"}},
		{{FlowNetworkUUID: "", LocalIP: "198.18.0.1"}},
		{{FlowNetworkUUID: fn1, LocalIP: "198.18.0.1"}, {FlowNetworkUUID: fn1, LocalIP: "198.18.0.2"}},
	} {
		if _, err := m.SetDesired(bad, nil); err == nil {
			t.Errorf("SetDesired(%+v) accepted", bad)
		}
	}
	if _, err := m.SetDesired(nil, []string{p3}); err != nil {
		t.Errorf("isolating a port that is not a desired tunnel: %v", err)
	}
	if _, err := m.SetDesired([]TunnelSpec{{FlowNetworkUUID: fn1, LocalIP: "198.18.0.1"}}, []string{p1}); err == nil {
		t.Error("isolating a tunnel port accepted")
	}
	if g := m.Status().Generation; g != before+1 {
		t.Errorf("generation %d, want %d (only the one valid call counts)", g, before+1)
	}
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

// A manager that has not been told its desired state yet (a restarted controller reading its store) keeps the
// bridge's settings and controllers as usual, and leaves our tunnel ports and isolated ports as they are: removing
// a tunnel port to add it back would give it a new OpenFlow port number and change every flow that names it.
func TestUntoldManagerKeepsTunnelsAndIsolation(t *testing.T) {
	e := startOVSDB(t, false)
	e.vsctl("add-br", "br-int")
	e.vsctl("add-port", "br-int", "vnet1", "tag=10")
	first := newManager(t, HostConfig{Address: e.addr()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- first.Run(ctx) }()
	gen, err := first.SetDesired([]TunnelSpec{{FlowNetworkUUID: fn1, Encapsulation: model.ERSPANv2, LocalIP: "198.18.0.1"}}, []string{"vnet1"})
	if err != nil {
		t.Fatal(err)
	}
	waitApplied(t, first, gen)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("first manager: %v", err)
	}
	p1 := model.TunnelPortName(fn1)
	tunnelRow := e.get("interface", p1, "_uuid")

	target := "tcp:198.18.0.9:6653"
	m := startManager(t, HostConfig{Address: e.addr(), ControllerTargets: []string{target}})
	eventually(t, 10*time.Second, func() (bool, string) {
		got := e.vsctl("get-controller", "br-int")
		return got == target && !m.Status().LastSync.IsZero(), fmt.Sprintf("controllers %q, status %+v", got, m.Status())
	})
	if got := e.get("interface", p1, "_uuid"); got != tunnelRow {
		t.Errorf("tunnel interface %s is row %s, want %s kept", p1, got, tunnelRow)
	}
	if got := e.get("port", "vnet1", "tag"); got != "4095" {
		t.Errorf("vnet1 tag %q, want 4095 (still isolated)", got)
	}

	// Once told, the manager applies what it was told, removals included.
	gen, err = m.SetDesired(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitApplied(t, m, gen)
	if out, err := e.OVS.Vsctl(context.Background(), "get", "interface", p1, "type"); err == nil {
		t.Errorf("interface %s still exists: %s", p1, out)
	}
	if got := e.get("port", "vnet1", "tag"); got != "10" {
		t.Errorf("vnet1 tag %q, want 10 restored", got)
	}
}
