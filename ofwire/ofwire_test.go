package ofwire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	of "github.com/netrack/openflow"
	"github.com/netrack/openflow/ofp"

	"portmirror/flows"
)

func hdr(version uint8, t Type, length uint16, xid uint32) []byte {
	b := []byte{version, byte(t), 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint16(b[2:], length)
	binary.BigEndian.PutUint32(b[4:], xid)
	return b
}

func TestReadMessage(t *testing.T) {
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name    string
		in      []byte
		version uint8
		want    Message
		errPart string // "" for success
		eof     bool
	}{
		{name: "echo request with data", in: cat(hdr(4, TypeEchoRequest, 11, 7), []byte("abc")), version: 4,
			want: Message{Header: Header{4, TypeEchoRequest, 11, 7}, Body: []byte("abc")}},
		{name: "barrier reply, no body", in: hdr(4, TypeBarrierReply, 8, 9), version: 4,
			want: Message{Header: Header{4, TypeBarrierReply, 8, 9}}},
		{name: "hello of version 1 before negotiation", in: hdr(1, TypeHello, 8, 1), version: 0,
			want: Message{Header: Header{1, TypeHello, 8, 1}}},
		{name: "empty input", in: nil, version: 4, eof: true},
		{name: "truncated header", in: []byte{4, 0, 0}, version: 4, errPart: "unexpected EOF"},
		{name: "length below header", in: hdr(4, TypeHello, 7, 1), version: 4, errPart: "shorter than the header"},
		{name: "wrong version after hello", in: hdr(1, TypeEchoRequest, 8, 1), version: 4, errPart: "version 1"},
		{name: "version 0", in: hdr(0, TypeHello, 8, 1), version: 0, errPart: "version 0"},
		{name: "unknown type", in: hdr(4, 200, 8, 1), version: 4, errPart: "unknown message type 200"},
		{name: "features reply too short", in: cat(hdr(4, TypeFeaturesReply, 16, 1), make([]byte, 8)), version: 4, errPart: "minimum is 32"},
		{name: "port status too short", in: hdr(4, TypePortStatus, 20, 1), version: 4, errPart: "minimum is 80"},
		{name: "non-hello of another version before negotiation", in: hdr(1, TypeFeaturesReply, 32, 1), version: 0, errPart: "before the hello"},
		{name: "cut body", in: cat(hdr(4, TypeEchoReply, 100, 1), make([]byte, 10)), version: 4, errPart: "unexpected EOF"},
		{name: "oversized length with nothing behind", in: hdr(4, TypeEchoReply, 65535, 1), version: 4, errPart: "unexpected EOF"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ReadMessage(bufio.NewReader(bytes.NewReader(tc.in)), tc.version)
			switch {
			case tc.eof:
				if err != io.EOF {
					t.Fatalf("err = %v, want io.EOF", err)
				}
			case tc.errPart != "":
				if err == nil || !strings.Contains(err.Error(), tc.errPart) {
					t.Fatalf("err = %v, want one containing %q", err, tc.errPart)
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(m, tc.want) {
					t.Fatalf("got %+v, want %+v", m, tc.want)
				}
			}
		})
	}
}

func TestReadMessageSequence(t *testing.T) {
	var in []byte
	in = AppendHello(in, 1)
	in = AppendEcho(in, TypeEchoRequest, 2, []byte("x"))
	in = AppendEmpty(in, TypeBarrierReply, 3)
	r := bufio.NewReader(bytes.NewReader(in))
	for i, want := range []Type{TypeHello, TypeEchoRequest, TypeBarrierReply} {
		m, err := ReadMessage(r, 4)
		if err != nil || m.Type != want || m.Xid != uint32(i+1) {
			t.Fatalf("message %d: %+v, %v", i, m.Header, err)
		}
	}
	if _, err := ReadMessage(r, 4); err != io.EOF {
		t.Fatalf("after the last message: %v, want EOF", err)
	}
}

func TestDecodeHello(t *testing.T) {
	tests := []struct {
		name    string
		h       Header
		body    []byte
		has13   bool
		wantErr bool
	}{
		{"bitmap with 1.3", Header{Version: 4}, []byte{0, 1, 0, 8, 0, 0, 0, 0x10}, true, false},
		{"bitmap with 1.0 and 1.5 only", Header{Version: 6}, []byte{0, 1, 0, 8, 0, 0, 0, 0x42}, false, false},
		{"no bitmap, version 1.0", Header{Version: 1}, nil, false, false},
		{"no bitmap, version 1.4", Header{Version: 5}, nil, true, false},
		{"element longer than body", Header{Version: 4}, []byte{0, 1, 0, 16, 0, 0, 0, 0x10}, false, true},
		{"element length 0", Header{Version: 4}, []byte{0, 1, 0, 0, 0, 0, 0, 0x10}, false, true},
		{"unknown element skipped, then bitmap", Header{Version: 4}, []byte{0, 9, 0, 4, 0, 0, 0, 0, 0, 1, 0, 8, 0, 0, 0, 0x10}, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			set, err := DecodeHello(tc.h, tc.body)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if err == nil && set.Has(Version) != tc.has13 {
				t.Fatalf("set %b: has 1.3 = %v, want %v", set, set.Has(Version), tc.has13)
			}
		})
	}
}

// libraryBytes encodes a message with github.com/netrack/openflow, the oracle for our encoders.
func libraryBytes(t *testing.T, typ of.Type, xid uint32, body interface {
	WriteTo(io.Writer) (int64, error)
}) []byte {
	t.Helper()
	req := of.NewRequest(typ, body)
	if body == nil {
		req = of.NewRequest(typ, nil)
		req.Body = nil
	}
	req.Header.Transaction = xid
	var buf bytes.Buffer
	if _, err := req.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func libraryMatch(m flows.Match) ofp.Match {
	lm := ofp.Match{Type: ofp.MatchTypeXM}
	if m.InPort != 0 {
		v := binary.BigEndian.AppendUint32(nil, m.InPort)
		lm.Fields = append(lm.Fields, ofp.XM{Class: ofp.XMClassOpenflowBasic, Type: ofp.XMTypeInPort, Value: v})
	}
	switch m.EthDstMask {
	case flows.MAC{}:
	case flows.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}:
		lm.Fields = append(lm.Fields, ofp.XM{Class: ofp.XMClassOpenflowBasic, Type: ofp.XMTypeEthDst, Value: m.EthDst[:]})
	default:
		lm.Fields = append(lm.Fields, ofp.XM{Class: ofp.XMClassOpenflowBasic, Type: ofp.XMTypeEthDst, Value: m.EthDst[:], Mask: m.EthDstMask[:]})
	}
	if m.HasTunID {
		v := binary.BigEndian.AppendUint64(nil, m.TunID)
		lm.Fields = append(lm.Fields, ofp.XM{Class: ofp.XMClassOpenflowBasic, Type: ofp.XMTypeTunnelID, Value: v})
	}
	return lm
}

func libraryFlowMod(f flows.Flow, cmd FlowModCommand) *ofp.FlowMod {
	fm := &ofp.FlowMod{
		Cookie: f.Cookie, Table: ofp.Table(f.Table), Command: ofp.FlowModCommand(cmd), Priority: f.Priority,
		Buffer: ofp.NoBuffer, OutPort: ofp.PortAny, OutGroup: ofp.GroupAny, Match: libraryMatch(f.Match),
	}
	if cmd != FlowAdd {
		fm.CookieMask = ^uint64(0)
	}
	if len(f.Actions) > 0 && cmd != FlowDelete && cmd != FlowDeleteStrict {
		var acts ofp.Actions
		for _, a := range f.Actions {
			switch a.Type {
			case flows.ActNormal:
				acts = append(acts, &ofp.ActionOutput{Port: ofp.PortNormal})
			case flows.ActOutput:
				acts = append(acts, &ofp.ActionOutput{Port: ofp.PortNo(a.Port)})
			case flows.ActSetTunID:
				v := binary.BigEndian.AppendUint64(nil, a.Value)
				acts = append(acts, &ofp.ActionSetField{Field: ofp.XM{Class: ofp.XMClassOpenflowBasic, Type: ofp.XMTypeTunnelID, Value: v}})
			case flows.ActSetTunDst:
				ip := a.IP
				acts = append(acts, &ofp.ActionSetField{Field: ofp.XM{Class: ofp.XMClassNicira1, Type: 32, Value: ip[:]}})
			}
		}
		fm.Instructions = ofp.Instructions{&ofp.InstructionApplyActions{Actions: acts}}
	}
	return fm
}

// randomFlow returns a flow in canonical form: what a switch reports back for it.
func randomFlow(r *rand.Rand) flows.Flow {
	f := flows.Flow{Table: uint8(r.IntN(254)), Priority: uint16(r.Uint32()), Cookie: flows.CookieOurs | r.Uint64()&^flows.CookieMask}
	if r.IntN(2) == 0 {
		f.Match.InPort = 1 + r.Uint32N(0xfffffeff)
	}
	switch r.IntN(3) {
	case 1:
		f.Match.EthDstMask = flows.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	case 2:
		for i := range f.Match.EthDstMask {
			f.Match.EthDstMask[i] = byte(r.Uint32())
		}
		if r.IntN(2) == 0 {
			f.Match.EthDstMask = flows.MAC{1} // the multicast bit
		}
	}
	for i := range f.Match.EthDst {
		f.Match.EthDst[i] = byte(r.Uint32()) & f.Match.EthDstMask[i]
	}
	if r.IntN(2) == 0 {
		f.Match.HasTunID, f.Match.TunID = true, r.Uint64()
	}
	n := r.IntN(6)
	for range n {
		switch r.IntN(4) {
		case 0:
			f.Actions = append(f.Actions, flows.Action{Type: flows.ActNormal})
		case 1:
			p := r.Uint32()
			if p == PortNormal {
				p = 1
			}
			f.Actions = append(f.Actions, flows.Action{Type: flows.ActOutput, Port: p})
		case 2:
			f.Actions = append(f.Actions, flows.Action{Type: flows.ActSetTunID, Value: r.Uint64()})
		case 3:
			f.Actions = append(f.Actions, flows.Action{Type: flows.ActSetTunDst, IP: flows.IPv4{198, 18, byte(r.Uint32()), byte(r.Uint32())}})
		}
	}
	return f
}

func TestFlowModMatchesLibrary(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		f := randomFlow(r)
		cmd := []FlowModCommand{FlowAdd, FlowModifyStrict, FlowDeleteStrict}[i%3]
		got, err := AppendFlowMod(nil, uint32(i), cmd, f)
		if err != nil {
			t.Fatal(err)
		}
		want := libraryBytes(t, of.TypeFlowMod, uint32(i), libraryFlowMod(f, cmd))
		if !bytes.Equal(got, want) {
			t.Fatalf("flow %+v %s:\n got %x\nwant %x", f, cmd, got, want)
		}
	}
}

func TestOtherEncodersMatchLibrary(t *testing.T) {
	hello := &ofp.Hello{Elements: ofp.HelloElems{&ofp.HelloElemVersionBitmap{Bitmaps: []uint32{1 << 4}}}}
	fsr := &ofp.FlowStatsRequest{Table: ofp.TableAll, OutPort: ofp.PortAny, OutGroup: ofp.GroupAny,
		Cookie: flows.CookieOurs, CookieMask: flows.CookieMask, Match: ofp.Match{Type: ofp.MatchTypeXM}}
	var fsrBytes bytes.Buffer
	if _, err := fsr.WriteTo(&fsrBytes); err != nil {
		t.Fatal(err)
	}
	del := &ofp.FlowMod{Cookie: flows.CookieOurs, CookieMask: flows.CookieMask, Table: ofp.TableAll,
		Command: ofp.FlowDelete, Buffer: ofp.NoBuffer, OutPort: ofp.PortAny, OutGroup: ofp.GroupAny, Match: ofp.Match{Type: ofp.MatchTypeXM}}
	tests := []struct {
		name string
		got  []byte
		want []byte
	}{
		{"hello", AppendHello(nil, 5), libraryBytes(t, of.TypeHello, 5, hello)},
		{"features request", AppendEmpty(nil, TypeFeaturesRequest, 6), libraryBytes(t, of.TypeFeaturesRequest, 6, nil)},
		{"barrier", AppendEmpty(nil, TypeBarrierRequest, 7), libraryBytes(t, of.TypeBarrierRequest, 7, nil)},
		{"port desc", AppendPortDescRequest(nil, 8), libraryBytes(t, of.TypeMultipartRequest, 8,
			&ofp.MultipartRequest{Type: ofp.MultipartTypePortDescription})},
		{"flow stats", AppendFlowStatsRequest(nil, 9, flows.CookieOurs, flows.CookieMask), libraryBytes(t, of.TypeMultipartRequest, 9,
			&ofp.MultipartRequest{Type: ofp.MultipartTypeFlow, Body: bytes.NewReader(fsrBytes.Bytes())})},
		{"delete by cookie", AppendDeleteByCookie(nil, 10, flows.CookieOurs, flows.CookieMask), libraryBytes(t, of.TypeFlowMod, 10, del)},
	}
	for _, tc := range tests {
		if !bytes.Equal(tc.got, tc.want) {
			t.Errorf("%s:\n got %x\nwant %x", tc.name, tc.got, tc.want)
		}
	}
}

// flowStatFromFlowMod builds the flow-stats entry a switch would report for an ADD flow_mod.
func flowStatFromFlowMod(fm []byte, packets uint64) []byte {
	rest := fm[flowModFixed:]
	e := make([]byte, flowStatsFixed, flowStatsFixed+len(rest))
	binary.BigEndian.PutUint16(e, uint16(flowStatsFixed+len(rest)))
	e[2] = fm[24]             // table
	copy(e[12:14], fm[30:32]) // priority
	copy(e[24:32], fm[8:16])  // cookie
	binary.BigEndian.PutUint64(e[32:], packets)
	return append(e, rest...)
}

func TestFlowRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var body []byte
	var want []flows.Flow
	for i := range 3000 {
		f := randomFlow(r)
		fm, err := AppendFlowMod(nil, uint32(i), FlowAdd, f)
		if err != nil {
			t.Fatal(err)
		}
		body = append(body, flowStatFromFlowMod(fm, uint64(i))...)
		want = append(want, f)
	}
	got, err := DecodeFlowStats(body)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("decoded %d entries, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].Foreign != "" || got[i].Packets != uint64(i) {
			t.Fatalf("entry %d: foreign %q, packets %d", i, got[i].Foreign, got[i].Packets)
		}
		if !reflect.DeepEqual(got[i].Flow, want[i]) {
			t.Fatalf("entry %d:\n got %+v\nwant %+v", i, got[i].Flow, want[i])
		}
	}
}

// TestFilterFlowRoundTrip: the filter table's fields and actions survive encoding and decoding, and their bytes
// are those OVS documents (NXAST_RESUBMIT_TABLE, set_field to NXM_NX_REG0).
func TestFilterFlowRoundTrip(t *testing.T) {
	pfx := netip.MustParsePrefix
	tests := []flows.Flow{
		{Table: 1, Priority: 1000, Cookie: 0x504d000000000008, Match: flows.Match{Reg0: 7, HasReg0: true, EthType: 0x0800,
			IPProto: 6, HasIPProto: true, IPSrc: pfx("198.18.0.0/16"), IPDst: pfx("198.18.1.7/32"), TPSrc: 0x400, TPSrcMask: 0xfc00,
			TPDst: 80, TPDstMask: 0xffff}, Actions: []flows.Action{{Type: flows.ActOutput, Port: 4}}},
		{Table: 1, Priority: 999, Match: flows.Match{Reg0: 1, HasReg0: true, EthType: 0x86dd, IPProto: 17, HasIPProto: true,
			IPDst: pfx("2001:db8::/33"), TPDst: 0x8000, TPDstMask: 0x8000}},
		{Table: 1, Priority: 1, Match: flows.Match{Reg0: 2, HasReg0: true, EthType: 0x0806},
			Actions: []flows.Action{{Type: flows.ActSetReg0, Value: 1}, {Type: flows.ActResubmit, Value: 1}}},
		{Priority: 200, Match: flows.Match{InPort: 3}, Actions: []flows.Action{{Type: flows.ActNormal},
			{Type: flows.ActSetReg0, Value: 0xffffffff}, {Type: flows.ActResubmit, Value: 1}}},
	}
	for _, f := range tests {
		fm, err := AppendFlowMod(nil, 1, FlowAdd, f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeFlowStats(flowStatFromFlowMod(fm, 0))
		if err != nil || len(got) != 1 || got[0].Foreign != "" || !reflect.DeepEqual(got[0].Flow, f) {
			t.Errorf("%s: decoded %+v, %v", f, got, err)
		}
	}
	fm, _ := AppendFlowMod(nil, 1, FlowAdd, tests[2])
	want := []byte{0xff, 0xff, 0, 16, 0, 0, 0x23, 0x20, 0, 14, 0xff, 0xf8, 1, 0, 0, 0}
	if !bytes.Contains(fm, want) {
		t.Errorf("resubmit(,1) is not encoded as % x in % x", want, fm)
	}
	setReg := []byte{0, 25, 0, 16, 0, 1, 0, 4, 0, 0, 0, 1, 0, 0, 0, 0}
	if !bytes.Contains(fm, setReg) {
		t.Errorf("set_field:1->reg0 is not encoded as % x in % x", setReg, fm)
	}
	if _, err := AppendFlowMod(nil, 1, FlowAdd, flows.Flow{Actions: []flows.Action{{Type: flows.ActResubmit, Value: 255}}}); err == nil {
		t.Error("resubmit to table 255 encoded")
	}
}

// TestOutputTrunc: output with max_len is NXAST_OUTPUT_TRUNC with the bytes the facts file measured
// ("ffff 0010 00002320 0027 000b 00000060" for port 11, 96 bytes), round-trips, and refuses what OVS refuses.
func TestOutputTrunc(t *testing.T) {
	f := flows.Flow{Priority: 200, Match: flows.Match{InPort: 1}, Actions: []flows.Action{{Type: flows.ActNormal},
		{Type: flows.ActSetTunID, Value: 5001}, {Type: flows.ActOutputTrunc, Port: 11, Value: 96}}}
	fm, err := AppendFlowMod(nil, 1, FlowAdd, f)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0xff, 0xff, 0, 0x10, 0, 0, 0x23, 0x20, 0, 0x27, 0, 0x0b, 0, 0, 0, 0x60}
	if !bytes.Contains(fm, want) {
		t.Errorf("output(port=11,max_len=96) is not % x in % x", want, fm)
	}
	got, err := DecodeFlowStats(flowStatFromFlowMod(fm, 0))
	if err != nil || len(got) != 1 || !reflect.DeepEqual(got[0].Flow, f) {
		t.Errorf("decoded %+v, %v", got, err)
	}
	for _, bad := range []flows.Action{{Type: flows.ActOutputTrunc, Port: 0x10000, Value: 96},
		{Type: flows.ActOutputTrunc, Port: 3, Value: 13}, {Type: flows.ActOutputTrunc, Port: 0, Value: 64}} {
		if _, err := AppendFlowMod(nil, 1, FlowAdd, flows.Flow{Actions: []flows.Action{bad}}); err == nil {
			t.Errorf("%v encoded", bad)
		}
	}
}

func TestAppendFlowModRefusesUnencodable(t *testing.T) {
	f := flows.Flow{Actions: []flows.Action{{Type: flows.ActSetReg0, Value: 1 << 40}}}
	dst := []byte("keep")
	out, err := AppendFlowMod(dst, 1, FlowAdd, f)
	if err == nil || !strings.Contains(err.Error(), "32 bits") {
		t.Fatalf("err = %v, want an error naming reg0's 32 bits", err)
	}
	if string(out) != "keep" {
		t.Fatalf("dst changed to %q", out)
	}
}

// rawEntry builds a flow-stats entry from raw OXM TLVs and raw instructions.
func rawEntry(oxms, instrs []byte) []byte {
	m := append([]byte{0, 1, 0, byte(4 + len(oxms))}, oxms...)
	for len(m)%8 != 0 {
		m = append(m, 0)
	}
	e := make([]byte, flowStatsFixed)
	e = append(append(e, m...), instrs...)
	binary.BigEndian.PutUint16(e, uint16(len(e)))
	binary.BigEndian.PutUint64(e[24:], flows.CookieOurs|1)
	return e
}

func applyActions(acts ...[]byte) []byte {
	b := []byte{0, 4, 0, 0, 0, 0, 0, 0}
	for _, a := range acts {
		b = append(b, a...)
	}
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	return b
}

var (
	popPBB     = []byte{0, 27, 0, 8, 0, 0, 0, 0}
	outNormal  = []byte{0, 0, 0, 16, 0xff, 0xff, 0xff, 0xfa, 0, 0, 0, 0, 0, 0, 0, 0}
	nxResubmit = []byte{0xff, 0xff, 0, 16, 0, 0, 0x23, 0x20, 0, 1, 0, 0, 0, 0, 0, 0} // Nicira experimenter action
	gotoTable  = []byte{0, 1, 0, 8, 5, 0, 0, 0}
	oxmInPort1 = []byte{0x80, 0, 0, 4, 0, 0, 0, 1}
	oxmVlanVID = []byte{0x80, 0, 12, 2, 0x10, 0x05}
	oxmTunDst  = []byte{0, 1, 64, 4, 198, 18, 0, 1}
)

func TestDecodeFlowStatsForeign(t *testing.T) {
	tests := []struct {
		name        string
		entry       []byte
		wantActs    []flows.Action
		wantForeign string
		wantErr     string
	}{
		{name: "POP_PBB after NORMAL", entry: rawEntry(oxmInPort1, applyActions(outNormal, popPBB)),
			wantActs: []flows.Action{{Type: flows.ActNormal}, {Type: ActUnknown, Value: 27}}},
		{name: "Nicira action", entry: rawEntry(nil, applyActions(nxResubmit)),
			wantActs: []flows.Action{{Type: ActUnknown, Value: 0xffff}}},
		{name: "goto_table instruction", entry: rawEntry(nil, gotoTable),
			wantActs: []flows.Action{{Type: ActUnknown, Value: InstructionFlag + 1}}},
		{name: "vlan_vid in match", entry: rawEntry(append(oxmInPort1, oxmVlanVID...), nil), wantForeign: "oxm(class=0x8000,field=6)"},
		{name: "tun_dst in match", entry: rawEntry(oxmTunDst, nil), wantForeign: "tun_dst=198.18.0.1"},
		{name: "duplicate field", entry: rawEntry(append(oxmInPort1, oxmInPort1...), nil), wantErr: "twice"},
		{name: "OXM longer than match", entry: rawEntry([]byte{0x80, 0, 0, 40, 0, 0, 0, 1}, nil), wantErr: "OXM in_port of 40 bytes"},
		{name: "action length 0", entry: rawEntry(nil, applyActions([]byte{0, 0, 0, 0, 0, 0, 0, 0})), wantErr: "length 0"},
		{name: "output of length 8", entry: rawEntry(nil, applyActions([]byte{0, 0, 0, 8, 0, 0, 0, 1})), wantErr: "want 16"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeFlowStats(tc.entry)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrMalformed) {
					t.Fatalf("err = %v, want ErrMalformed containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || len(got) != 1 {
				t.Fatalf("got %d entries, err %v", len(got), err)
			}
			if got[0].Foreign != tc.wantForeign {
				t.Fatalf("foreign = %q, want %q", got[0].Foreign, tc.wantForeign)
			}
			if !reflect.DeepEqual(got[0].Flow.Actions, tc.wantActs) {
				t.Fatalf("actions = %+v, want %+v", got[0].Flow.Actions, tc.wantActs)
			}
		})
	}
}

func TestDecodePortStatusAndDesc(t *testing.T) {
	port := make([]byte, portLen)
	binary.BigEndian.PutUint32(port, 3)
	copy(port[8:], []byte{2, 0, 0, 0, 0, 1})
	copy(port[16:], "vm1-eth0")
	binary.BigEndian.PutUint32(port[36:], 1) // link down
	ps, err := DecodePortStatus(append([]byte{byte(PortModified), 0, 0, 0, 0, 0, 0, 0}, port...))
	if err != nil {
		t.Fatal(err)
	}
	if ps.Reason != PortModified || ps.Port.PortNo != 3 || ps.Port.Name != "vm1-eth0" || ps.Port.Up() || ps.Port.HWAddr.String() != "02:00:00:00:00:01" {
		t.Fatalf("got %+v", ps)
	}
	if _, err := DecodePortStatus(append([]byte{9, 0, 0, 0, 0, 0, 0, 0}, port...)); err == nil {
		t.Fatal("reason 9 accepted")
	}
	ports, err := DecodePortDesc(append(bytes.Clone(port), port...))
	if err != nil || len(ports) != 2 {
		t.Fatalf("port desc: %d ports, %v", len(ports), err)
	}
	if _, err := DecodePortDesc(port[:63]); err == nil {
		t.Fatal("63-byte port desc accepted")
	}
}

func TestErrorMsgText(t *testing.T) {
	e, err := DecodeError([]byte{0, 2, 0, 4, 1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	if got := e.Error(); got != "OpenFlow error BAD_ACTION/BAD_OUT_PORT" {
		t.Fatalf("got %q", got)
	}
}

// BenchmarkAppendFlowMod measures the encoder on the hot path of a reconcile.
func BenchmarkAppendFlowMod(b *testing.B) {
	f := flows.Flow{Table: 0, Priority: 100, Cookie: flows.CookieOurs | 1,
		Match: flows.Match{InPort: 3, EthDst: flows.MAC{2, 0, 0, 0, 0, 1}, EthDstMask: flows.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
		Actions: []flows.Action{{Type: flows.ActNormal}, {Type: flows.ActSetTunID, Value: 7},
			{Type: flows.ActSetTunDst, IP: flows.MustIPv4("198.18.0.2")}, {Type: flows.ActOutput, Port: 9}}}
	buf := make([]byte, 0, 256)
	for i := 0; b.Loop(); i++ {
		buf, _ = AppendFlowMod(buf[:0], uint32(i), FlowAdd, f)
	}
}

// TestBundleMessages: the bundle messages frame as OVS expects (checked against OVS in the controller's tests):
// lengths multiple of 8 for adds, the inner flow_mod byte-identical to a plain one with the same xid, and the
// decoders give back what was encoded; cut or inconsistent messages are refused as malformed.
func TestBundleMessages(t *testing.T) {
	f := flows.Flow{Table: 1, Priority: 7, Cookie: 0x99, Match: flows.Match{InPort: 3}, Actions: []flows.Action{{Type: flows.ActOutput, Port: 4}}}
	for _, cmd := range []FlowModCommand{FlowAdd, FlowModifyStrict, FlowDeleteStrict} {
		add, err := AppendBundleFlowMod([]byte{0xaa}, 41, 7, BundleAtomic|BundleOrdered, cmd, f)
		if err != nil {
			t.Fatal(err)
		}
		if add[0] != 0xaa {
			t.Fatal("dst's contents were overwritten")
		}
		m, err := ReadMessage(bufio.NewReader(bytes.NewReader(add[1:])), Version)
		if err != nil {
			t.Fatal(err)
		}
		if m.Type != TypeExperimenter || m.Xid != 41 || len(add[1:])%8 != 0 {
			t.Fatalf("%v: header %+v, %d bytes", cmd, m.Header, len(add[1:]))
		}
		e, err := DecodeExperimenter(m.Body)
		if err != nil || e.Experimenter != ONFExperimenter || e.ExpType != ONFBundleAdd {
			t.Fatalf("%v: experimenter %+v %v", cmd, e, err)
		}
		ba, err := DecodeBundleAdd(e.Data)
		if err != nil || ba.BundleID != 7 || ba.Flags != BundleAtomic|BundleOrdered {
			t.Fatalf("%v: bundle add %+v %v", cmd, ba, err)
		}
		plain, _ := AppendFlowMod(nil, 41, cmd, f)
		if !bytes.Equal(ba.Inner, plain) {
			t.Fatalf("%v: inner message\n%x\nwant\n%x", cmd, ba.Inner, plain)
		}
		if _, err := DecodeBundleAdd(e.Data[:len(e.Data)-len(plain)+4]); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%v: a cut inner message decoded: %v", cmd, err)
		}
	}
	ctl := AppendBundleControl(nil, 3, 0xdeadbeef, BundleCommitRequest, BundleAtomic)
	if len(ctl) != 24 {
		t.Fatalf("bundle control of %d bytes, want 24", len(ctl))
	}
	e, _ := DecodeExperimenter(ctl[HeaderLen:])
	bc, err := DecodeBundleControl(e.Data)
	if err != nil || bc != (BundleControl{BundleID: 0xdeadbeef, Type: BundleCommitRequest, Flags: BundleAtomic}) {
		t.Fatalf("bundle control %+v %v", bc, err)
	}
	if _, err := DecodeBundleControl(e.Data[:7]); !errors.Is(err, ErrMalformed) {
		t.Fatalf("a cut bundle control decoded: %v", err)
	}
	if _, err := DecodeExperimenter([]byte{1, 2, 3}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("a cut experimenter message decoded: %v", err)
	}
	em, err := DecodeError(AppendExperimenterError(nil, 3, BundleErrMsgFailed, ONFExperimenter, ctl)[HeaderLen:])
	if err != nil || em.Error() != "OpenFlow error EXPERIMENTER/BUNDLE_MSG_FAILED" {
		t.Fatalf("experimenter error %v (%v)", em, err)
	}
}

// TestReadMessageInto: a body goes into the caller's buffer when it is large enough (the same memory, asked for
// with the message's header), into a new allocation when it is not or none is given; the next message reads on.
func TestReadMessageInto(t *testing.T) {
	body := bytes.Repeat([]byte{0xab}, 100)
	var wire []byte
	for range 3 {
		wire = append(wire, 4, byte(TypeMultipartReply), 0, byte(HeaderLen+len(body)), 0, 0, 0, 9)
		wire = append(wire, body...)
	}
	r := bufio.NewReader(bytes.NewReader(wire))
	buf := make([]byte, 128)
	var asked []Header
	for i, give := range [][]byte{buf, buf[:10:10], nil} {
		m, err := ReadMessageInto(r, Version, func(h Header) []byte { asked = append(asked, h); return give })
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(m.Body, body) || m.Xid != 9 || m.Type != TypeMultipartReply {
			t.Fatalf("message %d: %v xid %d, body of %d bytes", i, m.Type, m.Xid, len(m.Body))
		}
		if into := &m.Body[0] == &buf[0]; into != (i == 0) {
			t.Fatalf("message %d: read into the caller's buffer %v", i, into)
		}
	}
	if len(asked) != 3 || asked[0].Length != uint16(HeaderLen+len(body)) {
		t.Fatalf("asked for buffers with headers %+v", asked)
	}
}

// A flow_mod built from a packed entry is byte for byte the one AppendFlowMod encodes from the flow, for every
// command, plain and in a bundle; PackedEntries frames what PackFlows wrote.
func TestFlowModFromPackedEntry(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for range 300 {
		fs := []flows.Flow{randomFlow(r), randomFlow(r), randomFlow(r)}
		if r.IntN(3) == 0 {
			fs[1].Meter = 1 + r.Uint32N(100)
		}
		if r.IntN(3) == 0 { // the same key as another, other cookie and actions
			fs[2].Table, fs[2].Priority, fs[2].Match = fs[0].Table, fs[0].Priority, fs[0].Match
		}
		packed, err := PackFlows(fs)
		if err != nil {
			t.Fatal(err)
		}
		entries, err := PackedEntries(packed)
		if err != nil || len(entries) != len(fs) {
			t.Fatalf("%d entries (%v) from %d flows", len(entries), err, len(fs))
		}
		for _, e := range entries {
			got, err := UnpackFlows(e)
			if err != nil || len(got) != 1 {
				t.Fatalf("entry alone: %v %v", got, err)
			}
			f := got[0]
			for cmd := FlowAdd; cmd <= FlowDeleteStrict; cmd++ {
				want, err := AppendFlowMod(nil, 7, cmd, f)
				if err != nil {
					t.Fatal(err)
				}
				if got, err := AppendFlowModEntry(nil, 7, cmd, e); err != nil || !bytes.Equal(got, want) {
					t.Fatalf("%s of %+v from its entry:\n% x (%v)\nwant\n% x", cmd, f, got, err, want)
				}
				wantB, _ := AppendBundleFlowMod(nil, 7, 3, BundleAtomic, cmd, f)
				if gotB, err := AppendBundleFlowModEntry(nil, 7, 3, BundleAtomic, cmd, e); err != nil || !bytes.Equal(gotB, wantB) {
					t.Fatalf("bundled %s of %+v from its entry differs (%v)", cmd, f, err)
				}
			}
		}
	}
	if _, err := AppendFlowModEntry(nil, 1, FlowAdd, make([]byte, 20)); err == nil {
		t.Error("a short entry was accepted")
	}
}
