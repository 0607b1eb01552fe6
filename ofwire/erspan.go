package ofwire

import (
	"encoding/binary"
	"fmt"

	"portmirror/flows"
)

// The ERSPAN tunnel fields are Nicira experimenter OXMs (OVS's NXOXM_ET_ERSPAN_*, since OVS 2.10): class
// OFPXMC_EXPERIMENTER (0xffff), the field number, a length that counts the 4-byte experimenter id, then the
// Nicira id 0x00002320 and the value. In a set_field the OXM is padded to a multiple of 8.
const (
	oxmClassExperimenter uint16 = 0xffff
	nxoxmErspanIdx       uint8  = 11 // be32, low 20 bits
	nxoxmErspanVer       uint8  = 12 // u8, low 4 bits
	nxoxmErspanDir       uint8  = 13 // u8, low 1 bit
	nxoxmErspanHwid      uint8  = 14 // u8, low 6 bits
)

// erspanOXM maps an ERSPAN action type to its field number and value size in bytes.
func erspanOXM(t flows.ActionType) (field uint8, size int) {
	switch t {
	case flows.ActSetErspanIdx:
		return nxoxmErspanIdx, 4
	case flows.ActSetErspanVer:
		return nxoxmErspanVer, 1
	case flows.ActSetErspanDir:
		return nxoxmErspanDir, 1
	case flows.ActSetErspanHwid:
		return nxoxmErspanHwid, 1
	}
	return 0, 0
}

// appendErspanSetField appends set_field to an ERSPAN field; ok is false when a is not one.
func appendErspanSetField(dst []byte, i int, a flows.Action) (out []byte, ok bool, err error) {
	field, size := erspanOXM(a.Type)
	if size == 0 {
		return dst, false, nil
	}
	if a.Value > flows.ErspanFieldMax(a.Type) {
		return dst, true, fmt.Errorf("action %d: %s: value %#x is too big for the field (max %#x)", i, a, a.Value, flows.ErspanFieldMax(a.Type))
	}
	n := pad8(4 + 4 + 4 + size)
	start := len(dst)
	dst = binary.BigEndian.AppendUint16(dst, actSetField)
	dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	dst = binary.BigEndian.AppendUint32(dst, oxmHeader(oxmClassExperimenter, field, false, 4+size))
	dst = binary.BigEndian.AppendUint32(dst, NiciraExperimenter)
	if size == 4 {
		dst = binary.BigEndian.AppendUint32(dst, uint32(a.Value))
	} else {
		dst = append(dst, byte(a.Value))
	}
	for len(dst)-start < n {
		dst = append(dst, 0)
	}
	return dst, true, nil
}

// decodeErspanSetField decodes the OXM of a set_field as an ERSPAN action; ok is false when it is not one this
// package writes (another experimenter or field, a mask, a wrong size, a value beyond the field).
func decodeErspanSetField(o oxm) (flows.Action, bool) {
	if o.class != oxmClassExperimenter || o.hasMask || len(o.value) < 4 || binary.BigEndian.Uint32(o.value) != NiciraExperimenter {
		return flows.Action{}, false
	}
	for _, t := range []flows.ActionType{flows.ActSetErspanVer, flows.ActSetErspanIdx, flows.ActSetErspanDir, flows.ActSetErspanHwid} {
		field, size := erspanOXM(t)
		if field != o.field {
			continue
		}
		v := o.value[4:]
		if len(v) != size {
			return flows.Action{}, false
		}
		var x uint64
		if size == 4 {
			x = uint64(binary.BigEndian.Uint32(v))
		} else {
			x = uint64(v[0])
		}
		if x > flows.ErspanFieldMax(t) {
			return flows.Action{}, false
		}
		return flows.Action{Type: t, Value: x}, true
	}
	return flows.Action{}, false
}
