package ofwire

import (
	"encoding/binary"

	"portmirror/flows"
)

// Bundles on OpenFlow 1.3 are the ONF extension EXT-230 (OpenFlow 1.4's bundles carried in experimenter
// messages), which Open vSwitch implements: a controller opens a bundle, adds flow_mods to it, and commits it;
// with the ATOMIC flag the switch applies all of them at once or none (a frame never meets half of a change).

// ONFExperimenter is the Open Networking Foundation's experimenter id.
const ONFExperimenter uint32 = 0x4f4e4600

// ONF experimenter message types of the bundle extension.
const (
	ONFBundleControl uint32 = 2300
	ONFBundleAdd     uint32 = 2301
)

// Bundle control message types (OFPBCT_*).
const (
	BundleOpenRequest    uint16 = 0
	BundleOpenReply      uint16 = 1
	BundleCloseRequest   uint16 = 2
	BundleCloseReply     uint16 = 3
	BundleCommitRequest  uint16 = 4
	BundleCommitReply    uint16 = 5
	BundleDiscardRequest uint16 = 6
	BundleDiscardReply   uint16 = 7
)

// Bundle flags (OFPBF_*).
const (
	BundleAtomic  uint16 = 1
	BundleOrdered uint16 = 2
)

// Bundle failure codes (OFPBFC_*) as the ONF extension carries them: experimenter errors of ONFExperimenter whose
// code is 2300 plus OpenFlow 1.4's code.
const (
	BundleErrUnknown   uint16 = 2300
	BundleErrBadID     uint16 = 2302
	BundleErrExists    uint16 = 2303
	BundleErrClosed    uint16 = 2304
	BundleErrBadType   uint16 = 2306
	BundleErrBadFlags  uint16 = 2307
	BundleErrMsgBadLen uint16 = 2308
	BundleErrMsgBadXid uint16 = 2309
	BundleErrMsgUnsup  uint16 = 2310
	BundleErrMsgFailed uint16 = 2313
)

// Request codes a switch answers a message it does not understand with (OFPBRC_*).
const (
	BadRequestBadType         uint16 = 1
	BadRequestBadExperimenter uint16 = 3
	BadRequestBadExpType      uint16 = 4
)

// appendONFHeader appends the header of an ONF experimenter message; finish fills in its length.
func appendONFHeader(dst []byte, xid, expType uint32) []byte {
	dst = appendHeader(dst, TypeExperimenter, xid)
	dst = binary.BigEndian.AppendUint32(dst, ONFExperimenter)
	return binary.BigEndian.AppendUint32(dst, expType)
}

// AppendBundleControl appends a bundle control message (open, close, commit, discard, or their replies).
func AppendBundleControl(dst []byte, xid, bundleID uint32, typ, flags uint16) []byte {
	start := len(dst)
	dst = appendONFHeader(dst, xid, ONFBundleControl)
	dst = binary.BigEndian.AppendUint32(dst, bundleID)
	dst = binary.BigEndian.AppendUint16(dst, typ)
	dst = binary.BigEndian.AppendUint16(dst, flags)
	dst, _ = finish(dst, start)
	return dst
}

// AppendBundleFlowMod appends a bundle add message carrying the flow_mod AppendFlowMod would encode. The inner
// message has the outer one's xid, as the extension requires; a switch's error about it carries that xid. On
// error dst is returned unchanged.
func AppendBundleFlowMod(dst []byte, xid, bundleID uint32, flags uint16, cmd FlowModCommand, f flows.Flow) ([]byte, error) {
	return appendBundleAdd(dst, xid, bundleID, flags, func(dst []byte) ([]byte, error) { return AppendFlowMod(dst, xid, cmd, f) })
}

// AppendBundleFlowModEntry is AppendBundleFlowMod for the flow of a packed entry (AppendFlowModEntry).
func AppendBundleFlowModEntry(dst []byte, xid, bundleID uint32, flags uint16, cmd FlowModCommand, entry []byte) ([]byte, error) {
	return appendBundleAdd(dst, xid, bundleID, flags, func(dst []byte) ([]byte, error) { return AppendFlowModEntry(dst, xid, cmd, entry) })
}

// appendBundleAdd appends a bundle-add message around the flow_mod that flowMod appends.
func appendBundleAdd(dst []byte, xid, bundleID uint32, flags uint16, flowMod func([]byte) ([]byte, error)) ([]byte, error) {
	start := len(dst)
	dst = appendONFHeader(dst, xid, ONFBundleAdd)
	dst = binary.BigEndian.AppendUint32(dst, bundleID)
	dst = append(dst, 0, 0) // pad
	dst = binary.BigEndian.AppendUint16(dst, flags)
	var err error
	if dst, err = flowMod(dst); err != nil {
		return dst[:start], err
	}
	for (len(dst)-start)%8 != 0 {
		dst = append(dst, 0)
	}
	if dst, err = finish(dst, start); err != nil {
		return dst[:start], err
	}
	return dst, nil
}

// AppendExperimenterError appends an OFPT_ERROR of type EXPERIMENTER: code, the experimenter id, then data
// (truncated to 64 bytes like AppendError's).
func AppendExperimenterError(dst []byte, xid uint32, code uint16, experimenter uint32, data []byte) []byte {
	return appendError(dst, xid, ErrTypeExperimenter, code, binary.BigEndian.AppendUint32(nil, experimenter), data)
}

// Experimenter is a decoded OFPT_EXPERIMENTER body.
type Experimenter struct {
	Experimenter uint32
	ExpType      uint32
	Data         []byte
}

// DecodeExperimenter decodes the body of an OFPT_EXPERIMENTER message.
func DecodeExperimenter(body []byte) (Experimenter, error) {
	if len(body) < 8 {
		return Experimenter{}, malformed("experimenter body of %d bytes, want at least 8", len(body))
	}
	return Experimenter{Experimenter: binary.BigEndian.Uint32(body), ExpType: binary.BigEndian.Uint32(body[4:]), Data: body[8:]}, nil
}

// BundleControl is a decoded bundle control message.
type BundleControl struct {
	BundleID uint32
	Type     uint16
	Flags    uint16
}

// DecodeBundleControl decodes the data of an ONF bundle control message (after the experimenter header);
// properties after the fixed part are ignored.
func DecodeBundleControl(data []byte) (BundleControl, error) {
	if len(data) < 8 {
		return BundleControl{}, malformed("bundle control of %d bytes, want at least 8", len(data))
	}
	return BundleControl{
		BundleID: binary.BigEndian.Uint32(data),
		Type:     binary.BigEndian.Uint16(data[4:]),
		Flags:    binary.BigEndian.Uint16(data[6:]),
	}, nil
}

// BundleAdd is a decoded bundle add message: the bundle, its flags, and the inner message (header included).
type BundleAdd struct {
	BundleID uint32
	Flags    uint16
	Inner    []byte
}

// DecodeBundleAdd decodes the data of an ONF bundle add message (after the experimenter header). The inner
// message must be whole: its length at least a header and within the data (padding and properties may follow).
func DecodeBundleAdd(data []byte) (BundleAdd, error) {
	if len(data) < 8+HeaderLen {
		return BundleAdd{}, malformed("bundle add of %d bytes, want at least %d", len(data), 8+HeaderLen)
	}
	inner := data[8:]
	n := int(binary.BigEndian.Uint16(inner[2:]))
	if n < HeaderLen || n > len(inner) {
		return BundleAdd{}, malformed("bundle add: inner message length %d does not fit in %d bytes", n, len(inner))
	}
	return BundleAdd{BundleID: binary.BigEndian.Uint32(data), Flags: binary.BigEndian.Uint16(data[6:]), Inner: inner[:n]}, nil
}
