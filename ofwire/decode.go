package ofwire

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
)

// DecodeHello returns the versions a HELLO announces: the bitmap element if present, otherwise only the
// header's version (as OpenFlow 1.3 negotiation prescribes). Unknown elements are skipped.
func DecodeHello(h Header, body []byte) (VersionSet, error) {
	var set VersionSet
	found := false
	for b := body; len(b) > 0; {
		if len(b) < 4 {
			// Trailing bytes shorter than an element header: ignored, as older versions allowed any body.
			break
		}
		t, n := binary.BigEndian.Uint16(b), int(binary.BigEndian.Uint16(b[2:]))
		if n < 4 || n > len(b) {
			return 0, malformed("hello element type %d of length %d with %d bytes left", t, n, len(b))
		}
		if t == 1 {
			found = true
			if n >= 8 {
				// Only the first bitmap word matters: it covers versions 0 to 31.
				set |= VersionSet(binary.BigEndian.Uint32(b[4:]))
			}
		}
		adv := pad8(n)
		if adv > len(b) {
			adv = len(b)
		}
		b = b[adv:]
	}
	if !found {
		// Without a bitmap, the peer supports every version up to its own.
		v := min(h.Version, 31)
		set = (VersionSet(1)<<(v+1) - 1) &^ 1
	}
	return set, nil
}

// VersionSet is a bitmap of OpenFlow versions: bit v set means wire version v is supported.
type VersionSet uint32

// Has reports whether v is in the set.
func (s VersionSet) Has(v uint8) bool { return v < 32 && s&(1<<v) != 0 }

// ErrorMsg is a decoded OFPT_ERROR.
type ErrorMsg struct {
	Type uint16
	Code uint16
	// Data is the start of the offending message (or an ASCII text for HELLO_FAILED).
	Data []byte
}

func (e ErrorMsg) Error() string {
	s := fmt.Sprintf("OpenFlow error %s/%s", ErrorTypeName(e.Type), ErrorCodeName(e.Type, e.Code))
	if e.Type == ErrTypeHelloFailed && len(e.Data) > 0 {
		s += fmt.Sprintf(" (%q)", bytes.TrimRight(e.Data, "\x00"))
	}
	return s
}

// DecodeError decodes the body of an OFPT_ERROR.
func DecodeError(body []byte) (ErrorMsg, error) {
	if len(body) < 4 {
		return ErrorMsg{}, malformed("error body of %d bytes, want at least 4", len(body))
	}
	return ErrorMsg{Type: binary.BigEndian.Uint16(body), Code: binary.BigEndian.Uint16(body[2:]), Data: body[4:]}, nil
}

// Features is a decoded FEATURES_REPLY.
type Features struct {
	DatapathID   uint64
	NBuffers     uint32
	NTables      uint8
	AuxiliaryID  uint8
	Capabilities uint32
}

// DecodeFeaturesReply decodes the body of a FEATURES_REPLY.
func DecodeFeaturesReply(body []byte) (Features, error) {
	if len(body) < 24 {
		return Features{}, malformed("features reply body of %d bytes, want 24", len(body))
	}
	return Features{
		DatapathID:   binary.BigEndian.Uint64(body),
		NBuffers:     binary.BigEndian.Uint32(body[8:]),
		NTables:      body[12],
		AuxiliaryID:  body[13],
		Capabilities: binary.BigEndian.Uint32(body[16:]),
	}, nil
}

// Port is a decoded ofp_port.
type Port struct {
	PortNo uint32
	HWAddr net.HardwareAddr
	Name   string
	Config uint32 // OFPPC_*: bit 0 PORT_DOWN
	State  uint32 // OFPPS_*: bit 0 LINK_DOWN
	Curr   uint32
	Speed  uint32 // current speed in kbps
}

// Up reports whether the port is administratively up and its link is up.
func (p Port) Up() bool { return p.Config&1 == 0 && p.State&1 == 0 }

const portLen = 64

func decodePort(b []byte) (Port, error) {
	if len(b) < portLen {
		return Port{}, malformed("port of %d bytes, want %d", len(b), portLen)
	}
	name := b[16:32]
	if i := bytes.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	return Port{
		PortNo: binary.BigEndian.Uint32(b),
		HWAddr: net.HardwareAddr(bytes.Clone(b[8:14])),
		Name:   string(name),
		Config: binary.BigEndian.Uint32(b[32:]),
		State:  binary.BigEndian.Uint32(b[36:]),
		Curr:   binary.BigEndian.Uint32(b[40:]),
		Speed:  binary.BigEndian.Uint32(b[56:]),
	}, nil
}

// PortReason says why a port-status message was sent (OFPPR_*).
type PortReason uint8

// Port-status reasons.
const (
	PortAdded    PortReason = 0
	PortDeleted  PortReason = 1
	PortModified PortReason = 2
)

func (r PortReason) String() string {
	switch r {
	case PortAdded:
		return "ADD"
	case PortDeleted:
		return "DELETE"
	case PortModified:
		return "MODIFY"
	}
	return fmt.Sprintf("REASON_%d", uint8(r))
}

// PortStatus is a decoded PORT_STATUS.
type PortStatus struct {
	Reason PortReason
	Port   Port
}

// DecodePortStatus decodes the body of a PORT_STATUS.
func DecodePortStatus(body []byte) (PortStatus, error) {
	if len(body) != 8+portLen {
		return PortStatus{}, malformed("port status body of %d bytes, want %d", len(body), 8+portLen)
	}
	if PortReason(body[0]) > PortModified {
		return PortStatus{}, malformed("port status reason %d", body[0])
	}
	p, err := decodePort(body[8:])
	return PortStatus{Reason: PortReason(body[0]), Port: p}, err
}

// MultipartReply is a decoded multipart reply header and its body.
type MultipartReply struct {
	Type  uint16
	Flags uint16
	Body  []byte
}

// More reports whether more parts of the reply follow.
func (m MultipartReply) More() bool { return m.Flags&MultipartReplyMore != 0 }

// DecodeMultipartReply decodes the body of a MULTIPART_REPLY.
func DecodeMultipartReply(body []byte) (MultipartReply, error) {
	if len(body) < 8 {
		return MultipartReply{}, malformed("multipart reply body of %d bytes, want at least 8", len(body))
	}
	return MultipartReply{Type: binary.BigEndian.Uint16(body), Flags: binary.BigEndian.Uint16(body[2:]), Body: body[8:]}, nil
}

// DecodePortDesc decodes the body of a PORT_DESC multipart reply part.
func DecodePortDesc(b []byte) ([]Port, error) {
	if len(b)%portLen != 0 {
		return nil, malformed("port-desc body of %d bytes is not a multiple of %d", len(b), portLen)
	}
	ports := make([]Port, 0, len(b)/portLen)
	for ; len(b) > 0; b = b[portLen:] {
		p, err := decodePort(b)
		if err != nil {
			return nil, err
		}
		ports = append(ports, p)
	}
	return ports, nil
}
