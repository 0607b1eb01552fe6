// Package ofwire is the OpenFlow 1.3 wire layer of the controller: framing of messages read from a switch, safe
// decoders for the messages the controller needs (every length checked before it is used, no panics on hostile
// input), encoders for the messages it sends, and the conversion between flows.Flow and flow_mod / flow-stats
// entries. It does no I/O beyond reading frames from a bufio.Reader.
//
// Encoding is written by hand with encoding/binary (the flow_mod path must sustain well over 100k messages/s);
// the tests hold every encoder byte for byte against github.com/netrack/openflow, whose encoders are correct.
// Decoding is written by hand too: that library's decoders panic or lose data on some inputs.
package ofwire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Version is the OpenFlow version the controller speaks: 1.3.
const Version uint8 = 4

// HeaderLen is the length of the OpenFlow header.
const HeaderLen = 8

// MaxMessageLen is the largest OpenFlow message: the length field is 16 bits.
const MaxMessageLen = 65535

// Type is an OpenFlow 1.3 message type.
type Type uint8

// OpenFlow 1.3 message types.
const (
	TypeHello               Type = 0
	TypeError               Type = 1
	TypeEchoRequest         Type = 2
	TypeEchoReply           Type = 3
	TypeExperimenter        Type = 4
	TypeFeaturesRequest     Type = 5
	TypeFeaturesReply       Type = 6
	TypeGetConfigRequest    Type = 7
	TypeGetConfigReply      Type = 8
	TypeSetConfig           Type = 9
	TypePacketIn            Type = 10
	TypeFlowRemoved         Type = 11
	TypePortStatus          Type = 12
	TypePacketOut           Type = 13
	TypeFlowMod             Type = 14
	TypeGroupMod            Type = 15
	TypePortMod             Type = 16
	TypeTableMod            Type = 17
	TypeMultipartRequest    Type = 18
	TypeMultipartReply      Type = 19
	TypeBarrierRequest      Type = 20
	TypeBarrierReply        Type = 21
	TypeQueueGetConfigReq   Type = 22
	TypeQueueGetConfigReply Type = 23
	TypeRoleRequest         Type = 24
	TypeRoleReply           Type = 25
	TypeGetAsyncRequest     Type = 26
	TypeGetAsyncReply       Type = 27
	TypeSetAsync            Type = 28
	TypeMeterMod            Type = 29
	maxType                 Type = TypeMeterMod
)

var typeNames = [...]string{
	"HELLO", "ERROR", "ECHO_REQUEST", "ECHO_REPLY", "EXPERIMENTER", "FEATURES_REQUEST", "FEATURES_REPLY",
	"GET_CONFIG_REQUEST", "GET_CONFIG_REPLY", "SET_CONFIG", "PACKET_IN", "FLOW_REMOVED", "PORT_STATUS",
	"PACKET_OUT", "FLOW_MOD", "GROUP_MOD", "PORT_MOD", "TABLE_MOD", "MULTIPART_REQUEST", "MULTIPART_REPLY",
	"BARRIER_REQUEST", "BARRIER_REPLY", "QUEUE_GET_CONFIG_REQUEST", "QUEUE_GET_CONFIG_REPLY", "ROLE_REQUEST",
	"ROLE_REPLY", "GET_ASYNC_REQUEST", "GET_ASYNC_REPLY", "SET_ASYNC", "METER_MOD",
}

func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("TYPE_%d", uint8(t))
}

// minLen is the smallest valid total length (header included) of each message type in OpenFlow 1.3.
var minLen = [...]uint16{
	TypeHello:               8,
	TypeError:               12,
	TypeEchoRequest:         8,
	TypeEchoReply:           8,
	TypeExperimenter:        16,
	TypeFeaturesRequest:     8,
	TypeFeaturesReply:       32,
	TypeGetConfigRequest:    8,
	TypeGetConfigReply:      12,
	TypeSetConfig:           12,
	TypePacketIn:            34,
	TypeFlowRemoved:         56,
	TypePortStatus:          80,
	TypePacketOut:           24,
	TypeFlowMod:             56,
	TypeGroupMod:            16,
	TypePortMod:             40,
	TypeTableMod:            16,
	TypeMultipartRequest:    16,
	TypeMultipartReply:      16,
	TypeBarrierRequest:      8,
	TypeBarrierReply:        8,
	TypeQueueGetConfigReq:   16,
	TypeQueueGetConfigReply: 16,
	TypeRoleRequest:         24,
	TypeRoleReply:           24,
	TypeGetAsyncRequest:     8,
	TypeGetAsyncReply:       32,
	TypeSetAsync:            32,
	TypeMeterMod:            16,
}

// Header is the fixed 8-byte header of every OpenFlow message.
type Header struct {
	Version uint8
	Type    Type
	Length  uint16 // total length, header included
	Xid     uint32
}

// Message is one framed message: its header and the bytes after the header.
type Message struct {
	Header
	Body []byte
}

// ErrMalformed is wrapped by every error about bytes that break the OpenFlow encoding.
var ErrMalformed = errors.New("malformed OpenFlow message")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// ParseHeader checks and decodes a header. version 0 accepts any version (used before the hello exchange);
// otherwise the header must carry exactly that version. The type must be a known OpenFlow 1.3 type when the
// version is 1.3, and the length at least that type's minimum.
func ParseHeader(b []byte, version uint8) (Header, error) {
	if len(b) < HeaderLen {
		return Header{}, malformed("header is %d bytes, want %d", len(b), HeaderLen)
	}
	h := Header{Version: b[0], Type: Type(b[1]), Length: binary.BigEndian.Uint16(b[2:4]), Xid: binary.BigEndian.Uint32(b[4:8])}
	if h.Version == 0 {
		return h, malformed("version 0 in header")
	}
	if version != 0 && h.Version != version {
		return h, malformed("version %d in %s header, negotiated %d", h.Version, h.Type, version)
	}
	if h.Length < HeaderLen {
		return h, malformed("length %d in %s header is shorter than the header", h.Length, h.Type)
	}
	if h.Version == Version || version == Version {
		if h.Type > maxType {
			return h, malformed("unknown message type %d", uint8(h.Type))
		}
		if h.Length < minLen[h.Type] {
			return h, malformed("%s of %d bytes, the minimum is %d", h.Type, h.Length, minLen[h.Type])
		}
	} else if h.Type != TypeHello && h.Type != TypeError {
		// Before negotiation, only HELLO and ERROR have the same meaning in every version.
		return h, malformed("%s of version %d before the hello exchange", h.Type, h.Version)
	}
	return h, nil
}

// ReadMessage reads exactly one message from r: the header (checked by ParseHeader with version) and then exactly
// Length-8 body bytes. It never allocates more than MaxMessageLen. An io.EOF before the first header byte is
// returned as io.EOF; a message cut short is io.ErrUnexpectedEOF.
func ReadMessage(r *bufio.Reader, version uint8) (Message, error) {
	return ReadMessageInto(r, version, nil)
}

// ReadMessageInto is ReadMessage reading the body into body(h)[:n] when body is set and gives a slice of enough
// capacity for the message's n bytes of body (a buffer the caller reuses), into a new allocation otherwise.
func ReadMessageInto(r *bufio.Reader, version uint8, body func(h Header) []byte) (Message, error) {
	// The header is looked at in the reader's buffer, not copied out (a copy escaped to the heap: one allocation
	// per message, every echo of every bridge).
	hb, err := r.Peek(HeaderLen)
	if err != nil {
		if len(hb) > 0 && errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return Message{}, err
	}
	h, err := ParseHeader(hb, version)
	if err != nil {
		return Message{Header: h}, err
	}
	if _, err := r.Discard(HeaderLen); err != nil {
		return Message{Header: h}, err
	}
	m := Message{Header: h}
	if n := int(h.Length) - HeaderLen; n > 0 {
		if body != nil {
			if b := body(h); cap(b) >= n {
				m.Body = b[:n]
			}
		}
		if m.Body == nil {
			m.Body = make([]byte, n)
		}
		if _, err := io.ReadFull(r, m.Body); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return m, fmt.Errorf("reading the %d-byte body of %s xid %d: %w", n, h.Type, h.Xid, err)
		}
	}
	return m, nil
}

// appendHeader appends a header whose length is filled in later by finish.
func appendHeader(dst []byte, t Type, xid uint32) []byte {
	return append(dst, Version, byte(t), 0, 0, byte(xid>>24), byte(xid>>16), byte(xid>>8), byte(xid))
}

// finish writes the length of the message that starts at dst[start:].
func finish(dst []byte, start int) ([]byte, error) {
	n := len(dst) - start
	if n > MaxMessageLen {
		return dst[:start], fmt.Errorf("message of %d bytes exceeds the OpenFlow maximum of %d", n, MaxMessageLen)
	}
	binary.BigEndian.PutUint16(dst[start+2:], uint16(n))
	return dst, nil
}

func pad8(n int) int { return (n + 7) &^ 7 }
