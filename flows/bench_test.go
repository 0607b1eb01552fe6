package flows

import (
	"fmt"
	"net/netip"
	"testing"

	"portmirror/model"
)

// fleet builds bridges hosts, each with sessionsPer sessions whose sources are on it and whose destinations are
// on the next bridge (remote, over one flow network) or, for every fourth session, on the same bridge.
func fleet(bridges, sessionsPer int) *Input {
	in := &Input{NICs: map[string]NIC{}, Endpoints: map[EndpointKey]Endpoint{}, Bridges: map[string]Bridge{}}
	dirs := []model.Direction{model.Ingress, model.Egress, model.Bidirection}
	dp := func(b int) string { return fmt.Sprintf("%016x", b+1) }
	for b := range bridges {
		ports := []uint32{1000}
		for s := range sessionsPer {
			ports = append(ports, uint32(s+1), uint32(s+101))
		}
		in.Bridges[dp(b)] = Bridge{Ports: ports}
		in.Endpoints[EndpointKey{fnA, dp(b)}] = Endpoint{IP: netip.AddrFrom4([4]byte{198, 18, byte(b >> 8), byte(b)}), TunnelPort: 1000}
	}
	for b := range bridges {
		for s := range sessionsPer {
			src := fmt.Sprintf("src-%d-%d", b, s)
			dst := fmt.Sprintf("dst-%d-%d", b, s)
			dstBridge := (b + 1) % bridges
			if s%4 == 0 {
				dstBridge = b
			}
			in.NICs[src] = NIC{MAC: fmt.Sprintf("02:00:%02x:%02x:00:%02x", b>>8, b&0xff, s), DatapathID: dp(b), Port: uint32(s + 1)}
			in.NICs[dst] = NIC{MAC: fmt.Sprintf("02:01:%02x:%02x:00:%02x", b>>8, b&0xff, s), DatapathID: dp(dstBridge), Port: uint32(s + 101)}
			in.Sessions = append(in.Sessions, Session{UUID: fmt.Sprintf("s-%d-%d", b, s), Type: dirs[(b+s)%3],
				SourceNIC: src, DestinationNIC: dst, TunnelKey: uint32(b*sessionsPer + s + 1), FlowNetwork: fnA,
				Encapsulation: model.GRE})
		}
	}
	return in
}

// crowded builds one bridge with n BIDIRECTION sources sharing 8 destinations, half local and half remote: every
// source's frames to every other source need a combined flow.
func crowded(n int) *Input {
	in := &Input{NICs: map[string]NIC{}, Endpoints: map[EndpointKey]Endpoint{}, Bridges: map[string]Bridge{}}
	var ports []uint32
	for i := range n {
		ports = append(ports, uint32(i+1))
		in.NICs[fmt.Sprintf("src-%d", i)] = NIC{MAC: fmt.Sprintf("02:00:00:00:%02x:%02x", i>>8, i&0xff), DatapathID: br1, Port: uint32(i + 1)}
	}
	for d := range 8 {
		b := br1
		if d%2 == 1 {
			b = br2
		}
		in.NICs[fmt.Sprintf("dst-%d", d)] = NIC{MAC: fmt.Sprintf("02:01:00:00:00:%02x", d), DatapathID: b, Port: uint32(5000 + d)}
		ports = append(ports, uint32(5000+d))
	}
	in.Bridges[br1] = Bridge{Ports: append(ports, 9000)}
	in.Bridges[br2] = Bridge{Ports: append(ports, 9000)}
	in.Endpoints[EndpointKey{fnA, br1}] = Endpoint{IP: netip.MustParseAddr("198.18.0.1"), TunnelPort: 9000}
	in.Endpoints[EndpointKey{fnA, br2}] = Endpoint{IP: netip.MustParseAddr("198.18.0.2"), TunnelPort: 9000}
	for i := range n {
		in.Sessions = append(in.Sessions, Session{UUID: fmt.Sprintf("s-%d", i), Type: model.Bidirection,
			SourceNIC: fmt.Sprintf("src-%d", i), DestinationNIC: fmt.Sprintf("dst-%d", i%8), TunnelKey: uint32(i%8 + 1),
			FlowNetwork: fnA, Encapsulation: model.GRE})
	}
	return in
}

func BenchmarkFleet1000Bridges10Sessions(b *testing.B) {
	in := fleet(1000, 10)
	flows := 0
	b.ReportAllocs()
	for b.Loop() {
		p := Analyze(in)
		flows = 0
		for dp := range in.Bridges {
			flows += len(p.Bridge(dp))
		}
	}
	b.ReportMetric(float64(flows), "flows")
}

func BenchmarkOneBridge100kFlows(b *testing.B) {
	in := crowded(338)
	flows := 0
	b.ReportAllocs()
	for b.Loop() {
		flows = len(CompileBridge(in, br1))
	}
	b.ReportMetric(float64(flows), "flows")
}

func BenchmarkDiffUnchanged100kFlows(b *testing.B) {
	desired := CompileBridge(crowded(338), br1)
	installed := append([]Flow(nil), desired...)
	b.ReportAllocs()
	for b.Loop() {
		if a, m, d := Diff(desired, installed); len(a)+len(m)+len(d) != 0 {
			b.Fatal("diff of identical tables is not empty")
		}
	}
}

func BenchmarkString100kFlows(b *testing.B) {
	flows := CompileBridge(crowded(338), br1)
	b.ReportAllocs()
	for b.Loop() {
		for _, f := range flows {
			_ = f.String()
		}
	}
}
