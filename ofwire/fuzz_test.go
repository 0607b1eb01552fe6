package ofwire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"reflect"
	"testing"

	"portmirror/flows"
)

// seedMessages are whole messages, valid and hostile, shared by the fuzz targets.
func seedMessages() [][]byte {
	port := make([]byte, portLen)
	copy(port[16:], "p1")
	flowMod, _ := AppendFlowMod(nil, 1, FlowAdd, flows.Flow{Priority: 5, Match: flows.Match{InPort: 1},
		Actions: []flows.Action{{Type: flows.ActNormal}, {Type: flows.ActSetTunID, Value: 9}}})
	stat := flowStatFromFlowMod(flowMod, 0)
	pbb := rawEntry(oxmInPort1, applyActions(outNormal, popPBB))
	bundleAdd, _ := AppendBundleFlowMod(nil, 4, 9, BundleAtomic, FlowAdd, flows.Flow{Priority: 5, Actions: []flows.Action{{Type: flows.ActNormal}}})
	mp := func(typ, flags uint16, body []byte) []byte {
		b := append(hdr(4, TypeMultipartReply, uint16(16+len(body)), 3), 0, 0, 0, 0, 0, 0, 0, 0)
		binary.BigEndian.PutUint16(b[8:], typ)
		binary.BigEndian.PutUint16(b[10:], flags)
		return append(b, body...)
	}
	return [][]byte{
		AppendHello(nil, 1),
		hdr(4, TypeHello, 8, 1),
		{4, 0, 0},                                    // truncated header
		hdr(4, TypeEchoReply, 65535, 1),              // oversized length, nothing behind
		hdr(4, 200, 8, 1),                            // unknown type
		hdr(9, TypeHello, 8, 1),                      // unknown version
		append(hdr(4, TypeEchoRequest, 20, 1), 1, 2), // cut body
		append(hdr(4, TypeError, 16, 1), 0, 2, 0, 4, 1, 2, 3, 4),
		append(append(hdr(4, TypeFeaturesReply, 32, 2), 0, 0, 0, 0, 0, 0, 0, 1), make([]byte, 16)...),
		append(append(hdr(4, TypePortStatus, 80, 0), 2, 0, 0, 0, 0, 0, 0, 0), port...),
		mp(MultipartPortDesc, 0, port),
		mp(MultipartFlow, MultipartReplyMore, stat),
		mp(MultipartFlow, 0, pbb),      // POP_PBB in an action list
		mp(MultipartFlow, 0, pbb[:60]), // cut entry
		flowMod,
		AppendBundleControl(nil, 5, 9, BundleCommitReply, BundleAtomic|BundleOrdered),
		bundleAdd,
		bundleAdd[:30], // cut inner message
		append(hdr(4, TypeExperimenter, 12, 1), 0x4f, 0x4e, 0x46, 0), // no exp_type
	}
}

// FuzzReadMessage: framing never panics, never returns a body of another length than the header says, and a
// message it accepts re-frames to the same bytes.
func FuzzReadMessage(f *testing.F) {
	for _, s := range seedMessages() {
		f.Add(s, uint8(4))
		f.Add(s, uint8(0))
	}
	f.Fuzz(func(t *testing.T, in []byte, version uint8) {
		r := bufio.NewReader(bytes.NewReader(in))
		consumed := 0
		for {
			m, err := ReadMessage(r, version)
			if err != nil {
				if err != io.EOF && !errors.Is(err, ErrMalformed) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("unexpected error kind: %v", err)
				}
				return
			}
			if int(m.Length) != HeaderLen+len(m.Body) {
				t.Fatalf("length %d, body %d", m.Length, len(m.Body))
			}
			if !bytes.Equal(in[consumed:consumed+HeaderLen], []byte{m.Version, byte(m.Type), byte(m.Length >> 8), byte(m.Length), byte(m.Xid >> 24), byte(m.Xid >> 16), byte(m.Xid >> 8), byte(m.Xid)}) {
				t.Fatalf("header %+v does not match the input", m.Header)
			}
			consumed += int(m.Length)
		}
	})
}

// decodeAny runs the decoder for the message's type, as the controller does.
func decodeAny(m Message) error {
	switch m.Type {
	case TypeHello:
		_, err := DecodeHello(m.Header, m.Body)
		return err
	case TypeError:
		_, err := DecodeError(m.Body)
		return err
	case TypeFeaturesReply:
		_, err := DecodeFeaturesReply(m.Body)
		return err
	case TypePortStatus:
		_, err := DecodePortStatus(m.Body)
		return err
	case TypePacketIn:
		_, err := DecodePacketIn(m.Body)
		return err
	case TypePacketOut:
		_, err := DecodePacketOut(m.Body)
		return err
	case TypeExperimenter:
		e, err := DecodeExperimenter(m.Body)
		if err != nil || e.Experimenter != ONFExperimenter {
			return err
		}
		switch e.ExpType {
		case ONFBundleControl:
			_, err = DecodeBundleControl(e.Data)
		case ONFBundleAdd:
			_, err = DecodeBundleAdd(e.Data)
		}
		return err
	case TypeMultipartReply:
		mp, err := DecodeMultipartReply(m.Body)
		if err != nil {
			return err
		}
		switch mp.Type {
		case MultipartPortDesc:
			_, err = DecodePortDesc(mp.Body)
		case MultipartFlow:
			_, err = DecodeFlowStats(mp.Body)
		}
		return err
	}
	return nil
}

// FuzzDecodeMessage: every decoder, on any framed message, returns a value or an ErrMalformed, never panics.
func FuzzDecodeMessage(f *testing.F) {
	for _, s := range seedMessages() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := ReadMessage(bufio.NewReader(bytes.NewReader(in)), 0)
		if err != nil {
			return
		}
		if err := decodeAny(m); err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("%v: error does not wrap ErrMalformed: %v", m.Type, err)
		}
	})
}

// FuzzDecodeFlowStats: flow-stats bodies never panic; errors are ErrMalformed; an entry decoded without foreign
// parts or unknown actions re-encodes, as an ADD flow_mod, to a flow that decodes equal.
func FuzzDecodeFlowStats(f *testing.F) {
	for _, s := range seedMessages() {
		if len(s) > 16 && s[1] == byte(TypeMultipartReply) {
			f.Add(s[16:])
		}
	}
	f.Add(rawEntry(oxmTunDst, applyActions(nxResubmit)))
	f.Add(rawEntry(nil, gotoTable))
	for _, fl := range []flows.Flow{
		{Table: 1, Priority: 9, Match: flows.Match{Reg0: 7, HasReg0: true, EthType: 0x86dd, IPProto: 6, HasIPProto: true,
			IPSrc: netip.MustParsePrefix("2001:db8::/32"), TPDst: 0x400, TPDstMask: 0xfc00},
			Actions: []flows.Action{{Type: flows.ActSetReg0, Value: 2}, {Type: flows.ActResubmit, Value: 1}}},
		{Priority: 9, Actions: []flows.Action{{Type: flows.ActNormal}, {Type: flows.ActOutputTrunc, Port: 11, Value: 96}}},
		erspanCopy(1), erspanCopy(2),
	} {
		fm, _ := AppendFlowMod(nil, 1, FlowAdd, fl)
		f.Add(flowStatFromFlowMod(fm, 0))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		st, err := DecodeFlowStats(body)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
	entries:
		for _, s := range st {
			if s.Foreign != "" {
				continue
			}
			for _, a := range s.Flow.Actions {
				if a.Type == ActUnknown {
					continue entries
				}
			}
			fm, err := AppendFlowMod(nil, 1, FlowAdd, s.Flow)
			if err != nil {
				t.Fatalf("decoded flow %+v does not encode: %v", s.Flow, err)
			}
			again, err := DecodeFlowStats(flowStatFromFlowMod(fm, 0))
			if err != nil || len(again) != 1 || !reflect.DeepEqual(again[0].Flow, s.Flow) {
				t.Fatalf("re-decoded %+v (%v), want %+v", again, err, s.Flow)
			}
		}
	})
}

// FuzzDecodeHello: any hello body yields a set or an error.
func FuzzDecodeHello(f *testing.F) {
	f.Add(uint8(4), []byte{0, 1, 0, 8, 0, 0, 0, 0x10})
	f.Add(uint8(1), []byte{})
	f.Add(uint8(4), []byte{0, 1, 0, 0})
	f.Add(uint8(200), []byte{0, 1, 0, 4})
	f.Fuzz(func(t *testing.T, v uint8, body []byte) {
		_, _ = DecodeHello(Header{Version: v}, body)
	})
}
