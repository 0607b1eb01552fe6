package ofwire

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"

	"portmirror/flows"
)

// PackFlows encodes fs as OpenFlow 1.3 flow-stats entries (counters and durations zero), one after the other in
// one byte slice: the compact, pointer-free form in which the controller keeps what a bridge holds (a tenth of
// the memory of []flows.Flow at scale, and nothing for the garbage collector to walk). The entries are in their
// canonical order (CanonicalFlowEntries), not fs's: the same flows in any order pack to the same bytes, and a
// switch's flow-stats reply in canonical form equals them exactly when it holds those flows, encoded as this
// package encodes them. UnpackFlows reverses it.
func PackFlows(fs []flows.Flow) ([]byte, error) { return new(Packer).Pack(fs) }

// Packer packs flows as PackFlows does, encoding and sorting them in scratch space it keeps for its next call: a
// controller that packs bridge after bridge (each change compiles the bridges it touches) allocates each result
// alone, of its exact length, instead of a generous buffer and the spans to sort it. A Packer is not safe for
// concurrent use.
type Packer struct {
	buf   []byte
	spans []span
}

// Pack is PackFlows(fs); the result is the caller's.
func (pk *Packer) Pack(fs []flows.Flow) ([]byte, error) {
	if len(fs) >= packHalvesMin {
		return packHalves(fs)
	}
	if err := pk.encode(fs, 0); err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(pk.buf))
	for _, sp := range pk.spans {
		out = append(out, pk.buf[sp.lo:sp.hi]...)
	}
	return out, nil
}

// encode encodes fs (fs[0] is flow first of the caller's, for errors) into pk's scratch space, in canonical form,
// and sorts pk.spans, which frame the entries, into canonical order.
func (pk *Packer) encode(fs []flows.Flow, first int) error {
	var err error
	if pk.buf, err = appendEntries(pk.buf[:0], fs, first); err != nil {
		return err
	}
	var sorted bool
	if pk.spans, sorted, err = appendSpans(pk.spans[:0], pk.buf); err != nil {
		return err
	}
	if !sorted {
		sortSpans(pk.buf, pk.spans)
	}
	return nil
}

// packHalves packs a large bridge's flows in two halves at once, then merges them: a bulk change waits for its
// packing before the first flow_mod goes out.
func packHalves(fs []flows.Flow) ([]byte, error) {
	var h [2]Packer
	var errs [2]error
	mid := len(fs) / 2
	done := make(chan struct{})
	go func() {
		defer close(done)
		errs[1] = h[1].encode(fs[mid:], mid)
	}()
	errs[0] = h[0].encode(fs[:mid], 0)
	<-done
	if err := cmp.Or(errs[0], errs[1]); err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(h[0].buf)+len(h[1].buf))
	i, j := 0, 0
	for i < len(h[0].spans) || j < len(h[1].spans) {
		if j == len(h[1].spans) || (i < len(h[0].spans) && compareEntries(h[0].buf, &h[0].spans[i], h[1].buf, &h[1].spans[j]) <= 0) {
			sp := h[0].spans[i]
			out = append(out, h[0].buf[sp.lo:sp.hi]...)
			i++
		} else {
			sp := h[1].spans[j]
			out = append(out, h[1].buf[sp.lo:sp.hi]...)
			j++
		}
	}
	return out, nil
}

// packHalvesMin is the number of flows from which PackFlows packs in two halves at once.
const packHalvesMin = 8192

// appendEntries appends fs as flow-stats entries in fs's order (PackFlows before sorting); first is fs[0]'s
// index, for errors.
func appendEntries(dst []byte, fs []flows.Flow, first int) ([]byte, error) {
	n := 0
	for i := range fs {
		// a generous guess (the entry, a match of a few fields, the instruction headers, the actions): one
		// allocation, where a tight one grew the buffer three or four times per bridge
		n += flowStatsFixed + 64 + 32*len(fs[i].Actions)
	}
	dst = slices.Grow(dst, n)
	for i := range fs {
		f := &fs[i]
		start := len(dst)
		dst = append(dst, 0, 0, f.Table, 0)       // length (below), table, pad
		dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0) // duration
		dst = binary.BigEndian.AppendUint16(dst, f.Priority)
		dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0) // idle and hard timeouts, flags, pad
		dst = binary.BigEndian.AppendUint64(dst, f.Cookie)
		dst = append(dst, make([]byte, 16)...) // packet and byte counts
		dst = appendMatch(dst, f.Match)
		if f.Meter != 0 {
			dst = append(dst, 0, byte(instrMeter), 0, 8)
			dst = binary.BigEndian.AppendUint32(dst, f.Meter)
		}
		var err error
		if dst, err = appendActions(dst, f.Actions); err != nil {
			return nil, fmt.Errorf("flow %d (table=%d priority=%d): %w", first+i, f.Table, f.Priority, err)
		}
		if len(dst)-start > 0xffff {
			return nil, fmt.Errorf("flow %d (table=%d priority=%d): %d bytes, more than a flow-stats entry holds", first+i, f.Table, f.Priority, len(dst)-start)
		}
		binary.BigEndian.PutUint16(dst[start:], uint16(len(dst)-start))
	}
	return dst, nil
}

// Where a flow-stats entry holds what changes while the flow lives, and padding.
const (
	entryPad1     = 3  // 1 byte
	entryDuration = 4  // seconds and nanoseconds, 8 bytes
	entryPad4     = 20 // 4 bytes
	entryCounts   = 32 // packets and bytes, 16 bytes
)

// SameFlowEntries reports whether entries (a switch's flow-stats entries, the bodies of a flow-stats reply one
// after the other, in any order) are exactly the flows packed (PackFlows): the same entries in canonical form. It
// zeroes the entries' durations, counters and padding in place and copies nothing (a storm compares every bridge);
// an error wraps ErrMalformed when the entries' lengths do not frame them.
func SameFlowEntries(entries, packed []byte) (bool, error) {
	spans, sorted, err := entrySpans(entries)
	if err != nil {
		return false, err
	}
	if sorted || len(entries) != len(packed) {
		return bytes.Equal(entries, packed), nil
	}
	sortSpans(entries, spans)
	off := 0
	for _, sp := range spans {
		n := sp.hi - sp.lo
		if !bytes.Equal(entries[sp.lo:sp.hi], packed[off:off+n]) {
			return false, nil
		}
		off += n
	}
	return true, nil
}

// canonicalEntry zeroes, in place, what changes while the flow of entry e lives and its padding (what PackFlows
// writes).
func canonicalEntry(e []byte) {
	e[entryPad1] = 0
	clear(e[entryDuration : entryDuration+8])
	clear(e[entryPad4 : entryPad4+4])
	clear(e[entryCounts : entryCounts+16])
}

// span is where one flow-stats entry lies in a byte slice, with the entry's leading bytes that are not zero in
// canonical form, as big-endian words, so that sorting compares words in the spans instead of the entries' bytes
// (which lie all over a large buffer and share long prefixes: at 100,000 flows the sort was half of packing).
type span struct {
	lo, hi int
	key    [spanKeys]uint64
}

// spanKeys is how many words of an entry a span keeps; newSpan names their offsets, in increasing order, and
// spanKeyed is where the entry's bytes after them start. Between the words lie only bytes that canonicalEntry
// zeroes (padding, durations, counters), so in canonical form comparing the words, then the bytes from spanKeyed
// on, is comparing the entries' bytes.
const (
	spanKeys  = 5
	spanKeyed = 64
)

// newSpan frames the entry b[lo:hi], in canonical form, and keeps its words.
func newSpan(b []byte, lo, hi int) span {
	sp := span{lo: lo, hi: hi}
	e := b[lo:hi]
	// length..table, priority..flags, the cookie, the match's first 16 bytes
	for i, at := range [spanKeys]int{0, 12, 24, 48, 56} {
		if at+8 <= len(e) {
			sp.key[i] = binary.BigEndian.Uint64(e[at:])
		} else if at < len(e) {
			var w [8]byte
			copy(w[:], e[at:])
			sp.key[i] = binary.BigEndian.Uint64(w[:])
		}
	}
	return sp
}

// compareSpans orders the entries x and y of b (canonical form) by their bytes.
func compareSpans(b []byte, x, y *span) int { return compareEntries(b, x, b, y) }

// compareEntries orders the entry x of a and the entry y of b (canonical form) by their bytes.
func compareEntries(a []byte, x *span, b []byte, y *span) int {
	for i := range x.key {
		if c := cmp.Compare(x.key[i], y.key[i]); c != 0 {
			return c
		}
	}
	// the same words: the same length (the first two bytes), so neither is a prefix of the other before spanKeyed
	return bytes.Compare(a[min(x.lo+spanKeyed, x.hi):x.hi], b[min(y.lo+spanKeyed, y.hi):y.hi])
}

// entrySpans frames b's flow-stats entries, zeroes what changes while a flow lives and padding (what PackFlows
// writes), and reports whether the entries are in canonical order already.
func entrySpans(b []byte) (spans []span, sorted bool, err error) {
	return appendSpans(nil, b)
}

// appendSpans is entrySpans appending to spans.
func appendSpans(spans []span, b []byte) (_ []span, sorted bool, err error) {
	sorted = true
	spans = slices.Grow(spans, countFlowStats(b))
	for off, i := 0, 0; off < len(b); i++ {
		rest := b[off:]
		n, err := entryLen(rest, i)
		if err != nil {
			return nil, false, err
		}
		e := rest[:n]
		canonicalEntry(e)
		sp := newSpan(b, off, off+n)
		if len(spans) > 0 && sorted {
			sorted = compareSpans(b, &spans[len(spans)-1], &sp) <= 0
		}
		spans = append(spans, sp)
		off += n
	}
	return spans, sorted, nil
}

// sortSpans puts spans in the canonical order of the entries they frame in b: by their bytes.
func sortSpans(b []byte, spans []span) {
	slices.SortFunc(spans, func(x, y span) int { return compareSpans(b, &x, &y) })
}

// CanonicalFlowEntries puts flow-stats entries (the bodies of a flow-stats reply, one after the other) in their
// canonical form: durations, counters and padding zeroed in place (what PackFlows writes), and the entries sorted
// by their bytes. It returns them (b itself when already in order) and how many there are, or an error wrapping
// ErrMalformed when the entries' lengths do not frame b. Nothing in the entries is decoded: a bridge read back
// after a reconnect is compared with what it should hold as bytes (a difference, including one of encoding, only
// means the entries are decoded and diffed).
func CanonicalFlowEntries(b []byte) ([]byte, int, error) {
	spans, sorted, err := entrySpans(b)
	if err != nil {
		return nil, 0, err
	}
	if sorted {
		return b, len(spans), nil
	}
	sortSpans(b, spans)
	out := make([]byte, 0, len(b))
	for _, sp := range spans {
		out = append(out, b[sp.lo:sp.hi]...)
	}
	return out, len(spans), nil
}

// EachFlowEntry calls fn on each of b's flow-stats entries (the bodies of flow-stats replies, one after the other),
// in their order, each in canonical form: what changes while a flow lives and padding zeroed in place (what
// PackFlows writes), nothing copied. One reply's body at a time will do: an entry never spans two replies. It
// returns how many entries there are, or an error wrapping ErrMalformed, before any call, when their lengths do
// not frame b.
func EachFlowEntry(b []byte, fn func(entry []byte)) (int, error) {
	n := 0
	for off := 0; off < len(b); n++ {
		l, err := entryLen(b[off:], n)
		if err != nil {
			return 0, err
		}
		off += l
	}
	for off := 0; off < len(b); {
		l, _ := entryLen(b[off:], 0)
		e := b[off : off+l]
		canonicalEntry(e)
		fn(e)
		off += l
	}
	return n, nil
}

// UnpackFlows decodes what PackFlows encoded, straight into flows.Flow (a storm unpacks each bridge's flows).
func UnpackFlows(b []byte) ([]flows.Flow, error) {
	out := make([]flows.Flow, 0, countFlowStats(b))
	err := eachFlowStat(b, func(st FlowStat) error {
		if st.Foreign != "" {
			return fmt.Errorf("packed flow %d: fields %s", len(out), st.Foreign)
		}
		out = append(out, st.Flow)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("packed flows: %w", err)
	}
	return out, nil
}

// PackedEntries returns the entries of packed flows (PackFlows), in their order, as slices of packed: nothing is
// copied or changed, so several goroutines may read one packed set at once.
func PackedEntries(packed []byte) ([][]byte, error) {
	out := make([][]byte, 0, countFlowStats(packed))
	for off, i := 0, 0; off < len(packed); i++ {
		l, err := entryLen(packed[off:], i)
		if err != nil {
			return nil, err
		}
		out = append(out, packed[off:off+l:off+l])
		off += l
	}
	return out, nil
}

// AppendFlowModEntry appends the flow_mod that AppendFlowMod encodes for the flow of a packed entry (PackFlows),
// built from the entry's bytes: nothing is decoded (a bulk change sends a hundred thousand of them).
func AppendFlowModEntry(dst []byte, xid uint32, cmd FlowModCommand, entry []byte) ([]byte, error) {
	if cmd > FlowDeleteStrict {
		return dst, fmt.Errorf("flow_mod command %d is not one of ADD..DELETE_STRICT", cmd)
	}
	if len(entry) < flowStatsFixed+8 || int(binary.BigEndian.Uint16(entry)) != len(entry) {
		return dst, malformed("packed flow entry of %d bytes", len(entry))
	}
	start := len(dst)
	dst = appendFlowModHead(dst, xid, cmd, binary.BigEndian.Uint64(entry[24:]), entry[2], binary.BigEndian.Uint16(entry[12:]))
	rest := entry[flowStatsFixed:] // the match and the instructions, as AppendFlowMod writes them
	if cmd == FlowDelete || cmd == FlowDeleteStrict {
		rest = rest[:min(len(rest), pad8(int(binary.BigEndian.Uint16(rest[2:]))))] // the match alone
	}
	return finish(append(dst, rest...), start)
}
