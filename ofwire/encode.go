package ofwire

import "encoding/binary"

// Reserved port, group and table numbers, and the no-buffer id.
const (
	PortMax        uint32 = 0xffffff00
	PortInPort     uint32 = 0xfffffff8
	PortTable      uint32 = 0xfffffff9
	PortNormal     uint32 = 0xfffffffa
	PortFlood      uint32 = 0xfffffffb
	PortAll        uint32 = 0xfffffffc
	PortController uint32 = 0xfffffffd
	PortLocal      uint32 = 0xfffffffe
	PortAny        uint32 = 0xffffffff
	GroupAny       uint32 = 0xffffffff
	TableAll       uint8  = 0xff
	NoBuffer       uint32 = 0xffffffff
)

// Multipart types used by the controller.
const (
	MultipartFlow     uint16 = 1
	MultipartPortDesc uint16 = 13

	// MultipartReplyMore is OFPMPF_REPLY_MORE: more parts of this reply follow.
	MultipartReplyMore uint16 = 1
)

// AppendHello appends a HELLO with a version bitmap element announcing 1.3 only.
func AppendHello(dst []byte, xid uint32) []byte {
	start := len(dst)
	dst = appendHeader(dst, TypeHello, xid)
	// Element: type VERSIONBITMAP (1), length 8 (header and one bitmap word), bit 4 set.
	dst = append(dst, 0, 1, 0, 8, 0, 0, 0, 1<<Version)
	dst, _ = finish(dst, start)
	return dst
}

// AppendEmpty appends a message with no body: FEATURES_REQUEST, BARRIER_REQUEST, ECHO_* without data.
func AppendEmpty(dst []byte, t Type, xid uint32) []byte {
	start := len(dst)
	dst = appendHeader(dst, t, xid)
	dst, _ = finish(dst, start)
	return dst
}

// AppendEcho appends an ECHO_REQUEST or ECHO_REPLY carrying data (truncated to fit one message).
func AppendEcho(dst []byte, t Type, xid uint32, data []byte) []byte {
	if len(data) > MaxMessageLen-HeaderLen {
		data = data[:MaxMessageLen-HeaderLen]
	}
	start := len(dst)
	dst = appendHeader(dst, t, xid)
	dst = append(dst, data...)
	dst, _ = finish(dst, start)
	return dst
}

// AppendError appends an OFPT_ERROR of the given type and code; data is truncated to 64 bytes, as the
// specification asks for the offending message's start (or, for HELLO_FAILED, an ASCII explanation).
func AppendError(dst []byte, xid uint32, typ, code uint16, data []byte) []byte {
	return appendError(dst, xid, typ, code, nil, data)
}

// appendError appends an OFPT_ERROR: type, code, then head (the experimenter id of an experimenter error) and
// data truncated to 64 bytes.
func appendError(dst []byte, xid uint32, typ, code uint16, head, data []byte) []byte {
	if len(data) > 64 {
		data = data[:64]
	}
	start := len(dst)
	dst = appendHeader(dst, TypeError, xid)
	dst = binary.BigEndian.AppendUint16(dst, typ)
	dst = binary.BigEndian.AppendUint16(dst, code)
	dst = append(dst, head...)
	dst = append(dst, data...)
	dst, _ = finish(dst, start)
	return dst
}

// AppendPortDescRequest appends a multipart PORT_DESC request.
func AppendPortDescRequest(dst []byte, xid uint32) []byte {
	start := len(dst)
	dst = appendHeader(dst, TypeMultipartRequest, xid)
	dst = binary.BigEndian.AppendUint16(dst, MultipartPortDesc)
	dst = append(dst, 0, 0, 0, 0, 0, 0) // flags, pad
	dst, _ = finish(dst, start)
	return dst
}

// AppendFlowStatsRequest appends a multipart FLOW request for every table, filtered by cookie under mask.
func AppendFlowStatsRequest(dst []byte, xid uint32, cookie, mask uint64) []byte {
	start := len(dst)
	dst = appendHeader(dst, TypeMultipartRequest, xid)
	dst = binary.BigEndian.AppendUint16(dst, MultipartFlow)
	dst = append(dst, 0, 0, 0, 0, 0, 0) // flags, pad
	dst = append(dst, TableAll, 0, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, PortAny)
	dst = binary.BigEndian.AppendUint32(dst, GroupAny)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint64(dst, cookie&mask)
	dst = binary.BigEndian.AppendUint64(dst, mask)
	dst = append(dst, 0, 1, 0, 4, 0, 0, 0, 0) // empty OXM match
	dst, _ = finish(dst, start)
	return dst
}
