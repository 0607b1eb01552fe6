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
	if len(f.Actions) == 0 {
		b = append(b, "drop"...)
	}
	for i, a := range f.Actions {
		if i > 0 {
			b = append(b, ',')
		}
		b = a.appendText(b)
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
		b = a.IP.AppendTo(b)
		return append(b, "->tun_dst"...)
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
	for _, a := range SplitActions(acts) {
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
		case "tun_dst":
			ip, err := netip.ParseAddr(v)
			if err == nil && !ip.Is4() {
				err = fmt.Errorf("tun_dst %s is not IPv4", ip)
			}
			return Action{Type: ActSetTunDst, IP: ip}, err
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
