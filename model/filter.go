package model

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// FilterAction says what a filter rule does with the frames it matches.
type FilterAction string

const (
	FilterAccept FilterAction = "ACCEPT" // copy the frame
	FilterReject FilterAction = "REJECT" // do not copy it
)

// FilterRule is one rule of a session's ordered filter, in the API's canonical text form (see Canonical). An empty
// field matches anything.
type FilterRule struct {
	Action           FilterAction `json:"action"`
	Protocol         string       `json:"protocol,omitempty"` // "tcp", "udp", "icmp", "icmpv6", "arp" or a number 0..255
	SourceCIDR       string       `json:"sourceCidr,omitempty"`
	DestinationCIDR  string       `json:"destinationCidr,omitempty"`
	SourcePorts      string       `json:"sourcePorts,omitempty"` // "80" or "1024-65535"
	DestinationPorts string       `json:"destinationPorts,omitempty"`
}

// MaxFilterRules is how many rules one session's filter may hold.
const MaxFilterRules = 64

// IP protocol numbers named by filters.
const (
	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoICMPv6 = 58
)

// PortRange is an inclusive range of TCP or UDP ports.
type PortRange struct{ Lo, Hi uint16 }

// Any reports whether the range is every port.
func (r PortRange) Any() bool { return r.Lo == 0 && r.Hi == 0xffff }

// ParsedRule is a FilterRule checked and decoded.
type ParsedRule struct {
	Accept bool
	// ARP: the rule matches ARP frames only (no CIDR, no ports).
	ARP bool
	// Proto is the IP protocol; -1: any (with IPv4 and IPv6 below, or any frame when neither is constrained).
	Proto int
	// IPv4, IPv6: which IP families the rule can match. Both false: any frame, IP or not.
	IPv4, IPv6 bool
	Src, Dst   netip.Prefix // invalid: any
	SrcPorts   PortRange
	DstPorts   PortRange
}

// Parse checks the rule and decodes it. The error names the field and the rule broken.
func (r FilterRule) Parse() (ParsedRule, error) {
	p := ParsedRule{Proto: -1, SrcPorts: PortRange{0, 0xffff}, DstPorts: PortRange{0, 0xffff}}
	switch r.Action {
	case FilterAccept, "":
		p.Accept = true
	case FilterReject:
	default:
		return p, fmt.Errorf("action %q is not ACCEPT or REJECT", r.Action)
	}
	proto := strings.ToLower(strings.TrimSpace(r.Protocol))
	switch proto {
	case "":
	case "tcp":
		p.Proto = ProtoTCP
	case "udp":
		p.Proto = ProtoUDP
	case "icmp":
		p.Proto, p.IPv4 = ProtoICMP, true
	case "icmpv6":
		p.Proto, p.IPv6 = ProtoICMPv6, true
	case "arp":
		p.ARP = true
	default:
		n, err := strconv.ParseUint(proto, 10, 8)
		if err != nil {
			return p, fmt.Errorf("protocol %q is not tcp, udp, icmp, icmpv6, arp or an IP protocol number 0..255", r.Protocol)
		}
		p.Proto = int(n)
	}
	var err error
	if p.Src, err = parseFilterCIDR("sourceCidr", r.SourceCIDR); err != nil {
		return p, err
	}
	if p.Dst, err = parseFilterCIDR("destinationCidr", r.DestinationCIDR); err != nil {
		return p, err
	}
	if p.ARP && (p.Src.IsValid() || p.Dst.IsValid()) {
		return p, fmt.Errorf("protocol arp takes no sourceCidr or destinationCidr")
	}
	fam4, fam6 := false, false
	for _, c := range []netip.Prefix{p.Src, p.Dst} {
		if c.IsValid() {
			fam4, fam6 = fam4 || c.Addr().Is4(), fam6 || c.Addr().Is6()
		}
	}
	if fam4 && fam6 {
		return p, fmt.Errorf("sourceCidr %q and destinationCidr %q are of different IP families", r.SourceCIDR, r.DestinationCIDR)
	}
	switch {
	case p.IPv4 && fam6:
		return p, fmt.Errorf("protocol icmp is IPv4 only, but a CIDR is IPv6")
	case p.IPv6 && fam4:
		return p, fmt.Errorf("protocol icmpv6 is IPv6 only, but a CIDR is IPv4")
	case fam4:
		p.IPv4 = true
	case fam6:
		p.IPv6 = true
	case p.Proto >= 0 && !p.IPv4 && !p.IPv6:
		p.IPv4, p.IPv6 = true, true
	}
	if p.SrcPorts, err = parsePorts("sourcePorts", r.SourcePorts); err != nil {
		return p, err
	}
	if p.DstPorts, err = parsePorts("destinationPorts", r.DestinationPorts); err != nil {
		return p, err
	}
	if (r.SourcePorts != "" || r.DestinationPorts != "") && p.Proto != ProtoTCP && p.Proto != ProtoUDP {
		return p, fmt.Errorf("ports are given for protocol %q; ports apply to tcp and udp only", r.Protocol)
	}
	return p, nil
}

func parseFilterCIDR(field, s string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, nil
	}
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		// A bare address is a host prefix.
		a, err2 := netip.ParseAddr(strings.TrimSpace(s))
		if err2 != nil || a.Zone() != "" {
			return p, fmt.Errorf("%s %q is not an IPv4 or IPv6 CIDR", field, s)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if p.Addr().Zone() != "" || p.Addr().Is4In6() {
		return p, fmt.Errorf("%s %q is not an IPv4 or IPv6 CIDR", field, s)
	}
	return p.Masked(), nil
}

func parsePorts(field, s string) (PortRange, error) {
	all := PortRange{0, 0xffff}
	if s == "" {
		return all, nil
	}
	lo, hi, isRange := strings.Cut(strings.TrimSpace(s), "-")
	if !isRange {
		hi = lo
	}
	a, err1 := strconv.ParseUint(strings.TrimSpace(lo), 10, 16)
	b, err2 := strconv.ParseUint(strings.TrimSpace(hi), 10, 16)
	if err1 != nil || err2 != nil {
		return all, fmt.Errorf("%s %q is not a port (0..65535) or a range such as 1024-65535", field, s)
	}
	if a > b {
		return all, fmt.Errorf("%s %q: the range's first port is above its last", field, s)
	}
	return PortRange{uint16(a), uint16(b)}, nil
}

// Canonical returns the rule in canonical text form (action ACCEPT when empty, protocol in lower case, CIDRs
// masked, ports without a redundant range); it fails as Parse does.
func (r FilterRule) Canonical() (FilterRule, error) {
	p, err := r.Parse()
	if err != nil {
		return r, err
	}
	out := FilterRule{Action: FilterReject}
	if p.Accept {
		out.Action = FilterAccept
	}
	out.Protocol = strings.ToLower(strings.TrimSpace(r.Protocol))
	if p.Src.IsValid() {
		out.SourceCIDR = p.Src.String()
	}
	if p.Dst.IsValid() {
		out.DestinationCIDR = p.Dst.String()
	}
	portText := func(given string, pr PortRange) string {
		switch {
		case given == "":
			return ""
		case pr.Lo == pr.Hi:
			return strconv.Itoa(int(pr.Lo))
		}
		return fmt.Sprintf("%d-%d", pr.Lo, pr.Hi)
	}
	out.SourcePorts = portText(r.SourcePorts, p.SrcPorts)
	out.DestinationPorts = portText(r.DestinationPorts, p.DstPorts)
	return out, nil
}

// FilterKey is a filter's identity: two sessions with equal keys select the same frames. "" is no filter.
func FilterKey(rules []FilterRule) string {
	if len(rules) == 0 {
		return ""
	}
	var b strings.Builder
	for _, r := range rules {
		fmt.Fprintf(&b, "%s|%s|%s|%s|%s|%s;", r.Action, r.Protocol, r.SourceCIDR, r.DestinationCIDR, r.SourcePorts, r.DestinationPorts)
	}
	return b.String()
}

// PortMasks returns the fewest (value, mask) pairs whose union is exactly the range.
func (r PortRange) PortMasks() [][2]uint16 {
	var out [][2]uint16
	lo, hi := uint32(r.Lo), uint32(r.Hi)
	for lo <= hi {
		// The largest aligned block starting at lo that stays within hi.
		size := uint32(1)
		for lo%(size*2) == 0 && lo+size*2-1 <= hi && size*2 <= 0x10000 {
			size *= 2
		}
		out = append(out, [2]uint16{uint16(lo), uint16(^(size - 1))})
		lo += size
	}
	return out
}
