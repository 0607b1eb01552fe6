package flows

import (
	"encoding/binary"
	"net/netip"
	"slices"
)

// A probe checks one session end to end without touching business traffic or the monitoring VM:
//
//   - The controller reads back the flows the session needs (its copy flow on the source bridge, the deliver flow
//     for its key on the destination bridge) and names the first one missing.
//   - It injects a marked frame with PACKET_OUT at the source bridge, in_port the source port, with the actions of
//     the session's copy and nothing else (no NORMAL: no business port ever sees it). A copy to a local
//     destination is output to CONTROLLER instead of the destination port; a copy to another bridge goes through
//     the session's tunnel port to the peer's endpoint, as the copy flow sends it, but with the tunnel key
//     ProbeTunnelKey (0), which no session ever has.
//   - On the destination bridge a catch flow (ProbeCatchFlow) sends the marked frames of key 0 arriving on the
//     tunnel port to CONTROLLER. Without it they meet the tunnel port's drop flow: whatever the switch's flow
//     caches hold while flows change, a probe frame can never reach a VM, and no session's copy is ever caught.
//     The catch flow carries the probe cookie, which reconciliation never reads or deletes, and a hard timeout.
//
// So probe frames never pass through a session's flows: they are not counted in its counters.

// Probe frame constants. The frame is IPv4/UDP from ProbeUDPSrc to ProbeUDPDst, to ProbeMAC, carrying
// probeMagic and a nonce.
const (
	ProbeUDPSrc uint16 = 65000
	ProbeUDPDst uint16 = 65001
	// PriorityProbeCatch is above the tunnel port's drop flow (and the deliver flows, which no probe frame matches).
	PriorityProbeCatch uint16 = PriorityTunnelDeliver + 1
	// CookieProbe marks the catch flows: a high part of its own, so reconciliation (CookieOurs under CookieMask)
	// never reads or deletes them.
	CookieProbe uint64 = 0x5052<<48 | 1 // "PR"
)

// ProbeMAC is the destination address of probe frames: locally administered, unicast, owned by no NIC.
var ProbeMAC = MAC{0x0a, 0x50, 0x4d, 0x50, 0x52, 0x42}

// probeMagic starts a probe frame's UDP payload.
var probeMagic = [8]byte{'P', 'M', 'P', 'R', 'O', 'B', 'E', '1'}

// Addresses inside probe frames (link-local: never routed).
var (
	probeIPSrc = [4]byte{169, 254, 80, 77}
	probeIPDst = [4]byte{169, 254, 80, 78}
)

const (
	probeHeaders = 14 + 20 + 8
	probePayload = 8 + 8 + 1
	// ProbeFrameLen is the length of a probe frame, padded to Ethernet's minimum of 60 bytes.
	ProbeFrameLen = 60
)

// ProbeFrame returns the probe frame of one attempt of a probe: from src (the source NIC's MAC) to ProbeMAC,
// carrying the probe's nonce and the attempt number.
func ProbeFrame(src MAC, nonce uint64, attempt uint8) []byte {
	b := make([]byte, 0, ProbeFrameLen)
	b = append(b, ProbeMAC[:]...)
	b = append(b, src[:]...)
	b = binary.BigEndian.AppendUint16(b, EthTypeIPv4)
	ip := len(b)
	totalLen := 20 + 8 + probePayload
	b = append(b, 0x45, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(totalLen))
	b = append(b, 0, 0, 0x40, 0, 64, 17, 0, 0) // id 0, DF, ttl 64, udp, checksum below
	b = append(b, probeIPSrc[:]...)
	b = append(b, probeIPDst[:]...)
	binary.BigEndian.PutUint16(b[ip+10:], ipChecksum(b[ip:ip+20]))
	b = binary.BigEndian.AppendUint16(b, ProbeUDPSrc)
	b = binary.BigEndian.AppendUint16(b, ProbeUDPDst)
	b = binary.BigEndian.AppendUint16(b, uint16(8+probePayload))
	b = append(b, 0, 0) // no UDP checksum (allowed over IPv4)
	b = append(b, probeMagic[:]...)
	b = binary.BigEndian.AppendUint64(b, nonce)
	b = append(b, attempt)
	for len(b) < ProbeFrameLen {
		b = append(b, 0)
	}
	return b
}

// ParseProbeFrame returns the nonce and attempt of a probe frame; ok is false for any other frame.
func ParseProbeFrame(b []byte) (nonce uint64, attempt uint8, ok bool) {
	if len(b) < probeHeaders+probePayload || [6]byte(b[0:6]) != ProbeMAC ||
		binary.BigEndian.Uint16(b[12:]) != EthTypeIPv4 || b[14] != 0x45 || b[23] != 17 ||
		binary.BigEndian.Uint16(b[34:]) != ProbeUDPSrc || binary.BigEndian.Uint16(b[36:]) != ProbeUDPDst ||
		[8]byte(b[42:50]) != probeMagic {
		return 0, 0, false
	}
	return binary.BigEndian.Uint64(b[50:]), b[58], true
}

func ipChecksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// ProbeTunnelKey is the tunnel key of probe frames between bridges: sessions' keys start at 1.
const ProbeTunnelKey uint32 = 0

// ProbeCatchFlow is the flow that catches probe frames arriving on a tunnel port (key ProbeTunnelKey): it sends
// them to the controller.
func ProbeCatchFlow(tunnelPort uint32) Flow {
	return Flow{Priority: PriorityProbeCatch, Cookie: CookieProbe,
		Match: Match{InPort: tunnelPort, TunID: uint64(ProbeTunnelKey), HasTunID: true, EthDst: ProbeMAC, EthDstMask: exactMask(),
			EthType: EthTypeIPv4, IPProto: 17, HasIPProto: true,
			TPSrc: ProbeUDPSrc, TPSrcMask: 0xffff, TPDst: ProbeUDPDst, TPDstMask: 0xffff},
		Actions: []Action{{Type: ActOutput, Port: PortController}}}
}

// PortController is OFPP_CONTROLLER.
const PortController uint32 = 0xfffffffd

// ProbeRoute is what a probe of one session needs and checks, from the plan.
type ProbeRoute struct {
	SessionUUID string
	// Reasons why the plan cannot realise the session (as SessionReport); the probe reports the first.
	Reasons []string

	SourceBridge string // datapath id; "" when the source port is not placed
	SourcePort   uint32
	// Copies: the session copies something at its source (a direction and a destination it can reach).
	Copies bool
	Remote bool       // the copy crosses the flow network
	Tunnel uint32     // remote: the source bridge's tunnel port
	Key    uint32     // remote: the session's tunnel key
	PeerIP netip.Addr // remote: the destination host's endpoint

	DestBridge  string // datapath id; "" when the destination port is not placed
	DestPort    uint32
	DeliverPort uint32 // remote: the destination bridge's tunnel port; 0 when missing

	// SourceFlows are the table-0 flows of the source bridge that carry the session's copy of a frame it
	// selects (egress: in_port=<source port>; ingress: dl_dst=<source MAC>), as they should be installed.
	SourceFlows []Flow
	// DeliverFlow is the destination bridge's flow for the key, as it should be installed (remote only).
	DeliverFlow *Flow

	erspanVer, erspanDir uint8 // remote over ERSPAN: the copy's header (see target)
}

// CopyActions are the actions a probe's PACKET_OUT runs at the source bridge: the session's copy, with a local
// destination replaced by the controller and a remote one's key by ProbeTunnelKey. Nil when the session copies
// nothing.
func (r *ProbeRoute) CopyActions() []Action {
	switch {
	case !r.Copies:
		return nil
	case r.Remote:
		// As the session's copy: for ERSPAN with its version and header fields (OVS drops an erspan copy without).
		return target{remote: true, port: r.Tunnel, key: ProbeTunnelKey, ip: r.PeerIP, erspanVer: r.erspanVer,
			erspanDir: r.erspanDir}.tunnelActs(Action{Type: ActOutput, Port: r.Tunnel})
	}
	return []Action{{Type: ActOutput, Port: PortController}}
}

// ProbeRoute returns the probe route of a session the plan holds.
func (p *Plan) ProbeRoute(sessionUUID string) (ProbeRoute, bool) {
	i, ok := p.index[sessionUUID]
	if !ok {
		return ProbeRoute{}, false
	}
	r := &p.res[i]
	out := ProbeRoute{SessionUUID: sessionUUID, Reasons: p.reports[i].Reasons,
		SourceBridge: r.srcDP, SourcePort: r.srcPort, Copies: r.hasCopy,
		DestBridge: r.dstDP, DestPort: r.dstPort, DeliverPort: r.deliverPort}
	if r.hasCopy && r.copy.remote {
		out.Remote, out.Tunnel, out.Key, out.PeerIP = true, r.copy.port, r.copy.key, r.copy.ip
		out.erspanVer, out.erspanDir = r.copy.erspanVer, r.copy.erspanDir
	}
	if r.hasCopy {
		for _, f := range p.Bridge(r.srcDP) {
			if f.Table != 0 {
				continue
			}
			egress := r.egress && f.Priority == PriorityEgress && f.Match.InPort == r.srcPort
			ingress := r.ingress && f.Priority == PriorityIngress && f.Match.EthDstMask == exactMask() &&
				f.Match.EthDst == r.srcMAC
			if egress || ingress {
				out.SourceFlows = append(out.SourceFlows, f)
			}
		}
	}
	if r.hasCopy && r.copy.remote && r.dstDP != "" && r.deliverPort != 0 {
		for _, f := range p.Bridge(r.dstDP) {
			if f.Priority == PriorityTunnelDeliver && f.Match.InPort == r.deliverPort && f.Match.HasTunID &&
				f.Match.TunID == uint64(r.sess.TunnelKey) {
				out.DeliverFlow = &f
				break
			}
		}
	}
	return out, true
}

// MissingFlow returns the first of want that have is missing or holds with other actions, comparing identity
// (table, priority, match) and actions; ok is false when have holds them all.
func MissingFlow(want, have []Flow) (Flow, bool) {
	byKey := make(map[Key][]Action, len(have))
	for _, f := range have {
		byKey[f.Key()] = f.Actions
	}
	for _, f := range want {
		acts, found := byKey[f.Key()]
		if !found || !slices.Equal(acts, f.Actions) {
			return f, true
		}
	}
	return Flow{}, false
}
