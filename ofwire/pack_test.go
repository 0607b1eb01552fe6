package ofwire

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"portmirror/flows"
)

// TestPackRoundTrip: what the controller keeps of a bridge's flows (PackFlows) unpacks to the very same flows, for
// every kind of match and action the compiler emits: a difference would be a flow_mod sent for nothing.
func TestPackRoundTrip(t *testing.T) {
	ours := flows.CookieOurs | 3
	special := []flows.Flow{
		{Priority: 0, Cookie: ours, Actions: []flows.Action{{Type: flows.ActNormal}}},
		{Priority: 600, Cookie: ours, Match: flows.Match{InPort: 7}}, // drop
		{Table: 1, Priority: 300, Cookie: ours, Meter: 9, Match: flows.Match{HasReg0: true, Reg0: 12, EthType: 0x0800, HasIPProto: true, IPProto: 6,
			IPSrc: netip.MustParsePrefix("198.18.0.0/16"), IPDst: netip.MustParsePrefix("198.19.1.2/32"), TPDst: 443, TPDstMask: 0xffff,
			TPSrc: 0x400, TPSrcMask: 0xfc00},
			Actions: []flows.Action{{Type: flows.ActOutputTrunc, Port: 4, Value: 128}}},
		{Table: 1, Priority: 200, Cookie: ours, Match: flows.Match{HasReg0: true, Reg0: 1, EthType: 0x86dd, HasIPProto: true, IPProto: 17,
			IPSrc: netip.MustParsePrefix("2001:db8::/32")}},
		{Priority: 200, Cookie: ours, Match: flows.Match{InPort: 3}, Actions: []flows.Action{{Type: flows.ActNormal},
			{Type: flows.ActSetReg0, Value: 77}, {Type: flows.ActResubmit, Value: 2},
			{Type: flows.ActClone, Value: 3}, {Type: flows.ActSetReg0, Value: 5}, {Type: flows.ActResubmit, Value: 3},
			{Type: flows.ActOutputTrunc, Port: 100, Value: 65535}}},
		{Priority: 100, Cookie: ours, Match: flows.Match{EthDst: flows.MAC{2, 0, 0, 0, 0, 1}, EthDstMask: flows.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
			Actions: []flows.Action{{Type: flows.ActNormal}, {Type: flows.ActSetTunID, Value: 42},
				{Type: flows.ActSetTunDst, IP: netip.MustParseAddr("198.18.0.2")}, {Type: flows.ActSetErspanVer, Value: 2},
				{Type: flows.ActSetErspanDir, Value: 1}, {Type: flows.ActSetErspanHwid, Value: 4}, {Type: flows.ActOutput, Port: 100}}},
		{Priority: 100, Cookie: ours, Match: flows.Match{InPort: 100, HasTunID: true, TunID: 42},
			Actions: []flows.Action{{Type: flows.ActSetTunID, Value: 7}, {Type: flows.ActSetTunDst, IP: netip.MustParseAddr("198.18.0.9")},
				{Type: flows.ActSetErspanVer, Value: 1}, {Type: flows.ActSetErspanIdx, Value: 99}, {Type: flows.ActOutput, Port: 101}}},
	}
	r := rand.New(rand.NewPCG(3, 4))
	all := slices.Clone(special)
	for range 3000 {
		all = append(all, randomFlow(r))
	}
	for _, fs := range [][]flows.Flow{nil, special, all} {
		b, err := PackFlows(fs)
		if err != nil {
			t.Fatal(err)
		}
		got, err := UnpackFlows(b)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(fs) {
			t.Fatalf("%d flows packed, %d unpacked", len(fs), len(got))
		}
		// packed in canonical order, not fs's
		fs := slices.Clone(fs)
		slices.SortFunc(fs, flows.CompareFlows)
		slices.SortFunc(got, flows.CompareFlows)
		for i := range fs {
			if !got[i].Equal(&fs[i]) {
				t.Fatalf("flow %d:\n packed %+v\nunpacked %+v", i, fs[i], got[i])
			}
		}
	}
	if _, err := PackFlows([]flows.Flow{{Actions: []flows.Action{{Type: flows.ActSetTunDst, IP: netip.MustParseAddr("2001:db8::1")}}}}); err == nil {
		t.Error("an IPv6 tun_dst was packed")
	}
}

// TestUnpackRefusesDamage: a cut or trailing byte is an error, never a panic.
func TestUnpackRefusesDamage(t *testing.T) {
	b, err := PackFlows([]flows.Flow{{Priority: 1, Cookie: flows.CookieOurs | 1, Actions: []flows.Action{{Type: flows.ActNormal}}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]byte{b[:len(b)-1], append(slices.Clone(b), 0), b[:10]} {
		if _, err := UnpackFlows(bad); err == nil {
			t.Errorf("%d bytes unpacked without an error", len(bad))
		}
	}
}

// switchReply is fs as a switch's flow-stats reply: in another order, with durations, counters and padding set.
func switchReply(t *testing.T, r *rand.Rand, fs []flows.Flow) []byte {
	t.Helper()
	shuffled := slices.Clone(fs)
	r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	var reply []byte
	for i := range shuffled {
		e, err := PackFlows(shuffled[i : i+1])
		if err != nil {
			t.Fatal(err)
		}
		e[entryPad1] = 9
		for j := entryDuration; j < entryDuration+8; j++ {
			e[j] = byte(r.Uint32())
		}
		e[entryPad4+1] = 1
		for j := entryCounts; j < entryCounts+16; j++ {
			e[j] = byte(r.Uint32())
		}
		reply = append(reply, e...)
	}
	return reply
}

// TestCanonicalFlowEntries: a switch's flow-stats entries, in any order and with any durations and counters, are
// what PackFlows keeps (SameFlowEntries, and byte for byte in canonical form) exactly when they are the same
// flows; a changed flow, a missing one or an extra one makes them differ; entries whose lengths do not frame the
// reply are an error.
func TestCanonicalFlowEntries(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for round := range 300 {
		fs := make([]flows.Flow, 1+r.IntN(40))
		for i := range fs {
			fs[i] = randomFlow(r)
			fs[i].Priority = uint16(i + 1) // no two of one key: a switch holds one flow a key
		}
		want, err := PackFlows(fs)
		if err != nil {
			t.Fatal(err)
		}
		reply := switchReply(t, r, fs)
		if same, err := SameFlowEntries(slices.Clone(reply), want); err != nil || !same {
			t.Fatalf("round %d: the switch's reply of the same flows is not the same flows (%v)", round, err)
		}
		// one by one, in the reply's order: the same entries as packed, in another order
		var each [][]byte
		n, err := EachFlowEntry(slices.Clone(reply), func(e []byte) { each = append(each, slices.Clone(e)) })
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(each, bytes.Compare)
		if n != len(fs) || !bytes.Equal(bytes.Join(each, nil), want) {
			t.Fatalf("round %d: %d entries given one by one in canonical form differ from the %d flows packed", round, n, len(fs))
		}
		got, n, err := CanonicalFlowEntries(reply)
		if err != nil {
			t.Fatal(err)
		}
		if n != len(fs) || !bytes.Equal(got, want) {
			t.Fatalf("round %d: %d entries in canonical form differ from the %d flows packed", round, n, len(fs))
		}
		// one flow changed, dropped or added: not the same
		changed := slices.Clone(fs)
		switch k := r.IntN(len(fs)); round % 3 {
		case 0:
			changed[k].Priority += 1000
		case 1:
			changed = slices.Delete(changed, k, k+1)
		default:
			extra := randomFlow(r)
			extra.Priority = 5000
			changed = append(changed, extra)
		}
		if same, err := SameFlowEntries(switchReply(t, r, changed), want); err != nil || same {
			t.Fatalf("round %d: a changed set of flows is found the same (%v)", round, err)
		}
		other, err := PackFlows(changed)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(other, want) {
			t.Fatalf("round %d: a changed set of flows packs to the same bytes", round)
		}
	}
	one, err := PackFlows([]flows.Flow{{Priority: 1, Actions: []flows.Action{{Type: flows.ActNormal}}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]byte{one[:len(one)-1], append(slices.Clone(one), 0), one[:10]} {
		if _, _, err := CanonicalFlowEntries(slices.Clone(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%d bytes: %v, want an error wrapping ErrMalformed", len(bad), err)
		}
		if _, err := EachFlowEntry(slices.Clone(bad), func([]byte) { t.Error("an entry of a malformed reply") }); !errors.Is(err, ErrMalformed) {
			t.Errorf("%d bytes one by one: %v, want an error wrapping ErrMalformed", len(bad), err)
		}
		if _, err := SameFlowEntries(slices.Clone(bad), one); !errors.Is(err, ErrMalformed) {
			t.Errorf("%d bytes compared: %v, want an error wrapping ErrMalformed", len(bad), err)
		}
	}
}
