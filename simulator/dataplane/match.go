package dataplane

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"iter"
	"net/netip"
	"slices"
	"strings"
)

// Field is a match field, numbered as its OXM header's class and field: class<<8 | field.
type Field uint32

// OXM classes.
const (
	ClassNXM1  uint16 = 0x0001 // Nicira extensions (NXM_NX_*)
	ClassBasic uint16 = 0x8000 // OpenFlow basic
	// ClassExperimenter holds Nicira's experimenter OXMs (NXOXM_ET_*): on the wire the header is followed by the
	// experimenter id 0x00002320, which the OXM length counts.
	ClassExperimenter uint16 = 0xffff
	FieldTunSrcNum    uint8  = 31 // NXM_NX_TUN_IPV4_SRC
	FieldTunDstNum    uint8  = 32 // NXM_NX_TUN_IPV4_DST
)

// NewField returns the field with the given OXM class and field number.
func NewField(class uint16, field uint8) Field { return Field(uint32(class)<<8 | uint32(field)) }

// Class is the field's OXM class.
func (f Field) Class() uint16 { return uint16(f >> 8) }

// Num is the field's number within its class.
func (f Field) Num() uint8 { return uint8(f) }

// The fields the evaluator (and so the simulated switch) supports.
var (
	FieldInPort     = NewField(ClassBasic, 0)
	FieldEthDst     = NewField(ClassBasic, 3)
	FieldEthSrc     = NewField(ClassBasic, 4)
	FieldEthType    = NewField(ClassBasic, 5)
	FieldVlanVID    = NewField(ClassBasic, 6) // 0x1000 (OFPVID_PRESENT) | VID; 0: no tag
	FieldVlanPCP    = NewField(ClassBasic, 7)
	FieldIPProto    = NewField(ClassBasic, 10)
	FieldIPv4Src    = NewField(ClassBasic, 11)
	FieldIPv4Dst    = NewField(ClassBasic, 12)
	FieldTCPSrc     = NewField(ClassBasic, 13)
	FieldTCPDst     = NewField(ClassBasic, 14)
	FieldUDPSrc     = NewField(ClassBasic, 15)
	FieldUDPDst     = NewField(ClassBasic, 16)
	FieldICMPv4Type = NewField(ClassBasic, 19)
	FieldICMPv4Code = NewField(ClassBasic, 20)
	FieldARPOp      = NewField(ClassBasic, 21)
	FieldARPSPA     = NewField(ClassBasic, 22)
	FieldARPTPA     = NewField(ClassBasic, 23)
	FieldIPv6Src    = NewField(ClassBasic, 26)
	FieldIPv6Dst    = NewField(ClassBasic, 27)
	FieldICMPv6Type = NewField(ClassBasic, 29)
	FieldICMPv6Code = NewField(ClassBasic, 30)
	FieldTunnelID   = NewField(ClassBasic, 38)
	FieldTunSrc     = NewField(ClassNXM1, FieldTunSrcNum)
	FieldTunDst     = NewField(ClassNXM1, FieldTunDstNum)
	FieldReg0       = NewField(ClassNXM1, 0) // NXM_NX_REG0: pipeline metadata, 0 when a frame enters
	// The ERSPAN tunnel header fields (NXOXM_ET_ERSPAN_IDX/VER/DIR/HWID).
	FieldTunErspanIdx  = NewField(ClassExperimenter, 11) // 20 bits, type II
	FieldTunErspanVer  = NewField(ClassExperimenter, 12) // 4 bits: 1 (type II) or 2 (type III)
	FieldTunErspanDir  = NewField(ClassExperimenter, 13) // 1 bit, type III
	FieldTunErspanHwid = NewField(ClassExperimenter, 14) // 6 bits, type III
)

type fieldInfo struct {
	name     string // ovs-ofctl name
	size     int
	maskable bool
}

var fieldInfos = map[Field]fieldInfo{
	FieldInPort: {"in_port", 4, false}, FieldEthDst: {"dl_dst", 6, true}, FieldEthSrc: {"dl_src", 6, true},
	FieldEthType: {"dl_type", 2, false}, FieldVlanVID: {"vlan_tci", 2, true}, FieldVlanPCP: {"dl_vlan_pcp", 1, false},
	FieldIPProto: {"nw_proto", 1, false}, FieldIPv4Src: {"nw_src", 4, true}, FieldIPv4Dst: {"nw_dst", 4, true},
	FieldTCPSrc: {"tcp_src", 2, true}, FieldTCPDst: {"tcp_dst", 2, true}, FieldUDPSrc: {"udp_src", 2, true},
	FieldUDPDst: {"udp_dst", 2, true}, FieldICMPv4Type: {"icmp_type", 1, false}, FieldICMPv4Code: {"icmp_code", 1, false},
	FieldARPOp: {"arp_op", 2, false}, FieldARPSPA: {"arp_spa", 4, true}, FieldARPTPA: {"arp_tpa", 4, true},
	FieldIPv6Src: {"ipv6_src", 16, true}, FieldIPv6Dst: {"ipv6_dst", 16, true},
	FieldICMPv6Type: {"icmpv6_type", 1, false}, FieldICMPv6Code: {"icmpv6_code", 1, false},
	FieldTunnelID: {"tun_id", 8, true}, FieldTunSrc: {"tun_src", 4, true}, FieldTunDst: {"tun_dst", 4, true},
	FieldReg0:         {"reg0", 4, true},
	FieldTunErspanIdx: {"tun_erspan_idx", 4, true}, FieldTunErspanVer: {"tun_erspan_ver", 1, true},
	FieldTunErspanDir: {"tun_erspan_dir", 1, true}, FieldTunErspanHwid: {"tun_erspan_hwid", 1, true},
}

// Size is the field's value length in bytes, or 0 for a field the evaluator does not know.
func (f Field) Size() int { return fieldInfos[f].size }

// Maskable reports whether the field accepts a mask.
func (f Field) Maskable() bool { return fieldInfos[f].maskable }

// Known reports whether the evaluator supports the field.
func (f Field) Known() bool { _, ok := fieldInfos[f]; return ok }

func (f Field) String() string {
	if i, ok := fieldInfos[f]; ok {
		return i.name
	}
	return fmt.Sprintf("field(class=%#04x,field=%d)", f.Class(), f.Num())
}

// FieldMatch constrains one field: the frame's value under Mask must equal Value. Value and Mask hold Size()
// bytes, big-endian; Value is stored already masked.
type FieldMatch struct {
	Field Field
	Value [16]byte
	Mask  [16]byte
}

func (fm FieldMatch) val() []byte  { return fm.Value[:fm.Field.Size()] }
func (fm FieldMatch) mask() []byte { return fm.Mask[:fm.Field.Size()] }

// Exact reports whether the mask is all ones.
func (fm FieldMatch) Exact() bool {
	for _, b := range fm.mask() {
		if b != 0xff {
			return false
		}
	}
	return true
}

// Uint returns the value of a field of at most 8 bytes.
func (fm FieldMatch) Uint() uint64 { return beUint(fm.val()) }

func beUint(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

func putBeUint(b []byte, v uint64) {
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
}

// Match is a set of field constraints (at most one per field), kept sorted by field. The zero value matches
// every frame.
type Match struct {
	fields []FieldMatch
}

// OFPET_BAD_MATCH codes.
const (
	BadMatchType      uint16 = 0
	BadMatchLen       uint16 = 1
	BadMatchTag       uint16 = 2
	BadMatchDLAddr    uint16 = 3
	BadMatchNWAddr    uint16 = 4
	BadMatchWildcards uint16 = 5
	BadMatchField     uint16 = 6
	BadMatchValue     uint16 = 7
	BadMatchMask      uint16 = 8
	BadMatchPrereq    uint16 = 9
	BadMatchDupField  uint16 = 10
)

// Set adds the constraint value/mask on field (mask nil: exact). It refuses unknown fields, wrong lengths, a
// mask on an unmaskable field and a field already present.
func (m *Match) Set(field Field, value, mask []byte) error {
	info, ok := fieldInfos[field]
	if !ok {
		return badMatch(BadMatchField, fmt.Sprintf("match field %v is not supported", field))
	}
	if len(value) != info.size || (mask != nil && len(mask) != info.size) {
		return badMatch(BadMatchLen, fmt.Sprintf("match field %v: value of %d bytes, want %d", field, len(value), info.size))
	}
	if mask != nil && !info.maskable && !bytes.Equal(mask, bytes.Repeat([]byte{0xff}, info.size)) {
		return badMatch(BadMatchMask, fmt.Sprintf("match field %v does not accept a mask", field))
	}
	if _, ok := m.Get(field); ok {
		return badMatch(BadMatchDupField, fmt.Sprintf("match field %v appears twice", field))
	}
	fm := FieldMatch{Field: field}
	for i := range info.size {
		mk := byte(0xff)
		if mask != nil {
			mk = mask[i]
		}
		fm.Mask[i] = mk
		fm.Value[i] = value[i] & mk
	}
	if bytes.Equal(fm.mask(), make([]byte, info.size)) {
		return nil // fully wildcarded: no constraint
	}
	i, _ := slices.BinarySearchFunc(m.fields, field, func(a FieldMatch, f Field) int { return cmp.Compare(a.Field, f) })
	m.fields = slices.Insert(slices.Clone(m.fields), i, fm)
	return nil
}

// SetUint is Set for fields of at most 8 bytes, exact.
func (m *Match) SetUint(field Field, v uint64) error {
	b := make([]byte, field.Size())
	putBeUint(b, v)
	return m.Set(field, b, nil)
}

// SetMasked is Set for fields of at most 8 bytes with a mask.
func (m *Match) SetMasked(field Field, v, mask uint64) error {
	n := field.Size()
	b, mk := make([]byte, n), make([]byte, n)
	putBeUint(b, v)
	putBeUint(mk, mask)
	return m.Set(field, b, mk)
}

// SetIP is Set for an address field with a prefix (bits = address length: exact).
func (m *Match) SetIP(field Field, p netip.Prefix) error {
	a := p.Addr().AsSlice()
	if len(a) != field.Size() {
		return badMatch(BadMatchNWAddr, fmt.Sprintf("match field %v: %v has the wrong address family", field, p))
	}
	mk := make([]byte, len(a))
	for i := range p.Bits() {
		mk[i/8] |= 0x80 >> (i % 8)
	}
	return m.Set(field, a, mk)
}

// SetMAC is Set for an Ethernet address field with a mask (nil: exact).
func (m *Match) SetMAC(field Field, v MAC, mask *MAC) error {
	if mask == nil {
		return m.Set(field, v[:], nil)
	}
	return m.Set(field, v[:], mask[:])
}

// Get returns the constraint on field.
func (m Match) Get(field Field) (FieldMatch, bool) {
	for _, fm := range m.fields {
		if fm.Field == field {
			return fm, true
		}
	}
	return FieldMatch{}, false
}

// Fields returns the constraints, sorted by field.
func (m Match) Fields() []FieldMatch { return slices.Clone(m.fields) }

// All yields the constraints, sorted by field, without copying them (a flow dump encodes every flow's match).
func (m Match) All() iter.Seq[FieldMatch] {
	return func(yield func(FieldMatch) bool) {
		for _, fm := range m.fields {
			if !yield(fm) {
				return
			}
		}
	}
}

// Equal reports whether two matches constrain the same fields the same way.
func (m Match) Equal(o Match) bool { return slices.Equal(m.fields, o.fields) }

func (m Match) exactIs(field Field, v uint64) bool {
	fm, ok := m.Get(field)
	return ok && fm.Exact() && fm.Uint() == v
}

// Validate checks OpenFlow 1.3 prerequisites the way OVS does (OFPBMC_BAD_PREREQ).
func (m Match) Validate() error {
	isIP4, isIP6, isARP := m.exactIs(FieldEthType, uint64(EthTypeIPv4)), m.exactIs(FieldEthType, uint64(EthTypeIPv6)), m.exactIs(FieldEthType, uint64(EthTypeARP))
	need := func(f Field, ok bool, what string) error {
		if _, has := m.Get(f); has && !ok {
			return badMatch(BadMatchPrereq, fmt.Sprintf("match field %v needs %s", f, what))
		}
		return nil
	}
	vid, hasVID := m.Get(FieldVlanVID)
	checks := []error{
		need(FieldVlanPCP, hasVID && vid.Value[0]&0x10 != 0, "vlan_vid with OFPVID_PRESENT"),
		need(FieldIPProto, isIP4 || isIP6, "eth_type 0x0800 or 0x86dd"),
		need(FieldIPv4Src, isIP4, "eth_type 0x0800"), need(FieldIPv4Dst, isIP4, "eth_type 0x0800"),
		need(FieldIPv6Src, isIP6, "eth_type 0x86dd"), need(FieldIPv6Dst, isIP6, "eth_type 0x86dd"),
		need(FieldARPOp, isARP, "eth_type 0x0806"), need(FieldARPSPA, isARP, "eth_type 0x0806"), need(FieldARPTPA, isARP, "eth_type 0x0806"),
	}
	ipIs := func(p uint8) bool { return (isIP4 || isIP6) && m.exactIs(FieldIPProto, uint64(p)) }
	checks = append(checks,
		need(FieldTCPSrc, ipIs(ProtoTCP), "ip_proto 6"), need(FieldTCPDst, ipIs(ProtoTCP), "ip_proto 6"),
		need(FieldUDPSrc, ipIs(ProtoUDP), "ip_proto 17"), need(FieldUDPDst, ipIs(ProtoUDP), "ip_proto 17"),
		need(FieldICMPv4Type, isIP4 && ipIs(ProtoICMP), "eth_type 0x0800 and ip_proto 1"),
		need(FieldICMPv4Code, isIP4 && ipIs(ProtoICMP), "eth_type 0x0800 and ip_proto 1"),
		need(FieldICMPv6Type, isIP6 && ipIs(ProtoICMPv6), "eth_type 0x86dd and ip_proto 58"),
		need(FieldICMPv6Code, isIP6 && ipIs(ProtoICMPv6), "eth_type 0x86dd and ip_proto 58"),
	)
	for _, err := range checks {
		if err != nil {
			return err
		}
	}
	return nil
}

// frameValue writes the frame's value of field into b (Size() bytes).
func frameValue(fr *Frame, field Field, b []byte) {
	clear(b)
	switch field {
	case FieldInPort:
		binary.BigEndian.PutUint32(b, fr.InPort)
	case FieldEthDst:
		copy(b, fr.EthDst[:])
	case FieldEthSrc:
		copy(b, fr.EthSrc[:])
	case FieldEthType:
		binary.BigEndian.PutUint16(b, fr.EthType)
	case FieldVlanVID:
		if fr.HasVLAN {
			binary.BigEndian.PutUint16(b, 0x1000|fr.VID)
		}
	case FieldVlanPCP:
		b[0] = fr.PCP
	case FieldIPProto:
		if fr.EthType == EthTypeIPv4 || fr.EthType == EthTypeIPv6 {
			b[0] = fr.IPProto
		}
	case FieldIPv4Src, FieldARPSPA:
		if fr.IPSrc.Is4() {
			copy(b, fr.IPSrc.AsSlice())
		}
	case FieldIPv4Dst, FieldARPTPA:
		if fr.IPDst.Is4() {
			copy(b, fr.IPDst.AsSlice())
		}
	case FieldIPv6Src:
		if fr.IPSrc.Is6() {
			copy(b, fr.IPSrc.AsSlice())
		}
	case FieldIPv6Dst:
		if fr.IPDst.Is6() {
			copy(b, fr.IPDst.AsSlice())
		}
	case FieldTCPSrc, FieldUDPSrc:
		binary.BigEndian.PutUint16(b, fr.L4Src)
	case FieldTCPDst, FieldUDPDst:
		binary.BigEndian.PutUint16(b, fr.L4Dst)
	case FieldICMPv4Type, FieldICMPv6Type:
		b[0] = byte(fr.L4Src)
	case FieldICMPv4Code, FieldICMPv6Code:
		b[0] = byte(fr.L4Dst)
	case FieldARPOp:
		binary.BigEndian.PutUint16(b, fr.ARPOp)
	case FieldTunnelID:
		binary.BigEndian.PutUint64(b, fr.Tunnel.ID)
	case FieldReg0:
		binary.BigEndian.PutUint32(b, fr.Reg0)
	case FieldTunSrc:
		if fr.Tunnel.Src.Is4() {
			copy(b, fr.Tunnel.Src.AsSlice())
		}
	case FieldTunDst:
		if fr.Tunnel.Dst.Is4() {
			copy(b, fr.Tunnel.Dst.AsSlice())
		}
	case FieldTunErspanIdx:
		binary.BigEndian.PutUint32(b, fr.Tunnel.ErspanIdx)
	case FieldTunErspanVer:
		b[0] = fr.Tunnel.ErspanVer
	case FieldTunErspanDir:
		b[0] = fr.Tunnel.ErspanDir
	case FieldTunErspanHwid:
		b[0] = fr.Tunnel.ErspanHwid
	}
}

// Matches reports whether the frame satisfies every constraint. Prerequisites are enforced by Validate at
// install time, and fields a frame lacks read as zero, as in OVS.
func (m Match) Matches(fr *Frame) bool {
	var buf [16]byte
	for _, fm := range m.fields {
		n := fm.Field.Size()
		frameValue(fr, fm.Field, buf[:n])
		// Protocol fields only exist under their protocol: a TCP port constraint never matches UDP, etc.
		if !fieldPresent(fr, fm.Field) {
			return false
		}
		for i := range n {
			if buf[i]&fm.Mask[i] != fm.Value[i] {
				return false
			}
		}
	}
	return true
}

func fieldPresent(fr *Frame, f Field) bool {
	ip := fr.EthType == EthTypeIPv4 || fr.EthType == EthTypeIPv6
	switch f {
	case FieldTCPSrc, FieldTCPDst:
		return ip && fr.IPProto == ProtoTCP
	case FieldUDPSrc, FieldUDPDst:
		return ip && fr.IPProto == ProtoUDP
	}
	return true
}

// Covers reports whether every frame matching o also matches m (m is equal to or looser than o): the
// selection rule of non-strict modify, delete and flow-stats requests.
func (m Match) Covers(o Match) bool {
	for _, a := range m.fields {
		b, ok := o.Get(a.Field)
		if !ok {
			return false
		}
		for i := range a.Field.Size() {
			if b.Mask[i]&a.Mask[i] != a.Mask[i] || b.Value[i]&a.Mask[i] != a.Value[i] {
				return false
			}
		}
	}
	return true
}

// Overlaps reports whether some frame could match both.
func (m Match) Overlaps(o Match) bool {
	for _, a := range m.fields {
		b, ok := o.Get(a.Field)
		if !ok {
			continue
		}
		for i := range a.Field.Size() {
			c := a.Mask[i] & b.Mask[i]
			if a.Value[i]&c != b.Value[i]&c {
				return false
			}
		}
	}
	return true
}

// String formats the match in ovs-ofctl syntax ("" for match-all).
func (m Match) String() string {
	parts := make([]string, 0, len(m.fields))
	for _, fm := range m.fields {
		parts = append(parts, fm.String())
	}
	return strings.Join(parts, ",")
}

// String formats one constraint in ovs-ofctl syntax.
func (fm FieldMatch) String() string {
	name := fm.Field.String()
	v := fm.val()
	switch n := fm.Field.Size(); {
	case fm.Field == FieldVlanVID:
		return fmt.Sprintf("%s=0x%04x/0x%04x", name, fm.Uint(), binary.BigEndian.Uint16(fm.mask()))
	case n == 6:
		s := name + "=" + MAC(v).String()
		if !fm.Exact() {
			s += "/" + MAC(fm.mask()).String()
		}
		return s
	case fm.Field == FieldIPv4Src || fm.Field == FieldIPv4Dst || fm.Field == FieldARPSPA || fm.Field == FieldARPTPA ||
		fm.Field == FieldTunSrc || fm.Field == FieldTunDst || n == 16:
		a, _ := netip.AddrFromSlice(v)
		s := name + "=" + a.String()
		if !fm.Exact() {
			mk, _ := netip.AddrFromSlice(fm.mask())
			s += "/" + mk.String()
		}
		return s
	case fm.Field == FieldEthType || fm.Field == FieldTunnelID:
		s := fmt.Sprintf("%s=%#x", name, fm.Uint())
		if fm.Field == FieldEthType {
			s = fmt.Sprintf("%s=0x%04x", name, fm.Uint())
		}
		if !fm.Exact() {
			s += fmt.Sprintf("/%#x", beUint(fm.mask()))
		}
		return s
	default:
		s := fmt.Sprintf("%s=%d", name, fm.Uint())
		if !fm.Exact() {
			s += fmt.Sprintf("/%#x", beUint(fm.mask()))
		}
		return s
	}
}
