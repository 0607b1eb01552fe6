package ofwire

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"portmirror/flows"
)

// FlowModCommand is the command of a flow_mod.
type FlowModCommand uint8

// Flow_mod commands.
const (
	FlowAdd          FlowModCommand = 0
	FlowModify       FlowModCommand = 1
	FlowModifyStrict FlowModCommand = 2
	FlowDelete       FlowModCommand = 3
	FlowDeleteStrict FlowModCommand = 4
)

func (c FlowModCommand) String() string {
	switch c {
	case FlowAdd:
		return "ADD"
	case FlowModify:
		return "MODIFY"
	case FlowModifyStrict:
		return "MODIFY_STRICT"
	case FlowDelete:
		return "DELETE"
	case FlowDeleteStrict:
		return "DELETE_STRICT"
	}
	return fmt.Sprintf("COMMAND_%d", uint8(c))
}

// ActUnknown marks an action or instruction read from a switch that flows.Action cannot express (POP_PBB,
// experimenter and Nicira actions, goto_table, write_actions, ...). Its Value holds the OpenFlow action type, or
// the instruction type plus InstructionFlag. No desired flow carries it, so a flow holding one always differs
// from the desired one and gets replaced.
const ActUnknown flows.ActionType = 0

// InstructionFlag is added to an instruction type in the Value of an ActUnknown action.
const InstructionFlag = 1 << 32

// OXM classes and fields the controller reads and writes.
const (
	oxmClassNXM1  uint16 = 0x0001
	oxmClassBasic uint16 = 0x8000

	oxmInPort   uint8 = 0  // basic, 4 bytes
	oxmEthDst   uint8 = 3  // basic, 6 bytes, maskable
	oxmEthType  uint8 = 5  // basic, 2 bytes
	oxmIPProto  uint8 = 10 // basic, 1 byte
	oxmIPv4Src  uint8 = 11 // basic, 4 bytes, maskable
	oxmIPv4Dst  uint8 = 12
	oxmTCPSrc   uint8 = 13 // basic, 2 bytes, maskable
	oxmTCPDst   uint8 = 14
	oxmUDPSrc   uint8 = 15
	oxmUDPDst   uint8 = 16
	oxmIPv6Src  uint8 = 26 // basic, 16 bytes, maskable
	oxmIPv6Dst  uint8 = 27
	nxmReg0     uint8 = 0  // NXM1 NXM_NX_REG0, 4 bytes, maskable
	oxmTunnelID uint8 = 38 // basic, 8 bytes, maskable
	nxmTunID    uint8 = 16 // NXM1 NXM_NX_TUN_ID, 8 bytes, maskable
	nxmTunDst   uint8 = 32 // NXM1 NXM_NX_TUN_IPV4_DST, 4 bytes, maskable
)

// Action and instruction types.
const (
	actOutput       uint16 = 0
	actSetField     uint16 = 25
	actExperimenter uint16 = 0xffff
	// NiciraExperimenter is the Nicira vendor id of NXAST_* actions.
	NiciraExperimenter uint32 = 0x00002320
	nxastResubmitTable uint16 = 14
	nxastOutputTrunc   uint16 = 39     // port u16, max_len u32
	nxInPort16         uint16 = 0xfff8 // OFPP_IN_PORT in the 16-bit port numbers of NXAST_RESUBMIT_TABLE
	nxastClone         uint16 = 42     // pad 6, then the nested actions
	instrApply         uint16 = 4
	instrMeter         uint16 = 6
	flowModFixed              = 48 // header and fixed part of ofp_flow_mod
	flowStatsFixed            = 48 // fixed part of ofp_flow_stats
)

func oxmHeader(class uint16, field uint8, hasMask bool, length int) uint32 {
	h := uint32(class)<<16 | uint32(field)<<9 | uint32(length)
	if hasMask {
		h |= 1 << 8
	}
	return h
}

// appendMatch appends an ofp_match (OXM) for m, padded to 8 bytes.
func appendMatch(dst []byte, m flows.Match) []byte {
	start := len(dst)
	dst = append(dst, 0, 1, 0, 0) // type OXM, length set below
	if m.InPort != 0 {
		dst = binary.BigEndian.AppendUint32(dst, oxmHeader(oxmClassBasic, oxmInPort, false, 4))
		dst = binary.BigEndian.AppendUint32(dst, m.InPort)
	}
	if m.EthDstMask != (flows.MAC{}) {
		if m.EthDstMask == (flows.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) {
			dst = binary.BigEndian.AppendUint32(dst, oxmHeader(oxmClassBasic, oxmEthDst, false, 6))
			dst = append(dst, m.EthDst[:]...)
		} else {
			dst = binary.BigEndian.AppendUint32(dst, oxmHeader(oxmClassBasic, oxmEthDst, true, 12))
			for i := range m.EthDst {
				dst = append(dst, m.EthDst[i]&m.EthDstMask[i])
			}
			dst = append(dst, m.EthDstMask[:]...)
		}
	}
	if m.HasTunID {
		dst = binary.BigEndian.AppendUint32(dst, oxmHeader(oxmClassBasic, oxmTunnelID, false, 8))
		dst = binary.BigEndian.AppendUint64(dst, m.TunID)
	}
	dst = appendFilterMatch(dst, m)
	binary.BigEndian.PutUint16(dst[start+2:], uint16(len(dst)-start))
	for len(dst)-start < pad8(len(dst)-start) {
		dst = append(dst, 0)
	}
	return dst
}

// appendFilterMatch appends the filter table's fields (registers, L3 and L4), prerequisites first.
func appendFilterMatch(dst []byte, m flows.Match) []byte {
	if m.HasReg0 {
		dst = binary.BigEndian.AppendUint32(dst, oxmHeader(oxmClassNXM1, nxmReg0, false, 4))
		dst = binary.BigEndian.AppendUint32(dst, m.Reg0)
	}
	if m.EthType != 0 {
		dst = binary.BigEndian.AppendUint32(dst, oxmHeader(oxmClassBasic, oxmEthType, false, 2))
		dst = binary.BigEndian.AppendUint16(dst, m.EthType)
	}
	if m.HasIPProto {
		dst = binary.BigEndian.AppendUint32(dst, oxmHeader(oxmClassBasic, oxmIPProto, false, 1))
		dst = append(dst, m.IPProto)
	}
	for i, p := range []netip.Prefix{m.IPSrc, m.IPDst} {
		if !p.IsValid() {
			continue
		}
		field := oxmIPv4Src + uint8(i)
		if p.Addr().Is6() {
			field = oxmIPv6Src + uint8(i)
		}
		a := p.Addr().AsSlice()
		if p.Bits() == len(a)*8 {
			dst = binary.BigEndian.AppendUint32(dst, oxmHeader(oxmClassBasic, field, false, len(a)))
			dst = append(dst, a...)
			continue
		}
		dst = binary.BigEndian.AppendUint32(dst, oxmHeader(oxmClassBasic, field, true, 2*len(a)))
		dst = append(dst, p.Masked().Addr().AsSlice()...)
		for j := range a {
			bits := min(max(p.Bits()-8*j, 0), 8)
			dst = append(dst, byte(0xff<<(8-bits)))
		}
	}
	srcField, dstField := oxmTCPSrc, oxmTCPDst
	if m.IPProto == 17 {
		srcField, dstField = oxmUDPSrc, oxmUDPDst
	}
	for _, x := range []struct {
		field  uint8
		v, msk uint16
	}{{srcField, m.TPSrc, m.TPSrcMask}, {dstField, m.TPDst, m.TPDstMask}} {
		switch x.msk {
		case 0:
		case 0xffff:
			dst = binary.BigEndian.AppendUint32(dst, oxmHeader(oxmClassBasic, x.field, false, 2))
			dst = binary.BigEndian.AppendUint16(dst, x.v)
		default:
			dst = binary.BigEndian.AppendUint32(dst, oxmHeader(oxmClassBasic, x.field, true, 4))
			dst = binary.BigEndian.AppendUint16(dst, x.v&x.msk)
			dst = binary.BigEndian.AppendUint16(dst, x.msk)
		}
	}
	return dst
}

// appendActions appends the apply-actions instruction for acts (nothing for an empty list: a drop flow).
func appendActions(dst []byte, acts []flows.Action) ([]byte, error) {
	if len(acts) == 0 {
		return dst, nil
	}
	start := len(dst)
	dst = append(dst, 0, byte(instrApply), 0, 0, 0, 0, 0, 0)
	dst, err := appendActionList(dst, acts, false)
	if err != nil {
		return dst[:start], err
	}
	binary.BigEndian.PutUint16(dst[start+2:], uint16(len(dst)-start))
	return dst, nil
}

// appendActionList appends the actions themselves; an ActClone's body becomes its nested actions (in a body,
// another clone is an error). On error the returned slice is to be discarded.
func appendActionList(dst []byte, acts []flows.Action, inClone bool) ([]byte, error) {
	start := len(dst)
	for i := 0; i < len(acts); i++ {
		a := acts[i]
		switch a.Type {
		case flows.ActClone:
			n := int(a.Value)
			if inClone || n == 0 || n > len(acts)-i-1 {
				return dst[:start], fmt.Errorf("action %d: clone of %d actions: nested, empty or past the end of %d", i, n, len(acts))
			}
			cs := len(dst)
			dst = binary.BigEndian.AppendUint16(dst, actExperimenter)
			dst = binary.BigEndian.AppendUint16(dst, 0)
			dst = binary.BigEndian.AppendUint32(dst, NiciraExperimenter)
			dst = binary.BigEndian.AppendUint16(dst, nxastClone)
			dst = append(dst, 0, 0, 0, 0, 0, 0)
			var err error
			if dst, err = appendActionList(dst, acts[i+1:i+1+n], true); err != nil {
				return dst[:start], fmt.Errorf("action %d: clone: %w", i, err)
			}
			binary.BigEndian.PutUint16(dst[cs+2:], uint16(len(dst)-cs))
			i += n
		case flows.ActOutput, flows.ActNormal:
			port := a.Port
			if a.Type == flows.ActNormal {
				port = PortNormal
			}
			dst = append(dst, 0, byte(actOutput), 0, 16)
			dst = binary.BigEndian.AppendUint32(dst, port)
			var maxLen uint16
			if port == PortController {
				maxLen = ControllerMaxLenNoBuffer // the whole frame
			}
			dst = binary.BigEndian.AppendUint16(dst, maxLen)
			dst = append(dst, 0, 0, 0, 0, 0, 0) // pad 6
		case flows.ActSetTunID:
			dst = append(dst, 0, byte(actSetField), 0, 16)
			dst = binary.BigEndian.AppendUint32(dst, oxmHeader(oxmClassBasic, oxmTunnelID, false, 8))
			dst = binary.BigEndian.AppendUint64(dst, a.Value)
		case flows.ActSetTunDst:
			dst = append(dst, 0, byte(actSetField), 0, 16)
			dst = binary.BigEndian.AppendUint32(dst, oxmHeader(oxmClassNXM1, nxmTunDst, false, 4))
			dst = append(dst, a.IP[:]...)
			dst = append(dst, 0, 0, 0, 0)
		case flows.ActSetReg0:
			if a.Value > 0xffffffff {
				return dst[:start], fmt.Errorf("action %d: set_field %#x->reg0 does not fit 32 bits", i, a.Value)
			}
			dst = append(dst, 0, byte(actSetField), 0, 16)
			dst = binary.BigEndian.AppendUint32(dst, oxmHeader(oxmClassNXM1, nxmReg0, false, 4))
			dst = binary.BigEndian.AppendUint32(dst, uint32(a.Value))
			dst = append(dst, 0, 0, 0, 0)
		case flows.ActOutputTrunc:
			if a.Port == 0 || a.Port > 0xfeff {
				return dst[:start], fmt.Errorf("action %d: output with max_len to port %d: NXAST_OUTPUT_TRUNC takes a 16-bit port of 1..65279", i, a.Port)
			}
			if a.Value < 14 || a.Value > 0xffffffff {
				return dst[:start], fmt.Errorf("action %d: output max_len %d: OVS needs at least 14", i, a.Value)
			}
			dst = binary.BigEndian.AppendUint16(dst, actExperimenter)
			dst = binary.BigEndian.AppendUint16(dst, 16)
			dst = binary.BigEndian.AppendUint32(dst, NiciraExperimenter)
			dst = binary.BigEndian.AppendUint16(dst, nxastOutputTrunc)
			dst = binary.BigEndian.AppendUint16(dst, uint16(a.Port))
			dst = binary.BigEndian.AppendUint32(dst, uint32(a.Value))
		case flows.ActResubmit:
			if a.Value > 0xfe {
				return dst[:start], fmt.Errorf("action %d: resubmit to table %d, above 254", i, a.Value)
			}
			dst = binary.BigEndian.AppendUint16(dst, actExperimenter)
			dst = binary.BigEndian.AppendUint16(dst, 16)
			dst = binary.BigEndian.AppendUint32(dst, NiciraExperimenter)
			dst = binary.BigEndian.AppendUint16(dst, nxastResubmitTable)
			dst = binary.BigEndian.AppendUint16(dst, nxInPort16)
			dst = append(dst, byte(a.Value), 0, 0, 0)
		default:
			var ok bool
			var err error
			if dst, ok, err = appendErspanSetField(dst, i, a); err != nil {
				return dst[:start], err
			} else if ok {
				continue
			}
			return dst[:start], fmt.Errorf("action %d: type %d cannot be encoded", i, a.Type)
		}
	}
	return dst, nil
}

// AppendFlowMod appends a flow_mod for f: ADD, MODIFY_STRICT or DELETE_STRICT (MODIFY and DELETE use f's match
// non-strictly). Flags are 0 (no flow-removed messages), buffer_id NO_BUFFER, out_port and out_group ANY, no
// timeouts. Deletes carry no instructions. On error dst is returned unchanged.
func AppendFlowMod(dst []byte, xid uint32, cmd FlowModCommand, f flows.Flow) ([]byte, error) {
	if cmd > FlowDeleteStrict {
		return dst, fmt.Errorf("flow_mod command %d is not one of ADD..DELETE_STRICT", cmd)
	}
	start := len(dst)
	dst = appendFlowModHead(dst, xid, cmd, f.Cookie, f.Table, f.Priority)
	dst = appendMatch(dst, f.Match)
	if cmd != FlowDelete && cmd != FlowDeleteStrict {
		if f.Meter != 0 {
			dst = append(dst, 0, byte(instrMeter), 0, 8)
			dst = binary.BigEndian.AppendUint32(dst, f.Meter)
		}
		var err error
		if dst, err = appendActions(dst, f.Actions); err != nil {
			return dst[:start], fmt.Errorf("flow table=%d priority=%d: %w", f.Table, f.Priority, err)
		}
	}
	return finish(dst, start)
}

// appendFlowModHead appends a flow_mod's header and fixed part, up to its match (whose length finish fills in).
func appendFlowModHead(dst []byte, xid uint32, cmd FlowModCommand, cookie uint64, table uint8, priority uint16) []byte {
	dst = appendHeader(dst, TypeFlowMod, xid)
	dst = binary.BigEndian.AppendUint64(dst, cookie)
	var cookieMask uint64
	if cmd != FlowAdd {
		cookieMask = ^uint64(0) // modify and delete touch only the flow carrying exactly this cookie
	}
	dst = binary.BigEndian.AppendUint64(dst, cookieMask)
	dst = append(dst, table, byte(cmd), 0, 0, 0, 0) // idle, hard timeouts 0
	dst = binary.BigEndian.AppendUint16(dst, priority)
	dst = binary.BigEndian.AppendUint32(dst, NoBuffer)
	dst = binary.BigEndian.AppendUint32(dst, PortAny)
	dst = binary.BigEndian.AppendUint32(dst, GroupAny)
	return append(dst, 0, 0, 0, 0) // flags, pad
}

// AppendDeleteStrictRaw appends a DELETE_STRICT flow_mod whose match is given as raw OXM TLVs (as a flow-stats
// entry carried them), for removing a flow whose match flows.Match cannot express.
func AppendDeleteStrictRaw(dst []byte, xid uint32, table uint8, priority uint16, cookie uint64, rawOXM []byte) ([]byte, error) {
	start := len(dst)
	dst = appendHeader(dst, TypeFlowMod, xid)
	dst = binary.BigEndian.AppendUint64(dst, cookie)
	dst = binary.BigEndian.AppendUint64(dst, ^uint64(0))
	dst = append(dst, table, byte(FlowDeleteStrict), 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint16(dst, priority)
	dst = binary.BigEndian.AppendUint32(dst, NoBuffer)
	dst = binary.BigEndian.AppendUint32(dst, PortAny)
	dst = binary.BigEndian.AppendUint32(dst, GroupAny)
	dst = append(dst, 0, 0, 0, 0)
	mstart := len(dst)
	dst = append(dst, 0, 1, 0, 0)
	dst = append(dst, rawOXM...)
	binary.BigEndian.PutUint16(dst[mstart+2:], uint16(min(len(dst)-mstart, 0xffff)))
	for len(dst)-mstart < pad8(len(dst)-mstart) {
		dst = append(dst, 0)
	}
	return finish(dst, start)
}

// AppendDeleteByCookie appends a non-strict DELETE of every flow, in every table, whose cookie matches cookie
// under mask.
func AppendDeleteByCookie(dst []byte, xid uint32, cookie, mask uint64) []byte {
	start := len(dst)
	dst = appendHeader(dst, TypeFlowMod, xid)
	dst = binary.BigEndian.AppendUint64(dst, cookie&mask)
	dst = binary.BigEndian.AppendUint64(dst, mask)
	dst = append(dst, TableAll, byte(FlowDelete), 0, 0, 0, 0, 0, 0) // timeouts, priority
	dst = binary.BigEndian.AppendUint32(dst, NoBuffer)
	dst = binary.BigEndian.AppendUint32(dst, PortAny)
	dst = binary.BigEndian.AppendUint32(dst, GroupAny)
	dst = append(dst, 0, 0, 0, 0)
	dst = append(dst, 0, 1, 0, 4, 0, 0, 0, 0)
	dst, _ = finish(dst, start)
	return dst
}

// FlowStat is one entry of a flow-stats reply.
type FlowStat struct {
	Flow        flows.Flow
	DurationSec uint32
	IdleTimeout uint16
	HardTimeout uint16
	Flags       uint16
	Packets     uint64
	Bytes       uint64
	// RawMatch is the entry's OXM TLVs as the switch sent them (without the ofp_match header or padding).
	RawMatch []byte
	// Foreign is empty when Flow.Match is the entry's whole match; otherwise it names the match fields that
	// flows.Match cannot express (the entry's match is then RawMatch, and Flow.Match only a part of it).
	Foreign string
}

// DecodeFlowStats decodes the body of a FLOW multipart reply (the entries after the multipart header). Unknown
// actions and instructions become ActUnknown actions; unknown match fields are named in Foreign; bytes that break
// the encoding are an error wrapping ErrMalformed.
func DecodeFlowStats(b []byte) ([]FlowStat, error) {
	out := make([]FlowStat, 0, countFlowStats(b))
	err := eachFlowStat(b, func(st FlowStat) error {
		out = append(out, st)
		return nil
	})
	return out, err
}

// countFlowStats counts the flow-stats entries of b by their lengths (stopping at the first that cannot be
// one), so that what holds them is allocated once.
func countFlowStats(b []byte) int {
	n := 0
	for off := 0; off+2 <= len(b); n++ {
		l := int(binary.BigEndian.Uint16(b[off:]))
		if l < flowStatsFixed+8 {
			break // malformed: eachFlowStat says so
		}
		off += l
	}
	return n
}

// eachFlowStat decodes the flow-stats entries of b in order and hands each to fn, stopping at fn's error or at
// bytes that break the encoding (an error wrapping ErrMalformed that names the entry).
func eachFlowStat(b []byte, fn func(FlowStat) error) error {
	for off, i := 0, 0; off < len(b); i++ {
		rest := b[off:]
		n, err := entryLen(rest, i)
		if err != nil {
			return err
		}
		st, err := decodeFlowStat(rest[:n])
		if err != nil {
			return fmt.Errorf("flow-stats entry %d: %w", i, err)
		}
		if err := fn(st); err != nil {
			return err
		}
		off += n
	}
	return nil
}

// entryLen is the length of flow-stats entry i, which starts rest, or an error wrapping ErrMalformed when its
// length cannot frame it.
func entryLen(rest []byte, i int) (int, error) {
	if len(rest) < flowStatsFixed+8 {
		return 0, malformed("flow-stats entry %d: %d bytes left, an entry has at least %d", i, len(rest), flowStatsFixed+8)
	}
	n := int(binary.BigEndian.Uint16(rest))
	if n < flowStatsFixed+8 || n > len(rest) {
		return 0, malformed("flow-stats entry %d: length %d with %d bytes left (minimum %d)", i, n, len(rest), flowStatsFixed+8)
	}
	return n, nil
}

func decodeFlowStat(e []byte) (FlowStat, error) {
	var st FlowStat
	st.Flow.Table = e[2]
	st.DurationSec = binary.BigEndian.Uint32(e[4:])
	st.Flow.Priority = binary.BigEndian.Uint16(e[12:])
	st.IdleTimeout = binary.BigEndian.Uint16(e[14:])
	st.HardTimeout = binary.BigEndian.Uint16(e[16:])
	st.Flags = binary.BigEndian.Uint16(e[18:])
	st.Flow.Cookie = binary.BigEndian.Uint64(e[24:])
	st.Packets = binary.BigEndian.Uint64(e[32:])
	st.Bytes = binary.BigEndian.Uint64(e[40:])
	mb := e[flowStatsFixed:]
	mtype, mlen := binary.BigEndian.Uint16(mb), int(binary.BigEndian.Uint16(mb[2:]))
	if mtype != 1 {
		return st, malformed("match type %d, want 1 (OXM)", mtype)
	}
	if mlen < 4 || pad8(mlen) > len(mb) {
		return st, malformed("match length %d with %d bytes in the entry", mlen, len(mb))
	}
	st.RawMatch = mb[4:mlen:mlen]
	m, foreign, err := decodeMatch(st.RawMatch)
	if err != nil {
		return st, err
	}
	st.Flow.Match, st.Foreign = m, foreign
	acts, meter, err := decodeInstructions(mb[pad8(mlen):])
	if err != nil {
		return st, err
	}
	st.Flow.Actions, st.Flow.Meter = acts, meter
	return st, nil
}

// oxm is one decoded OXM TLV.
type oxm struct {
	class   uint16
	field   uint8
	hasMask bool
	value   []byte // with the mask, if any, in its second half
}

func (o oxm) String() string {
	switch {
	case o.class == oxmClassBasic && o.field == oxmInPort:
		return "in_port"
	case o.class == oxmClassBasic && o.field == oxmEthDst:
		return "eth_dst"
	case o.class == oxmClassBasic && o.field == oxmTunnelID, o.class == oxmClassNXM1 && o.field == nxmTunID:
		return "tun_id"
	case o.class == oxmClassNXM1 && o.field == nxmTunDst:
		return "tun_dst"
	case o.class == oxmClassNXM1 && o.field == nxmReg0:
		return "reg0"
	case o.class == oxmClassBasic && o.field == oxmEthType:
		return "eth_type"
	case o.class == oxmClassBasic && o.field == oxmIPProto:
		return "ip_proto"
	case o.class == oxmClassBasic && (o.field == oxmIPv4Src || o.field == oxmIPv6Src):
		return "ip_src"
	case o.class == oxmClassBasic && (o.field == oxmIPv4Dst || o.field == oxmIPv6Dst):
		return "ip_dst"
	case o.class == oxmClassBasic && (o.field == oxmTCPSrc || o.field == oxmUDPSrc):
		return "tp_src"
	case o.class == oxmClassBasic && (o.field == oxmTCPDst || o.field == oxmUDPDst):
		return "tp_dst"
	}
	return fmt.Sprintf("oxm(class=0x%04x,field=%d)", o.class, o.field)
}

// nextOXM decodes the TLV at the start of b and returns the bytes after it.
func nextOXM(b []byte) (oxm, []byte, error) {
	if len(b) < 4 {
		return oxm{}, nil, malformed("OXM header cut at %d bytes", len(b))
	}
	h := binary.BigEndian.Uint32(b)
	o := oxm{class: uint16(h >> 16), field: uint8(h>>9) & 0x7f, hasMask: h&(1<<8) != 0}
	n := int(h & 0xff)
	if 4+n > len(b) {
		return o, nil, malformed("OXM %s of %d bytes with %d left", o, n, len(b)-4)
	}
	if o.class == 0xffff && n < 4 {
		return o, nil, malformed("experimenter OXM of %d bytes has no experimenter id", n)
	}
	if o.hasMask && n%2 != 0 {
		return o, nil, malformed("masked OXM %s has odd length %d", o, n)
	}
	o.value = b[4 : 4+n]
	return o, b[4+n:], nil
}

// decodeMatch decodes OXM TLVs into a flows.Match. Fields flows.Match cannot express are named in foreign.
func decodeMatch(b []byte) (m flows.Match, foreign string, err error) {
	var seen []string
	var other []string
	for len(b) > 0 {
		var o oxm
		if o, b, err = nextOXM(b); err != nil {
			return m, "", err
		}
		name := o.String()
		for _, s := range seen {
			if s == name {
				return m, "", malformed("match field %s appears twice", name)
			}
		}
		seen = append(seen, name)
		v := o.value
		switch name {
		case "in_port":
			if o.hasMask || len(v) != 4 {
				return m, "", malformed("in_port of %d bytes (masked %v)", len(v), o.hasMask)
			}
			m.InPort = binary.BigEndian.Uint32(v)
			if m.InPort == 0 {
				other = append(other, "in_port=0")
			}
		case "eth_dst":
			switch {
			case !o.hasMask && len(v) == 6:
				copy(m.EthDst[:], v)
				m.EthDstMask = flows.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
			case o.hasMask && len(v) == 12:
				copy(m.EthDstMask[:], v[6:])
				for i := range m.EthDst {
					m.EthDst[i] = v[i] & v[6+i]
				}
			default:
				return m, "", malformed("eth_dst of %d bytes (masked %v)", len(v), o.hasMask)
			}
		case "tun_id":
			switch {
			case !o.hasMask && len(v) == 8:
				m.TunID, m.HasTunID = binary.BigEndian.Uint64(v), true
			case o.hasMask && len(v) == 16:
				if binary.BigEndian.Uint64(v[8:]) != ^uint64(0) {
					other = append(other, "tun_id with a partial mask")
					continue
				}
				m.TunID, m.HasTunID = binary.BigEndian.Uint64(v), true
			default:
				return m, "", malformed("tun_id of %d bytes (masked %v)", len(v), o.hasMask)
			}
		case "tun_dst":
			if !(len(v) == 4 && !o.hasMask) && !(len(v) == 8 && o.hasMask) {
				return m, "", malformed("tun_dst of %d bytes (masked %v)", len(v), o.hasMask)
			}
			other = append(other, "tun_dst="+netip.AddrFrom4([4]byte(v[:4])).String())
		case "reg0":
			switch {
			case !o.hasMask && len(v) == 4:
				m.Reg0, m.HasReg0 = binary.BigEndian.Uint32(v), true
			case o.hasMask && len(v) == 8 && binary.BigEndian.Uint32(v[4:]) == 0xffffffff:
				m.Reg0, m.HasReg0 = binary.BigEndian.Uint32(v), true
			case o.hasMask && len(v) == 8:
				other = append(other, "reg0 with a partial mask")
			default:
				return m, "", malformed("reg0 of %d bytes (masked %v)", len(v), o.hasMask)
			}
		case "eth_type":
			if o.hasMask || len(v) != 2 {
				return m, "", malformed("eth_type of %d bytes (masked %v)", len(v), o.hasMask)
			}
			m.EthType = binary.BigEndian.Uint16(v)
		case "ip_proto":
			if o.hasMask || len(v) != 1 {
				return m, "", malformed("ip_proto of %d bytes (masked %v)", len(v), o.hasMask)
			}
			m.IPProto, m.HasIPProto = v[0], true
		case "ip_src", "ip_dst":
			size := 4
			if o.field == oxmIPv6Src || o.field == oxmIPv6Dst {
				size = 16
			}
			if (!o.hasMask && len(v) != size) || (o.hasMask && len(v) != 2*size) {
				return m, "", malformed("%s of %d bytes (masked %v)", name, len(v), o.hasMask)
			}
			addr, _ := netip.AddrFromSlice(v[:size])
			bits := size * 8
			if o.hasMask {
				var ok bool
				if bits, ok = prefixLen(v[size:]); !ok {
					other = append(other, name+" with a non-prefix mask")
					continue
				}
			}
			p := netip.PrefixFrom(addr, bits).Masked()
			if name == "ip_src" {
				m.IPSrc = p
			} else {
				m.IPDst = p
			}
		case "tp_src", "tp_dst":
			var val, msk uint16
			switch {
			case !o.hasMask && len(v) == 2:
				val, msk = binary.BigEndian.Uint16(v), 0xffff
			case o.hasMask && len(v) == 4:
				msk = binary.BigEndian.Uint16(v[2:])
				val = binary.BigEndian.Uint16(v) & msk
			default:
				return m, "", malformed("%s of %d bytes (masked %v)", name, len(v), o.hasMask)
			}
			if name == "tp_src" {
				m.TPSrc, m.TPSrcMask = val, msk
			} else {
				m.TPDst, m.TPDstMask = val, msk
			}
		default:
			other = append(other, name)
		}
	}
	return m, strings.Join(other, ","), nil
}

// decodeInstructions decodes an instruction list; the actions of the one apply-actions instruction become the
// flow's actions, anything else an ActUnknown.
func decodeInstructions(b []byte) ([]flows.Action, uint32, error) {
	var acts []flows.Action
	var meter uint32
	applied := false
	for len(b) > 0 {
		t, n, err := nextTLV(b, "instruction")
		if err != nil {
			return acts, meter, err
		}
		if t == instrApply && !applied {
			applied = true
			a, err := decodeActions(b[8:n])
			if err != nil {
				return acts, meter, err
			}
			if acts == nil {
				acts = a // the common case: no copy
			} else {
				acts = append(acts, a...)
			}
		} else if t == instrMeter && n == 8 && meter == 0 && !applied && binary.BigEndian.Uint32(b[4:]) != 0 {
			meter = binary.BigEndian.Uint32(b[4:])
		} else {
			acts = append(acts, flows.Action{Type: ActUnknown, Value: InstructionFlag + uint64(t)})
		}
		b = b[n:]
	}
	return acts, meter, nil
}

// nextTLV reads the type and length of the instruction or action (what) at the start of b: at least 8 bytes, a
// multiple of 8, within b.
func nextTLV(b []byte, what string) (t uint16, n int, err error) {
	if len(b) < 8 {
		return 0, 0, malformed("%s cut at %d bytes", what, len(b))
	}
	t, n = binary.BigEndian.Uint16(b), int(binary.BigEndian.Uint16(b[2:]))
	if n < 8 || n > len(b) || n%8 != 0 {
		return t, n, malformed("%s type %d of length %d with %d bytes left", what, t, n, len(b))
	}
	return t, n, nil
}

// decodeActions decodes an action list.
func decodeActions(b []byte) ([]flows.Action, error) {
	cnt := 0 // the actions, counted by their lengths first: one allocation per flow read back
	for r := b; len(r) >= 8; cnt++ {
		l := int(binary.BigEndian.Uint16(r[2:]))
		if l < 8 || l > len(r) {
			break // malformed: the loop below says so
		}
		r = r[l:]
	}
	var acts []flows.Action // nil when there are none, as the compiler leaves a drop flow's
	if cnt > 0 {
		acts = make([]flows.Action, 0, cnt)
	}
	for len(b) > 0 {
		t, n, err := nextTLV(b, "action")
		if err != nil {
			return acts, err
		}
		a := flows.Action{Type: ActUnknown, Value: uint64(t)}
		switch t {
		case actOutput:
			if n != 16 {
				return acts, malformed("output action of length %d, want 16", n)
			}
			port := binary.BigEndian.Uint32(b[4:])
			if port == PortNormal {
				a = flows.Action{Type: flows.ActNormal}
			} else {
				a = flows.Action{Type: flows.ActOutput, Port: port}
			}
		case actSetField:
			o, _, err := nextOXM(b[4:n])
			if err != nil {
				return acts, fmt.Errorf("set_field: %w", err)
			}
			switch {
			case o.String() == "tun_id" && !o.hasMask && len(o.value) == 8:
				a = flows.Action{Type: flows.ActSetTunID, Value: binary.BigEndian.Uint64(o.value)}
			case o.String() == "tun_dst" && !o.hasMask && len(o.value) == 4:
				a = flows.Action{Type: flows.ActSetTunDst, IP: flows.IPv4(o.value)}
			case o.String() == "reg0" && !o.hasMask && len(o.value) == 4:
				a = flows.Action{Type: flows.ActSetReg0, Value: uint64(binary.BigEndian.Uint32(o.value))}
			default:
				if e, ok := decodeErspanSetField(o); ok {
					a = e
				}
			}
		case actExperimenter:
			if n == 16 && binary.BigEndian.Uint32(b[4:]) == NiciraExperimenter && binary.BigEndian.Uint16(b[8:]) == nxastOutputTrunc {
				port, ml := binary.BigEndian.Uint16(b[10:]), binary.BigEndian.Uint32(b[12:])
				if port != 0 && port <= 0xfeff && ml >= 14 {
					a = flows.Action{Type: flows.ActOutputTrunc, Port: uint32(port), Value: uint64(ml)}
				}
				break
			}
			if n == 16 && binary.BigEndian.Uint32(b[4:]) == NiciraExperimenter &&
				binary.BigEndian.Uint16(b[8:]) == nxastResubmitTable && binary.BigEndian.Uint16(b[10:]) == nxInPort16 &&
				b[12] != 0xff && b[13] == 0 && b[14] == 0 && b[15] == 0 {
				a = flows.Action{Type: flows.ActResubmit, Value: uint64(b[12])}
			}
			if n >= 16 && binary.BigEndian.Uint32(b[4:]) == NiciraExperimenter && binary.BigEndian.Uint16(b[8:]) == nxastClone {
				body, err := decodeActions(b[16:n])
				if err != nil {
					return acts, fmt.Errorf("clone: %w", err)
				}
				// A body holding a clone, or empty, cannot be written flat: it stays unknown.
				if len(body) > 0 && !slices.ContainsFunc(body, func(x flows.Action) bool { return x.Type == flows.ActClone }) {
					acts = append(acts, flows.Action{Type: flows.ActClone, Value: uint64(len(body))})
					acts = append(acts, body...)
					b = b[n:]
					continue
				}
			}
		}
		acts = append(acts, a)
		b = b[n:]
	}
	return acts, nil
}

// prefixLen returns the length of a prefix mask (ones then zeros), or false when the mask is not one.
func prefixLen(mask []byte) (int, bool) {
	n, zeros := 0, false
	for _, x := range mask {
		for i := 7; i >= 0; i-- {
			one := x&(1<<i) != 0
			switch {
			case one && zeros:
				return 0, false
			case one:
				n++
			default:
				zeros = true
			}
		}
	}
	return n, true
}
