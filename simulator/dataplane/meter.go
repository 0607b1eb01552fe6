package dataplane

import (
	"fmt"
	"slices"
	"time"
)

// Meter errors (OFPMMFC_*).
const (
	MeterModExists        uint16 = 1
	MeterModInvalidMeter  uint16 = 2
	MeterModUnknownMeter  uint16 = 3
	MeterModBadRate       uint16 = 6
	MeterModBadBand       uint16 = 8
	maxMeterID            uint32 = 0xffff0000
	meterDefaultBurstBits        = 1000 // a burst of 0 means the rate's worth of one second, as OVS does
)

// Meter is an OpenFlow meter with one drop band, in kbps, as the netdev datapath enforces it: a token bucket of
// BurstKb kilobits (the rate's second when 0), filled at the rate; a frame that finds too few tokens is dropped.
type Meter struct {
	ID      uint32
	Kbps    uint32
	BurstKb uint32
	Flags   uint16

	tokens float64 // bits
	last   time.Time

	PacketsIn, BytesIn    uint64
	Dropped, DroppedBytes uint64
	Created               time.Time
}

func (m *Meter) capacity() float64 {
	if m.BurstKb == 0 {
		return float64(m.Kbps) * meterDefaultBurstBits
	}
	return float64(m.BurstKb) * 1000
}

// pass charges one frame of n bytes at now and reports whether it passes.
func (m *Meter) pass(n int, now time.Time) bool {
	if !m.last.IsZero() {
		m.tokens += now.Sub(m.last).Seconds() * float64(m.Kbps) * 1000
	}
	m.tokens = min(m.tokens, m.capacity())
	m.last = now
	m.PacketsIn++
	m.BytesIn += uint64(n)
	if bits := float64(n * 8); m.tokens >= bits {
		m.tokens -= bits
		return true
	}
	m.Dropped++
	m.DroppedBytes += uint64(n)
	return false
}

// SetMeter adds (modify false) or changes a meter: kbps flags, one drop band of rate kbps and burst kb.
func (b *Bridge) SetMeter(id uint32, flags uint16, kbps, burstKb uint32, modify bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if id == 0 || id > maxMeterID {
		return &OFError{ErrTypeMeterModFailed, MeterModInvalidMeter, fmt.Sprintf("meter id %d", id)}
	}
	if kbps == 0 {
		return &OFError{ErrTypeMeterModFailed, MeterModBadRate, "a rate of 0"}
	}
	old := b.meters[id]
	switch {
	case old != nil && !modify:
		return &OFError{ErrTypeMeterModFailed, MeterModExists, fmt.Sprintf("meter %d exists", id)}
	case old == nil && modify:
		return &OFError{ErrTypeMeterModFailed, MeterModUnknownMeter, fmt.Sprintf("meter %d does not exist", id)}
	}
	if b.meters == nil {
		b.meters = map[uint32]*Meter{}
	}
	m := &Meter{ID: id, Kbps: kbps, BurstKb: burstKb, Flags: flags, Created: time.Now()}
	if old != nil {
		m.PacketsIn, m.BytesIn, m.Dropped, m.DroppedBytes, m.Created = old.PacketsIn, old.BytesIn, old.Dropped, old.DroppedBytes, old.Created
	}
	m.tokens = m.capacity()
	b.meters[id] = m
	return nil
}

// DeleteMeter deletes a meter (all of them with 0xffffffff) and, as OVS does, every flow that uses it.
func (b *Bridge) DeleteMeter(id uint32) {
	b.mu.Lock()
	defer b.mu.Unlock()
	gone := func(m uint32) bool { return m != 0 && (id == 0xffffffff || m == id) }
	for t, flows := range b.tables {
		if slices.ContainsFunc(flows, func(f *Flow) bool { return gone(f.Meter) }) {
			b.tables[t] = slices.DeleteFunc(slices.Clone(flows), func(f *Flow) bool { return gone(f.Meter) })
		}
	}
	for m := range b.meters {
		if gone(m) {
			delete(b.meters, m)
		}
	}
}

// Meters returns copies of every meter, by id, with how many flows use each.
func (b *Bridge) Meters() ([]Meter, map[uint32]int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]Meter, 0, len(b.meters))
	for _, m := range b.meters {
		out = append(out, *m)
	}
	slices.SortFunc(out, func(x, y Meter) int {
		switch {
		case x.ID < y.ID:
			return -1
		case x.ID > y.ID:
			return 1
		}
		return 0
	})
	uses := map[uint32]int{}
	for _, flows := range b.tables {
		for _, f := range flows {
			if f.Meter != 0 {
				uses[f.Meter]++
			}
		}
	}
	return out, uses
}

// meter applies a flow's meter instruction to the frame: a frame the meter drops is output nowhere after.
func (x *xlate) meter(fr *Frame, id uint32, depth int) {
	if id == 0 {
		return
	}
	m := x.b.meters[id]
	if m == nil {
		x.say(depth, "meter:%d missing: dropped", id)
		fr.Dropped = true
		return
	}
	if !x.commit {
		x.say(depth, "meter:%d", id)
		return
	}
	if !m.pass(len(fr.Raw), time.Now()) {
		x.say(depth, "meter:%d: over the rate, dropped", id)
		fr.Dropped = true
		return
	}
	x.say(depth, "meter:%d", id)
}
