package dataplane

import (
	"fmt"
	"net/netip"
	"portmirror/flows"
	"strconv"
	"strings"
)

// ParseFlow parses a flow in the subset of ovs-ofctl add-flow syntax that Flow.String writes: table, priority,
// cookie, the match fields of this package (by their ovs-ofctl names, plus dl_vlan, tp_src/tp_dst and the
// shorthands ip, ipv6, arp, tcp, udp, icmp), and actions output:N, NORMAL, IN_PORT, ALL, FLOOD, LOCAL, drop,
// group:N, set_field:V->FIELD, push_vlan:0x8100, pop_vlan, goto_table:N.
func ParseFlow(s string) (Flow, error) {
	f := Flow{Priority: 32768}
	head, acts, ok := strings.Cut(s, "actions=")
	if !ok {
		return f, fmt.Errorf("flow %q: no actions=", s)
	}
	var proto uint8
	for _, kv := range strings.Split(strings.Trim(strings.TrimSpace(head), ","), ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		var err error
		switch k {
		case "table":
			var n uint64
			n, err = strconv.ParseUint(v, 0, 8)
			f.Table = uint8(n)
		case "priority":
			var n uint64
			n, err = strconv.ParseUint(v, 0, 16)
			f.Priority = uint16(n)
		case "cookie":
			f.Cookie, err = strconv.ParseUint(v, 0, 64)
		case "ip", "ipv6", "arp", "tcp", "udp", "icmp", "tcp6", "udp6":
			et := map[string]uint16{"ip": EthTypeIPv4, "tcp": EthTypeIPv4, "udp": EthTypeIPv4, "icmp": EthTypeIPv4,
				"ipv6": EthTypeIPv6, "tcp6": EthTypeIPv6, "udp6": EthTypeIPv6, "arp": EthTypeARP}[k]
			err = f.Match.SetUint(FieldEthType, uint64(et))
			if p := map[string]uint8{"tcp": ProtoTCP, "udp": ProtoUDP, "icmp": ProtoICMP, "tcp6": ProtoTCP, "udp6": ProtoUDP}[k]; p != 0 && err == nil {
				proto = p
				err = f.Match.SetUint(FieldIPProto, uint64(p))
			}
		case "dl_vlan":
			var n uint64
			n, err = strconv.ParseUint(v, 0, 12)
			if err == nil {
				err = f.Match.SetMasked(FieldVlanVID, 0x1000|n, 0x1fff)
			}
		case "tp_src", "tp_dst":
			fld := map[string]Field{"tcp_src": FieldTCPSrc, "tcp_dst": FieldTCPDst, "udp_src": FieldUDPSrc, "udp_dst": FieldUDPDst}[map[uint8]string{ProtoTCP: "tcp", ProtoUDP: "udp"}[proto]+k[2:]]
			if fld == 0 {
				return f, fmt.Errorf("flow %q: %s needs tcp or udp first", s, k)
			}
			err = setFromString(&f.Match, fld, v)
		default:
			fld, ok := fieldByName(k)
			if !ok {
				return f, fmt.Errorf("flow %q: unknown field %q", s, k)
			}
			err = setFromString(&f.Match, fld, v)
		}
		if err != nil {
			return f, fmt.Errorf("flow %q: %s: %w", s, kv, err)
		}
	}
	for _, a := range flows.SplitActions(acts) {
		act, err := parseAction(&f, a)
		if err != nil {
			return f, fmt.Errorf("flow %q: action %q: %w", s, a, err)
		}
		if act != nil {
			f.Actions = append(f.Actions, *act)
		}
	}
	return f, nil
}

func fieldByName(name string) (Field, bool) {
	aliases := map[string]Field{"vlan_vid": FieldVlanVID, "eth_dst": FieldEthDst, "eth_src": FieldEthSrc, "eth_type": FieldEthType,
		"ip_proto": FieldIPProto, "ipv4_src": FieldIPv4Src, "ipv4_dst": FieldIPv4Dst, "tunnel_id": FieldTunnelID,
		"tun_ipv4_src": FieldTunSrc, "tun_ipv4_dst": FieldTunDst, "vlan_pcp": FieldVlanPCP}
	if f, ok := aliases[name]; ok {
		return f, true
	}
	for f, i := range fieldInfos {
		if i.name == name {
			return f, true
		}
	}
	return 0, false
}

func parseAction(f *Flow, a string) (*Action, error) {
	switch strings.ToUpper(a) {
	case "NORMAL", "IN_PORT", "ALL", "FLOOD", "LOCAL":
		p := map[string]uint32{"NORMAL": PortNormal, "IN_PORT": PortInPort, "ALL": PortAll, "FLOOD": PortFlood, "LOCAL": PortLocal}[strings.ToUpper(a)]
		o := Output(p)
		return &o, nil
	case "DROP":
		return nil, nil
	case "POP_VLAN":
		return &Action{Type: ActPopVLAN}, nil
	}
	if t, ok := strings.CutPrefix(a, "output(port="); ok && strings.HasSuffix(t, ")") {
		port, ml, _ := strings.Cut(strings.TrimSuffix(t, ")"), ",max_len=")
		p, err := parsePort(port)
		if err != nil {
			return nil, err
		}
		n, err := strconv.ParseUint(ml, 10, 32)
		return &Action{Type: ActOutputTrunc, Port: p, MaxTrunc: uint32(n)}, err
	}
	if t, ok := strings.CutPrefix(a, "clone("); ok && strings.HasSuffix(t, ")") {
		c := &Action{Type: ActClone}
		for _, x := range flows.SplitActions(strings.TrimSuffix(t, ")")) {
			act, err := parseAction(f, x)
			if err != nil {
				return nil, err
			}
			if act != nil {
				c.Body = append(c.Body, *act)
			}
		}
		return c, nil
	}
	if t, ok := strings.CutPrefix(a, "meter:"); ok {
		n, err := strconv.ParseUint(t, 10, 32)
		f.Meter = uint32(n)
		return nil, err
	}
	if t, ok := strings.CutPrefix(a, "resubmit(,"); ok && strings.HasSuffix(t, ")") {
		n, err := strconv.ParseUint(strings.TrimSuffix(t, ")"), 10, 8)
		return &Action{Type: ActResubmit, Table: uint8(n)}, err
	}
	k, v, _ := strings.Cut(a, ":")
	switch k {
	case "output":
		p, err := parsePort(v)
		o := Output(p)
		return &o, err
	case "group":
		n, err := strconv.ParseUint(v, 0, 32)
		g := GroupAction(uint32(n))
		return &g, err
	case "goto_table":
		n, err := strconv.ParseUint(v, 0, 8)
		f.HasGoto, f.GotoTable = true, uint8(n)
		return nil, err
	case "push_vlan":
		n, err := strconv.ParseUint(v, 0, 16)
		return &Action{Type: ActPushVLAN, EthType: uint16(n)}, err
	case "set_field":
		val, name, ok := strings.Cut(v, "->")
		if !ok {
			return nil, fmt.Errorf("want set_field:VALUE->FIELD")
		}
		fld, ok := fieldByName(name)
		if !ok {
			return nil, fmt.Errorf("unknown field %q", name)
		}
		if fld == FieldVlanVID {
			n, err := strconv.ParseUint(val, 0, 16)
			if err != nil {
				return nil, err
			}
			val = strconv.FormatUint(n|0x1000, 10)
		}
		var m Match
		if err := setFromString(&m, fld, val); err != nil {
			return nil, err
		}
		fm, _ := m.Get(fld)
		fm.Field = fld
		return &Action{Type: ActSetField, Set: fm}, nil
	}
	if n, err := strconv.ParseUint(a, 10, 32); err == nil {
		o := Output(uint32(n))
		return &o, nil
	}
	return nil, fmt.Errorf("unknown action")
}

func parsePort(v string) (uint32, error) {
	switch strings.ToUpper(v) {
	case "IN_PORT", "NORMAL", "FLOOD", "ALL", "LOCAL", "CONTROLLER", "ANY":
		return map[string]uint32{"IN_PORT": PortInPort, "NORMAL": PortNormal, "FLOOD": PortFlood, "ALL": PortAll,
			"LOCAL": PortLocal, "CONTROLLER": PortController, "ANY": PortAny}[strings.ToUpper(v)], nil
	}
	n, err := strconv.ParseUint(v, 0, 32)
	return uint32(n), err
}

// setFromString sets field from ovs-ofctl text: MAC[/MASK], IP[/PREFIX|/MASK] or NUMBER[/MASK].
func setFromString(m *Match, fld Field, v string) error {
	val, mask, hasMask := strings.Cut(v, "/")
	n := fld.Size()
	switch {
	case n == 6:
		a, err := ParseMAC(val)
		if err != nil {
			return err
		}
		if !hasMask {
			return m.SetMAC(fld, a, nil)
		}
		mk, err := ParseMAC(mask)
		if err != nil {
			return err
		}
		return m.SetMAC(fld, a, &mk)
	case fld == FieldIPv4Src || fld == FieldIPv4Dst || fld == FieldARPSPA || fld == FieldARPTPA || fld == FieldTunSrc || fld == FieldTunDst || n == 16:
		a, err := netip.ParseAddr(val)
		if err != nil {
			return err
		}
		if !hasMask {
			return m.Set(fld, a.AsSlice(), nil)
		}
		if bits, err := strconv.Atoi(mask); err == nil {
			return m.SetIP(fld, netip.PrefixFrom(a, bits))
		}
		mk, err := netip.ParseAddr(mask)
		if err != nil {
			return err
		}
		return m.Set(fld, a.AsSlice(), mk.AsSlice())
	default:
		x, err := strconv.ParseUint(val, 0, 64)
		if err != nil {
			return err
		}
		if !hasMask {
			return m.SetUint(fld, x)
		}
		mk, err := strconv.ParseUint(mask, 0, 64)
		if err != nil {
			return err
		}
		return m.SetMasked(fld, x, mk)
	}
}
