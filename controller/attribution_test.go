package controller

import (
	"net/netip"
	"strings"
	"testing"

	"portmirror/flows"
	"portmirror/model"
	"portmirror/ofwire"
)

// TestBlameRefusedFlows: a flow the switch refuses turns ERROR only the sessions whose flows it is (selecting
// their frames or carrying their copies); a refused flow of nobody's (the baseline) concerns every session.
func TestBlameRefusedFlows(t *testing.T) {
	const (
		dp = "00000000000000c1"
		fn = "f0000000-0000-4000-8000-000000000001"
	)
	in := &flows.Input{
		Sessions: []flows.Session{
			// local: source port 1 -> destination port 2
			{UUID: "local", Type: model.Egress, SourceNIC: "a", DestinationNIC: "d", TunnelKey: 1, FlowNetwork: fn},
			// ingress of b (port 3) to a remote destination with key 5
			{UUID: "remote", Type: model.Ingress, SourceNIC: "b", DestinationNIC: "far", TunnelKey: 5, FlowNetwork: fn},
			// delivery on this bridge of key 7 to the capture port 4
			{UUID: "arriving", Type: model.Egress, SourceNIC: "x", DestinationNIC: "e", TunnelKey: 7, FlowNetwork: fn},
		},
		NICs: map[string]flows.NIC{
			"a":   {MAC: "02:00:00:00:00:0a", DatapathID: dp, Port: 1},
			"d":   {MAC: "02:00:00:00:00:0d", DatapathID: dp, Port: 2},
			"b":   {MAC: "02:00:00:00:00:0b", DatapathID: dp, Port: 3},
			"far": {MAC: "02:00:00:00:00:0f", DatapathID: "00000000000000c2", Port: 9},
			"x":   {MAC: "02:00:00:00:00:01", DatapathID: "00000000000000c2", Port: 8},
			"e":   {MAC: "02:00:00:00:00:0e", DatapathID: dp, Port: 4},
		},
		Endpoints: map[flows.EndpointKey]flows.Endpoint{
			{FlowNetwork: fn, DatapathID: dp}: {IP: netip.MustParseAddr("198.18.100.1"), TunnelPort: 10},
		},
	}
	bySession := map[string]*flows.Session{}
	for i := range in.Sessions {
		bySession[in.Sessions[i].UUID] = &in.Sessions[i]
	}
	ms := marks(in, bySession, dp, []string{"local", "remote", "arriving"})
	mac := func(s string) flows.MAC { m, _ := flows.ParseMAC(s); return m }
	exact := flows.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	refuse := func(f flows.Flow) FlowError {
		return FlowError{DatapathID: dp, Flow: f, Err: ofwire.ErrorMsg{Type: ofwire.ErrTypeBadAction}}
	}
	for _, tc := range []struct {
		name string
		flow flows.Flow
		want []string
	}{
		{"egress flow of port 1", flows.Flow{Priority: 200, Match: flows.Match{InPort: 1}}, []string{"local"}},
		{"capture drop of port 2", flows.Flow{Priority: 600, Match: flows.Match{InPort: 2}}, []string{"local"}},
		{"ingress flow of b's MAC", flows.Flow{Priority: 100, Match: flows.Match{EthDst: mac("02:00:00:00:00:0b"), EthDstMask: exact},
			Actions: []flows.Action{{Type: flows.ActNormal}, {Type: flows.ActSetTunID, Value: 5}, {Type: flows.ActOutput, Port: 10}}},
			[]string{"remote"}},
		{"delivery of key 7", flows.Flow{Priority: 500, Match: flows.Match{InPort: 10, TunID: 7, HasTunID: true},
			Actions: []flows.Action{{Type: flows.ActOutput, Port: 4}}}, []string{"arriving"}},
		{"the baseline concerns all", flows.Flow{Actions: []flows.Action{{Type: flows.ActNormal}}}, []string{"arriving", "local", "remote"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := blame(ms, []FlowError{refuse(tc.flow)})
			for _, id := range []string{"local", "remote", "arriving"} {
				want := false
				for _, w := range tc.want {
					want = want || w == id
				}
				if (got[id] != "") != want {
					t.Errorf("session %s blamed=%v, want %v (%q)", id, got[id] != "", want, got[id])
				}
				if want && !strings.Contains(got[id], "switch "+dp+" refused") {
					t.Errorf("session %s: reason %q does not carry the switch's refusal", id, got[id])
				}
			}
		})
	}
}
