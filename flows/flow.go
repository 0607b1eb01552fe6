// Package flows is the pure flow compiler: from port mirrors, sessions, NIC bindings and flow endpoints to the
// exact set of flows each bridge should hold, plus the diff between a desired and an installed set. It does no
// I/O and imports nothing of the project's but plain types, so it can be tested exhaustively.
package flows

import (
	"fmt"
	"net/netip"
	"slices"
)

// Cookies: every flow the controller owns carries CookieOurs in its high 16 bits; the low 48 bits are the
// compiler's. Reconciliation reads and deletes only flows whose cookie matches CookieOurs under CookieMask.
const (
	CookieOurs uint64 = 0x504d << 48 // "PM"
	CookieMask uint64 = 0xffff << 48
)

// OpenFlow reserved port numbers used in matches and actions.
const (
	PortAny uint32 = 0xffffffff // OFPP_ANY: in a match, no in_port constraint is written as InPort 0 instead
)

// Ethernet types the filter table matches.
const (
	EthTypeIPv4 uint16 = 0x0800
	EthTypeARP  uint16 = 0x0806
	EthTypeIPv6 uint16 = 0x86dd
)

// MAC is an Ethernet address.
type MAC [6]byte

// Match is the part of a flow that selects frames. The zero value matches everything. It is comparable, so that
// (Table, Priority, Match) can key a map: that triple is a flow's identity in OpenFlow (modify/delete strict).
type Match struct {
	InPort     uint32 // 0: any port
	EthDst     MAC
	EthDstMask MAC    // all zero: any destination; all 0xff: exact
	TunID      uint64 // with HasTunID
	HasTunID   bool

	// The fields below appear only in the filter table (TableFilter).
	Reg0       uint32 // with HasReg0: NXM_NX_REG0, the filter slot
	HasReg0    bool
	EthType    uint16 // 0: any
	IPProto    uint8  // with HasIPProto; needs EthType IPv4 or IPv6
	HasIPProto bool
	IPSrc      netip.Prefix // invalid: any; IPv4 with EthType 0x0800, IPv6 with 0x86dd
	IPDst      netip.Prefix
	TPSrc      uint16 // under TPSrcMask (0: any); needs IPProto tcp or udp
	TPSrcMask  uint16
	TPDst      uint16
	TPDstMask  uint16
}

// ActionType says what an Action does.
type ActionType uint8

const (
	ActOutput      ActionType = iota + 1 // output:Port
	ActNormal                            // NORMAL: the switch's own L2 forwarding
	ActSetTunID                          // set_field:Value->tun_id
	ActSetTunDst                         // set_field:IP->tun_dst (NXM_NX_TUN_IPV4_DST)
	ActSetReg0                           // set_field:Value->reg0 (NXM_NX_REG0, whole register)
	ActResubmit                          // resubmit(,Value): NXAST_RESUBMIT_TABLE with in_port IN_PORT
	ActOutputTrunc                       // output(port=Port,max_len=Value): NXAST_OUTPUT_TRUNC, the copy cut to Value bytes
	// ActClone is NXAST_CLONE: the Value actions that follow it in the list are its body, run on a copy of the
	// frame (what they change and a meter's drop stay inside). Bodies do not nest.
	ActClone
)

// Action is one apply-action. It is comparable, and holds no pointer: a bridge's compiled actions (a million for
// a crowded bridge) are nothing for the garbage collector to walk.
type Action struct {
	Type  ActionType
	IP    IPv4   // ActSetTunDst
	Port  uint32 // ActOutput
	Value uint64 // ActSetTunID, ActSetReg0, ActResubmit (the table), ActOutputTrunc (max_len), ActClone (body length)
}

// IPv4 is an IPv4 address as its four bytes (netip.Addr holds a pointer).
type IPv4 [4]byte

// IPv4Of returns ip's four bytes, and false when ip is not an IPv4 address.
func IPv4Of(ip netip.Addr) (IPv4, bool) {
	if !ip.Is4() {
		return IPv4{}, false
	}
	return ip.As4(), true
}

// MustIPv4 parses an IPv4 address, and panics when s is not one (for literals in tests).
func MustIPv4(s string) IPv4 {
	ip, ok := IPv4Of(netip.MustParseAddr(s))
	if !ok {
		panic(fmt.Sprintf("flows: %q is not an IPv4 address", s))
	}
	return ip
}

// Addr returns the address as a netip.Addr.
func (a IPv4) Addr() netip.Addr { return netip.AddrFrom4(a) }

// String returns the dotted form.
func (a IPv4) String() string { return a.Addr().String() }

// Flow is one flow entry. Empty Actions drop the frame.
type Flow struct {
	Table    uint8
	Priority uint16
	Cookie   uint64
	Match    Match
	Meter    uint32 // 0: none; else an OFPIT_METER instruction before the actions
	Actions  []Action
}

// Key is a flow's identity within a bridge.
type Key struct {
	Table    uint8
	Priority uint16
	Match    Match
}

// Key returns the flow's identity.
func (f Flow) Key() Key { return Key{Table: f.Table, Priority: f.Priority, Match: f.Match} }

// Equal reports whether two flows are the same entry: key, cookie, meter and actions (an empty and a nil action
// list are the same drop).
func (f *Flow) Equal(g *Flow) bool {
	return f.Table == g.Table && f.Priority == g.Priority && f.Match == g.Match && f.Cookie == g.Cookie &&
		f.Meter == g.Meter && slices.Equal(f.Actions, g.Actions)
}
