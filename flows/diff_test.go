package flows

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

func mustFlows(t *testing.T, lines ...string) []Flow {
	t.Helper()
	var out []Flow
	for _, l := range lines {
		f, err := ParseFlow(l)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, f)
	}
	return out
}

func TestDiff(t *testing.T) {
	const (
		base    = "cookie=0x504d000000000001, table=0, priority=0 actions=NORMAL"
		egress  = "cookie=0x504d000000000003, table=0, priority=200, in_port=1 actions=NORMAL,output:3"
		egress2 = "cookie=0x504d000000000003, table=0, priority=200, in_port=1 actions=NORMAL,output:4"
		egressC = "cookie=0x504d000000000009, table=0, priority=200, in_port=1 actions=NORMAL,output:3"
		capture = "cookie=0x504d000000000007, table=0, priority=600, in_port=3 actions=drop"
		ingress = "cookie=0x504d000000000002, table=0, priority=100, dl_dst=02:00:00:00:00:0b actions=NORMAL,output:3"
		// Same match, other priority: another flow in OpenFlow.
		ingressP = "cookie=0x504d000000000002, table=0, priority=300, dl_dst=02:00:00:00:00:0b actions=NORMAL,output:3"
	)
	cases := []struct {
		name                      string
		desired, installed        []string
		wantAdd, wantMod, wantDel []string
	}{
		{name: "empty switch gets everything", desired: []string{base, egress, capture},
			wantAdd: []string{capture, egress, base}},
		{name: "identical state needs nothing", desired: []string{base, egress, capture}, installed: []string{capture, base, egress}},
		{name: "changed actions modify", desired: []string{base, egress2}, installed: []string{base, egress},
			wantMod: []string{egress2}},
		// an OpenFlow 1.3 modify never changes a cookie; an ADD of the same match and priority replaces the flow
		{name: "changed cookie is added again", desired: []string{base, egress}, installed: []string{base, egressC},
			wantAdd: []string{egress}},
		{name: "stale flows are deleted", desired: []string{base}, installed: []string{base, egress, capture},
			wantDel: []string{capture, egress}},
		{name: "priority is part of the key", desired: []string{ingressP}, installed: []string{ingress},
			wantAdd: []string{ingressP}, wantDel: []string{ingress}},
		// as many flows on both sides, so that only a flow-by-flow look tells them apart
		{name: "same count, one action differs, in another order", desired: []string{base, egress, capture},
			installed: []string{capture, egress2, base}, wantMod: []string{egress}},
		{name: "same count, a duplicate instead of a flow", desired: []string{base, egress}, installed: []string{base, base},
			wantAdd: []string{egress}},
		{name: "all three at once", desired: []string{base, egress2, ingress}, installed: []string{egress, capture},
			wantAdd: []string{ingress, base}, wantMod: []string{egress2}, wantDel: []string{capture}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			add, mod, del := Diff(mustFlows(t, c.desired...), mustFlows(t, c.installed...))
			check := func(what string, got []Flow, want []string) {
				if g, w := fmt.Sprint(got), fmt.Sprint(mustFlows(t, want...)); g != w {
					t.Errorf("%s = %s, want %s", what, g, w)
				}
			}
			check("add", add, c.wantAdd)
			check("modify", mod, c.wantMod)
			check("delete", del, c.wantDel)
		})
	}
}

// Applying a diff to the installed set yields the desired set, and diffing again yields nothing: checked on
// every golden topology against a switch that holds another topology's flows.
func TestDiffConverges(t *testing.T) {
	cases := goldenCases()
	var names []string
	for n := range cases {
		names = append(names, n)
	}
	for _, from := range names {
		for _, to := range names {
			for _, dp := range []string{br1, br2, br3} {
				installed := CompileBridge(&cases[from].in, dp)
				desired := CompileBridge(&cases[to].in, dp)
				add, mod, del := Diff(desired, installed)
				table := map[Key]Flow{}
				for _, f := range installed {
					table[f.Key()] = f
				}
				for _, f := range del {
					delete(table, f.Key())
				}
				for _, f := range append(add, mod...) {
					table[f.Key()] = f
				}
				var after []Flow
				for _, f := range table {
					after = append(after, f)
				}
				if a, m, d := Diff(desired, after); len(a)+len(m)+len(d) != 0 {
					t.Errorf("%s -> %s on %s: after applying the diff, still %d adds %d modifies %d deletes",
						from, to, dp, len(a), len(m), len(d))
				}
				if from == to && len(add)+len(mod)+len(del) != 0 {
					t.Errorf("%s on %s: re-applying the same state gives a non-empty diff", from, dp)
				}
			}
		}
	}
}

// Diff's two ways (a set of the desired keys, or binary search in desired sorted by key) agree, duplicate keys
// included (the first wins), on random tables of flows sharing few keys.
func TestDiffSortedAgrees(t *testing.T) {
	r := rand.New(rand.NewPCG(12, 34))
	random := func(n int) []Flow {
		out := make([]Flow, n)
		for i := range out {
			out[i] = Flow{Table: uint8(r.IntN(2)), Priority: uint16(r.IntN(3)), Cookie: uint64(r.IntN(2)),
				Match: Match{InPort: uint32(r.IntN(4))}, Actions: []Action{{Type: ActOutput, Port: uint32(r.IntN(2))}}}
			if r.IntN(3) == 0 {
				out[i].Match.EthDst, out[i].Match.EthDstMask = MAC{byte(r.IntN(2))}, MAC{1}
			}
		}
		return out
	}
	for range 500 {
		desired, installed := random(r.IntN(30)), random(r.IntN(30))
		slices.SortStableFunc(desired, CompareFlows)
		a1, m1, d1 := diff(desired, installed, true)
		a2, m2, d2 := diff(desired, installed, false)
		if fmt.Sprint(a1, m1, d1) != fmt.Sprint(a2, m2, d2) {
			t.Fatalf("desired %v installed %v:\nsorted %v %v %v\nset    %v %v %v", desired, installed, a1, m1, d1, a2, m2, d2)
		}
	}
}
