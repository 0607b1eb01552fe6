// Package dataplane evaluates an OVS bridge's data plane without I/O: flow tables with priorities and masked
// matches, goto_table, apply-actions, groups of type ALL, and the NORMAL action as OVS implements it (MAC learning
// per VLAN, access ports, flooding, flow-based tunnel ports). Behaviour is checked against ovs-vswitchd 3.1.
package dataplane

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// MAC is an Ethernet address.
type MAC [6]byte

// String formats the address as aa:bb:cc:dd:ee:ff.
func (m MAC) String() string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// IsMulticast reports whether the group bit is set (broadcast included).
func (m MAC) IsMulticast() bool { return m[0]&1 != 0 }

// isReserved reports whether m is one of 01:80:c2:00:00:0x, which NORMAL never forwards (forward_bpdu=false).
func (m MAC) isReserved() bool {
	return m[0] == 0x01 && m[1] == 0x80 && m[2] == 0xc2 && m[3] == 0 && m[4] == 0 && m[5]&0xf0 == 0
}

// ParseMAC parses aa:bb:cc:dd:ee:ff.
func ParseMAC(s string) (MAC, error) {
	var m MAC
	if len(s) != 17 {
		return m, fmt.Errorf("MAC %q: want 6 colon-separated hex octets", s)
	}
	for i := range 6 {
		if i > 0 && s[i*3-1] != ':' {
			return m, fmt.Errorf("MAC %q: want 6 colon-separated hex octets", s)
		}
		var b byte
		for _, c := range []byte(s[i*3 : i*3+2]) {
			var v byte
			switch {
			case c >= '0' && c <= '9':
				v = c - '0'
			case c >= 'a' && c <= 'f':
				v = c - 'a' + 10
			case c >= 'A' && c <= 'F':
				v = c - 'A' + 10
			default:
				return m, fmt.Errorf("MAC %q: bad hex digit %q", s, c)
			}
			b = b<<4 | v
		}
		m[i] = b
	}
	return m, nil
}

// Ethernet types the parser understands.
const (
	EthTypeIPv4 uint16 = 0x0800
	EthTypeARP  uint16 = 0x0806
	EthTypeVLAN uint16 = 0x8100
	EthTypeIPv6 uint16 = 0x86dd
)

// IP protocols the parser understands.
const (
	ProtoICMP   uint8 = 1
	ProtoTCP    uint8 = 6
	ProtoUDP    uint8 = 17
	ProtoICMPv6 uint8 = 58
)

// Tunnel is the metadata a frame carries to or from a flow-based tunnel port. The zero value is "none".
type Tunnel struct {
	ID  uint64
	Src netip.Addr // IPv4; invalid when unset
	Dst netip.Addr // IPv4; invalid when unset
	// ERSPAN header fields: the version (1: type II, 2: type III; 0 unset), the type II index, the type III
	// direction and hardware id. Set by flows before an erspan port, and on frames an erspan port receives.
	ErspanVer, ErspanDir, ErspanHwid uint8
	ErspanIdx                        uint32
}

// IsSet reports whether a destination is set: only then does a flow-based tunnel port send the frame.
func (t Tunnel) IsSet() bool { return t.Dst.IsValid() && !t.Dst.IsUnspecified() }

func (t Tunnel) String() string {
	if !t.IsSet() && t.ID == 0 && !t.Src.IsValid() {
		return "none"
	}
	s := fmt.Sprintf("tun_id=%#x,tun_src=%v,tun_dst=%v", t.ID, t.Src, t.Dst)
	switch t.ErspanVer {
	case 0:
	case 1:
		s += fmt.Sprintf(",tun_erspan_ver=1,tun_erspan_idx=%#x", t.ErspanIdx)
	default:
		s += fmt.Sprintf(",tun_erspan_ver=%d,tun_erspan_dir=%d,tun_erspan_hwid=%#x", t.ErspanVer, t.ErspanDir, t.ErspanHwid)
	}
	return s
}

// Frame is a packet as the pipeline sees it: header fields parsed from Raw, plus metadata (input port, tunnel).
// Header fields that the frame does not carry are zero (as in OVS's flow struct).
type Frame struct {
	InPort uint32
	Tunnel Tunnel
	Reg0   uint32 // NXM_NX_REG0; 0 when the frame enters the pipeline

	EthDst, EthSrc MAC
	HasVLAN        bool
	VID            uint16 // 12 bits
	PCP            uint8
	EthType        uint16 // after any VLAN tag

	IPSrc, IPDst netip.Addr // IPv4 or IPv6 (or ARP SPA/TPA for ARP); invalid when absent
	IPProto      uint8
	L4Src, L4Dst uint16 // TCP/UDP ports; ICMP type/code
	ARPOp        uint16

	// Raw is the Ethernet frame as it would appear on the wire at this point (VLAN tag included when HasVLAN).
	Raw []byte
}

// ParseFrame parses an Ethernet frame; fields of protocols it does not know stay zero. The frame must hold at
// least an Ethernet header.
func ParseFrame(raw []byte) (Frame, error) {
	var f Frame
	if len(raw) < 14 {
		return f, fmt.Errorf("frame of %d bytes: shorter than an Ethernet header (14)", len(raw))
	}
	f.Raw = append([]byte(nil), raw...)
	copy(f.EthDst[:], raw[0:6])
	copy(f.EthSrc[:], raw[6:12])
	et := binary.BigEndian.Uint16(raw[12:14])
	off := 14
	if et == EthTypeVLAN {
		if len(raw) < 18 {
			return f, fmt.Errorf("frame of %d bytes: truncated VLAN header", len(raw))
		}
		tci := binary.BigEndian.Uint16(raw[14:16])
		f.HasVLAN, f.VID, f.PCP = true, tci&0x0fff, uint8(tci>>13)
		et = binary.BigEndian.Uint16(raw[16:18])
		off = 18
	}
	f.EthType = et
	p := raw[off:]
	switch et {
	case EthTypeIPv4:
		if len(p) < 20 || p[0]>>4 != 4 {
			return f, nil
		}
		ihl := int(p[0]&0x0f) * 4
		f.IPSrc = netip.AddrFrom4([4]byte(p[12:16]))
		f.IPDst = netip.AddrFrom4([4]byte(p[16:20]))
		f.IPProto = p[9]
		fragOff := binary.BigEndian.Uint16(p[6:8]) & 0x1fff
		if ihl >= 20 && len(p) >= ihl && fragOff == 0 {
			f.parseL4(p[ihl:])
		}
	case EthTypeIPv6:
		if len(p) < 40 {
			return f, nil
		}
		f.IPSrc = netip.AddrFrom16([16]byte(p[8:24]))
		f.IPDst = netip.AddrFrom16([16]byte(p[24:40]))
		f.IPProto = p[6]
		f.parseL4(p[40:])
	case EthTypeARP:
		if len(p) < 28 {
			return f, nil
		}
		f.ARPOp = binary.BigEndian.Uint16(p[6:8])
		f.IPSrc = netip.AddrFrom4([4]byte(p[14:18]))
		f.IPDst = netip.AddrFrom4([4]byte(p[24:28]))
	}
	return f, nil
}

func (f *Frame) parseL4(p []byte) {
	switch f.IPProto {
	case ProtoTCP, ProtoUDP:
		if len(p) >= 4 {
			f.L4Src = binary.BigEndian.Uint16(p[0:2])
			f.L4Dst = binary.BigEndian.Uint16(p[2:4])
		}
	case ProtoICMP, ProtoICMPv6:
		if len(p) >= 2 {
			f.L4Src, f.L4Dst = uint16(p[0]), uint16(p[1])
		}
	}
}

// Clone returns a deep copy.
func (f Frame) Clone() Frame {
	f.Raw = append([]byte(nil), f.Raw...)
	return f
}

// SetVLAN makes the frame carry tag vid (pushing one if it had none), keeping Raw in step.
func (f *Frame) SetVLAN(vid uint16, pcp uint8) {
	tci := uint16(pcp)<<13 | vid&0x0fff
	if !f.HasVLAN {
		raw := make([]byte, 0, len(f.Raw)+4)
		raw = append(raw, f.Raw[:12]...)
		raw = binary.BigEndian.AppendUint16(raw, EthTypeVLAN)
		raw = binary.BigEndian.AppendUint16(raw, tci)
		f.Raw = append(raw, f.Raw[12:]...)
	} else {
		f.Raw = append([]byte(nil), f.Raw...)
		binary.BigEndian.PutUint16(f.Raw[14:16], tci)
	}
	f.HasVLAN, f.VID, f.PCP = true, vid&0x0fff, pcp
}

// StripVLAN removes the frame's VLAN tag, if any.
func (f *Frame) StripVLAN() {
	if !f.HasVLAN {
		return
	}
	raw := make([]byte, 0, len(f.Raw)-4)
	raw = append(raw, f.Raw[:12]...)
	f.Raw = append(raw, f.Raw[16:]...)
	f.HasVLAN, f.VID, f.PCP = false, 0, 0
}

// setEth rewrites an Ethernet address in Raw.
func (f *Frame) setEth(dst bool, m MAC) {
	f.Raw = append([]byte(nil), f.Raw...)
	if dst {
		f.EthDst = m
		copy(f.Raw[0:6], m[:])
	} else {
		f.EthSrc = m
		copy(f.Raw[6:12], m[:])
	}
}

// BuildEthernet returns an Ethernet frame with the given header and payload, padded to 60 bytes.
func BuildEthernet(dst, src MAC, ethType uint16, payload []byte) []byte {
	b := make([]byte, 0, 60)
	b = append(b, dst[:]...)
	b = append(b, src[:]...)
	b = binary.BigEndian.AppendUint16(b, ethType)
	b = append(b, payload...)
	for len(b) < 60 {
		b = append(b, 0)
	}
	return b
}
