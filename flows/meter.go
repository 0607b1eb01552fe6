package flows

import (
	"cmp"
	"slices"
)

// Bandwidth caps. A capped session has one OpenFlow meter on its source bridge, its id the session's count id
// there, rate bandwidthLimitKbps, one drop band. The meter is applied by a flow in TableMeter (reg0=<meter id>,
// instruction meter) that the session's copy reaches inside a clone: clone(set_field:<id>->reg0,
// resubmit(,TableMeter), [tunnel fields], output(port=P,max_len=L)). OVS's datapath meter action drops the packet
// for every later action, so only the clone's frame can be dropped: never the business frame (NORMAL runs outside
// it) nor another session's copy; and max_len forces a real datapath clone (a clone holding only a resubmit is
// flattened). The facts file measured exactly this layout on OVS 3.1's userspace datapath.
const (
	// TableMeter holds one flow per capped session: reg0=<its meter id>, meter:<id>, no action.
	TableMeter uint8 = 3
	// KindMeter is the kind of a TableMeter flow; bits 16..47 of its cookie carry the meter id.
	KindMeter uint64 = 0x22
)

// Meter is one OpenFlow meter a bridge should hold: kbps, a burst of BurstKb kilobits, one drop band, statistics.
type Meter struct {
	ID      uint32
	Kbps    uint32
	BurstKb uint32
}

// meterBurst is the burst a cap allows: a tenth of a second at the rate, at least 10 kb (about one frame).
func meterBurst(kbps uint32) uint32 { return max(kbps/10, 10) }

// Meters returns the meters a bridge should hold, sorted by id: one per capped session whose source is there and
// whose copies can leave it now.
func (p *Plan) Meters(datapathID string) []Meter {
	b := p.bridges[datapathID]
	if b == nil || len(b.sources) == 0 {
		return nil
	}
	ids := p.countIDs(b.sources)
	var out []Meter
	for j, n := range b.sources {
		if k := p.res[n].kbps; k != 0 {
			out = append(out, Meter{ID: ids[j], Kbps: k, BurstKb: meterBurst(k)})
		}
	}
	sortMeters(out)
	return out
}

func sortMeters(ms []Meter) {
	slices.SortFunc(ms, func(a, b Meter) int { return cmp.Compare(a.ID, b.ID) })
}

// meterFlows returns the TableMeter flows of the capped sessions among srcs.
func (p *Plan) meterFlows(srcs []int32, ids []uint32) []Flow {
	var out []Flow
	for j, n := range srcs {
		if p.res[n].kbps == 0 {
			continue
		}
		id := ids[j]
		out = append(out, Flow{Table: TableMeter, Priority: PriorityFilterTop, Cookie: CookieOurs | uint64(id)<<16 | KindMeter,
			Match: Match{Reg0: id, HasReg0: true}, Meter: id})
	}
	return out
}

// DiffMeters returns what turns the installed meters into the desired ones: add those whose id is not installed,
// modify those installed with another rate or burst, delete the installed ones not desired. Each sorted by id.
func DiffMeters(desired, installed []Meter) (add, modify, del []Meter) {
	have := make(map[uint32]Meter, len(installed))
	for _, m := range installed {
		have[m.ID] = m
	}
	want := make(map[uint32]struct{}, len(desired))
	for _, m := range desired {
		want[m.ID] = struct{}{}
		h, ok := have[m.ID]
		switch {
		case !ok:
			add = append(add, m)
		case h != m:
			modify = append(modify, m)
		}
	}
	for _, m := range installed {
		if _, ok := want[m.ID]; !ok {
			del = append(del, m)
		}
	}
	sortMeters(add)
	sortMeters(modify)
	sortMeters(del)
	return add, modify, del
}
