package controller

import (
	"context"
	"slices"
	"sync"
	"time"

	"portmirror/flows"
	"portmirror/model"
	"portmirror/ofwire"
)

// Session counters. The compiler gives every session a counting flow (or one per filter rule) in its source
// bridge's flows.TableCount, with a cookie carrying the session's count id on that bridge; a frame the session
// selects hits it exactly once. The leader reads them back with one flow-stats request per bridge per period,
// filtered by cookie to the counting flows alone, the bridges spread evenly over the period; followers do not
// poll. What a counting flow counted since the last read is added to its session's total, so totals survive
// flows being replaced (a filter changed by updatePortMirrorSession, a bridge reprogrammed): a flow that is new,
// or whose count went down (deleted and added again between two reads), adds all it holds. Totals are kept in
// memory: a restarted controller starts again from what the switches' current flows hold.

// DefaultCounterPeriod is how often each bridge's counters are read when Options.CounterPeriod is zero.
const DefaultCounterPeriod = 10 * time.Second

// counterWorkers bounds the reads in flight at once (a slow switch never delays the others' reads).
const counterWorkers = 16

// flowCount is what one counting flow held at the last read.
type flowCount struct{ packets, bytes uint64 }

// counterState is the controller's session totals and what each bridge's counting flows held at the last read.
type counterState struct {
	mu     sync.Mutex
	last   map[string]map[flows.Key]flowCount // by datapath id
	drops  map[string]map[uint32]uint64       // by datapath id: what each meter's bands had dropped
	totals map[string]*model.SessionCounters  // by session uuid
	reads  uint64                             // flow-stats requests answered, for the metrics
	// busy holds the bridges being read: a bridge is read by one reader at a time, so that the reads it records
	// are in order (an older read recorded after a newer one would look like a reset, and count twice).
	busy map[string]bool
}

func newCounterState() *counterState {
	return &counterState{last: map[string]map[flows.Key]flowCount{}, drops: map[string]map[uint32]uint64{},
		totals: map[string]*model.SessionCounters{}, busy: map[string]bool{}}
}

// SessionCounters implements service.CounterSource: the session's totals as of the last reads (zero, with a zero
// UpdatedAt, before the first read of its source bridge).
func (c *Controller) SessionCounters(sessionUUID string) model.SessionCounters {
	cs := c.counters
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if t := cs.totals[sessionUUID]; t != nil {
		return *t
	}
	return model.SessionCounters{}
}

// record adds what one read of a bridge's counting flows found: stats by flow key and count id, ids naming the
// sessions of the bridge's count ids.
func (cs *counterState) record(dp string, stats []countStat, ids map[uint32]string, now time.Time) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.reads++
	prev := cs.last[dp]
	next := make(map[flows.Key]flowCount, len(stats))
	for _, st := range stats {
		p, had := prev[st.key]
		dPk, dBy := st.packets, st.bytes
		if had && st.packets >= p.packets && st.bytes >= p.bytes {
			dPk, dBy = st.packets-p.packets, st.bytes-p.bytes
		}
		next[st.key] = flowCount{st.packets, st.bytes}
		uuid := ids[st.id]
		if uuid == "" {
			continue // a flow of a session this plan no longer has on the bridge: about to be deleted
		}
		t := cs.total(uuid)
		t.Packets += dPk
		t.Bytes += dBy
	}
	for _, uuid := range ids {
		cs.total(uuid).UpdatedAt = now
	}
	cs.last[dp] = next
}

func (cs *counterState) total(uuid string) *model.SessionCounters {
	t := cs.totals[uuid]
	if t == nil {
		t = &model.SessionCounters{}
		cs.totals[uuid] = t
	}
	return t
}

// prune forgets the totals of sessions that no longer exist, and the reads of bridges that are gone.
func (cs *counterState) prune(exists func(string) bool, bridgeKnown func(string) bool) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for uuid := range cs.totals {
		if !exists(uuid) {
			delete(cs.totals, uuid)
		}
	}
	for dp := range cs.last {
		if !bridgeKnown(dp) {
			delete(cs.last, dp)
			delete(cs.drops, dp)
		}
	}
}

// claim marks a bridge as being read; false when it already is.
func (cs *counterState) claim(dp string) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.busy[dp] {
		return false
	}
	cs.busy[dp] = true
	return true
}

func (cs *counterState) release(dp string) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	delete(cs.busy, dp)
}

// countStat is one counting flow as read.
type countStat struct {
	key            flows.Key
	id             uint32
	packets, bytes uint64
}

// runCounters reads every bridge's counters once per period while this controller leads, until ctx ends.
func (c *Controller) runCounters(ctx context.Context) {
	period := c.opts.CounterPeriod
	if period == 0 {
		period = DefaultCounterPeriod
	}
	if period < 0 {
		return
	}
	sem := make(chan struct{}, counterWorkers)
	var wg sync.WaitGroup
	defer wg.Wait()
	timer := time.NewTimer(0)
	defer timer.Stop()
	wait := func(d time.Duration) bool {
		timer.Reset(d)
		select {
		case <-ctx.Done():
			return false
		case <-timer.C:
			return true
		}
	}
	for {
		start := time.Now()
		dps := c.counterBridges()
		for i, dp := range dps {
			// spread the reads evenly over the period
			if d := time.Until(start.Add(period * time.Duration(i) / time.Duration(len(dps)))); d > 0 && !wait(d) {
				return
			}
			lead, _, lctx := c.leading()
			if !lead {
				break
			}
			if !c.counters.claim(dp) {
				continue // its last read is still running (a slow switch): skip it this period
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				defer c.counters.release(dp)
				rctx, cancel := context.WithTimeout(lctx, period)
				defer cancel()
				c.readCounters(rctx, dp)
			}()
		}
		c.pruneCounters(ctx)
		if !wait(time.Until(start.Add(period))) {
			return
		}
	}
}

// counterBridges lists the connected bridges whose latest compiled flows hold counting flows, sorted.
func (c *Controller) counterBridges() []string {
	c.mu.Lock()
	bs := make([]*bridge, 0, len(c.bridges))
	for _, b := range c.bridges {
		bs = append(bs, b)
	}
	c.mu.Unlock()
	var out []string
	for _, b := range bs {
		b.mu.Lock()
		n := len(b.counts)
		b.mu.Unlock()
		if n > 0 && c.view.Connected(b.dpid) {
			out = append(out, b.dpid)
		}
	}
	slices.Sort(out)
	return out
}

// readCounters reads one bridge's counting flows and adds them to the totals.
func (c *Controller) readCounters(ctx context.Context, dp string) {
	c.mu.Lock()
	b := c.bridges[dp]
	c.mu.Unlock()
	if b == nil {
		return
	}
	b.mu.Lock()
	sw, ids, metered := b.sw, b.counts, len(b.meters) > 0
	if b.want != nil {
		metered = metered || len(b.want.meters) > 0
	}
	b.mu.Unlock()
	if sw == nil || len(ids) == 0 {
		return
	}
	asked := time.Now() // what the reply holds is at least as recent: the read's time
	st, err := sw.DumpFlowStats(ctx, flows.CookieOurs|flows.KindCount, flows.CountCookieMask)
	if err != nil {
		c.log.Debug("reading counters failed", "datapath", dp, "err", err)
		return
	}
	stats := make([]countStat, 0, len(st))
	for _, s := range st {
		id, ok := flows.CountID(s.Flow.Cookie)
		if !ok || s.Foreign != "" {
			continue
		}
		stats = append(stats, countStat{key: s.Flow.Key(), id: id, packets: s.Packets, bytes: s.Bytes})
	}
	if metered {
		ms, err := sw.MeterStats(ctx)
		if err != nil {
			c.log.Debug("reading meter counters failed", "datapath", dp, "err", err)
		} else {
			c.counters.recordDrops(dp, ms, ids)
		}
	}
	c.counters.record(dp, stats, ids, asked)
}

// recordDrops adds what each capped session's meter dropped since the last read (a meter that is new, or whose
// count went down, adds all it holds).
func (cs *counterState) recordDrops(dp string, ms []ofwire.MeterStats, ids map[uint32]string) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.reads++
	prev := cs.drops[dp]
	next := make(map[uint32]uint64, len(ms))
	for _, m := range ms {
		uuid := ids[m.ID]
		if uuid == "" {
			continue // not a meter of a session of this bridge
		}
		d, _ := m.Dropped()
		next[m.ID] = d
		delta := d
		if p, had := prev[m.ID]; had && d >= p {
			delta = d - p
		}
		cs.total(uuid).DroppedByLimit += delta
	}
	cs.drops[dp] = next
}

// pruneCounters forgets the totals of deleted sessions (once per period).
func (c *Controller) pruneCounters(ctx context.Context) {
	sessions, err := c.svc.AllSessions(ctx)
	if err != nil {
		return
	}
	uuids := make([]string, len(sessions))
	for i, s := range sessions {
		uuids[i] = s.UUID
	}
	slices.Sort(uuids)
	c.counters.prune(func(u string) bool { _, ok := slices.BinarySearch(uuids, u); return ok },
		func(dp string) bool { return c.view.Connected(dp) || c.bridgeKnown(dp) })
}

func (c *Controller) bridgeKnown(dp string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.bridges[dp]
	return ok
}
