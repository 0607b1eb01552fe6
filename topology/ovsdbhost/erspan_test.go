package ovsdbhost

import (
	"testing"
	"time"

	"portmirror/model"
)

// TestErspanTunnelPorts: an ERSPAN flow network gets a type=erspan port whose header fields all come from the
// flows, one per local_ip, beside GRE and VXLAN ports of the other flow networks.
func TestErspanTunnelPorts(t *testing.T) {
	e := startOVSDB(t, false)
	e.vsctl("add-br", "br-int")
	m := startManager(t, HostConfig{Address: e.addr()})
	gen, err := m.SetDesired([]TunnelSpec{
		{FlowNetworkUUID: fn1, Encapsulation: model.ERSPANv1, LocalIP: "198.18.0.1"},
		{FlowNetworkUUID: fn2, Encapsulation: model.ERSPANv2, LocalIP: "198.18.1.1"},
		{FlowNetworkUUID: fn3, Encapsulation: model.VXLAN, LocalIP: "198.18.2.1"},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitApplied(t, m, gen)
	for fn, local := range map[string]string{fn1: "198.18.0.1", fn2: "198.18.1.1"} {
		name := model.TunnelPortName(fn)
		if got := e.get("interface", name, "type"); got != "erspan" {
			t.Errorf("%s type = %q, want erspan", name, got)
		}
		want := map[string]string{"remote_ip": "flow", "key": "flow", "local_ip": local, "erspan_ver": "flow",
			"erspan_idx": "flow", "erspan_dir": "flow", "erspan_hwid": "flow"}
		for k, v := range want {
			if got := e.get("interface", name, "options:"+k); got != v {
				t.Errorf("%s options:%s = %q, want %q", name, k, got, v)
			}
		}
	}
	if got := e.get("interface", model.TunnelPortName(fn3), "options"); got != `{key=flow, local_ip="198.18.2.1", remote_ip=flow}` {
		t.Errorf("VXLAN port options %s", got)
	}
	// Tampering with a header option is repaired: a fixed value would override the flows'.
	name := model.TunnelPortName(fn2)
	e.vsctl("set", "interface", name, "options:erspan_ver=1")
	m.Refresh()
	eventually(t, 5*time.Second, func() (bool, string) {
		got := e.get("interface", name, "options:erspan_ver")
		return got == "flow", "erspan_ver " + got
	})
}
