package ofwire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"slices"
	"testing"

	of "github.com/netrack/openflow"
	"github.com/netrack/openflow/ofp"

	"portmirror/flows"
)

var probeData = []byte{0x0a, 0x50, 0x4d, 0x50, 0x52, 0x42, 2, 0, 0, 0, 0, 1, 8, 0, 0x45, 0, 1, 2, 3}

// TestPacketOutMatchesLibrary: our PACKET_OUT bytes are netrack/openflow's for the same message, and decode back.
func TestPacketOutMatchesLibrary(t *testing.T) {
	peer := flows.MustIPv4("198.18.100.2")
	for _, tc := range []struct {
		name string
		acts []flows.Action
		lib  ofp.Actions
	}{
		{"to the controller", []flows.Action{{Type: flows.ActOutput, Port: PortController}},
			ofp.Actions{&ofp.ActionOutput{Port: ofp.PortController, MaxLen: 0xffff}}},
		{"through a tunnel", []flows.Action{{Type: flows.ActSetTunID, Value: 7}, {Type: flows.ActSetTunDst, IP: peer},
			{Type: flows.ActOutput, Port: 9}},
			ofp.Actions{
				&ofp.ActionSetField{Field: ofp.XM{Class: ofp.XMClassOpenflowBasic, Type: ofp.XMTypeTunnelID, Value: binary.BigEndian.AppendUint64(nil, 7)}},
				&ofp.ActionSetField{Field: ofp.XM{Class: ofp.XMClassNicira1, Type: 32, Value: peer[:]}},
				&ofp.ActionOutput{Port: 9},
			}},
		{"no actions (drop)", nil, nil},
	} {
		got, err := AppendPacketOut(nil, 11, 3, tc.acts, probeData)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		want := libraryBytes(t, of.TypePacketOut, 11, &ofp.PacketOut{Buffer: ofp.NoBuffer, InPort: 3, Actions: tc.lib, Data: probeData})
		if !bytes.Equal(got, want) {
			t.Errorf("%s:\n got %x\nwant %x", tc.name, got, want)
		}
		m, err := ReadMessage(bufio.NewReader(bytes.NewReader(got)), Version)
		if err != nil {
			t.Fatal(err)
		}
		po, err := DecodePacketOut(m.Body)
		if err != nil || po.InPort != 3 || po.BufferID != NoBuffer || !slices.Equal(po.Actions, tc.acts) || !bytes.Equal(po.Data, probeData) {
			t.Errorf("%s: decoded %+v, %v", tc.name, po, err)
		}
	}
	if _, err := AppendPacketOut(nil, 1, 3, []flows.Action{{Type: flows.ActSetReg0, Value: 1 << 40}}, nil); err == nil {
		t.Errorf("a packet-out with a reg0 value of more than 32 bits was encoded")
	}
}

// TestPacketInMatchesLibrary: a PACKET_IN as OVS sends it for a frame caught off a tunnel (in_port, tun_id,
// tun_src in the match) is netrack/openflow's encoding, and decodes to those fields and the frame.
func TestPacketInMatchesLibrary(t *testing.T) {
	src := netip.MustParseAddr("198.18.100.1")
	pi := PacketIn{Reason: PacketInAction, TableID: 0, Cookie: flows.CookieProbe, InPort: 5, TunID: 7, HasTunID: true,
		TunSrc: src, Data: probeData}
	got, err := AppendPacketIn(nil, 0, pi)
	if err != nil {
		t.Fatal(err)
	}
	lib := &ofp.PacketIn{Buffer: ofp.NoBuffer, Length: uint16(len(probeData)), Reason: ofp.PacketInReasonAction,
		Cookie: flows.CookieProbe, Data: probeData, Match: ofp.Match{Type: ofp.MatchTypeXM, Fields: []ofp.XM{
			{Class: ofp.XMClassOpenflowBasic, Type: ofp.XMTypeInPort, Value: binary.BigEndian.AppendUint32(nil, 5)},
			{Class: ofp.XMClassOpenflowBasic, Type: ofp.XMTypeTunnelID, Value: binary.BigEndian.AppendUint64(nil, 7)},
			{Class: ofp.XMClassNicira1, Type: 31, Value: src.AsSlice()},
		}}}
	if want := libraryBytes(t, of.TypePacketIn, 0, lib); !bytes.Equal(got, want) {
		t.Errorf("\n got %x\nwant %x", got, want)
	}
	m, err := ReadMessage(bufio.NewReader(bytes.NewReader(got)), Version)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := DecodePacketIn(m.Body)
	if err != nil {
		t.Fatal(err)
	}
	dec.BufferID, dec.TotalLen = 0, 0
	if dec.InPort != 5 || !dec.HasTunID || dec.TunID != 7 || dec.TunSrc != src || dec.Cookie != flows.CookieProbe ||
		dec.Reason != PacketInAction || !bytes.Equal(dec.Data, probeData) {
		t.Errorf("decoded %+v", dec)
	}
}

func TestDecodePacketInRefuses(t *testing.T) {
	good, _ := AppendPacketIn(nil, 0, PacketIn{InPort: 5, Data: probeData})
	body := good[HeaderLen:]
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"cut fixed part", body[:10]},
		{"match not OXM", func() []byte { b := slices.Clone(body); b[17] = 0; return b }()},
		{"match longer than the body", func() []byte { b := slices.Clone(body); b[19] = 200; return b }()},
		{"cut OXM", func() []byte { b := slices.Clone(body); b[23] = 40; return b }()},
	} {
		if _, err := DecodePacketIn(tc.b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", tc.name, err)
		}
	}
}

// FuzzDecodePacket: PACKET_IN and PACKET_OUT bodies never panic and fail only with ErrMalformed; a packet-in
// re-encodes to one that decodes to the same fields and frame.
func FuzzDecodePacket(f *testing.F) {
	pi, _ := AppendPacketIn(nil, 0, PacketIn{InPort: 5, TunID: 7, HasTunID: true, TunSrc: netip.MustParseAddr("198.18.0.1"), Data: probeData})
	po, _ := AppendPacketOut(nil, 0, 3, []flows.Action{{Type: flows.ActSetTunID, Value: 7}, {Type: flows.ActOutput, Port: 9}}, probeData)
	f.Add(pi[HeaderLen:])
	f.Add(po[HeaderLen:])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		if _, err := DecodePacketOut(body); err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("packet-out: error does not wrap ErrMalformed: %v", err)
		}
		in, err := DecodePacketIn(body)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("packet-in: error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		if len(in.Data) > 0xffff-64 {
			return
		}
		again, err := AppendPacketIn(nil, 0, in)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", in, err)
		}
		back, err := DecodePacketIn(again[HeaderLen:])
		if err != nil || back.InPort != in.InPort || back.HasTunID != in.HasTunID || back.TunID != in.TunID ||
			back.TunSrc != in.TunSrc || back.Cookie != in.Cookie || !bytes.Equal(back.Data, in.Data) {
			t.Fatalf("re-decoded %+v (%v), want %+v", back, err, in)
		}
	})
}
