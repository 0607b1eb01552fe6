package ofwire

import (
	"encoding/binary"
	"fmt"

	"portmirror/flows"
)

// PackFlows encodes fs as OpenFlow 1.3 flow-stats entries (counters and durations zero), one after the other in
// one byte slice: the compact, pointer-free form in which the controller keeps what a bridge holds (a tenth of
// the memory of []flows.Flow at scale, and nothing for the garbage collector to walk). UnpackFlows reverses it.
func PackFlows(fs []flows.Flow) ([]byte, error) {
	n := 0
	for i := range fs {
		n += flowStatsFixed + 16 + 16*len(fs[i].Actions) // a close guess: one allocation in the common case
	}
	dst := make([]byte, 0, n)
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
			return nil, fmt.Errorf("flow %d (table=%d priority=%d): %w", i, f.Table, f.Priority, err)
		}
		if len(dst)-start > 0xffff {
			return nil, fmt.Errorf("flow %d (table=%d priority=%d): %d bytes, more than a flow-stats entry holds", i, f.Table, f.Priority, len(dst)-start)
		}
		binary.BigEndian.PutUint16(dst[start:], uint16(len(dst)-start))
	}
	return dst, nil
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
