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
