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

// TestForgetUnclaimed: a disconnected bridge that no host claims is forgotten (a decommissioned bridge costs
// nothing); one a host still claims, or one still connected, is kept.
func TestForgetUnclaimed(t *testing.T) {
	const stray = "00000000000000ff"
	v := NewView()
	v.SetInventory(baseInventory()) // h1 claims dp1
	v.SwitchConnected(dp1, "", time.Now(), nil)
	v.SwitchConnected(stray, "", time.Now(), nil)
	if gone := v.ForgetUnclaimed(); len(gone) != 0 {
		t.Fatalf("forgot connected bridges: %v", gone)
	}
	v.SwitchDisconnected(dp1)
	v.SwitchDisconnected(stray)
	if gone := v.ForgetUnclaimed(dp1); len(gone) != 0 {
		t.Fatalf("asked about %s only (claimed by h1): forgot %v", dp1, gone)
	}
	if gone := v.ForgetUnclaimed(stray); !slices.Equal(gone, []string{stray}) {
		t.Fatalf("forgot %v, want only the unclaimed %s", gone, stray)
	}
	if _, ok := v.Bridges(model.TunnelPortPrefix)[stray]; ok {
		t.Error("the forgotten bridge is still listed")
	}
	if _, ok := v.Bridges(model.TunnelPortPrefix)[dp1]; !ok {
		t.Error("the bridge host h1 claims was forgotten")
	}
	inv := baseInventory()
	inv.Hosts = inv.Hosts[1:] // h1 deleted
	v.SetInventory(inv)
	if gone := v.ForgetUnclaimed(); !slices.Equal(gone, []string{dp1}) {
		t.Fatalf("after its host was deleted: forgot %v, want %s", gone, dp1)
	}
}
