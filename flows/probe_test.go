package flows

import (
	"bytes"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"portmirror/model"
)

func TestProbeFrameRoundTrip(t *testing.T) {
	src := MAC{0x02, 0, 0, 0, 0, 1}
	for _, tc := range []struct {
		nonce   uint64
		attempt uint8
	}{{1, 0}, {0xdeadbeefcafef00d, 7}, {^uint64(0), 255}} {
		f := ProbeFrame(src, tc.nonce, tc.attempt)
		if len(f) != ProbeFrameLen {
			t.Fatalf("frame of %d bytes, want %d", len(f), ProbeFrameLen)
		}
		if !bytes.Equal(f[0:6], ProbeMAC[:]) || !bytes.Equal(f[6:12], src[:]) {
			t.Errorf("addresses %x -> %x, want %s -> %s", f[6:12], f[0:6], src, ProbeMAC)
		}
		if ipChecksum(f[14:34]) != 0 {
			t.Errorf("IPv4 header checksum does not verify: %x", f[14:34])
		}
		n, a, ok := ParseProbeFrame(f)
		if !ok || n != tc.nonce || a != tc.attempt {
			t.Errorf("ParseProbeFrame = %#x, %d, %v; want %#x, %d", n, a, ok, tc.nonce, tc.attempt)
		}
	}
}

// TestParseProbeFrameRefuses: any frame that is not a probe frame, whatever part differs, is not taken for one.
func TestParseProbeFrameRefuses(t *testing.T) {
	good := ProbeFrame(MAC{2}, 42, 1)
	for _, tc := range []struct {
		name string
		edit func([]byte) []byte
	}{
		{"other destination MAC", func(b []byte) []byte { b[5] ^= 1; return b }},
		{"not IPv4", func(b []byte) []byte { b[12] = 0x86; return b }},
		{"IP options", func(b []byte) []byte { b[14] = 0x46; return b }},
		{"TCP", func(b []byte) []byte { b[23] = 6; return b }},
		{"other source port", func(b []byte) []byte { b[35]++; return b }},
		{"other destination port", func(b []byte) []byte { b[37]++; return b }},
		{"no magic", func(b []byte) []byte { b[42] = 'X'; return b }},
		{"cut", func(b []byte) []byte { return b[:58] }},
		{"empty", func([]byte) []byte { return nil }},
	} {
		b := tc.edit(slices.Clone(good))
		if _, _, ok := ParseProbeFrame(b); ok {
			t.Errorf("%s: taken for a probe frame", tc.name)
		}
	}
}

func TestProbeCatchFlow(t *testing.T) {
	f := ProbeCatchFlow(9)
	if f.Priority <= PriorityTunnelDrop {
		t.Errorf("catch priority %d, want above the tunnel drop's %d", f.Priority, PriorityTunnelDrop)
	}
	if f.Cookie&CookieMask == CookieOurs {
		t.Errorf("catch cookie %#x is under CookieOurs: reconciliation would delete it", f.Cookie)
	}
	if f.Match.InPort != 9 || !f.Match.HasTunID || f.Match.TunID != uint64(ProbeTunnelKey) || f.Match.TPSrc != ProbeUDPSrc ||
		f.Match.TPDst != ProbeUDPDst || f.Match.TPSrcMask != 0xffff || f.Match.EthDst != ProbeMAC {
		t.Errorf("catch match %+v", f.Match)
	}
	if len(f.Actions) != 1 || f.Actions[0] != (Action{Type: ActOutput, Port: PortController}) {
		t.Errorf("catch actions %v, want output:CONTROLLER only", f.Actions)
	}
}

// probeInput: a on bridge A port 1 mirrored to a local monitor (port 3) and a remote one (B port 2).
func probeInput() *Input {
	const fn = "f0000000-0000-4000-8000-000000000001"
	return &Input{
		Sessions: []Session{
			{UUID: "local-in", Type: model.Ingress, SourceNIC: "a", DestinationNIC: "ml", TunnelKey: 1, FlowNetwork: fn, Encapsulation: model.GRE},
			{UUID: "remote-eg", Type: model.Egress, SourceNIC: "a", DestinationNIC: "mr", TunnelKey: 7, FlowNetwork: fn, Encapsulation: model.GRE},
		},
		NICs: map[string]NIC{
			"a":  {MAC: "02:00:00:00:00:01", DatapathID: "a", Port: 1},
			"ml": {MAC: "02:00:00:00:00:03", DatapathID: "a", Port: 3},
			"mr": {MAC: "02:00:00:00:00:02", DatapathID: "b", Port: 2},
		},
		Endpoints: map[EndpointKey]Endpoint{
			{FlowNetwork: fn, DatapathID: "a"}: {IP: netip.MustParseAddr("198.18.100.1"), TunnelPort: 9},
			{FlowNetwork: fn, DatapathID: "b"}: {IP: netip.MustParseAddr("198.18.100.2"), TunnelPort: 8},
		},
		Bridges: map[string]Bridge{"a": {Ports: []uint32{1, 3, 9}}, "b": {Ports: []uint32{2, 8}}},
	}
}

func TestProbeRoute(t *testing.T) {
	plan := Analyze(probeInput())

	local, ok := plan.ProbeRoute("local-in")
	if !ok || len(local.Reasons) > 0 || !local.Copies || local.Remote {
		t.Fatalf("local route %+v", local)
	}
	if got := local.CopyActions(); !slices.Equal(got, []Action{{Type: ActOutput, Port: PortController}}) {
		t.Errorf("local copy actions %v, want output:CONTROLLER instead of the monitor's port", got)
	}
	if len(local.SourceFlows) != 1 || local.SourceFlows[0].Priority != PriorityIngress ||
		local.SourceFlows[0].Match.EthDst != (MAC{2, 0, 0, 0, 0, 1}) {
		t.Errorf("local source flows %s, want the ingress flow of a's MAC", dumpFlows(local.SourceFlows))
	}
	if local.DeliverFlow != nil {
		t.Errorf("local route has a deliver flow %v", local.DeliverFlow)
	}

	remote, ok := plan.ProbeRoute("remote-eg")
	if !ok || len(remote.Reasons) > 0 || !remote.Remote || remote.Tunnel != 9 || remote.Key != 7 ||
		remote.PeerIP != netip.MustParseAddr("198.18.100.2") || remote.DeliverPort != 8 || remote.DestBridge != "b" {
		t.Fatalf("remote route %+v", remote)
	}
	want := []Action{{Type: ActSetTunID, Value: uint64(ProbeTunnelKey)}, {Type: ActSetTunDst, IP: MustIPv4("198.18.100.2")}, {Type: ActOutput, Port: 9}}
	if got := remote.CopyActions(); !slices.Equal(got, want) {
		t.Errorf("remote copy actions %v, want %v", got, want)
	}
	// No session has the probe key: a probe frame never meets a deliver flow, whatever the switch caches.
	for _, dp := range []string{"a", "b"} {
		for _, f := range plan.Bridge(dp) {
			if f.Match.HasTunID && f.Match.TunID == uint64(ProbeTunnelKey) {
				t.Errorf("bridge %s: flow %s matches the probe key", dp, f)
			}
		}
	}
	for _, a := range remote.CopyActions() {
		if a.Type == ActNormal {
			t.Errorf("probe actions hold NORMAL: a business port would see the frame")
		}
	}
	if len(remote.SourceFlows) != 1 || remote.SourceFlows[0].Priority != PriorityEgress || remote.SourceFlows[0].Match.InPort != 1 {
		t.Errorf("remote source flows %s, want a's egress flow", dumpFlows(remote.SourceFlows))
	}
	if remote.DeliverFlow == nil || remote.DeliverFlow.Match.InPort != 8 || remote.DeliverFlow.Match.TunID != 7 {
		t.Errorf("deliver flow %v, want in_port=8,tun_id=7", remote.DeliverFlow)
	}
	// The flows the route expects are the compiled ones: held as compiled, nothing is missing.
	if f, missing := MissingFlow(remote.SourceFlows, plan.Bridge("a")); missing {
		t.Errorf("source flow %s missing from the compiled bridge", f)
	}
	if _, ok := plan.ProbeRoute("nope"); ok {
		t.Errorf("a route for an unknown session")
	}

	// The destination's bridge gone: the route says why.
	in := probeInput()
	delete(in.Bridges, "b")
	r, _ := Analyze(in).ProbeRoute("remote-eg")
	if len(r.Reasons) == 0 || !strings.Contains(strings.Join(r.Reasons, ";"), "switch b") {
		t.Errorf("route with bridge b gone: reasons %q", r.Reasons)
	}
	// The source NIC unbound: no source, a reason.
	in = probeInput()
	in.NICs["a"] = NIC{MAC: "02:00:00:00:00:01"}
	r, _ = Analyze(in).ProbeRoute("remote-eg")
	if r.SourceBridge != "" || r.Copies || len(r.Reasons) == 0 {
		t.Errorf("route with the source unbound: %+v", r)
	}
}

func TestMissingFlow(t *testing.T) {
	plan := Analyze(probeInput())
	have := plan.Bridge("a")
	want, _ := plan.ProbeRoute("remote-eg")
	for _, tc := range []struct {
		name    string
		have    []Flow
		missing bool
	}{
		{"all there", have, false},
		{"removed", slices.DeleteFunc(slices.Clone(have), func(f Flow) bool { return f.Priority == PriorityEgress }), true},
		{"other actions", func() []Flow {
			out := slices.Clone(have)
			for i := range out {
				if out[i].Priority == PriorityEgress {
					out[i].Actions = []Action{{Type: ActNormal}}
				}
			}
			return out
		}(), true},
		{"empty", nil, true},
	} {
		f, missing := MissingFlow(want.SourceFlows, tc.have)
		if missing != tc.missing {
			t.Errorf("%s: missing=%v (%s), want %v", tc.name, missing, f, tc.missing)
		}
	}
}
