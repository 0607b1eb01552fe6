package dataplane

import (
	"encoding/binary"
	"net/netip"
)

// Broadcast is ff:ff:ff:ff:ff:ff.
var Broadcast = MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// BuildARPRequest returns an ARP request (broadcast) from src/spa for tpa.
func BuildARPRequest(src MAC, spa, tpa netip.Addr) []byte {
	p := make([]byte, 0, 28)
	p = binary.BigEndian.AppendUint16(p, 1) // Ethernet
	p = binary.BigEndian.AppendUint16(p, EthTypeIPv4)
	p = append(p, 6, 4)
	p = binary.BigEndian.AppendUint16(p, 1) // request
	p = append(p, src[:]...)
	p = append(p, spa.AsSlice()...)
	p = append(p, make([]byte, 6)...)
	p = append(p, tpa.AsSlice()...)
	return BuildEthernet(Broadcast, src, EthTypeARP, p)
}

func checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// BuildIPv4 returns an Ethernet frame with an IPv4 header (valid checksum) around an L4 payload.
func BuildIPv4(dst, src MAC, ipSrc, ipDst netip.Addr, proto uint8, l4 []byte) []byte {
	h := make([]byte, 20, 20+len(l4))
	h[0], h[8], h[9] = 0x45, 64, proto
	binary.BigEndian.PutUint16(h[2:], uint16(20+len(l4)))
	copy(h[12:16], ipSrc.AsSlice())
	copy(h[16:20], ipDst.AsSlice())
	binary.BigEndian.PutUint16(h[10:], checksum(h))
	return BuildEthernet(dst, src, EthTypeIPv4, append(h, l4...))
}

// BuildICMPEcho returns an ICMP echo request.
func BuildICMPEcho(dst, src MAC, ipSrc, ipDst netip.Addr, id, seq uint16) []byte {
	m := make([]byte, 8, 16)
	m[0] = 8
	binary.BigEndian.PutUint16(m[4:], id)
	binary.BigEndian.PutUint16(m[6:], seq)
	m = append(m, "portmirr"...)
	binary.BigEndian.PutUint16(m[2:], checksum(m))
	return BuildIPv4(dst, src, ipSrc, ipDst, ProtoICMP, m)
}

// BuildUDP returns a UDP datagram over IPv4 or IPv6 (by the addresses' family); the UDP checksum is left zero
// over IPv4 and computed over IPv6 is not attempted (OVS does not check it).
func BuildUDP(dst, src MAC, ipSrc, ipDst netip.Addr, sport, dport uint16, payload []byte) []byte {
	u := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(payload)))
	u = append(u, payload...)
	if ipSrc.Is6() {
		return BuildIPv6(dst, src, ipSrc, ipDst, ProtoUDP, u)
	}
	return BuildIPv4(dst, src, ipSrc, ipDst, ProtoUDP, u)
}

// BuildTCPSyn returns a TCP SYN over IPv4 (checksum not computed).
func BuildTCPSyn(dst, src MAC, ipSrc, ipDst netip.Addr, sport, dport uint16) []byte {
	t := make([]byte, 20)
	binary.BigEndian.PutUint16(t[0:], sport)
	binary.BigEndian.PutUint16(t[2:], dport)
	t[12], t[13] = 5<<4, 0x02
	binary.BigEndian.PutUint16(t[14:], 64240)
	return BuildIPv4(dst, src, ipSrc, ipDst, ProtoTCP, t)
}

// BuildIPv6 returns an Ethernet frame with an IPv6 header around an L4 payload.
func BuildIPv6(dst, src MAC, ipSrc, ipDst netip.Addr, next uint8, l4 []byte) []byte {
	h := make([]byte, 40, 40+len(l4))
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(len(l4)))
	h[6], h[7] = next, 64
	copy(h[8:24], ipSrc.AsSlice())
	copy(h[24:40], ipDst.AsSlice())
	return BuildEthernet(dst, src, EthTypeIPv6, append(h, l4...))
}

// WithVLAN returns raw with an 802.1Q tag inserted.
func WithVLAN(raw []byte, vid uint16, pcp uint8) []byte {
	f := Frame{Raw: raw}
	f.SetVLAN(vid, pcp)
	return f.Raw
}
