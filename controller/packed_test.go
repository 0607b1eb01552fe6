package controller

import (
	"math/rand/v2"
	"slices"
	"testing"

	"portmirror/flows"
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
