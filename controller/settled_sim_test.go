package controller_test

import (
	"maps"
	"testing"
	"time"

	"portmirror/model"
	"portmirror/service"
)

// TestSimSettledMeansProgrammed: once the controller has taken a change (a deleted session left its plan) and
// reports Settled, every bridge already holds what the change leaves, with no further wait, though the bridges
// take their time (each message delayed) to apply it.
func TestSimSettledMeansProgrammed(t *testing.T) {
	e, pm, _, x := twoOfThree(t)
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); !cond(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	waitFor("the controller to settle", e.ctrl.Settled)
	before := map[string]map[string]string{}
	for _, h := range e.fleet.Hosts {
		before[h.Name] = ourFlows(h)
	}
	for round := range 5 {
		got, err := e.svc.AddPortMirrorSession(e.ctx, pm.UUID, service.SessionInput{Name: x.Name, Type: x.Direction,
			SourceNicUUID: x.Source.UUID, DestinationNicUUID: x.Destination.UUID})
		if err != nil {
			t.Fatal(err)
		}
		waitFor("the session ACTIVE", func() bool { st, _ := e.ctrl.SessionStatus(got.UUID); return st == model.StatusActive })
		waitFor("the controller to settle", e.ctrl.Settled)
		changed := false
		for _, h := range e.fleet.Hosts {
			changed = changed || !maps.Equal(before[h.Name], ourFlows(h))
		}
		if !changed {
			t.Fatalf("round %d: the session added no flow anywhere: the test shows nothing", round)
		}
		for _, h := range e.fleet.Hosts {
			h.Switch.SetDelay(10 * time.Millisecond) // programming the deletion takes a while: Settled must wait for it
		}
		if err := e.svc.DeletePortMirrorSession(e.ctx, got.UUID); err != nil {
			t.Fatal(err)
		}
		waitFor("the session to leave the plan", func() bool { st, _ := e.ctrl.SessionStatus(got.UUID); return st != model.StatusActive })
		waitFor("the controller to settle", e.ctrl.Settled)
		for _, h := range e.fleet.Hosts {
			if !maps.Equal(before[h.Name], ourFlows(h)) {
				t.Fatalf("round %d: settled, but bridge %s does not hold what it held without the session yet", round, h.Name)
			}
			h.Switch.SetDelay(0)
		}
	}
}
