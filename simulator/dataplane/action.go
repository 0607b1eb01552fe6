package dataplane

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"portmirror/ofwire"
)

// OpenFlow reserved port and group numbers, as the wire layer defines them.
const (
	PortMax               = ofwire.PortMax
	PortInPort            = ofwire.PortInPort
	PortTable             = ofwire.PortTable
	PortNormal            = ofwire.PortNormal
	PortFlood             = ofwire.PortFlood
	PortAll               = ofwire.PortAll
	PortController        = ofwire.PortController
	PortLocal             = ofwire.PortLocal
	PortAny               = ofwire.PortAny
	GroupAny              = ofwire.GroupAny
	GroupMax       uint32 = 0xffffff00 // OFPG_MAX: the last number of a real group
	GroupAll       uint32 = 0xfffffffc // OFPG_ALL: every group, for a group delete
)

// PortString names a port number the way ovs-ofctl does.
func PortString(p uint32) string {
	switch p {
	case PortInPort:
		return "IN_PORT"
	case PortTable:
		return "TABLE"
	case PortNormal:
		return "NORMAL"
	case PortFlood:
		return "FLOOD"
	case PortAll:
		return "ALL"
	case PortController:
		return "CONTROLLER"
	case PortLocal:
		return "LOCAL"
	case PortAny:
		return "ANY"
	}
	return fmt.Sprint(p)
}

// ActionType is the OpenFlow 1.3 action type (OFPAT_*).
type ActionType uint16

const (
	ActOutput   ActionType = 0
	ActPushVLAN ActionType = 17
	ActPopVLAN  ActionType = 18
	ActGroup    ActionType = 22
	ActSetField ActionType = 25
	// ActResubmit is the Nicira extension NXAST_RESUBMIT_TABLE (an OFPAT_EXPERIMENTER action) with in_port
	// IN_PORT: look the frame up again in Table.
	ActResubmit ActionType = 0xffff
	// ActOutputTrunc is Nicira's NXAST_OUTPUT_TRUNC (also an OFPAT_EXPERIMENTER action on the wire; the number is
	// the simulator's own): output to Port, the frame cut to MaxTrunc bytes.
	ActOutputTrunc ActionType = 0xfffe
	// ActClone is Nicira's NXAST_CLONE (the number is the simulator's own): Body runs on a copy of the frame;
	// what it changes, and a meter's drop inside it, stay inside.
	ActClone ActionType = 0xfffd
)

// Action is one action of an apply-actions instruction or a group bucket.
type Action struct {
	Type     ActionType
	Port     uint32     // ActOutput
	MaxLen   uint16     // ActOutput (only meaningful for CONTROLLER)
	Group    uint32     // ActGroup
	Set      FieldMatch // ActSetField: Field and Value (exact)
	EthType  uint16     // ActPushVLAN
	Table    uint8      // ActResubmit
	MaxTrunc uint32     // ActOutputTrunc
	Body     []Action   // ActClone
}

// Output returns output:port.
func Output(port uint32) Action { return Action{Type: ActOutput, Port: port, MaxLen: 0xffff} }

// SetField returns set_field:value->field for a field of at most 8 bytes.
func SetField(field Field, v uint64) Action {
	a := Action{Type: ActSetField, Set: FieldMatch{Field: field}}
	n := field.Size()
	putBeUint(a.Set.Value[:n], v)
	for i := range n {
		a.Set.Mask[i] = 0xff
	}
	return a
}

// SetTunDst returns set_field:ip->tun_dst.
func SetTunDst(ip netip.Addr) Action {
	b := ip.As4()
	return SetField(FieldTunDst, uint64(b[0])<<24|uint64(b[1])<<16|uint64(b[2])<<8|uint64(b[3]))
}

// GroupAction returns group:id.
func GroupAction(id uint32) Action { return Action{Type: ActGroup, Group: id} }

func (a Action) String() string {
	switch a.Type {
	case ActOutput:
		switch a.Port {
		case PortNormal, PortFlood, PortAll, PortLocal, PortInPort:
			return PortString(a.Port)
		case PortController:
			return fmt.Sprintf("CONTROLLER:%d", a.MaxLen)
		}
		return "output:" + PortString(a.Port)
	case ActGroup:
		return fmt.Sprintf("group:%d", a.Group)
	case ActPushVLAN:
		return fmt.Sprintf("push_vlan:0x%04x", a.EthType)
	case ActPopVLAN:
		return "pop_vlan"
	case ActResubmit:
		return fmt.Sprintf("resubmit(,%d)", a.Table)
	case ActOutputTrunc:
		return fmt.Sprintf("output(port=%s,max_len=%d)", PortString(a.Port), a.MaxTrunc)
	case ActClone:
		parts := make([]string, len(a.Body))
		for i, x := range a.Body {
			parts[i] = x.String()
		}
		return "clone(" + strings.Join(parts, ",") + ")"
	case ActSetField:
		s := a.Set.String() // "name=value"
		name, val, _ := strings.Cut(s, "=")
		if a.Set.Field == FieldVlanVID {
			// OVS prints set_field of vlan_vid as the 12-bit VID with the present bit.
			val = fmt.Sprintf("%d", a.Set.Uint()&0x0fff|0x1000)
			name = "vlan_vid"
		}
		return fmt.Sprintf("set_field:%s->%s", val, name)
	}
	return fmt.Sprintf("action(type=%d)", a.Type)
}

// Flow is one flow entry as installed: match, priority, apply-actions and an optional goto_table.
type Flow struct {
	Table       uint8
	Priority    uint16
	Cookie      uint64
	Match       Match
	Meter       uint32   // 0: none; else the meter instruction, applied before the actions
	Actions     []Action // apply-actions; empty: no output
	HasGoto     bool
	GotoTable   uint8
	IdleTimeout uint16
	HardTimeout uint16
	Flags       uint16
	Packets     uint64
	Bytes       uint64
	Installed   time.Time // when the flow was added (set by AddFlow when zero)
}

// String formats the flow in ovs-ofctl add-flow syntax.
func (f *Flow) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "table=%d,priority=%d", f.Table, f.Priority)
	if f.Cookie != 0 {
		fmt.Fprintf(&b, ",cookie=%#x", f.Cookie)
	}
	if m := f.Match.String(); m != "" {
		b.WriteString("," + m)
	}
	b.WriteString(",actions=")
	var acts []string
	if f.Meter != 0 {
		acts = append(acts, fmt.Sprintf("meter:%d", f.Meter))
	}
	for _, a := range f.Actions {
		acts = append(acts, a.String())
	}
	if f.HasGoto {
		acts = append(acts, fmt.Sprintf("goto_table:%d", f.GotoTable))
	}
	if len(acts) == 0 {
		acts = []string{"drop"}
	}
	b.WriteString(strings.Join(acts, ","))
	return b.String()
}

// outputsTo reports whether the flow's actions output to port (the out_port filter of OpenFlow).
func (f *Flow) outputsTo(port uint32, groups map[uint32]*Group) bool {
	return actionsOutputTo(f.Actions, port, groups, 0)
}

func actionsOutputTo(acts []Action, port uint32, groups map[uint32]*Group, depth int) bool {
	for _, a := range acts {
		if a.Type == ActOutput && a.Port == port {
			return true
		}
	}
	return false
}

func (f *Flow) usesGroup(g uint32) bool {
	for _, a := range f.Actions {
		if a.Type == ActGroup && a.Group == g {
			return true
		}
	}
	return false
}

// Group types.
const GroupTypeAll uint8 = 0

// Group is a group entry; only type ALL is supported.
type Group struct {
	ID      uint32
	Type    uint8
	Buckets [][]Action
}
