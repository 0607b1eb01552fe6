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
	if same, _, _ := p.holds(list); same {
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
		if got, _, _ := p.holds(c.fs); got != c.want {
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

// TestPackedDiff holds packedDiff against flows.Diff of the whole over random pairs of desired and held flows:
// whenever both have one flow a key it answers, with Diff's change (as adds from the packed bytes when that change
// is adds alone); otherwise it does not answer.
func TestPackedDiff(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	flow := func() flows.Flow {
		f := flows.Flow{Table: uint8(r.IntN(3)), Priority: uint16(100 * r.IntN(3)), Cookie: flows.CookieOurs | uint64(r.IntN(3)),
			Match: flows.Match{InPort: uint32(r.IntN(6))}}
		if r.IntN(2) == 0 {
			f.Actions = []flows.Action{{Type: flows.ActOutput, Port: uint32(1 + r.IntN(3))}}
		}
		return f
	}
	distinct := func(fs []flows.Flow) bool {
		keys := map[flows.Key]bool{}
		for _, f := range fs {
			if keys[f.Key()] {
				return false
			}
			keys[f.Key()] = true
		}
		return true
	}
	sorted := func(fs []flows.Flow) []flows.Flow {
		fs = slices.Clone(fs)
		slices.SortFunc(fs, flows.CompareFlows)
		return fs
	}
	same := func(a, b []flows.Flow) bool {
		return slices.EqualFunc(sorted(a), sorted(b), func(x, y flows.Flow) bool { return x.Equal(&y) })
	}
	addsOnly, changes := 0, 0
	for round := range 3000 {
		var desired, held []flows.Flow
		for range r.IntN(12) {
			desired = append(desired, flow())
		}
		for _, f := range desired {
			if r.IntN(2) == 0 {
				held = append(held, f)
			}
		}
		for range r.IntN(3) {
			held = append(held, flow())
		}
		slices.SortFunc(desired, flows.CompareFlows)
		p := listFlows(slices.Clone(desired))
		p.pack()
		h, err := ofwire.PackFlows(held)
		if err != nil {
			t.Fatal(err)
		}
		heldDistinct := distinct(held)
		adds, gotAdd, gotMod, gotDel, ok := packedDiff(&p, h, heldDistinct)
		add, mod, del := flows.Diff(desired, held)
		if want := len(desired) > 0 && distinct(desired) && heldDistinct; ok != want { // nothing desired is not packed
			t.Fatalf("round %d: packedDiff answered %v, want %v (desired %v, held %v)", round, ok, want, desired, held)
		}
		if !ok {
			continue
		}
		if adds != nil {
			addsOnly++
			if gotAdd != nil || gotMod != nil || gotDel != nil {
				t.Fatalf("round %d: adds as entries and as flows", round)
			}
			if gotAdd, err = unpackEntries(adds); err != nil {
				t.Fatal(err)
			}
		} else {
			changes++
		}
		if !same(gotAdd, add) || !same(gotMod, mod) || !same(gotDel, del) {
			t.Fatalf("round %d: packedDiff gave %v / %v / %v; Diff %v / %v / %v (desired %v, held %v)",
				round, gotAdd, gotMod, gotDel, add, mod, del, desired, held)
		}
		if adds != nil && len(mod)+len(del) > 0 {
			t.Fatalf("round %d: adds alone where Diff modifies or deletes", round)
		}
	}
	if addsOnly < 200 || changes < 200 {
		t.Fatalf("%d rounds of adds alone and %d of other changes: the test needs more of each", addsOnly, changes)
	}
}
