package ovstest

import "testing"

func TestDatapathActions(t *testing.T) {
	for _, tc := range []struct {
		trace, want string
		ok          bool
	}{
		{"Flow: x\n\nFinal flow: unchanged\nDatapath actions: 1,4\n", "1,4", true},
		{"Datapath actions: drop", "drop", true},
		{"Datapath actions: 1\n...\nDatapath actions: clone(tnl_push(a),3),2\n", "clone(tnl_push(a),3),2", true}, // the last
		{"no actions here", "", false},
	} {
		if got, ok := DatapathActions(tc.trace); got != tc.want || ok != tc.ok {
			t.Errorf("DatapathActions(%q) = %q, %v; want %q, %v", tc.trace, got, ok, tc.want, tc.ok)
		}
	}
}
