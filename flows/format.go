package flows

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// String formats the flow in ovs-ofctl syntax, accepted by `ovs-ofctl -O OpenFlow13 add-flow` and
// `--bundle replace-flows`, e.g.
//
//	cookie=0x504d000000000004, table=0, priority=300, in_port=3,dl_dst=aa:bb:cc:dd:ee:ff actions=NORMAL,output:9
func (f Flow) String() string { return string(f.AppendText(make([]byte, 0, 96+48*len(f.Actions)))) }

// AppendText appends the flow as String formats it.
func (f Flow) AppendText(b []byte) []byte {
	b = append(b, "cookie=0x"...)
	b = strconv.AppendUint(b, f.Cookie, 16)
	b = append(b, ", table="...)
	b = strconv.AppendUint(b, uint64(f.Table), 10)
	b = append(b, ", priority="...)
	b = strconv.AppendUint(b, uint64(f.Priority), 10)
	if f.Match != (Match{}) {
		b = append(b, ", "...)
		b = f.Match.appendText(b)
	}
	b = append(b, " actions="...)
	if f.Meter != 0 {
		b = append(b, "meter:"...)
		b = strconv.AppendUint(b, uint64(f.Meter), 10)
	} else if len(f.Actions) == 0 {
		b = append(b, "drop"...)
	}
	open, opened := 0, false // actions left in an open clone( body; the body has just begun
	for i, a := range f.Actions {
		if (i > 0 || f.Meter != 0) && !opened {
			b = append(b, ',')
		}
		opened = false
		if a.Type == ActClone {
			b = append(b, "clone("...)
			open = int(a.Value)
			if open == 0 {
				b = append(b, ')')
			} else {
				opened = true
			}
			continue
		}
		b = a.appendText(b)
		if open > 0 {
			open--
			if open == 0 {
				b = append(b, ')')
			}
		}
	}
	return b
}

// String formats the match as comma-separated ovs-ofctl fields; empty for the match-everything zero value.
func (m Match) String() string { return string(m.appendText(nil)) }

func (m Match) appendText(b []byte) []byte {
	start := len(b)
	sep := func() {
		if len(b) > start {
			b = append(b, ',')
		}
	}
	if m.InPort != 0 {
		b = append(b, "in_port="...)
		b = strconv.AppendUint(b, uint64(m.InPort), 10)
	}
	if m.HasTunID {
		sep()
		b = append(b, "tun_id=0x"...)
		b = strconv.AppendUint(b, m.TunID, 16)
	}
	if m.EthDstMask != (MAC{}) {
		sep()
		b = append(b, "dl_dst="...)
		b = m.EthDst.appendText(b)
		if m.EthDstMask != exactMask() {
			b = append(b, '/')
			b = m.EthDstMask.appendText(b)
		}
	}
	return m.appendFilterText(b, start)
}

// appendFilterText appends the filter table's fields, in the order and shorthand ovs-ofctl dump-flows prints.
func (m Match) appendFilterText(b []byte, start int) []byte {
	sep := func() {
		if len(b) > start {
			b = append(b, ',')
		}
	}
	if m.HasReg0 {
		sep()
		b = append(b, "reg0=0x"...)
		b = strconv.AppendUint(b, uint64(m.Reg0), 16)
	}
	if m.EthType != 0 {
		sep()
		name := ""
		switch {
		case m.EthType == EthTypeARP:
			name = "arp"
		case m.EthType == EthTypeIPv4 && !m.HasIPProto:
			name = "ip"
		case m.EthType == EthTypeIPv6 && !m.HasIPProto:
			name = "ipv6"
		case m.EthType == EthTypeIPv4 && m.IPProto == 6:
			name = "tcp"
		case m.EthType == EthTypeIPv4 && m.IPProto == 17:
			name = "udp"
		case m.EthType == EthTypeIPv4 && m.IPProto == 1:
			name = "icmp"
		case m.EthType == EthTypeIPv6 && m.IPProto == 6:
			name = "tcp6"
		case m.EthType == EthTypeIPv6 && m.IPProto == 17:
			name = "udp6"
		case m.EthType == EthTypeIPv6 && m.IPProto == 58:
			name = "icmp6"
		case m.EthType == EthTypeIPv4:
			name = "ip"
		case m.EthType == EthTypeIPv6:
			name = "ipv6"
		}
		if name != "" {
			b = append(b, name...)
		} else {
			b = append(b, "dl_type=0x"...)
			b = strconv.AppendUint(b, uint64(m.EthType), 16)
		}
	}
	src, dst := "nw_src=", "nw_dst="
	if m.EthType == EthTypeIPv6 {
		src, dst = "ipv6_src=", "ipv6_dst="
	}
	for _, x := range []struct {
		name string
		p    netip.Prefix
	}{{src, m.IPSrc}, {dst, m.IPDst}} {
		if !x.p.IsValid() {
			continue
		}
		sep()
		b = append(b, x.name...)
		b = x.p.Addr().AppendTo(b)
		if x.p.Bits() != x.p.Addr().BitLen() {
			b = append(b, '/')
			b = strconv.AppendInt(b, int64(x.p.Bits()), 10)
		}
	}
	if m.HasIPProto && !(m.IPProto == 6 || m.IPProto == 17 || (m.IPProto == 1 && m.EthType == EthTypeIPv4) ||
		(m.IPProto == 58 && m.EthType == EthTypeIPv6)) {
		sep()
		b = append(b, "nw_proto="...)
		b = strconv.AppendUint(b, uint64(m.IPProto), 10)
	}
	for _, x := range []struct {
		name   string
		v, msk uint16
	}{{"tp_src=", m.TPSrc, m.TPSrcMask}, {"tp_dst=", m.TPDst, m.TPDstMask}} {
		if x.msk == 0 {
			continue
		}
		sep()
		b = append(b, x.name...)
		if x.msk == 0xffff {
			b = strconv.AppendUint(b, uint64(x.v), 10)
		} else {
			b = append(b, "0x"...)
			b = strconv.AppendUint(b, uint64(x.v), 16)
			b = append(b, "/0x"...)
			b = strconv.AppendUint(b, uint64(x.msk), 16)
		}
	}
	return b
}

// String formats the action in ovs-ofctl syntax.
func (a Action) String() string { return string(a.appendText(nil)) }

func (a Action) appendText(b []byte) []byte {
	switch a.Type {
	case ActOutput:
		b = append(b, "output:"...)
		return strconv.AppendUint(b, uint64(a.Port), 10)
	case ActNormal:
		return append(b, "NORMAL"...)
	case ActSetTunID:
		b = append(b, "set_field:0x"...)
		b = strconv.AppendUint(b, a.Value, 16)
		return append(b, "->tun_id"...)
	case ActSetTunDst:
		b = append(b, "set_field:"...)
		b = a.IP.Addr().AppendTo(b)
		return append(b, "->tun_dst"...)
	case ActSetReg0:
		b = append(b, "set_field:0x"...)
		b = strconv.AppendUint(b, a.Value, 16)
		return append(b, "->reg0"...)
	case ActOutputTrunc:
		b = append(b, "output(port="...)
		b = strconv.AppendUint(b, uint64(a.Port), 10)
		b = append(b, ",max_len="...)
		b = strconv.AppendUint(b, a.Value, 10)
		return append(b, ')')
	case ActResubmit:
		b = append(b, "resubmit(,"...)
		b = strconv.AppendUint(b, a.Value, 10)
		return append(b, ')')
	}
	if e, ok := appendErspanText(b, a); ok {
		return e
	}
	return fmt.Appendf(b, "unknown_action_%d", a.Type)
}

// ParseFlow parses the subset of ovs-ofctl flow syntax that String prints, and also the lines of
// `ovs-ofctl -O OpenFlow13 --no-names dump-flows` for such flows (their statistics are ignored).
func ParseFlow(s string) (Flow, error) {
	var f Flow
	s = strings.TrimSpace(s)
	head, acts, ok := strings.Cut(s, "actions=")
	if !ok {
		return f, fmt.Errorf("flow %q: no actions=", s)
	}
	fields := strings.FieldsFunc(head, func(r rune) bool { return r == ',' || r == ' ' })
	for _, field := range fields {
		k, v, _ := strings.Cut(field, "=")
		var err error
		switch k {
		case "cookie":
			f.Cookie, err = strconv.ParseUint(v, 0, 64)
		case "table":
			var n uint64
			n, err = strconv.ParseUint(v, 10, 8)
			f.Table = uint8(n)
		case "priority":
			var n uint64
			n, err = strconv.ParseUint(v, 10, 16)
			f.Priority = uint16(n)
		case "in_port":
			var n uint64
			n, err = strconv.ParseUint(v, 10, 32)
			if err == nil && n == 0 {
				err = fmt.Errorf("in_port 0 is not a port")
			}
			f.Match.InPort = uint32(n)
		case "tun_id":
			f.Match.TunID, err = strconv.ParseUint(v, 0, 64)
			f.Match.HasTunID = true
		case "dl_dst", "eth_dst":
			addr, mask, masked := strings.Cut(v, "/")
			f.Match.EthDst, err = ParseMAC(addr)
			f.Match.EthDstMask = exactMask()
			if err == nil && masked {
				f.Match.EthDstMask, err = ParseMAC(mask)
			}
		case "reg0":
			var n uint64
			n, err = strconv.ParseUint(v, 0, 32)
			f.Match.Reg0, f.Match.HasReg0 = uint32(n), true
		case "ip", "ipv6", "arp", "tcp", "udp", "icmp", "tcp6", "udp6", "icmp6":
			f.Match.EthType = map[string]uint16{"ip": EthTypeIPv4, "tcp": EthTypeIPv4, "udp": EthTypeIPv4,
				"icmp": EthTypeIPv4, "arp": EthTypeARP}[k]
			if f.Match.EthType == 0 {
				f.Match.EthType = EthTypeIPv6
			}
			if p, ok := map[string]uint8{"tcp": 6, "udp": 17, "icmp": 1, "tcp6": 6, "udp6": 17, "icmp6": 58}[k]; ok {
				f.Match.IPProto, f.Match.HasIPProto = p, true
			}
		case "dl_type", "eth_type":
			var n uint64
			n, err = strconv.ParseUint(v, 0, 16)
			f.Match.EthType = uint16(n)
		case "nw_proto", "ip_proto":
			var n uint64
			n, err = strconv.ParseUint(v, 0, 8)
			f.Match.IPProto, f.Match.HasIPProto = uint8(n), true
		case "nw_src", "ipv6_src", "ip_src":
			f.Match.IPSrc, err = parsePrefix(v)
		case "nw_dst", "ipv6_dst", "ip_dst":
			f.Match.IPDst, err = parsePrefix(v)
		case "tp_src", "tcp_src", "udp_src":
			f.Match.TPSrc, f.Match.TPSrcMask, err = parseMasked16(v)
		case "tp_dst", "tcp_dst", "udp_dst":
			f.Match.TPDst, f.Match.TPDstMask, err = parseMasked16(v)
		case "duration", "n_packets", "n_bytes", "idle_age", "hard_age", "reset_counts":
			// statistics of dump-flows
		default:
			err = fmt.Errorf("unsupported field")
		}
		if err != nil {
			return Flow{}, fmt.Errorf("flow %q: field %q: %w", s, field, err)
		}
	}
	acts = strings.TrimSpace(acts)
	if acts == "drop" || acts == "" {
		return f, nil
	}
	for i, a := range SplitActions(acts) {
		if i == 0 && strings.HasPrefix(a, "meter:") {
			n, err := strconv.ParseUint(strings.TrimPrefix(a, "meter:"), 10, 32)
			if err != nil || n == 0 {
				return Flow{}, fmt.Errorf("flow %q: %q: not a meter id", s, a)
			}
			f.Meter = uint32(n)
			continue
		}
		if strings.HasPrefix(a, "clone(") && strings.HasSuffix(a, ")") {
			inner := SplitActions(a[len("clone(") : len(a)-1])
			f.Actions = append(f.Actions, Action{Type: ActClone, Value: uint64(len(inner))})
			for _, x := range inner {
				act, err := parseAction(x)
				if err != nil || act.Type == ActClone {
					return Flow{}, fmt.Errorf("flow %q: action %q in clone: %w", s, x, err)
				}
				f.Actions = append(f.Actions, act)
			}
			continue
		}
		act, err := parseAction(a)
		if err != nil {
			return Flow{}, fmt.Errorf("flow %q: action %q: %w", s, a, err)
		}
		f.Actions = append(f.Actions, act)
	}
	return f, nil
}

func parseAction(a string) (Action, error) {
	switch {
	case a == "NORMAL" || a == "normal":
		return Action{Type: ActNormal}, nil
	case strings.HasPrefix(a, "output(port=") && strings.HasSuffix(a, ")"):
		port, ml, ok := strings.Cut(strings.TrimSuffix(strings.TrimPrefix(a, "output(port="), ")"), ",max_len=")
		if !ok {
			return Action{}, fmt.Errorf("output(...) without max_len")
		}
		p, err := strconv.ParseUint(port, 10, 32)
		if err != nil {
			return Action{}, err
		}
		n, err := strconv.ParseUint(ml, 10, 32)
		return Action{Type: ActOutputTrunc, Port: uint32(p), Value: n}, err
	case strings.HasPrefix(a, "resubmit(,") && strings.HasSuffix(a, ")"):
		n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(a, "resubmit(,"), ")"), 10, 8)
		return Action{Type: ActResubmit, Value: n}, err
	case strings.HasPrefix(a, "load:") && strings.HasSuffix(a, "->NXM_NX_REG0[]"):
		n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(a, "load:"), "->NXM_NX_REG0[]"), 0, 32)
		return Action{Type: ActSetReg0, Value: n}, err
	case strings.HasPrefix(a, "output:"):
		n, err := strconv.ParseUint(strings.TrimPrefix(a, "output:"), 10, 32)
		return Action{Type: ActOutput, Port: uint32(n)}, err
	case strings.HasPrefix(a, "set_field:"):
		v, field, ok := strings.Cut(strings.TrimPrefix(a, "set_field:"), "->")
		if !ok {
			return Action{}, fmt.Errorf("set_field without ->")
		}
		switch field {
		case "tun_id":
			n, err := strconv.ParseUint(v, 0, 64)
			return Action{Type: ActSetTunID, Value: n}, err
		case "reg0":
			n, err := strconv.ParseUint(v, 0, 32)
			return Action{Type: ActSetReg0, Value: n}, err
		case "tun_dst":
			addr, err := netip.ParseAddr(v)
			ip, ok := IPv4Of(addr)
			if err == nil && !ok {
				err = fmt.Errorf("tun_dst %s is not IPv4", addr)
			}
			return Action{Type: ActSetTunDst, IP: ip}, err
		}
		if e, ok, err := parseErspanSetField(v, field); ok {
			return e, err
		}
		return Action{}, fmt.Errorf("unsupported set_field target %q", field)
	}
	if n, err := strconv.ParseUint(a, 10, 32); err == nil {
		return Action{Type: ActOutput, Port: uint32(n)}, nil
	}
	return Action{}, fmt.Errorf("unsupported action")
}

// SplitActions splits an action list (ovs-ofctl's, or a trace's datapath actions) at the commas outside
// parentheses: "clone(tnl_push(...),3),1" is two actions.
func SplitActions(s string) []string {
	var out []string
	depth, start := 0, 0
	for i, c := range s {
		switch c {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, strings.TrimSpace(s[start:i]))
				start = i + 1
			}
		}
	}
	if t := strings.TrimSpace(s[start:]); t != "" {
		out = append(out, t)
	}
	return out
}

func parsePrefix(v string) (netip.Prefix, error) {
	if strings.Contains(v, "/") {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			// ovs-ofctl may print an IPv4 mask as a dotted quad.
			addr, mask, _ := strings.Cut(v, "/")
			a, err1 := netip.ParseAddr(addr)
			m, err2 := netip.ParseAddr(mask)
			if err1 != nil || err2 != nil {
				return p, err
			}
			bits := 0
			for _, x := range m.AsSlice() {
				for i := 7; i >= 0 && x&(1<<i) != 0; i-- {
					bits++
				}
			}
			return netip.PrefixFrom(a, bits).Masked(), nil
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func parseMasked16(v string) (val, mask uint16, err error) {
	x, m, masked := strings.Cut(v, "/")
	n, err := strconv.ParseUint(x, 0, 16)
	if err != nil {
		return 0, 0, err
	}
	mask = 0xffff
	if masked {
		k, err := strconv.ParseUint(m, 0, 16)
		if err != nil {
			return 0, 0, err
		}
		mask = uint16(k)
	}
	return uint16(n) & mask, mask, nil
}
