package flows

import (
	"fmt"
	"net/netip"

	"portmirror/model"
)

// Input is everything the compiler reads: the sessions of the enabled port mirrors, and the live view of NICs,
// flow endpoints and bridges. Datapath ids are 16 lower-case hex digits (model.NormalizeDatapathID). The compiler
// never modifies an Input.
type Input struct {
	// Sessions of the ENABLED port mirrors only; a disabled port mirror's sessions are left out.
	Sessions []Session
	// NICs by NIC uuid: every NIC a session names. A NIC missing here is reported as unknown.
	NICs map[string]NIC
	// Endpoints by (flow network, datapath): the tunnel endpoint of that bridge's host on the flow network and
	// the OpenFlow port of the flow network's tunnel port (model.TunnelPortName) on the bridge.
	Endpoints map[EndpointKey]Endpoint
	// Bridges by datapath id: the switches that are connected, with the ports they have. A bridge missing here is
	// reported as not connected.
	Bridges map[string]Bridge
}

// Session is one session of an enabled port mirror, with what the compiler needs of its port mirror.
type Session struct {
	UUID           string
	Type           model.Direction
	SourceNIC      string // NIC uuid
	DestinationNIC string // NIC uuid
	TunnelKey      uint32 // the key copies carry on the flow network; one per destination NIC within it
	FlowNetwork    string // flow network uuid
	Encapsulation  model.Encapsulation
	// Filters select the frames the session copies: ordered, the first rule that matches decides, a frame no
	// rule matches is not copied. Empty: every frame. In canonical form (model.FilterRule.Canonical).
	Filters []model.FilterRule
	// Revision is the stored definition's revision (model.Session.Revision). The compiler ignores it; the
	// controller reports which revision it programmed.
	Revision uint64
	// SnapLength cuts the session's copies to this many bytes (64..65535); 0: whole frames.
	SnapLength uint16
	// BandwidthLimitKbps caps the session's copies (a meter per session on its source bridge); 0: unlimited.
	BandwidthLimitKbps uint32
}

// NIC is a VM NIC as the compiler sees it: its MAC and where it is attached now.
type NIC struct {
	MAC        string // "aa:bb:cc:dd:ee:ff"
	DatapathID string // the bridge it is bound to; empty while unbound
	Port       uint32 // its OpenFlow port number on that bridge
}

// Bound reports whether the NIC is bound to a switch port.
func (n NIC) Bound() bool { return n.DatapathID != "" && n.Port != 0 }

// EndpointKey names a host's endpoint on a flow network by the host's bridge.
type EndpointKey struct {
	FlowNetwork string // flow network uuid
	DatapathID  string
}

// Endpoint is what one bridge has of one flow network.
type Endpoint struct {
	IP         netip.Addr // the host's tunnel endpoint IPv4 address; the zero Addr when it has none
	TunnelPort uint32     // OpenFlow port number of the flow network's tunnel port on the bridge; 0 when missing
}

// Bridge is a connected switch.
type Bridge struct {
	Ports []uint32 // the OpenFlow port numbers the switch reports (port-desc and port-status); sorted is fastest
}

// ParseMAC parses a colon-separated Ethernet address such as "aa:bb:cc:dd:ee:ff" (upper or lower case).
func ParseMAC(s string) (MAC, error) {
	var m MAC
	if len(s) != 17 {
		return m, fmt.Errorf("MAC %q: want six colon-separated hex bytes", s)
	}
	for i := range 6 {
		if i > 0 && s[3*i-1] != ':' {
			return m, fmt.Errorf("MAC %q: want six colon-separated hex bytes", s)
		}
		hi, ok1 := unhex(s[3*i])
		lo, ok2 := unhex(s[3*i+1])
		if !ok1 || !ok2 {
			return m, fmt.Errorf("MAC %q: %q is not a hex byte", s, s[3*i:3*i+2])
		}
		m[i] = hi<<4 | lo
	}
	return m, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// String formats the address as lower-case, colon-separated hex.
func (m MAC) String() string { return string(m.appendText(make([]byte, 0, 17))) }

func (m MAC) appendText(b []byte) []byte {
	const digits = "0123456789abcdef"
	for i, x := range m {
		if i > 0 {
			b = append(b, ':')
		}
		b = append(b, digits[x>>4], digits[x&0xf])
	}
	return b
}

// IsMulticast reports whether the group bit is set (broadcast included).
func (m MAC) IsMulticast() bool { return m[0]&1 == 1 }

// MatchMulticast returns the dl_dst match of every frame whose group bit is set (broadcast included):
// dl_dst=01:00:00:00:00:00/01:00:00:00:00:00.
func MatchMulticast() (mac, mask MAC) { return MAC{0x01}, MAC{0x01} }

// exactMask is the dl_dst mask of one exact address.
func exactMask() MAC { return MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff} }
