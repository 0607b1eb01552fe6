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
func (f Flow) String() string {
	var b strings.Builder
	b.Grow(96 + 40*len(f.Actions))
	fmt.Fprintf(&b, "cookie=%#x, table=%d, priority=%d", f.Cookie, f.Table, f.Priority)
	if m := f.Match.String(); m != "" {
		b.WriteString(", ")
		b.WriteString(m)
	}
	b.WriteString(" actions=")
	if len(f.Actions) == 0 {
		b.WriteString("drop")
	}
	for i, a := range f.Actions {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(a.String())
	}
	return b.String()
}

// String formats the match as comma-separated ovs-ofctl fields; empty for the match-everything zero value.
func (m Match) String() string {
	var parts []string
	if m.InPort != 0 {
		parts = append(parts, "in_port="+strconv.FormatUint(uint64(m.InPort), 10))
	}
	if m.HasTunID {
		parts = append(parts, "tun_id="+"0x"+strconv.FormatUint(m.TunID, 16))
	}
	switch m.EthDstMask {
	case MAC{}:
	case exactMask():
		parts = append(parts, "dl_dst="+m.EthDst.String())
	default:
		parts = append(parts, "dl_dst="+m.EthDst.String()+"/"+m.EthDstMask.String())
	}
	return strings.Join(parts, ",")
}

// String formats the action in ovs-ofctl syntax.
func (a Action) String() string {
	switch a.Type {
	case ActOutput:
		return "output:" + strconv.FormatUint(uint64(a.Port), 10)
	case ActNormal:
		return "NORMAL"
	case ActSetTunID:
		return "set_field:0x" + strconv.FormatUint(a.Value, 16) + "->tun_id"
	case ActSetTunDst:
		return "set_field:" + a.IP.String() + "->tun_dst"
	}
	return fmt.Sprintf("unknown_action_%d", a.Type)
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
	for _, a := range strings.Split(acts, ",") {
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
