package flows

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"portmirror/model"
)

// TestLocatedDestinationKeepsRemoteCopies: a destination whose bridge has not connected (yet) — e.g. a controller
// that restarted and hears from the source's bridge first — is still reached through the flow network: the source
// bridge's copy flows stay exactly as they were, so nothing is deleted and re-added on reconnect; the session is not
// ready and says which switch it waits for. A destination on a connected bridge without its port gets no copies.
func TestLocatedDestinationKeepsRemoteCopies(t *testing.T) {
	const (
		dpA, dpB = "000000000000000a", "000000000000000b"
		fn       = "f0000000-0000-4000-8000-000000000001"
	)
	sess := Session{UUID: "s1", Type: model.Egress, SourceNIC: "src", DestinationNIC: "dst", TunnelKey: 7,
		FlowNetwork: fn, Encapsulation: model.GRE}
	full := func() *Input {
		return &Input{
			Sessions: []Session{sess},
			NICs: map[string]NIC{
				"src": {MAC: "02:00:00:00:00:01", DatapathID: dpA, Port: 1},
				"dst": {MAC: "02:00:00:00:00:02", DatapathID: dpB, Port: 2},
			},
			Endpoints: map[EndpointKey]Endpoint{
				{FlowNetwork: fn, DatapathID: dpA}: {IP: netip.MustParseAddr("198.18.100.1"), TunnelPort: 9},
				{FlowNetwork: fn, DatapathID: dpB}: {IP: netip.MustParseAddr("198.18.100.2"), TunnelPort: 9},
			},
			Bridges: map[string]Bridge{dpA: {Ports: []uint32{1, 9}}, dpB: {Ports: []uint32{2, 9}}},
		}
	}
	connected := full()
	want := Analyze(connected).Bridge(dpA)
	if r, _ := Analyze(connected).Report("s1"); !r.Ready() {
		t.Fatalf("with both bridges connected the session should be ready: %v", r.Reasons)
	}

	located := full()
	delete(located.Bridges, dpB)
	located.NICs["dst"] = NIC{MAC: "02:00:00:00:00:02", DatapathID: dpB} // the host's datapath, no port known
	plan := Analyze(located)
	if got := plan.Bridge(dpA); !equalFlows(got, want) {
		t.Errorf("source bridge while the destination's bridge has not connected:\n%s\nwant as when connected:\n%s",
			dumpFlows(got), dumpFlows(want))
	}
	r, _ := plan.Report("s1")
	if r.Ready() || !strings.Contains(r.Reason(), "switch "+dpB+" of destination NIC dst is not connected") {
		t.Errorf("report = %q, want not ready naming switch %s", r.Reason(), dpB)
	}

	portGone := full()
	portGone.Bridges[dpB] = Bridge{Ports: []uint32{9}}
	portGone.NICs["dst"] = NIC{MAC: "02:00:00:00:00:02", DatapathID: dpB}
	for _, f := range Analyze(portGone).Bridge(dpA) {
		for _, a := range f.Actions {
			if a.Type == ActSetTunID {
				t.Errorf("a destination whose port is gone from its connected bridge still gets copies: %v", f)
			}
		}
	}
}

func equalFlows(a, b []Flow) bool { return dumpFlows(a) == dumpFlows(b) }

func dumpFlows(fs []Flow) string {
	var sb strings.Builder
	for _, f := range fs {
		sb.WriteString(f.String())
		sb.WriteByte('\n')
	}
	return sb.String()
}

// TestIPv6EndpointKeepsSessionPending: a tunnel carries copies to an IPv4 endpoint only (NXM_NX_TUN_IPV4_DST); a
// destination host's endpoint that is not IPv4 keeps the remote session pending, saying so, and compiles nothing
// for it (the action holds four bytes, nothing else).
func TestIPv6EndpointKeepsSessionPending(t *testing.T) {
	in := fleet(2, 2) // session s-0-1 copies from bridge 1 to a destination on bridge 2
	k := EndpointKey{FlowNetwork: fnA, DatapathID: fmt.Sprintf("%016x", 2)}
	ep := in.Endpoints[k]
	ep.IP = netip.MustParseAddr("2001:db8::2")
	in.Endpoints[k] = ep
	p := Analyze(in)
	r, _ := p.Report("s-0-1")
	if r.Ready() || !contains(r.Reason(), "is not an IPv4 address") {
		t.Fatalf("session to an IPv6 endpoint: ready %v, report %q", r.Ready(), r.Reason())
	}
	if r, _ := p.Report("s-0-0"); !r.Ready() {
		t.Fatalf("the local session beside it: %q", r.Reason())
	}
	for dp := range in.Bridges {
		for _, f := range p.Bridge(dp) {
			for _, a := range f.Actions {
				if a.Type == ActSetTunDst && a.IP == (IPv4{}) {
					t.Fatalf("bridge %s: a flow tunnels to 0.0.0.0: %s", dp, f)
				}
			}
		}
	}
}
