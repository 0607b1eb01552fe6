// Package ofsim is a simulated OVS bridge speaking OpenFlow 1.3 over TCP: it dials one or more controllers,
// negotiates, answers features, port-desc, flow-stats and barriers, applies flow-mods and group-mods to a
// dataplane.Bridge with the errors OVS sends, keeps every connection's role (MASTER/SLAVE/EQUAL) as OVS does,
// reports port changes and packet-ins, reconnects with backoff, and injects faults on demand.
package ofsim

import (
	"encoding/binary"
	"fmt"

	"portmirror/ofwire"
	"portmirror/simulator/dataplane"
)

func ofErr(t, c uint16, format string, args ...any) *dataplane.OFError {
	return &dataplane.OFError{Type: t, Code: c, Reason: fmt.Sprintf(format, args...)}
}

func badReqLen(format string, args ...any) *dataplane.OFError {
	return ofErr(dataplane.ErrTypeBadRequest, dataplane.BadRequestBadLen, format, args...)
}

// decodeMatch decodes an ofp_match (type OXM) and returns it and the bytes after it (padding skipped).
func decodeMatch(b []byte) (dataplane.Match, []byte, error) {
	var m dataplane.Match
	if len(b) < 4 {
		return m, nil, badReqLen("match header truncated")
	}
	typ, n := binary.BigEndian.Uint16(b), int(binary.BigEndian.Uint16(b[2:]))
	if typ != 1 {
		return m, nil, ofErr(dataplane.ErrTypeBadMatch, dataplane.BadMatchType, "match type %d is not OXM (1)", typ)
	}
	padded := (n + 7) &^ 7
	if n < 4 || padded > len(b) {
		return m, nil, ofErr(dataplane.ErrTypeBadMatch, dataplane.BadMatchLen, "match length %d does not fit in %d bytes", n, len(b))
	}
	oxm := b[4:n]
	for len(oxm) > 0 {
		if len(oxm) < 4 {
			return m, nil, ofErr(dataplane.ErrTypeBadMatch, dataplane.BadMatchLen, "OXM header truncated")
		}
		class, fb, l := binary.BigEndian.Uint16(oxm), oxm[2], int(oxm[3])
		if 4+l > len(oxm) {
			return m, nil, ofErr(dataplane.ErrTypeBadMatch, dataplane.BadMatchLen, "OXM field of %d bytes overruns the match", l)
		}
		f := dataplane.NewField(class, fb>>1)
		hasMask := fb&1 != 0
		v := oxm[4 : 4+l]
		oxm = oxm[4+l:]
		if class == dataplane.ClassExperimenter {
			if l < 4 || binary.BigEndian.Uint32(v) != ofwire.NiciraExperimenter {
				return m, nil, ofErr(dataplane.ErrTypeBadMatch, dataplane.BadMatchField, "experimenter match field %d is not Nicira's", fb>>1)
			}
			v, l = v[4:], l-4
		}
		if !f.Known() {
			return m, nil, ofErr(dataplane.ErrTypeBadMatch, dataplane.BadMatchField, "match field class %#04x field %d is not supported", class, fb>>1)
		}
		size := f.Size()
		want := size
		if hasMask {
			want = 2 * size
		}
		if l != want {
			return m, nil, ofErr(dataplane.ErrTypeBadMatch, dataplane.BadMatchLen, "match field %v: length %d, want %d", f, l, want)
		}
		var mask []byte
		if hasMask {
			mask = v[size:]
			v = v[:size]
			if !f.Maskable() {
				return m, nil, ofErr(dataplane.ErrTypeBadMatch, dataplane.BadMatchMask, "match field %v cannot be masked", f)
			}
			for i := range v {
				if v[i]&^mask[i] != 0 {
					return m, nil, ofErr(dataplane.ErrTypeBadMatch, dataplane.BadMatchWildcards, "match field %v: value has bits outside its mask", f)
				}
			}
		}
		if f == dataplane.FieldInPort {
			p := binary.BigEndian.Uint32(v)
			if p == 0 || (p > dataplane.PortMax && p != dataplane.PortLocal && p != dataplane.PortController) {
				return m, nil, ofErr(dataplane.ErrTypeBadMatch, dataplane.BadMatchValue, "in_port %s is not a valid input port", dataplane.PortString(p))
			}
		}
		if err := m.Set(f, v, mask); err != nil {
			return m, nil, err
		}
	}
	if err := m.Validate(); err != nil {
		return m, nil, err
	}
	return m, b[padded:], nil
}

// appendMatch encodes a match as ofp_match with OXM TLVs, padded to 8 bytes.
func appendMatch(dst []byte, m dataplane.Match) []byte {
	start := len(dst)
	dst = append(dst, 0, 1, 0, 0)
	for fm := range m.All() {
		dst = appendOXM(dst, fm, !fm.Exact())
	}
	binary.BigEndian.PutUint16(dst[start+2:], uint16(len(dst)-start))
	for (len(dst)-start)%8 != 0 {
		dst = append(dst, 0)
	}
	return dst
}

func appendOXM(dst []byte, fm dataplane.FieldMatch, masked bool) []byte {
	n := fm.Field.Size()
	fb := fm.Field.Num() << 1
	l := n
	if masked {
		fb |= 1
		l *= 2
	}
	dst = binary.BigEndian.AppendUint16(dst, fm.Field.Class())
	if fm.Field.Class() == dataplane.ClassExperimenter {
		dst = append(dst, fb, byte(4+l))
		dst = binary.BigEndian.AppendUint32(dst, ofwire.NiciraExperimenter)
	} else {
		dst = append(dst, fb, byte(l))
	}
	dst = append(dst, fm.Value[:n]...)
	if masked {
		dst = append(dst, fm.Mask[:n]...)
	}
	return dst
}

// Instruction types.
const (
	instGoto         = 1
	instWriteMeta    = 2
	instWriteActions = 3
	instApply        = 4
	instClear        = 5
	instMeter        = 6
)

// decodeInstructions decodes the instruction list of a flow_mod into apply-actions and goto.
func decodeInstructions(b []byte, f *dataplane.Flow) error {
	seenApply := false
	for len(b) > 0 {
		if len(b) < 4 {
			return ofErr(dataplane.ErrTypeBadInstruction, dataplane.BadInstLen, "instruction header truncated")
		}
		t, l := binary.BigEndian.Uint16(b), int(binary.BigEndian.Uint16(b[2:]))
		if l < 8 || l > len(b) || l%8 != 0 {
			return ofErr(dataplane.ErrTypeBadInstruction, dataplane.BadInstLen, "instruction type %d has length %d", t, l)
		}
		body := b[4:l]
		b = b[l:]
		switch t {
		case instGoto:
			f.HasGoto, f.GotoTable = true, body[0]
		case instApply:
			if seenApply {
				return ofErr(dataplane.ErrTypeBadInstruction, dataplane.BadInstUnsupported, "apply-actions appears twice")
			}
			seenApply = true
			acts, err := decodeActions(body[4:])
			if err != nil {
				return err
			}
			f.Actions = acts
		case instMeter:
			if l != 8 || f.Meter != 0 || seenApply {
				return ofErr(dataplane.ErrTypeBadInstruction, dataplane.BadInstLen, "meter instruction of %d bytes, twice or after apply-actions", l)
			}
			f.Meter = binary.BigEndian.Uint32(body)
		case instWriteMeta, instWriteActions, instClear:
			return ofErr(dataplane.ErrTypeBadInstruction, dataplane.BadInstUnsupported, "instruction type %d is not supported by the simulator", t)
		default:
			return ofErr(dataplane.ErrTypeBadInstruction, dataplane.BadInstUnknown, "instruction type %d is unknown", t)
		}
	}
	return nil
}

// decodeActions decodes an action list.
func decodeActions(b []byte) ([]dataplane.Action, error) {
	var acts []dataplane.Action
	for len(b) > 0 {
		if len(b) < 8 {
			return nil, ofErr(dataplane.ErrTypeBadAction, dataplane.BadActionLen, "action header truncated")
		}
		t, l := dataplane.ActionType(binary.BigEndian.Uint16(b)), int(binary.BigEndian.Uint16(b[2:]))
		if l < 8 || l > len(b) || l%8 != 0 {
			return nil, ofErr(dataplane.ErrTypeBadAction, dataplane.BadActionLen, "action type %d has length %d", t, l)
		}
		body := b[4:l]
		b = b[l:]
		a := dataplane.Action{Type: t}
		switch t {
		case dataplane.ActOutput:
			if l != 16 {
				return nil, ofErr(dataplane.ErrTypeBadAction, dataplane.BadActionLen, "output action of %d bytes, want 16", l)
			}
			a.Port, a.MaxLen = binary.BigEndian.Uint32(body), binary.BigEndian.Uint16(body[4:])
		case dataplane.ActGroup:
			a.Group = binary.BigEndian.Uint32(body)
		case dataplane.ActPushVLAN:
			a.EthType = binary.BigEndian.Uint16(body)
		case dataplane.ActPopVLAN:
		case dataplane.ActResubmit:
			if l == 16 && binary.BigEndian.Uint32(body) == 0x2320 && binary.BigEndian.Uint16(body[4:]) == 39 {
				// NXAST_OUTPUT_TRUNC: u16 port (OpenFlow 1.0 numbering), u32 max_len.
				a.Type = dataplane.ActOutputTrunc
				a.Port = uint32(binary.BigEndian.Uint16(body[6:]))
				if a.Port >= 0xff00 {
					a.Port += 0xffff0000
				}
				a.MaxTrunc = binary.BigEndian.Uint32(body[8:])
				break
			}
			if l >= 16 && binary.BigEndian.Uint32(body) == 0x2320 && binary.BigEndian.Uint16(body[4:]) == 42 {
				// NXAST_CLONE: pad 6, then the nested actions.
				inner, err := decodeActions(body[12:])
				if err != nil {
					return nil, err
				}
				a.Type, a.Body = dataplane.ActClone, inner
				break
			}
			// Otherwise only Nicira's NXAST_RESUBMIT_TABLE with in_port IN_PORT.
			if l != 16 || binary.BigEndian.Uint32(body) != 0x2320 || binary.BigEndian.Uint16(body[4:]) != 14 ||
				binary.BigEndian.Uint16(body[6:]) != 0xfff8 || body[8] == 0xff {
				return nil, ofErr(dataplane.ErrTypeBadAction, dataplane.BadActionType, "experimenter action % x is not supported", body)
			}
			a.Table = body[8]
		case dataplane.ActSetField:
			class, fb, ol := binary.BigEndian.Uint16(body), body[2], int(body[3])
			f := dataplane.NewField(class, fb>>1)
			if class == dataplane.ClassExperimenter && ol >= 4 && 8 <= len(body) && binary.BigEndian.Uint32(body[4:]) == ofwire.NiciraExperimenter {
				// A Nicira experimenter OXM: the value follows the experimenter id, which the length counts.
				body, ol = body[4:], ol-4
			}
			if !f.Known() || f == dataplane.FieldInPort {
				return nil, ofErr(dataplane.ErrTypeBadAction, dataplane.BadActionSetType, "set_field of class %#04x field %d is not supported", class, fb>>1)
			}
			if fb&1 != 0 || ol != f.Size() || 4+ol > len(body) {
				return nil, ofErr(dataplane.ErrTypeBadAction, dataplane.BadActionSetLen, "set_field of %v has length %d, want %d", f, ol, f.Size())
			}
			var m dataplane.Match
			if err := m.Set(f, body[4:4+ol], nil); err != nil {
				return nil, ofErr(dataplane.ErrTypeBadAction, dataplane.BadActionSetLen, "set_field of %v: %v", f, err)
			}
			a.Set, _ = m.Get(f)
			a.Set.Field = f
		default:
			return nil, ofErr(dataplane.ErrTypeBadAction, dataplane.BadActionType, "action type %d is not supported", t)
		}
		acts = append(acts, a)
	}
	return acts, nil
}

func appendActions(dst []byte, acts []dataplane.Action) []byte {
	for _, a := range acts {
		switch a.Type {
		case dataplane.ActOutput:
			dst = binary.BigEndian.AppendUint16(dst, uint16(a.Type))
			dst = binary.BigEndian.AppendUint16(dst, 16)
			dst = binary.BigEndian.AppendUint32(dst, a.Port)
			dst = binary.BigEndian.AppendUint16(dst, a.MaxLen)
			dst = append(dst, 0, 0, 0, 0, 0, 0)
		case dataplane.ActGroup:
			dst = append(dst, 0, byte(a.Type), 0, 8)
			dst = binary.BigEndian.AppendUint32(dst, a.Group)
		case dataplane.ActPushVLAN:
			dst = append(dst, 0, byte(a.Type), 0, 8)
			dst = binary.BigEndian.AppendUint16(dst, a.EthType)
			dst = append(dst, 0, 0)
		case dataplane.ActPopVLAN:
			dst = append(dst, 0, byte(a.Type), 0, 8, 0, 0, 0, 0)
		case dataplane.ActResubmit:
			dst = append(dst, 0xff, 0xff, 0, 16, 0, 0, 0x23, 0x20, 0, 14, 0xff, 0xf8, a.Table, 0, 0, 0)
		case dataplane.ActClone:
			start := len(dst)
			dst = append(dst, 0xff, 0xff, 0, 0, 0, 0, 0x23, 0x20, 0, 42, 0, 0, 0, 0, 0, 0)
			dst = appendActions(dst, a.Body)
			binary.BigEndian.PutUint16(dst[start+2:], uint16(len(dst)-start))
		case dataplane.ActOutputTrunc:
			dst = append(dst, 0xff, 0xff, 0, 16, 0, 0, 0x23, 0x20, 0, 39)
			dst = binary.BigEndian.AppendUint16(dst, uint16(a.Port))
			dst = binary.BigEndian.AppendUint32(dst, a.MaxTrunc)
		case dataplane.ActSetField:
			start := len(dst)
			dst = append(dst, 0, byte(a.Type), 0, 0)
			dst = appendOXM(dst, a.Set, false)
			for (len(dst)-start)%8 != 0 {
				dst = append(dst, 0)
			}
			binary.BigEndian.PutUint16(dst[start+2:], uint16(len(dst)-start))
		}
	}
	return dst
}

// appendInstructions encodes a flow's apply-actions and goto_table.
func appendInstructions(dst []byte, f *dataplane.Flow) []byte {
	if f.Meter != 0 {
		dst = append(dst, 0, instMeter, 0, 8)
		dst = binary.BigEndian.AppendUint32(dst, f.Meter)
	}
	if len(f.Actions) > 0 {
		start := len(dst)
		dst = append(dst, 0, instApply, 0, 0, 0, 0, 0, 0)
		dst = appendActions(dst, f.Actions)
		binary.BigEndian.PutUint16(dst[start+2:], uint16(len(dst)-start))
	}
	if f.HasGoto {
		dst = append(dst, 0, instGoto, 0, 8, f.GotoTable, 0, 0, 0)
	}
	return dst
}

// appendPort encodes an ofp_port.
func appendPort(dst []byte, p dataplane.Port) []byte {
	dst = binary.BigEndian.AppendUint32(dst, p.No)
	dst = append(dst, 0, 0, 0, 0)
	dst = append(dst, p.MAC[:]...)
	dst = append(dst, 0, 0)
	var name [16]byte
	copy(name[:15], p.Name)
	dst = append(dst, name[:]...)
	var config, state uint32
	if p.NoFlood {
		config |= 0x10 // OFPPC_NO_FLOOD (an OF1.0 bit OVS still reports)
	}
	if p.Up {
		state = 4 // OFPPS_LIVE
	} else {
		state = 1 // OFPPS_LINK_DOWN
	}
	dst = binary.BigEndian.AppendUint32(dst, config)
	dst = binary.BigEndian.AppendUint32(dst, state)
	// curr, advertised, supported, peer: 10GB-FD | copper, as OVS reports for dummy ports; speeds in kbps.
	dst = binary.BigEndian.AppendUint32(dst, 0x840)
	dst = append(dst, make([]byte, 12)...)
	dst = binary.BigEndian.AppendUint32(dst, 10000000)
	dst = binary.BigEndian.AppendUint32(dst, 0)
	return dst
}

// header helpers
func appendHeader(dst []byte, t ofwire.Type, xid uint32) []byte {
	return append(dst, ofwire.Version, byte(t), 0, 0, byte(xid>>24), byte(xid>>16), byte(xid>>8), byte(xid))
}

func finish(dst []byte, start int) []byte {
	binary.BigEndian.PutUint16(dst[start+2:], uint16(len(dst)-start))
	return dst
}
