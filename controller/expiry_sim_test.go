package controller_test

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"portmirror/controller"
	"portmirror/model"
	"portmirror/service"
	"portmirror/simulator/fleet"
	"portmirror/store"
)

// metricValue is the value of a counter or gauge without labels of the controller's collector.
func metricValue(t *testing.T, c *controller.Controller, name string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	if err := reg.Register(c.Collector()); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			m := mf.GetMetric()[0]
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// waitGone polls until the session is no longer stored.
func waitGone(t *testing.T, svc *service.Service, uuid string, within time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if _, err := svc.Session(context.Background(), uuid); err != nil {
			// by the wall clock, as the stored expiresAt is read (the monotonic clock can disagree with it by
			// milliseconds while the wall clock is slewed: CI saw a deletion 0.15 ms "early" that way)
			return time.Now().Round(0)
		}
		if time.Now().After(deadline) {
			t.Fatalf("session %s still there after %v", uuid, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// expiryEvent returns the one expirePortMirrorSession event naming the session, failing the test otherwise.
func expiryEvent(t *testing.T, svc *service.Service, sessionUUID string) model.AuditEvent {
	t.Helper()
	evs, err := svc.Audits(context.Background(), service.AuditQuery{ResourceUUID: sessionUUID, Operation: "expirePortMirrorSession"})
	if err != nil || len(evs) != 1 {
		t.Fatalf("expiry events of %s: %+v, %v; want one", sessionUUID, evs, err)
	}
	return evs[0]
}

// twoOfThree is a small fleet whose port mirror holds the first two of three planned sessions, ACTIVE; the third
// is the test's to add.
func twoOfThree(t *testing.T) (*simEnv, model.PortMirror, []fleet.Session, fleet.Session) {
	t.Helper()
	e := newSimEnv(t, fleet.Uniform(31, 3, 2, 1), envOptions{})
	e.waitBaseline(10 * time.Second)
	e.announceAll()
	plan := e.fleet.PlanSessions(3)
	pm, ss, err := e.fleet.CreatePortMirror(e.ctx, e.svc, e.fleet.FlowNetworks[0], "pm", true, plan[:2])
	if err != nil {
		t.Fatal(err)
	}
	e.waitSettled(ss, 15*time.Second)
	return e, pm, ss, plan[2]
}

// TestSimSessionExpires: a session with a short expiresAt is installed, then deleted by the controller at that
// time (audited as "system" on its port mirror), and every flow it added goes: each bridge holds again exactly
// what it held without it, and the other sessions' copies stay exact.
func TestSimSessionExpires(t *testing.T) {
	e, pm, ss, x := twoOfThree(t)
	before := map[string]map[string]string{}
	for _, h := range e.fleet.Hosts {
		before[h.Name] = ourFlows(h)
	}

	at := time.Now().Add(1500 * time.Millisecond).Round(0) // a wall-clock time, as stored
	got, err := e.svc.AddPortMirrorSession(e.ctx, pm.UUID, service.SessionInput{Name: x.Name, Type: x.Direction,
		SourceNicUUID: x.Source.UUID, DestinationNicUUID: x.Destination.UUID, ExpiresAt: &at})
	if err != nil {
		t.Fatal(err)
	}
	x.UUID, x.Enabled = got.UUID, true
	e.waitSettled(append(ss[:2:2], x), 10*time.Second)
	if time.Now().After(at) {
		t.Skip("the machine is too slow to see the session ACTIVE before it expires")
	}
	added := false
	for _, h := range e.fleet.Hosts {
		if !maps.Equal(before[h.Name], ourFlows(h)) {
			added = true
		}
	}
	if !added {
		t.Fatal("the timed session added no flow anywhere: the test shows nothing")
	}
	if n := metricValue(t, e.ctrl, "portmirror_session_expiries_scheduled"); n != 1 {
		t.Errorf("portmirror_session_expiries_scheduled %v, want 1", n)
	}

	gone := waitGone(t, e.svc, x.UUID, 10*time.Second)
	if gone.Before(at) {
		t.Errorf("deleted at %v, before its expiresAt %v", gone, at)
	}
	t.Logf("deleted %v after its expiresAt", gone.Sub(at))
	ev := expiryEvent(t, e.svc, x.UUID)
	if ev.Actor != "system" || !ev.Success || ev.ResourceUUID != pm.UUID || ev.ResourceType != "PortMirror" {
		t.Errorf("expiry event %+v: want actor system, success, on port mirror %s", ev, pm.UUID)
	}

	// counted once the service's delete has returned to the controller, a moment after the store shows it gone
	for until := time.Now().Add(5 * time.Second); ; {
		n := metricValue(t, e.ctrl, "portmirror_sessions_expired_total")
		if n == 1 {
			break
		}
		if n > 1 || time.Now().After(until) {
			t.Errorf("portmirror_sessions_expired_total %v, want 1", n)
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	// No stale flow: every bridge converges back to what it held without the session.
	deadline := time.Now().Add(10 * time.Second)
	for _, h := range e.fleet.Hosts {
		for !maps.Equal(before[h.Name], ourFlows(h)) {
			if time.Now().After(deadline) {
				add, mod, del := flowDiff(before[h.Name], ourFlows(h))
				t.Fatalf("%s keeps flows of the expired session: %d added, %d changed, %d missing", h.Name, add, mod, del)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	e.waitSettled(ss, 10*time.Second)
	e.eventuallyExact("after the expiry", ss, 10*time.Second)
}

// TestExpiryMovedAndCleared: the controller follows changes of expiresAt: a session whose expiry is moved later
// stays until the new time, and one whose expiry is cleared stays.
func TestExpiryMovedAndCleared(t *testing.T) {
	e := newSimEnv(t, fleet.Uniform(32, 2, 2, 1), envOptions{})
	plan := e.fleet.PlanSessions(2)
	pm, err := e.svc.CreatePortMirror(e.ctx, service.PortMirrorInput{Name: "pm", FlowNetworkUUID: e.fleet.FlowNetworks[0].UUID})
	if err != nil {
		t.Fatal(err)
	}
	soon := time.Now().Add(time.Second)
	var uuids []string
	for _, s := range plan {
		got, err := e.svc.AddPortMirrorSession(e.ctx, pm.UUID, service.SessionInput{Name: s.Name, Type: s.Direction,
			SourceNicUUID: s.Source.UUID, DestinationNicUUID: s.Destination.UUID, ExpiresAt: &soon})
		if err != nil {
			t.Fatal(err)
		}
		uuids = append(uuids, got.UUID)
	}
	later := time.Now().Add(3 * time.Second)
	if _, err := e.svc.UpdatePortMirrorSession(e.ctx, uuids[0], service.SessionUpdate{ExpiresAtSet: true, ExpiresAt: &later}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.UpdatePortMirrorSession(e.ctx, uuids[1], service.SessionUpdate{ExpiresAtSet: true}); err != nil {
		t.Fatal(err)
	}
	gone := waitGone(t, e.svc, uuids[0], 10*time.Second)
	if gone.Before(later) {
		t.Errorf("the moved session went at %v, before its new expiry %v", gone, later)
	}
	if _, err := e.svc.Session(e.ctx, uuids[1]); err != nil {
		t.Errorf("the session whose expiry was cleared went: %v", err)
	}
}

// TestExpirySurvivesRestart: expiresAt is stored with the session (Badger on disk): a controller that was down
// at the time finds the session past its time when it starts, and deletes it at once; a later expiry stays
// scheduled.
func TestExpirySurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := service.WithActor(context.Background(), "restart-test")
	open := func() (*store.Store, *service.Service) {
		st, err := store.Open(ctx, store.Options{Dir: dir, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		return st, service.New(st, service.Options{Logger: quietLogger()})
	}
	run := func(svc *service.Service) func() {
		ctrl, err := controller.New(controller.Options{Service: svc, Logger: quietLogger(), Listen: "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- ctrl.Run(rctx) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("controller: %v", err)
			}
		}
	}

	st, svc := open()
	f, err := fleet.Build(fleet.Uniform(33, 2, 2, 1), fleet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Register(ctx, svc); err != nil {
		t.Fatal(err)
	}
	plan := f.PlanSessions(2)
	soon, later := time.Now().Add(1500*time.Millisecond), time.Now().Add(time.Hour)
	pm, err := svc.CreatePortMirror(ctx, service.PortMirrorInput{Name: "pm", FlowNetworkUUID: f.FlowNetworks[0].UUID, Enable: true,
		Sessions: []service.SessionInput{
			{Name: plan[0].Name, Type: plan[0].Direction, SourceNicUUID: plan[0].Source.UUID, DestinationNicUUID: plan[0].Destination.UUID, ExpiresAt: &soon},
			{Name: plan[1].Name, Type: plan[1].Direction, SourceNicUUID: plan[1].Source.UUID, DestinationNicUUID: plan[1].Destination.UUID, ExpiresAt: &later},
		}})
	if err != nil {
		t.Fatal(err)
	}
	ss, _ := svc.Sessions(ctx, pm.UUID)
	if len(ss) != 2 {
		t.Fatalf("%d sessions", len(ss))
	}
	stop := run(svc)
	stop() // the controller goes down before the first expiry
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(soon.Add(200 * time.Millisecond))) // the time passes while nothing runs

	st, svc = open()
	defer st.Close()
	if _, err := svc.Session(ctx, ss[0].UUID); err != nil {
		t.Fatalf("the session went while no controller ran: %v", err)
	}
	start := time.Now()
	defer run(svc)()
	waitGone(t, svc, ss[0].UUID, 5*time.Second)
	t.Logf("deleted %v after the controller started", time.Since(start))
	if ev := expiryEvent(t, svc, ss[0].UUID); ev.Actor != "system" || ev.ResourceUUID != pm.UUID {
		t.Errorf("event %+v", ev)
	}
	kept, err := svc.Session(ctx, ss[1].UUID)
	if err != nil || kept.ExpiresAt == nil || !kept.ExpiresAt.Equal(later.UTC()) {
		t.Errorf("the later session after the restart: %+v, %v; want its expiry %v kept", kept, err, later)
	}
}

// TestClusterExpiryAfterFailover: in a cluster only the leader expires sessions, and a new leader takes over the
// expiries its predecessor had pending: the leader is stopped before the session's time, and the session is
// still deleted once, by "system", through the new leader.
func TestClusterExpiryAfterFailover(t *testing.T) {
	ms := startMembers(t, 3)
	ctx := service.WithActor(context.Background(), "cluster-expiry-test")
	l := leaderOf(t, ms, 15*time.Second)
	f, err := fleet.Build(fleet.Uniform(34, 2, 2, 1), fleet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Register(ctx, l.svc); err != nil {
		t.Fatal(err)
	}
	plan := f.PlanSessions(1)
	at := time.Now().Add(2 * time.Second).Round(0) // a wall-clock time, as stored
	pm, err := l.svc.CreatePortMirror(ctx, service.PortMirrorInput{Name: "pm", FlowNetworkUUID: f.FlowNetworks[0].UUID, Enable: true,
		Sessions: []service.SessionInput{{Name: plan[0].Name, Type: plan[0].Direction, SourceNicUUID: plan[0].Source.UUID,
			DestinationNicUUID: plan[0].Destination.UUID, ExpiresAt: &at}}})
	if err != nil {
		t.Fatal(err)
	}
	ss, _ := l.svc.Sessions(ctx, pm.UUID)
	l.stop()
	var rest []*member
	for _, m := range ms {
		if m != l {
			rest = append(rest, m)
		}
	}
	nl := leaderOf(t, rest, 15*time.Second)
	gone := waitGone(t, nl.svc, ss[0].UUID, 15*time.Second)
	if gone.Before(at) {
		t.Errorf("deleted at %v, before its time %v", gone, at)
	}
	for _, m := range rest {
		// both remaining members hold the one event (replicated): neither a follower nor a retry wrote another
		deadline := time.Now().Add(5 * time.Second)
		for {
			evs, _ := m.svc.Audits(ctx, service.AuditQuery{ResourceUUID: ss[0].UUID, Operation: "expirePortMirrorSession"})
			if len(evs) == 1 && evs[0].Actor == "system" && evs[0].ResourceUUID == pm.UUID {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: expiry events %+v, want one by system", m.id, evs)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
