package service

import (
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"unicode/utf8"

	"portmirror/model"
)

// Limits of API.md.
const (
	maxNameLen        = 128
	maxDescriptionLen = 1024
	maxBridgeLen      = 15 // an interface name
	maxPortNameLen    = 64
	// maxTunnelKey keeps keys within GraphQL's Int.
	maxTunnelKey = 1<<31 - 1
)

func invalid(format string, a ...any) *Error {
	return &Error{Code: CodeValidation, Rule: RuleInvalidArgument,
		Message: fmt.Sprintf(format, a...) + " (rule " + string(RuleInvalidArgument) + ")"}
}

func refuse(code Code, rule Rule, format string, a ...any) *Error {
	return &Error{Code: code, Rule: rule, Message: fmt.Sprintf(format, a...) + " (rule " + string(rule) + ")"}
}

func notFound(kind, uuid string) *Error {
	return &Error{Code: CodeNotFound, Message: fmt.Sprintf("%s %s not found", kind, uuid)}
}

func checkName(what, name string) error {
	if strings.TrimSpace(name) == "" {
		return invalid("%s: name is empty", what)
	}
	if n := utf8.RuneCountInString(name); n > maxNameLen {
		return invalid("%s: name has %d characters, more than %d", what, n, maxNameLen)
	}
	if !utf8.ValidString(name) {
		return invalid("%s: name is not valid UTF-8", what)
	}
	return nil
}

func checkDescription(what, d string) error {
	if n := utf8.RuneCountInString(d); n > maxDescriptionLen {
		return invalid("%s: description has %d characters, more than %d", what, n, maxDescriptionLen)
	}
	if !utf8.ValidString(d) {
		return invalid("%s: description is not valid UTF-8", what)
	}
	return nil
}

// canonicalUUID returns s in lower case when it is a canonical 8-4-4-4-12 hex UUID.
func canonicalUUID(s string) (string, bool) {
	if len(s) != 36 {
		return "", false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return "", false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return "", false
			}
		}
	}
	return strings.ToLower(s), true
}

// newOrGivenUUID returns the client's uuid normalised, or a new random one when none is given.
func newOrGivenUUID(what, given string) (string, error) {
	if given == "" {
		return newUUID(), nil
	}
	u, ok := canonicalUUID(given)
	if !ok {
		return "", invalid("%s: uuid %q is not a canonical UUID (8-4-4-4-12 hex digits)", what, given)
	}
	return u, nil
}

// ref normalises a uuid that refers to an object: lower case, trimmed.
func ref(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// createRef is the resourceUuid of a create's audit event: the client's uuid when it is one, else none (a
// malformed one is in the event's detail and error, not in the field that audits(resourceUuid) searches).
func createRef(s string) string {
	if u, ok := canonicalUUID(strings.TrimSpace(s)); ok {
		return u
	}
	return ""
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// normMAC returns a MAC in lower-case colon form; a NIC's MAC must be unicast.
func normMAC(what, s string) (string, error) {
	hw, err := net.ParseMAC(strings.TrimSpace(s))
	if err != nil || len(hw) != 6 {
		return "", invalid("%s: MAC %q is not a 48-bit MAC address", what, s)
	}
	if hw[0]&1 != 0 {
		return "", invalid("%s: MAC %q is a multicast address, a NIC needs a unicast one", what, s)
	}
	return hw.String(), nil
}

func normIP(what, field, s string) (string, error) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil || a.Zone() != "" {
		return "", invalid("%s: %s %q is not an IP address", what, field, s)
	}
	return a.Unmap().String(), nil
}

// normCIDR returns an IPv4 prefix in its masked form; it must leave at least two host addresses.
func normCIDR(what, s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil || !p.Addr().Is4() {
		return netip.Prefix{}, invalid("%s: cidr %q is not an IPv4 CIDR such as 198.18.0.0/24", what, s)
	}
	if p.Bits() > 30 {
		return netip.Prefix{}, invalid("%s: cidr %q leaves fewer than 2 host addresses (prefix at most /30)", what, s)
	}
	return p.Masked(), nil
}

func checkOVSDBAddress(what, s string) error {
	switch {
	case strings.HasPrefix(s, "tcp:"), strings.HasPrefix(s, "ssl:"):
		if _, err := netip.ParseAddrPort(s[len("tcp:"):]); err == nil {
			return nil
		}
		// OVS writes IPv4 as tcp:IP:PORT and IPv6 as tcp:[IP]:PORT; ParseAddrPort handles both.
	case strings.HasPrefix(s, "unix:"):
		if len(s) > len("unix:") && !strings.ContainsAny(s, " \t\n") {
			return nil
		}
	}
	return invalid("%s: ovsdbAddress %q is not \"tcp:IP:PORT\", \"ssl:IP:PORT\" or \"unix:PATH\"", what, s)
}

func checkIfaceName(what, field, s string, maxLen int) error {
	if s == "" || len(s) > maxLen {
		return invalid("%s: %s %q must have 1 to %d characters", what, field, s, maxLen)
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return invalid("%s: %s %q may only hold letters, digits, '-', '_' and '.'", what, field, s)
		}
	}
	return nil
}

func checkQoS(what string, q *model.NicQoS) error {
	if q == nil {
		return nil
	}
	for _, f := range []struct {
		name string
		v    *int64
	}{{"inboundBandwidthBps", q.InboundBandwidthBps}, {"outboundBandwidthBps", q.OutboundBandwidthBps}} {
		if f.v != nil && *f.v <= 0 {
			return invalid("%s: qos %s is %d, it must be positive (leave it null for no limit)", what, f.name, *f.v)
		}
	}
	return nil
}

// Names of objects in messages.

func descCluster(c model.Cluster) string { return fmt.Sprintf("cluster %q (%s)", c.Name, c.UUID) }
func descHost(h model.Host) string       { return fmt.Sprintf("host %q (%s)", h.Name, h.UUID) }
func descVM(v model.VmInstance) string   { return fmt.Sprintf("VM %q (%s)", v.Name, v.UUID) }
func descFN(f model.FlowNetwork) string  { return fmt.Sprintf("flow network %q (%s)", f.Name, f.UUID) }
func descPM(p model.PortMirror) string   { return fmt.Sprintf("port mirror %q (%s)", p.Name, p.UUID) }
func descSession(s model.Session) string {
	return fmt.Sprintf("session %q (%s)", s.Name, s.UUID)
}
