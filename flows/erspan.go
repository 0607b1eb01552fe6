package flows

import (
	"strconv"
	"strings"

	"portmirror/model"
)

// The ERSPAN set_field actions (OVS's NXOXM_ET_ERSPAN_* experimenter fields). Their numbers are apart from the
// iota block of flow.go so that other action types can be added there freely.
const (
	ActSetErspanVer  ActionType = 64 + iota // set_field:Value->tun_erspan_ver (1: type II, 2: type III)
	ActSetErspanIdx                         // set_field:Value->tun_erspan_idx (20 bits; ver 1 only)
	ActSetErspanDir                         // set_field:Value->tun_erspan_dir (0 ingress, 1 egress; ver 2 only)
	ActSetErspanHwid                        // set_field:Value->tun_erspan_hwid (6 bits; ver 2 only)
)

// The ERSPAN header values the compiler chooses.
//
// Direction (type III only) is the mirrored switch port's, as ERSPAN and the analysers that read it mean it:
// 0 "ingress" for frames the port receives from the VM (a session's EGRESS copies), 1 "egress" for frames the
// switch delivers to the VM (INGRESS copies). One copy per destination leaves a bridge however many sessions
// select a frame, so the direction is per destination and bridge: 1 when every session copying from that bridge
// to that destination is INGRESS, otherwise 0 (EGRESS, BIDIRECTION, or a mix).
//
// The index (type II) and the hardware id (type III) are platform-specific in ERSPAN; the compiler sets both to 0
// (explicitly, so what a copy carries never depends on earlier metadata).
const (
	ErspanDirIngress uint8  = 0
	ErspanDirEgress  uint8  = 1
	ErspanIndex      uint32 = 0
	ErspanHardwareID uint8  = 0
)

// erspanDir is the direction a session's copies carry.
func erspanDir(d model.Direction) uint8 {
	if d == model.Ingress {
		return ErspanDirEgress
	}
	return ErspanDirIngress
}

// tunnelActs returns the actions that send a copy to a remote target: the tunnel key and peer, for ERSPAN the
// version and its header fields, then out (an output or output-with-max-length to the tunnel port).
func (t target) tunnelActs(out Action) []Action {
	acts := []Action{{Type: ActSetTunID, Value: uint64(t.key)}, {Type: ActSetTunDst, IP: IPv4(t.ip.As4())}}
	switch t.erspanVer {
	case 1:
		acts = append(acts, Action{Type: ActSetErspanVer, Value: 1}, Action{Type: ActSetErspanIdx, Value: uint64(ErspanIndex)})
	case 2:
		acts = append(acts, Action{Type: ActSetErspanVer, Value: 2}, Action{Type: ActSetErspanDir, Value: uint64(t.erspanDir)},
			Action{Type: ActSetErspanHwid, Value: uint64(ErspanHardwareID)})
	}
	return append(acts, out)
}

// erspanFields names the set_field target of each ERSPAN action, and whether ovs-ofctl prints it in hex.
var erspanFields = [...]struct {
	name string
	hex  bool
	max  uint64
}{
	{"tun_erspan_ver", false, 0xf},    // ActSetErspanVer
	{"tun_erspan_idx", true, 0xfffff}, // ActSetErspanIdx
	{"tun_erspan_dir", false, 1},      // ActSetErspanDir
	{"tun_erspan_hwid", true, 0x3f},   // ActSetErspanHwid
}

// IsErspanAction reports whether t is one of the ERSPAN set_field actions.
func IsErspanAction(t ActionType) bool { return t >= ActSetErspanVer && t <= ActSetErspanHwid }

// ErspanFieldMax is the largest value an ERSPAN set_field action can carry (0 when t is not one).
func ErspanFieldMax(t ActionType) uint64 {
	if !IsErspanAction(t) {
		return 0
	}
	return erspanFields[t-ActSetErspanVer].max
}

// appendErspanText formats an ERSPAN set_field as ovs-ofctl prints it; false when a is not one.
func appendErspanText(b []byte, a Action) ([]byte, bool) {
	if !IsErspanAction(a.Type) {
		return b, false
	}
	f := erspanFields[a.Type-ActSetErspanVer]
	b = append(b, "set_field:"...)
	if f.hex {
		b = append(b, "0x"...)
		b = strconv.AppendUint(b, a.Value, 16)
	} else {
		b = strconv.AppendUint(b, a.Value, 10)
	}
	b = append(b, "->"...)
	return append(b, f.name...), true
}

// parseErspanSetField parses the value of a set_field to an ERSPAN field; false when field is not one.
func parseErspanSetField(v, field string) (Action, bool, error) {
	if !strings.HasPrefix(field, "tun_erspan_") {
		return Action{}, false, nil
	}
	for i, f := range erspanFields {
		if f.name == field {
			n, err := strconv.ParseUint(v, 0, 32)
			if err == nil && n > f.max {
				err = strconv.ErrRange
			}
			return Action{Type: ActSetErspanVer + ActionType(i), Value: n}, true, err
		}
	}
	return Action{}, false, nil
}
