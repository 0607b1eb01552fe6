package topology

import (
	"slices"
	"testing"
	"time"

	"portmirror/model"
)

// TestBridgesFollowsEveryChange: the reconciler's cheap Bridges answer is shared while nothing changed and is
// recomputed after every change of a switch: connect, port added, port deleted, disconnect (ports kept).
func TestBridgesFollowsEveryChange(t *testing.T) {
	const dp = "00000000000000b1"
	v := NewView()
	port := func(no uint32, name string) model.SwitchPort {
		return model.SwitchPort{DatapathID: dp, PortNo: no, Name: name, Up: true}
	}
	check := func(step string, connected bool, numbers []uint32, tunnels map[string]uint32) {
		t.Helper()
		b, ok := v.Bridges(model.TunnelPortPrefix)[dp]
		if !ok {
			t.Fatalf("%s: bridge missing", step)
		}
		if b.Connected != connected || !slices.Equal(b.Numbers, numbers) || len(b.ByName) != len(tunnels) {
			t.Fatalf("%s: got %+v, want connected=%v numbers=%v tunnels=%v", step, b, connected, numbers, tunnels)
		}
		for name, no := range tunnels {
			if b.ByName[name] != no {
				t.Fatalf("%s: tunnel %s = %d, want %d", step, name, b.ByName[name], no)
			}
		}
	}
	if len(v.Bridges("pm")) != 0 {
		t.Fatal("an empty view has bridges")
	}
	v.SwitchConnected(dp, "198.18.0.9:1", time.Now(), []model.SwitchPort{port(3, "vnet0"), port(1, "pmabc")})
	check("connected", true, []uint32{1, 3}, map[string]uint32{"pmabc": 1})

	v.PortStatus(dp, port(7, "pmdef"), false)
	check("port added", true, []uint32{1, 3, 7}, map[string]uint32{"pmabc": 1, "pmdef": 7})
	v.PortStatus(dp, port(3, "vnet0"), true)
	check("port deleted", true, []uint32{1, 7}, map[string]uint32{"pmabc": 1, "pmdef": 7})
	v.SwitchDisconnected(dp)
	check("disconnected", false, []uint32{1, 7}, map[string]uint32{"pmabc": 1, "pmdef": 7})
	v.SetPorts(dp, []model.SwitchPort{port(2, "vnet1")})
	check("ports replaced", false, []uint32{2}, nil)
}
