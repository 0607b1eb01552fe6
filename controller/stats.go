package controller

import (
	"sync/atomic"
	"time"

	"portmirror/ofwire"
)

// passCounters count the reconciliation passes (for PassStats).
type passCounters struct {
	passes, full       atomic.Uint64
	nanos, fullNanos   atomic.Int64
	compiled, analysed atomic.Uint64 // bridges compiled and sessions analysed for them, in every pass
	reused             atomic.Uint64 // bridges handed their last compiled state again (nothing it derives from changed)
	reanalysed         atomic.Uint64 // sessions analysed again in incremental passes
	readBacks          atomic.Uint64 // bridges read back
	readBacksDecoded   atomic.Uint64 // of which decoded: not byte for byte what they should hold
	restored           atomic.Uint64 // bridges found holding the flows recorded before a restart (not compiled)
	restoreMissed      atomic.Uint64 // bridges handed recorded flows that they did not hold (compiled after all)
}

// PassStats is what the controller has done since it started, for benchmarks and tests.
type PassStats struct {
	Passes     uint64        // reconciliation passes, full ones included
	FullPasses uint64        // of which analysed every session
	PassTime   time.Duration // the time of every pass together
	FullTime   time.Duration // of which in full passes
	FlowMods   uint64        // flow_mods sent to switches (add, modify, delete)
	Barriers   uint64        // barrier requests sent to switches
	// BarriersSkipped counts bundles confirmed by their commit reply alone, on connections where the switch had
	// proved that it honours bundles: each is a barrier (and its round trip) saved.
	BarriersSkipped uint64
	Compiled        uint64 // bridges compiled, in every pass
	Analysed        uint64 // sessions analysed to compile them
	Reused          uint64 // bridges handed their last compiled flows again instead of compiling them
	// Reanalysed counts the sessions incremental passes analysed again because something they depend on changed.
	Reanalysed uint64
	// ReadBacks counts bridges read back (after a connection, a failure or a restart); ReadBacksDecoded those of
	// them whose flows were not, byte for byte, what they should hold, and so were decoded and diffed.
	ReadBacks, ReadBacksDecoded uint64
	// Restored counts the bridges handed flows known by their digest that the switch was found to hold (a
	// restart's: their inputs digested as the program's previous run recorded, flowcache; and a reconnect of
	// such a bridge). RestoreMissed counts those that the switch did not hold: they were compiled after all.
	Restored, RestoreMissed uint64
}

// PassStats returns the controller's counters.
func (c *Controller) PassStats() PassStats {
	s := PassStats{
		Passes: c.passStats.passes.Load(), FullPasses: c.passStats.full.Load(),
		PassTime: time.Duration(c.passStats.nanos.Load()), FullTime: time.Duration(c.passStats.fullNanos.Load()),
		Compiled: c.passStats.compiled.Load(), Analysed: c.passStats.analysed.Load(),
		Reused: c.passStats.reused.Load(), Reanalysed: c.passStats.reanalysed.Load(), ReadBacks: c.passStats.readBacks.Load(), ReadBacksDecoded: c.passStats.readBacksDecoded.Load(),
		Restored: c.passStats.restored.Load(), RestoreMissed: c.passStats.restoreMissed.Load(),
	}
	st := c.srv.Stats()
	s.Barriers, s.BarriersSkipped = st.BarriersSent.Load(), st.BarriersSkipped.Load()
	for _, cmd := range []ofwire.FlowModCommand{ofwire.FlowAdd, ofwire.FlowModifyStrict, ofwire.FlowDeleteStrict} {
		s.FlowMods += st.FlowMods[cmd].Load()
	}
	return s
}
