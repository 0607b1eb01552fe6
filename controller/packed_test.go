package controller

import (
	"math/rand/v2"
	"slices"
	"testing"

	"portmirror/flows"
	"portmirror/ofwire"
)

// TestPackedFlows: a bridge's kept flows, packed, answer "holds exactly these" for the same flows in any order and
// for nothing else; unpacked they are what was kept.
func TestPackedFlows(t *testing.T) {
	ours := flows.CookieOurs
	list := []flows.Flow{
		{Priority: 600, Cookie: ours | 7, Match: flows.Match{InPort: 3}},
		{Priority: 200, Cookie: ours | 3, Match: flows.Match{InPort: 1}, Actions: []flows.Action{{Type: flows.ActNormal}, {Type: flows.ActOutput, Port: 3}}},
		{Priority: 0, Cookie: ours | 1, Actions: []flows.Action{{Type: flows.ActNormal}}},
	}
	slices.SortFunc(list, flows.CompareFlows)
	p := listFlows(slices.Clone(list))
	if p.holds(list) {
		t.Fatal("an unpacked list claims to hold flows (only packed ones answer)")
	}
	p.pack()
	got, err := p.get()
	if err != nil || len(got) != len(list) || p.len() != len(list) {
		t.Fatalf("unpacked %d flows (%v), want %d", len(got), err, len(list))
	}
	shuffled := slices.Clone(list)
	rand.New(rand.NewPCG(1, 1)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	changed := slices.Clone(list)
	changed[1].Actions = []flows.Action{{Type: flows.ActNormal}, {Type: flows.ActOutput, Port: 4}}
	cases := []struct {
		name string
		fs   []flows.Flow
		want bool
	}{
		{"the same, sorted", list, true},
		{"the same, shuffled", shuffled, true},
		{"one action differs", changed, false},
		{"one missing", list[1:], false},
		{"one more", append(slices.Clone(list), flows.Flow{Priority: 5, Cookie: ours | 2}), false},
		{"a duplicate instead of a flow", []flows.Flow{list[0], list[0], list[2]}, false},
	}
	for _, c := range cases {
		if got := p.holds(c.fs); got != c.want {
			t.Errorf("%s: holds = %v, want %v", c.name, got, c.want)
		}
	}
	q := listFlows(shuffled)
	if p.equal(&q) {
		t.Error("a list is equal to packed flows before it is packed")
	}
	slices.SortFunc(q.list, flows.CompareFlows)
	q.pack()
	if !p.equal(&q) {
		t.Error("the same flows, packed, are not equal")
	}
}

// TestAddsOnly holds addsOnly against flows.Diff over random pairs of desired and held flows: when it answers, Diff
// finds exactly those adds and nothing to modify or delete; when Diff finds adds alone among desired flows of
// distinct keys, and every held flow is one of them, addsOnly answers too.
func TestAddsOnly(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	flow := func() flows.Flow {
		f := flows.Flow{Table: uint8(r.IntN(3)), Priority: uint16(100 * r.IntN(3)), Cookie: flows.CookieOurs | uint64(r.IntN(3)),
			Match: flows.Match{InPort: uint32(r.IntN(6))}}
		if r.IntN(2) == 0 {
			f.Actions = []flows.Action{{Type: flows.ActOutput, Port: uint32(1 + r.IntN(3))}}
		}
		return f
	}
	answered, adds := 0, 0
	for round := range 2000 {
		var desired, held []flows.Flow
		for range r.IntN(12) {
			desired = append(desired, flow())
		}
		for _, f := range desired {
			if r.IntN(2) == 0 {
				held = append(held, f)
			}
		}
		if r.IntN(4) == 0 {
			held = append(held, flow())
		}
		slices.SortFunc(desired, flows.CompareFlows)
		p := listFlows(slices.Clone(desired))
		p.pack()
		h, err := ofwire.PackFlows(held)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := addsOnly(&p, h)
		add, mod, del := flows.Diff(desired, held)
		keys := map[flows.Key]bool{}
		distinct := true
		for _, f := range desired {
			distinct = distinct && !keys[f.Key()]
			keys[f.Key()] = true
		}
		switch {
		case ok:
			answered++
			adds += len(got)
			if len(mod)+len(del) != 0 || len(got) != len(add) {
				t.Fatalf("round %d: addsOnly gave %d adds; Diff %d adds, %d modifies, %d deletes", round, len(got), len(add), len(mod), len(del))
			}
			var fs []flows.Flow
			for _, e := range got {
				u, err := ofwire.UnpackFlows(e)
				if err != nil {
					t.Fatal(err)
				}
				fs = append(fs, u...)
			}
			slices.SortFunc(fs, flows.CompareFlows)
			if !slices.EqualFunc(fs, add, func(a, b flows.Flow) bool { return a.Equal(&b) }) {
				t.Fatalf("round %d: addsOnly's adds %v, Diff's %v", round, fs, add)
			}
		case len(desired) > 0 && distinct && len(mod)+len(del) == 0 && len(held) <= len(desired):
			// addsOnly also wants every held flow among the desired ones, once (Diff would add over a held flow of
			// a desired key with another cookie, which addsOnly leaves to it)
			heldDistinct := map[flows.Key]bool{}
			subset := true
			for _, f := range held {
				subset = subset && !heldDistinct[f.Key()] && slices.ContainsFunc(desired, func(d flows.Flow) bool { return d.Equal(&f) })
				heldDistinct[f.Key()] = true
			}
			if subset {
				t.Fatalf("round %d: Diff finds %d adds alone among distinct keys, addsOnly does not answer: desired %v held %v", round, len(add), desired, held)
			}
		}
	}
	if answered < 200 || adds == 0 {
		t.Fatalf("addsOnly answered %d of 2000 rounds (%d adds): the test needs more", answered, adds)
	}
}
