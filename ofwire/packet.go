package ofwire

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"portmirror/flows"
)

// ControllerMaxLenNoBuffer (OFPCML_NO_BUFFER) is the max_len of an output to PortController: the whole frame.
const ControllerMaxLenNoBuffer uint16 = 0xffff

// Packet-in reasons (ofp_packet_in_reason).
const (
	PacketInNoMatch uint8 = 0
	PacketInAction  uint8 = 1
)

const (
	packetOutFixed = 24 // header, buffer_id, in_port, actions_len, pad
	packetInFixed  = 24 // header, buffer_id, total_len, reason, table_id, cookie (match follows)
)

// PacketOut is an OFPT_PACKET_OUT: a frame the controller hands to the switch, as if it had arrived on InPort,
// and the actions to run on it.
type PacketOut struct {
	BufferID uint32 // NoBuffer: the frame is Data
	InPort   uint32
	Actions  []flows.Action
	Data     []byte
}

// AppendPacketOut appends a PACKET_OUT carrying data (buffer_id NO_BUFFER). An output to PortController asks for
// the whole frame (max_len NO_BUFFER). On error dst is returned unchanged.
func AppendPacketOut(dst []byte, xid uint32, inPort uint32, acts []flows.Action, data []byte) ([]byte, error) {
	start := len(dst)
	dst = appendHeader(dst, TypePacketOut, xid)
	dst = binary.BigEndian.AppendUint32(dst, NoBuffer)
	dst = binary.BigEndian.AppendUint32(dst, inPort)
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0) // actions_len, pad
	astart := len(dst)
	if len(acts) > 0 {
		var err error
		// appendActions writes an apply-actions instruction: keep the actions behind its 8-byte header.
		if dst, err = appendActions(dst, acts); err != nil {
			return dst[:start], fmt.Errorf("packet-out: %w", err)
		}
		dst = append(dst[:astart], dst[astart+8:]...)
	}
	binary.BigEndian.PutUint16(dst[start+16:], uint16(len(dst)-astart))
	dst = append(dst, data...)
	return finish(dst, start)
}

// DecodePacketOut decodes the body of a PACKET_OUT (what follows the header).
func DecodePacketOut(body []byte) (PacketOut, error) {
	if len(body) < packetOutFixed-HeaderLen {
		return PacketOut{}, malformed("packet-out body of %d bytes, want at least %d", len(body), packetOutFixed-HeaderLen)
	}
	po := PacketOut{BufferID: binary.BigEndian.Uint32(body), InPort: binary.BigEndian.Uint32(body[4:])}
	n := int(binary.BigEndian.Uint16(body[8:]))
	rest := body[16:]
	if n > len(rest) {
		return PacketOut{}, malformed("packet-out actions of %d bytes with %d left", n, len(rest))
	}
	acts, err := decodeActions(rest[:n])
	if err != nil {
		return PacketOut{}, fmt.Errorf("packet-out actions: %w", err)
	}
	po.Actions = acts
	po.Data = rest[n:]
	return po, nil
}

// PacketIn is an OFPT_PACKET_IN: a frame the switch sends to the controller, with the pipeline fields it had.
type PacketIn struct {
	BufferID uint32
	TotalLen uint16
	Reason   uint8
	TableID  uint8
	Cookie   uint64
	InPort   uint32     // from the match; 0 when absent
	TunID    uint64     // with HasTunID
	HasTunID bool       // the frame arrived through a tunnel with a key
	TunSrc   netip.Addr // the tunnel's outer source address (NXM_NX_TUN_IPV4_SRC), when given
	Data     []byte
}

const nxmTunSrc uint8 = 31 // NXM1 NXM_NX_TUN_IPV4_SRC, 4 bytes

// AppendPacketIn appends a PACKET_IN (as a switch sends it) with buffer_id NO_BUFFER and total_len len(data).
func AppendPacketIn(dst []byte, xid uint32, pi PacketIn) ([]byte, error) {
	start := len(dst)
	dst = appendHeader(dst, TypePacketIn, xid)
	dst = binary.BigEndian.AppendUint32(dst, NoBuffer)
	dst = binary.BigEndian.AppendUint16(dst, uint16(min(len(pi.Data), 0xffff)))
	dst = append(dst, pi.Reason, pi.TableID)
	dst = binary.BigEndian.AppendUint64(dst, pi.Cookie)
	mstart := len(dst)
	dst = append(dst, 0, 1, 0, 0)
	if pi.InPort != 0 {
		dst = binary.BigEndian.AppendUint32(dst, oxmHeader(oxmClassBasic, oxmInPort, false, 4))
		dst = binary.BigEndian.AppendUint32(dst, pi.InPort)
	}
	if pi.HasTunID {
		dst = binary.BigEndian.AppendUint32(dst, oxmHeader(oxmClassBasic, oxmTunnelID, false, 8))
		dst = binary.BigEndian.AppendUint64(dst, pi.TunID)
	}
	if pi.TunSrc.Is4() {
		a := pi.TunSrc.As4()
		dst = binary.BigEndian.AppendUint32(dst, oxmHeader(oxmClassNXM1, nxmTunSrc, false, 4))
		dst = append(dst, a[:]...)
	}
	binary.BigEndian.PutUint16(dst[mstart+2:], uint16(len(dst)-mstart))
	for len(dst)-mstart < pad8(len(dst)-mstart) {
		dst = append(dst, 0)
	}
	dst = append(dst, 0, 0) // pad
	dst = append(dst, pi.Data...)
	return finish(dst, start)
}

// DecodePacketIn decodes the body of a PACKET_IN. Match fields other than in_port, tun_id and tun_src are skipped.
func DecodePacketIn(body []byte) (PacketIn, error) {
	if len(body) < packetInFixed-HeaderLen+4 {
		return PacketIn{}, malformed("packet-in body of %d bytes, want at least %d", len(body), packetInFixed-HeaderLen+4)
	}
	pi := PacketIn{
		BufferID: binary.BigEndian.Uint32(body),
		TotalLen: binary.BigEndian.Uint16(body[4:]),
		Reason:   body[6],
		TableID:  body[7],
		Cookie:   binary.BigEndian.Uint64(body[8:]),
	}
	m := body[16:]
	if typ := binary.BigEndian.Uint16(m); typ != 1 {
		return PacketIn{}, malformed("packet-in match of type %d, want OXM (1)", typ)
	}
	mlen := int(binary.BigEndian.Uint16(m[2:]))
	padded := pad8(mlen)
	if mlen < 4 || padded+2 > len(m) {
		return PacketIn{}, malformed("packet-in match of %d bytes with %d left", mlen, len(m))
	}
	tlvs := m[4:mlen]
	for len(tlvs) > 0 {
		o, rest, err := nextOXM(tlvs)
		if err != nil {
			return PacketIn{}, fmt.Errorf("packet-in match: %w", err)
		}
		tlvs = rest
		if o.hasMask {
			continue
		}
		switch {
		case o.class == oxmClassBasic && o.field == oxmInPort && len(o.value) == 4:
			pi.InPort = binary.BigEndian.Uint32(o.value)
		case o.String() == "tun_id" && len(o.value) == 8:
			pi.TunID, pi.HasTunID = binary.BigEndian.Uint64(o.value), true
		case o.class == oxmClassNXM1 && o.field == nxmTunSrc && len(o.value) == 4:
			pi.TunSrc = netip.AddrFrom4([4]byte(o.value))
		}
	}
	pi.Data = m[padded+2:]
	return pi, nil
}

// hardTimeoutOffset is where hard_timeout sits in an ofp_flow_mod.
const hardTimeoutOffset = 26

// AppendFlowModHardTimeout appends a flow_mod as AppendFlowMod does, with a hard timeout in seconds: the switch
// removes the flow that long after adding it, whatever becomes of the controller.
func AppendFlowModHardTimeout(dst []byte, xid uint32, cmd FlowModCommand, f flows.Flow, seconds uint16) ([]byte, error) {
	start := len(dst)
	dst, err := AppendFlowMod(dst, xid, cmd, f)
	if err != nil {
		return dst, err
	}
	binary.BigEndian.PutUint16(dst[start+hardTimeoutOffset:], seconds)
	return dst, nil
}
