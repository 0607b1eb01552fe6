package ofwire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
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
				{Type: flows.ActSetTunDst, IP: flows.MustIPv4("198.18.0.2")}, {Type: flows.ActSetErspanVer, Value: 2},
				{Type: flows.ActSetErspanDir, Value: 1}, {Type: flows.ActSetErspanHwid, Value: 4}, {Type: flows.ActOutput, Port: 100}}},
		{Priority: 100, Cookie: ours, Match: flows.Match{InPort: 100, HasTunID: true, TunID: 42},
			Actions: []flows.Action{{Type: flows.ActSetTunID, Value: 7}, {Type: flows.ActSetTunDst, IP: flows.MustIPv4("198.18.0.9")},
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
	if _, err := PackFlows([]flows.Flow{{Actions: []flows.Action{{Type: flows.ActSetReg0, Value: 1 << 40}}}}); err == nil {
		t.Error("a reg0 value of more than 32 bits was packed")
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

// TestSortSpansIsByteOrder: the sort that compares the words kept in spans orders canonical entries exactly as
// their bytes, for entries that differ anywhere: in a kept word, between words, in the bytes after them, or only
// in length.
func TestSortSpansIsByteOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for round := range 200 {
		var b []byte
		var want [][]byte
		base := make([]byte, 48+8*(1+r.IntN(12)))
		for i := range base {
			base[i] = byte(r.Uint32())
		}
		for range 1 + r.IntN(60) {
			e := slices.Clone(base[:48+8*(1+r.IntN(len(base)/8-6))])
			for range r.IntN(3) { // a few bytes changed anywhere, most entries sharing long prefixes
				e[2+r.IntN(len(e)-2)] = byte(r.IntN(3))
			}
			binary.BigEndian.PutUint16(e, uint16(len(e)))
			canonicalEntry(e)
			want = append(want, e)
			b = append(b, e...)
		}
		spans, _, err := entrySpans(b)
		if err != nil {
			t.Fatal(err)
		}
		sortSpans(b, spans)
		slices.SortFunc(want, bytes.Compare)
		for i, sp := range spans {
			if !bytes.Equal(b[sp.lo:sp.hi], want[i]) {
				t.Fatalf("round %d: entry %d of %d out of byte order", round, i, len(spans))
			}
		}
	}
}

// bulkShape is n flows shaped as a crowded bridge compiles them: one table, priority and cookie, an in_port and an
// exact destination MAC each, three to eleven actions.
func bulkShape(n int) []flows.Flow {
	fs := make([]flows.Flow, n)
	for i := range fs {
		f := &fs[i]
		f.Priority, f.Cookie = 300, flows.CookieOurs|3
		f.Match.InPort = uint32(1 + i/340)
		f.Match.EthDst = flows.MAC{2, 0, 0, 0, byte(i % 340 >> 8), byte(i % 340)}
		f.Match.EthDstMask = flows.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
		f.Actions = []flows.Action{{Type: flows.ActNormal}}
		for k := range 1 + i%5 { // lengths vary
			f.Actions = append(f.Actions, flows.Action{Type: flows.ActSetReg0, Value: uint64(i%7 + k)}, flows.Action{Type: flows.ActResubmit, Value: 5})
		}
	}
	return fs
}

func BenchmarkPackFlows100k(b *testing.B) {
	fs := bulkShape(115000)
	slices.SortFunc(fs, flows.CompareFlows) // the compiler's order, which is not the bytes' (those start with the length)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := PackFlows(fs); err != nil {
			b.Fatal(err)
		}
	}
}

// TestPackFlowsInHalves: a large bridge's flows, packed in two halves at once and merged, are the very bytes of
// packing them in one piece; a flow that cannot be encoded is named by its index in either half.
func TestPackFlowsInHalves(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	for round := range 3 {
		fs := bulkShape(packHalvesMin + r.IntN(5000)) // flows sharing long prefixes, some twice (PackFlows keeps both)
		r.Shuffle(len(fs), func(i, j int) { fs[i], fs[j] = fs[j], fs[i] })
		for i := range fs {
			switch {
			case round == 0:
				fs[i] = randomFlow(r)
			case r.IntN(50) == 0:
				fs[i] = fs[r.IntN(i+1)]
			}
		}
		whole, err := appendEntries(nil, fs, 0)
		if err != nil {
			t.Fatal(err)
		}
		want, n, err := CanonicalFlowEntries(whole)
		if err != nil || n != len(fs) {
			t.Fatalf("round %d: %d entries (%v)", round, n, err)
		}
		got, err := PackFlows(fs)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("round %d: %d flows packed in halves differ from packed whole", round, len(fs))
		}
		bad := r.IntN(len(fs))
		fs[bad].Actions = []flows.Action{{Type: flows.ActSetReg0, Value: 1 << 40}}
		if _, err := PackFlows(fs); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("flow %d ", bad)) {
			t.Fatalf("round %d: flow %d cannot be encoded, got %v", round, bad, err)
		}
	}
}

// TestPackerMatchesPackFlows: one Packer reused for set after set (of every size, sorted or not) packs each as
// PackFlows does, and a result stays as it was when the Packer packs the next set into its scratch space.
func TestPackerMatchesPackFlows(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	var pk Packer
	var kept [][]byte
	var want [][]byte
	for round := range 200 {
		fs := make([]flows.Flow, r.IntN(80))
		for i := range fs {
			fs[i] = randomFlow(r)
		}
		if round%10 == 0 {
			fs = bulkShape(r.IntN(3 * packHalvesMin / 2)) // some large enough for the halves
		}
		w, err := PackFlows(fs)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pk.Pack(fs)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, w) {
			t.Fatalf("round %d: the Packer's %d flows differ from PackFlows'", round, len(fs))
		}
		kept, want = append(kept, got), append(want, w)
	}
	for i := range kept {
		if !bytes.Equal(kept[i], want[i]) {
			t.Fatalf("result %d changed when the Packer packed later sets", i)
		}
	}
	if _, err := pk.Pack([]flows.Flow{{Actions: []flows.Action{{Type: flows.ActSetReg0, Value: 1 << 40}}}}); err == nil {
		t.Error("a reg0 value of more than 32 bits was packed")
	}
}
