package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	"portmirror/flows"
	"portmirror/internal/flowcache"
	"portmirror/ofwire"
)

// A warm start: what this program compiled for each bridge, recorded in Options.StateDir (flowcache) at every full
// pass and when the controller stops, lets its next run skip compiling a bridge whose inputs digest as recorded
// when the switch holds flows of the recorded digest (applyBridge finds out from the read-back it does anyway).
// A restart at scale then costs the store's load, one analysis of every session and each bridge's read-back.

// loadFlowCache reads the record of the program's previous run, when the controller has a state directory.
func (c *Controller) loadFlowCache() {
	dir := c.opts.StateDir
	if dir == "" {
		return
	}
	start := time.Now()
	prog, err := flowcache.Self()
	if err != nil {
		c.log.Warn("compiled flows will not be recorded across restarts", "err", err)
		return
	}
	entries, err := flowcache.Load(dir, prog)
	switch {
	case errors.Is(err, flowcache.ErrOtherProgram):
		c.log.Info("the compiled flows recorded are another program's: every bridge is compiled", "dir", dir)
	case err != nil:
		c.log.Warn("the compiled flows recorded cannot be read: every bridge is compiled", "dir", dir, "err", err)
	default:
		c.log.Info("compiled flows recorded by the previous run", "bridges", len(entries), "dir", dir,
			"seconds", time.Since(start).Seconds())
	}
	c.mu.Lock()
	c.program, c.programKnown, c.restored = prog, true, entries
	c.mu.Unlock()
}

// prefetch reads back, at once, a bridge that connected while its record is unused (a warm start: the bridges
// connect while the store loads and the first pass prepares): when that pass hands it flows known by their digest,
// those it holds are known the same way already, and a bridge that holds them costs no round trip then. It does
// nothing unless this controller leads.
//
// While the switches that connected before the controller started are handed to it (Options.Early), the reads
// are held until its first pass starts (releasePrefetches): they then run beside that pass, on the other cores,
// instead of slowing the arrival of the switches and the inventory the pass waits for.
func (c *Controller) prefetch(sw *Switch) {
	dp := sw.DatapathID()
	c.mu.Lock()
	_, recorded := c.restored[dp]
	b := c.bridges[dp]
	if recorded && c.prefetchHeld {
		c.prefetchQ = append(c.prefetchQ, sw)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	lead, _, ctx := c.leading()
	if !recorded || !lead || b == nil {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		select {
		case c.sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		defer func() { <-c.sem }()
		kept, meters, err := c.readDigest(ctx, sw)
		if err != nil {
			return // its worker reads it back
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.sw == sw && !b.known && !b.running { // nothing read it back, or programmed it, meanwhile
			b.installed, b.meters, b.known = kept, meters, true
		}
	}()
}

// releasePrefetches starts the reads held (prefetch) and holds no more.
func (c *Controller) releasePrefetches() {
	c.mu.Lock()
	q := c.prefetchQ
	c.prefetchQ, c.prefetchHeld = nil, false
	c.mu.Unlock()
	for _, sw := range q {
		c.prefetch(sw)
	}
}

// readDigest reads back the bridge's flows as their digest alone (flowsDigest, reply by reply, read into reused
// buffers: nothing of them kept), with its meters.
func (c *Controller) readDigest(ctx context.Context, sw *Switch) (packedFlows, []flows.Meter, error) {
	var sum uint64
	n := 0
	meters, err := readWithMeters(ctx, sw, func() error {
		return sw.dumpFlowParts(ctx, flows.CookieOurs, flows.CookieMask, true, func(body []byte) error {
			s, k, err := flowsDigest(body)
			sum, n = sum+s, n+k
			return err
		})
	})
	if err != nil {
		return packedFlows{}, nil, err
	}
	c.passStats.readBacks.Add(1)
	return packedFlows{pending: true, sum: sum, n: n}, meters, nil
}

// readWithMeters runs readFlows while the bridge's meters are read: one round trip, not two, for each bridge read
// back (a storm reads back every bridge).
func readWithMeters(ctx context.Context, sw *Switch, readFlows func() error) ([]flows.Meter, error) {
	var meters []flows.Meter
	var merr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		meters, merr = sw.OurMeters(ctx)
	}()
	err := readFlows()
	<-done
	if err != nil {
		return nil, fmt.Errorf("flows: %w", err)
	}
	if merr != nil {
		return nil, fmt.Errorf("meters: %w", merr)
	}
	return meters, nil
}

// flowsDigest digests flow-stats entries (a switch's, or packed ones) as a set, flowcache.EntryDigest summed: in
// any order, what changes while a flow lives zeroed in place. It returns how many there are too.
func flowsDigest(entries []byte) (sum uint64, n int, err error) {
	n, err = ofwire.EachFlowEntry(entries, func(e []byte) { sum += flowcache.EntryDigest(e) })
	return sum, n, err
}

// takeRestored returns the record of bridge dp when its key is key; the record is used once either way.
func (c *Controller) takeRestored(dp string, key uint64) (flowcache.Entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.restored[dp]
	if ok {
		delete(c.restored, dp)
	}
	return e, ok && e.Key == key
}

// saveFlowCache records flowRecord, when this controller leads: a follower compiles nothing, and keeps the record
// it wrote when it last led (a stale record only means compiling).
func (c *Controller) saveFlowCache() {
	c.mu.Lock()
	prog, known := c.program, c.programKnown
	c.mu.Unlock()
	if lead, _, _ := c.leading(); !known || !lead {
		return
	}
	if err := flowcache.Save(c.opts.StateDir, prog, c.flowRecord()); err != nil {
		c.log.Warn("recording the compiled flows failed: the next run compiles every bridge", "err", err)
	}
}

// flowRecord is, for every bridge compiled, the digest and count of its last compiled flows with the key of
// what they derive from as of the last pass: a bridge that no pass needed to compile again since (the sessions
// that changed have no flows on it) is recorded with its key now, as a restart computes it. Called on the loop's
// goroutine, or once the loop has stopped.
func (c *Controller) flowRecord() map[string]flowcache.Entry {
	c.mu.Lock()
	fab := c.fabric
	bridges := make([]*bridge, 0, len(c.bridges))
	for _, b := range c.bridges {
		bridges = append(bridges, b)
	}
	c.mu.Unlock()
	entries := make(map[string]flowcache.Entry, len(bridges))
	inFabric := map[string]struct{}{}
	for _, b := range bridges {
		b.mu.Lock()
		if l := b.last; l != nil && (l.flows.pending || l.flows.packed != nil) {
			entries[b.dpid] = flowcache.Entry{Key: b.lastKey, Flows: l.flows.sum, Count: l.flows.n}
			if fab != nil {
				if _, ok := fab.bridges[b.dpid]; ok {
					inFabric[b.dpid] = struct{}{}
				}
			}
		}
		b.mu.Unlock()
	}
	if len(inFabric) > 0 && c.plan != nil {
		for dp, k := range c.bridgeKeys(fab, inFabric) {
			e := entries[dp]
			e.Key = k
			entries[dp] = e
		}
	}
	return entries
}
