package controller

import (
	"slices"
	"testing"

	"portmirror/flows"
)

// TestWithTunnelGuards: every flow-network tunnel port on a bridge gets its drop flow, also where no session needs
// the bridge (the compiler then gives only the baseline, and a copy arriving on the tunnel port would reach NORMAL);
// a drop the compiler already emitted is not doubled, and the result stays in canonical order.
func TestWithTunnelGuards(t *testing.T) {
	base := flows.Flow{Priority: flows.PriorityBaseline, Cookie: flows.CookieOurs | flows.KindBaseline,
		Actions: []flows.Action{{Type: flows.ActNormal}}}
	drop := func(port uint32) flows.Flow {
		return flows.Flow{Priority: flows.PriorityTunnelDrop, Cookie: flows.CookieOurs | flows.KindTunnelDrop,
			Match: flows.Match{InPort: port}}
	}
	deliver := flows.Flow{Priority: flows.PriorityTunnelDeliver, Cookie: flows.CookieOurs | flows.KindTunnelDeliver,
		Match: flows.Match{InPort: 7, TunID: 3, HasTunID: true}, Actions: []flows.Action{{Type: flows.ActOutput, Port: 4}}}
	for _, tc := range []struct {
		name    string
		desired []flows.Flow
		tunnels []uint32
		want    []flows.Flow
	}{
		{"no tunnel port", []flows.Flow{base}, nil, []flows.Flow{base}},
		{"idle bridge with a tunnel port", []flows.Flow{base}, []uint32{7}, []flows.Flow{drop(7), base}},
		{"two flow networks", []flows.Flow{base}, []uint32{7, 9}, []flows.Flow{drop(7), drop(9), base}},
		{"compiler already drops", []flows.Flow{deliver, drop(7), base}, []uint32{7}, []flows.Flow{deliver, drop(7), base}},
		{"one of two already dropped", []flows.Flow{deliver, drop(7), base}, []uint32{7, 9}, []flows.Flow{deliver, drop(7), drop(9), base}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Clone(tc.desired)
			got := withTunnelGuards(tc.desired, tc.tunnels)
			if !slices.EqualFunc(got, tc.want, flowEqual) {
				t.Errorf("got\n%v\nwant\n%v", got, tc.want)
			}
			if !slices.IsSortedFunc(got, flows.CompareFlows) {
				t.Errorf("not in canonical order: %v", got)
			}
			if !slices.EqualFunc(tc.desired, in, flowEqual) {
				t.Errorf("the compiler's slice was modified: %v", tc.desired)
			}
			if add, mod, del := flows.Diff(got, got); len(add)+len(mod)+len(del) != 0 {
				t.Errorf("diff against itself: %d adds %d modifies %d deletes (duplicate keys?)", len(add), len(mod), len(del))
			}
		})
	}
}

func flowEqual(a, b flows.Flow) bool { return a.String() == b.String() }
