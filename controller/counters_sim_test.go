package controller_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"portmirror/controller"
	"portmirror/model"
	"portmirror/service"
	"portmirror/simulator/fleet"
)

// counters returns every session's counters as the service reports them.
func (e *simEnv) counters(sessions []fleet.Session) map[string]model.SessionCounters {
	out := make(map[string]model.SessionCounters, len(sessions))
	for _, s := range sessions {
		out[s.UUID] = e.svc.SessionCounters(e.ctx, s.UUID)
	}
	return out
}

// checkCounters sends one round of every sender's frames (the bridges must be converged: checkTraffic must find
// nothing wrong) and waits until each session's counters grew by exactly the frames it selected, then checks they
// stay there for another read. It first waits for a read of every enabled session made after it was called, so
// that what the counters held before is settled.
func (e *simEnv) checkCounters(sessions []fleet.Session, within time.Duration) {
	e.t.Helper()
	t0 := time.Now()
	deadline := t0.Add(within)
	for {
		stale := 0
		for _, s := range sessions {
			if s.Enabled && !e.svc.SessionCounters(e.ctx, s.UUID).UpdatedAt.After(t0) {
				stale++
			}
		}
		if stale == 0 {
			break
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("counters: %d sessions not read within %v", stale, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
	before := e.counters(sessions)
	want := map[string]uint64{}
	wantBytes := map[string]uint64{}
	for _, from := range e.fleet.Senders() {
		for _, fr := range e.fleet.Frames(from) {
			for _, s := range sessions {
				if e.fleet.SelectedBy(fr, s) {
					want[s.UUID]++
					wantBytes[s.UUID] += uint64(len(fr.Raw))
				}
			}
		}
	}
	if r := e.checkTraffic(sessions); len(r.problems) > 0 {
		e.t.Fatalf("counters: traffic not exact: %s", strings.Join(r.problems, "\n"))
	}
	var t1 time.Time
	for {
		var bad []string
		after := e.counters(sessions)
		for _, s := range sessions {
			gp := after[s.UUID].Packets - before[s.UUID].Packets
			gb := after[s.UUID].Bytes - before[s.UUID].Bytes
			if gp != want[s.UUID] || gb != wantBytes[s.UUID] {
				bad = append(bad, fmt.Sprintf("%s (%s %s -> %s): +%d packets +%d bytes, want +%d +%d",
					s.Name, s.Direction, s.Source, s.Destination, gp, gb, want[s.UUID], wantBytes[s.UUID]))
			}
		}
		switch {
		case len(bad) == 0 && t1.IsZero():
			t1 = time.Now() // exact; now make sure a later read does not add more
		case len(bad) == 0 && allReadAfter(after, sessions, t1):
			return
		case len(bad) > 0 && time.Now().After(deadline):
			e.t.Fatalf("counters after one round of traffic:\n%s", strings.Join(bad, "\n"))
		case len(bad) > 0:
			t1 = time.Time{}
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func allReadAfter(c map[string]model.SessionCounters, sessions []fleet.Session, t time.Time) bool {
	for _, s := range sessions {
		if s.Enabled && !c[s.UUID].UpdatedAt.After(t) {
			return false
		}
	}
	return true
}

// Counters count each frame once per session that selects it, where sessions share flows: several sessions to one
// destination (one filtered), ingress and egress sessions meeting on one frame, between hosts and on one.
func TestSimCounters(t *testing.T) {
	e := newSimEnv(t, fleet.Uniform(7, 2, 3, 1), envOptions{controller: controllerOptionsWithCounters()})
	f := e.fleet
	e.waitBaseline(10 * time.Second)
	e.announceAll()
	planned := f.PlanSessions(6)
	pm, ss, err := f.CreatePortMirror(e.ctx, e.svc, f.FlowNetworks[0], "pm", true, planned)
	if err != nil {
		t.Fatal(err)
	}
	// One more session to the first one's destination, filtered to UDP only.
	extra := fleet.Session{Name: "udp-only", Source: ss[1].Source, Destination: ss[0].Destination, Direction: model.Egress,
		Enabled: true, Filters: []model.FilterRule{{Action: model.FilterAccept, Protocol: "udp"}}}
	if extra.Source == ss[0].Source && ss[0].Direction == model.Egress {
		extra.Direction = model.Ingress
	}
	got, err := e.svc.AddPortMirrorSession(e.ctx, pm.UUID, service.SessionInput{Name: extra.Name, Type: extra.Direction,
		SourceNicUUID: extra.Source.UUID, DestinationNicUUID: extra.Destination.UUID, Filters: extra.Filters})
	if err != nil {
		t.Fatal(err)
	}
	extra.UUID = got.UUID
	ss = append(ss, extra)
	// And one capped far above what the test sends: its copies go through a clone and its meter, and drop none.
	huge := 10_000_000
	capped := fleet.Session{Name: "capped", Source: ss[2].Source, Destination: ss[3].Destination, Direction: model.Bidirection, Enabled: true}
	got, err = e.svc.AddPortMirrorSession(e.ctx, pm.UUID, service.SessionInput{Name: capped.Name, Type: capped.Direction,
		SourceNicUUID: capped.Source.UUID, DestinationNicUUID: capped.Destination.UUID, BandwidthLimitKbps: &huge})
	if err != nil {
		t.Fatal(err)
	}
	capped.UUID = got.UUID
	ss = append(ss, capped)
	e.waitSettled(ss, 15*time.Second)
	e.eventuallyExact("initial", ss, 10*time.Second)
	e.checkCounters(ss, 10*time.Second)
	e.checkCounters(ss, 10*time.Second)

	// The port mirror's counters are the sum of its sessions'.
	sum, err := e.svc.PortMirrorCounters(e.ctx, pm.UUID)
	if err != nil {
		t.Fatal(err)
	}
	var want uint64
	for _, c := range e.counters(ss) {
		want += c.Packets
	}
	if sum.Packets != want || want == 0 {
		t.Errorf("port mirror counts %d packets, its sessions %d", sum.Packets, want)
	}
	// /metrics exports the same per port mirror.
	reg := prometheus.NewRegistry()
	reg.MustRegister(e.ctrl.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var exported float64 = -1
	for _, mf := range mfs {
		if mf.GetName() != "portmirror_port_mirror_copied_packets_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == pm.UUID {
				exported = m.GetCounter().GetValue()
			}
		}
	}
	if exported != float64(want) {
		t.Errorf("/metrics: portmirror_port_mirror_copied_packets_total{port_mirror=%q} = %v, want %d", pm.UUID, exported, want)
	}
}

// controllerOptionsWithCounters reads the counters often, as tests want them.
func controllerOptionsWithCounters() controller.Options {
	return controller.Options{CounterPeriod: 100 * time.Millisecond}
}

// A capped session in the simulator: copies beyond the rate are dropped and counted as droppedByLimit, each
// selected frame is either delivered or dropped, and business frames all arrive.
func TestSimBandwidthLimit(t *testing.T) {
	e := newSimEnv(t, fleet.Uniform(8, 2, 2, 1), envOptions{controller: controllerOptionsWithCounters()})
	f := e.fleet
	e.waitBaseline(10 * time.Second)
	e.announceAll()
	senders, monitors := f.Senders(), f.Monitors()
	src, dst := senders[0], monitors[0]
	pm, err := e.svc.CreatePortMirror(e.ctx, service.PortMirrorInput{Name: "pm", FlowNetworkUUID: f.FlowNetworks[0].UUID, Enable: true})
	if err != nil {
		t.Fatal(err)
	}
	kbps := 8 // with its burst of 10 kb, about twenty 60-byte frames pass at once
	got, err := e.svc.AddPortMirrorSession(e.ctx, pm.UUID, service.SessionInput{Name: "capped", Type: model.Egress,
		SourceNicUUID: src.UUID, DestinationNicUUID: dst.UUID, BandwidthLimitKbps: &kbps})
	if err != nil {
		t.Fatal(err)
	}
	s := fleet.Session{UUID: got.UUID, Name: "capped", Source: src, Destination: dst, Direction: model.Egress, Enabled: true}
	e.waitSettled([]fleet.Session{s}, 15*time.Second)
	before := e.readAfterSim(s, time.Now())
	sent, delivered := 0, 0
	for range 20 {
		for _, fr := range f.Frames(src) {
			d, err := f.Send(fr)
			if err != nil {
				t.Fatal(err)
			}
			sent++
			delivered += d.Captured()[dst]
			for _, a := range d.Arrivals {
				if !a.NIC.Capture && a.NIC == src {
					t.Fatalf("frame came back to its sender")
				}
			}
		}
	}
	if delivered == 0 || delivered >= sent/2 {
		t.Fatalf("%d of %d copies delivered at %d kbps: want some, and far fewer", delivered, sent, kbps)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c := e.readAfterSim(s, time.Now())
		gp, gd := c.Packets-before.Packets, c.DroppedByLimit-before.DroppedByLimit
		if gp == uint64(sent) && gd == uint64(sent-delivered) {
			t.Logf("%d frames selected, %d copies delivered, %d dropped by the limit", sent, delivered, gd)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("counters +%d packets, +%d dropped by the limit; want +%d and +%d", gp, gd, sent, sent-delivered)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readAfterSim waits for a read of the session's counters made after t0.
func (e *simEnv) readAfterSim(s fleet.Session, t0 time.Time) model.SessionCounters {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c := e.svc.SessionCounters(e.ctx, s.UUID)
		if c.UpdatedAt.After(t0) {
			return c
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("counters of %s not read after %v", s.Name, t0)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
