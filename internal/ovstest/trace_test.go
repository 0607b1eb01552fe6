package ovstest

import (
	"slices"
	"testing"
)

func TestDatapathActions(t *testing.T) {
	for _, tc := range []struct {
		trace string
		want  []string
		ok    bool
	}{
		{"Flow: x\n\nFinal flow: unchanged\nDatapath actions: 1,4\n", []string{"1", "4"}, true},
		{"Datapath actions: drop", []string{"drop"}, true},
		{"Datapath actions: set(tunnel(tun_id=0x2a,dst=198.18.0.2)),clone(tnl_push(header(a,b)),out_port(3)),1\n",
			[]string{"set(tunnel(tun_id=0x2a,dst=198.18.0.2))", "clone(tnl_push(header(a,b)),out_port(3))", "1"}, true},
		{"Datapath actions: 1\n...\nDatapath actions: 2,3\n", []string{"2", "3"}, true}, // the last one counts
		{"no actions here", nil, false},
	} {
		got, ok := DatapathActions(tc.trace)
		if ok != tc.ok || !slices.Equal(got, tc.want) {
			t.Errorf("DatapathActions(%q) = %q, %v; want %q, %v", tc.trace, got, ok, tc.want, tc.ok)
		}
	}
}
