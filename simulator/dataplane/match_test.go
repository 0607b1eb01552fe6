package dataplane

import (
	"math/rand/v2"
	"testing"
)

// TestMatchAlgebraAgainstBruteForce holds Matches, Covers and Overlaps to an oracle that enumerates every
// frame of a small space: in_port 1..3 and tun_id 0..63 under random masks.
func TestMatchAlgebraAgainstBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	randMatch := func() Match {
		var m Match
		if rng.IntN(2) == 0 {
			if err := m.SetUint(FieldInPort, uint64(1+rng.IntN(3))); err != nil {
				t.Fatal(err)
			}
		}
		if rng.IntN(3) != 0 {
			mask := uint64(rng.IntN(64))
			if err := m.SetMasked(FieldTunnelID, uint64(rng.IntN(64))&mask, mask); err != nil {
				t.Fatal(err)
			}
		}
		return m
	}
	frames := make([]Frame, 0, 3*64)
	for in := uint32(1); in <= 3; in++ {
		for id := range uint64(64) {
			frames = append(frames, Frame{InPort: in, Tunnel: Tunnel{ID: id}})
		}
	}
	for range 3000 {
		a, b := randMatch(), randMatch()
		covers, overlaps := true, false
		for i := range frames {
			ma, mb := a.Matches(&frames[i]), b.Matches(&frames[i])
			if mb && !ma {
				covers = false
			}
			if ma && mb {
				overlaps = true
			}
		}
		if got := a.Covers(b); got != covers {
			t.Fatalf("(%s).Covers(%s) = %v, brute force says %v", a, b, got, covers)
		}
		if got := a.Overlaps(b); got != overlaps {
			t.Fatalf("(%s).Overlaps(%s) = %v, brute force says %v", a, b, got, overlaps)
		}
	}
}

func TestParseFlowRoundTrip(t *testing.T) {
	for _, s := range []string{
		"table=0,priority=100,cookie=0x504d000000000001,in_port=1,actions=NORMAL,set_field:0x5->tun_id,set_field:198.18.0.2->tun_dst,output:4",
		"table=1,priority=5,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00,actions=ALL",
		"table=0,priority=7,dl_type=0x0800,nw_proto=6,nw_src=10.0.0.0/255.0.0.0,tcp_dst=80,actions=drop",
		"table=0,priority=9,vlan_tci=0x100a/0x1fff,actions=pop_vlan,output:2,goto_table:3",
	} {
		f, err := ParseFlow(s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if got := f.String(); got != s {
			t.Errorf("round trip:\n got %s\nwant %s", got, s)
		}
	}
	for _, bad := range []string{"priority=1", "in_port=1,foo=2,actions=drop", "actions=output:x", "tp_dst=80,actions=drop"} {
		if _, err := ParseFlow(bad); err == nil {
			t.Errorf("ParseFlow(%q) succeeded", bad)
		}
	}
}
