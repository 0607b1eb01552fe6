package e2e

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// Frame is one captured Ethernet frame, decoded as far as the tests need.
type Frame struct {
	Time      time.Time
	Data      []byte
	Src, Dst  net.HardwareAddr
	VLAN      int    // 802.1Q VLAN id, -1 when untagged
	EtherType uint16 // after any VLAN tag
	// IPv4 only:
	SrcIP, DstIP netip.Addr
	Proto        uint8
	// TCP and UDP only (Proto 6 and 17):
	SrcPort, DstPort uint16
	// ICMP only (Proto 1):
	ICMPType, ICMPCode uint8
	ICMPID, ICMPSeq    uint16
}

// ICMP types.
const (
	ICMPEchoReply   = 0
	ICMPEchoRequest = 8
)

// IsEcho reports whether f is an ICMP echo of the given type (ICMPEchoRequest or
// ICMPEchoReply) from src to dst, with any id.
func (f Frame) IsEcho(typ uint8, src, dst string) bool {
	return f.Proto == 1 && f.ICMPType == typ && f.SrcIP.String() == src && f.DstIP.String() == dst
}

// String summarises the frame like tcpdump -n -e would.
func (f Frame) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s > %s", f.Time.Format("15:04:05.000000"), f.Src, f.Dst)
	if f.VLAN >= 0 {
		fmt.Fprintf(&b, " vlan %d", f.VLAN)
	}
	fmt.Fprintf(&b, " ethertype 0x%04x len %d", f.EtherType, len(f.Data))
	if f.SrcIP.IsValid() {
		fmt.Fprintf(&b, " %s > %s proto %d", f.SrcIP, f.DstIP, f.Proto)
	}
	if f.Proto == 1 {
		fmt.Fprintf(&b, " icmp type %d id %d seq %d", f.ICMPType, f.ICMPID, f.ICMPSeq)
	}
	return b.String()
}

// PingCount is how many frames of one ping run a capture holds.
type PingCount struct {
	Requests int // echo requests Src→Dst with the run's id
	Replies  int // echo replies Dst→Src with the run's id
	Other    int // every other frame in the capture
}

// CountPing counts the frames of ping run p, and all other frames.
func CountPing(frames []Frame, p PingResult) PingCount {
	var c PingCount
	for _, f := range frames {
		switch {
		case f.Proto == 1 && f.ICMPID == p.ID && f.IsEcho(ICMPEchoRequest, p.Src, p.Dst):
			c.Requests++
		case f.Proto == 1 && f.ICMPID == p.ID && f.IsEcho(ICMPEchoReply, p.Dst, p.Src):
			c.Replies++
		default:
			c.Other++
		}
	}
	return c
}

// FramesString lists frames, one per line, for failure messages.
func FramesString(frames []Frame) string {
	var b strings.Builder
	for _, f := range frames {
		b.WriteString("  ")
		b.WriteString(f.String())
		b.WriteString("\n")
	}
	if len(frames) == 0 {
		b.WriteString("  (no frames)\n")
	}
	return b.String()
}

// parsePcap decodes a classic pcap file (either byte order, micro- or nanosecond
// timestamps, Ethernet link type). A record cut short at the end (the file is
// still being written) is ignored.
func parsePcap(b []byte) ([]Frame, error) {
	if len(b) < 24 {
		if len(b) == 0 {
			return nil, nil // tcpdump has not written the header yet
		}
		return nil, fmt.Errorf("pcap: %d-byte file is shorter than the 24-byte header", len(b))
	}
	var bo binary.ByteOrder
	var nano bool
	switch {
	case binary.LittleEndian.Uint32(b) == 0xa1b2c3d4:
		bo = binary.LittleEndian
	case binary.BigEndian.Uint32(b) == 0xa1b2c3d4:
		bo = binary.BigEndian
	case binary.LittleEndian.Uint32(b) == 0xa1b23c4d:
		bo, nano = binary.LittleEndian, true
	case binary.BigEndian.Uint32(b) == 0xa1b23c4d:
		bo, nano = binary.BigEndian, true
	default:
		return nil, fmt.Errorf("pcap: bad magic %x", b[:4])
	}
	if lt := bo.Uint32(b[20:]); lt != 1 {
		return nil, fmt.Errorf("pcap: link type %d, want 1 (Ethernet)", lt)
	}
	var frames []Frame
	for off := 24; off+16 <= len(b); {
		sec, frac := bo.Uint32(b[off:]), bo.Uint32(b[off+4:])
		incl := int(bo.Uint32(b[off+8:]))
		if incl > 1<<18 {
			return frames, fmt.Errorf("pcap: record at offset %d claims %d bytes", off, incl)
		}
		if off+16+incl > len(b) {
			break
		}
		ns := int64(frac) * 1000
		if nano {
			ns = int64(frac)
		}
		f, err := decodeFrame(b[off+16 : off+16+incl])
		if err != nil {
			return frames, err
		}
		f.Time = time.Unix(int64(sec), ns)
		frames = append(frames, f)
		off += 16 + incl
	}
	return frames, nil
}

// decodeFrame decodes Ethernet, one optional 802.1Q tag, IPv4 and ICMP.
func decodeFrame(d []byte) (Frame, error) {
	f := Frame{Data: append([]byte(nil), d...), VLAN: -1}
	if len(d) < 14 {
		return f, errors.New("pcap: frame shorter than an Ethernet header")
	}
	f.Dst, f.Src = net.HardwareAddr(f.Data[0:6]), net.HardwareAddr(f.Data[6:12])
	f.EtherType = binary.BigEndian.Uint16(d[12:])
	p := d[14:]
	if f.EtherType == 0x8100 && len(p) >= 4 {
		f.VLAN = int(binary.BigEndian.Uint16(p) & 0x0fff)
		f.EtherType = binary.BigEndian.Uint16(p[2:])
		p = p[4:]
	}
	if f.EtherType != 0x0800 || len(p) < 20 || p[0]>>4 != 4 {
		return f, nil
	}
	ihl := int(p[0]&0x0f) * 4
	if ihl < 20 || len(p) < ihl {
		return f, nil
	}
	f.Proto = p[9]
	f.SrcIP = netip.AddrFrom4([4]byte(p[12:16]))
	f.DstIP = netip.AddrFrom4([4]byte(p[16:20]))
	if (f.Proto == 6 || f.Proto == 17) && len(p) >= ihl+4 {
		f.SrcPort, f.DstPort = binary.BigEndian.Uint16(p[ihl:]), binary.BigEndian.Uint16(p[ihl+2:])
	}
	if f.Proto == 1 && len(p) >= ihl+8 {
		icmp := p[ihl:]
		f.ICMPType, f.ICMPCode = icmp[0], icmp[1]
		f.ICMPID, f.ICMPSeq = binary.BigEndian.Uint16(icmp[4:]), binary.BigEndian.Uint16(icmp[6:])
	}
	return f, nil
}
