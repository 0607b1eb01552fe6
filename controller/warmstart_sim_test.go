package controller_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"portmirror/controller"
	"portmirror/flows"
	"portmirror/internal/flowcache"
	"portmirror/simulator/dataplane"
	"portmirror/simulator/fleet"
)

// TestSimWarmRestart: a controller with a state directory records what it compiled; the next controller on the
// same store and directory (the same program) compiles no bridge that still holds those flows and sends nothing,
// and a bridge that lost one of them while no controller ran is compiled and gets exactly that flow back. One
// host: its key depends on no other bridge's connection, so what each restart compiles is certain.
func TestSimWarmRestart(t *testing.T) {
	dir := t.TempDir()
	e := newSimEnv(t, fleet.Uniform(21, 1, 6, 2), envOptions{controller: controller.Options{StateDir: dir}})
	e.waitBaseline(10 * time.Second)
	e.announceAll()
	_, ss, err := e.fleet.CreatePortMirror(e.ctx, e.svc, e.fleet.FlowNetworks[0], "pm", true, e.fleet.PlanSessions(6))
	if err != nil {
		t.Fatal(err)
	}
	e.waitSettled(ss, 15*time.Second)
	e.eventuallyExact("initial", ss, 10*time.Second)
	h := e.fleet.Hosts[0]
	held := ourFlows(h)
	if len(held) < 2 {
		t.Fatalf("the bridge holds %d flows of ours; the test needs sessions on it", len(held))
	}

	for restart := 1; restart <= 3; restart++ {
		before := e.snapshot()
		e.restartController()
		if _, err := os.Stat(filepath.Join(dir, flowcache.FileName)); err != nil {
			t.Fatalf("restart %d: the stopped controller recorded nothing: %v", restart, err)
		}
		e.waitReadBack(h, before, 10*time.Second)
		e.waitSettled(ss, 10*time.Second)
		st := e.ctrl.PassStats()
		if got := e.flowModsSince(before); len(got) != 0 || st.Compiled != 0 || st.Restored != 1 || st.RestoreMissed != 0 {
			t.Fatalf("restart %d: flow_mods %v, %d bridges compiled, %d restored, %d missed; want none, 0, 1, 0",
				restart, got, st.Compiled, st.Restored, st.RestoreMissed)
		}
	}

	// One of our flows goes while no controller runs: the record no longer holds, the bridge is compiled and
	// the flow alone comes back.
	e.stop()
	var victim dataplane.Flow
	for _, fl := range h.Bridge.Flows(dataplane.FlowFilter{Table: 0xff, Cookie: flows.CookieOurs, CookieMask: flows.CookieMask,
		OutPort: dataplane.PortAny, OutGroup: dataplane.GroupAny}) {
		if fl.Priority > victim.Priority {
			victim = fl
		}
	}
	gone, err := h.Bridge.DeleteFlows(dataplane.FlowFilter{Table: victim.Table, Match: victim.Match, Strict: true, Priority: victim.Priority,
		OutPort: dataplane.PortAny, OutGroup: dataplane.GroupAny})
	if err != nil || len(gone) != 1 {
		t.Fatalf("deleting one flow on the bridge: %d deleted, %v", len(gone), err)
	}
	before := e.snapshot()
	e.startController()
	e.waitReadBack(h, before, 10*time.Second)
	e.waitSettled(ss, 10*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for add, mod, del := flowDiff(held, ourFlows(h)); add+mod+del != 0; add, mod, del = flowDiff(held, ourFlows(h)) {
		if time.Now().After(deadline) {
			t.Fatalf("after the restart the bridge's flows differ from before by %d adds, %d modifies, %d deletes", add, mod, del)
		}
		time.Sleep(2 * time.Millisecond)
	}
	st := e.ctrl.PassStats()
	if got := e.meter.Of(h.DatapathID).Sub(before[h.DatapathID]); got.FlowMods != 1 || st.RestoreMissed != 1 || st.Compiled != 1 || st.Restored != 0 {
		t.Fatalf("a bridge missing one recorded flow: %d flow_mods, %d bridges compiled, %d restored, %d missed; want 1, 1, 0, 1",
			got.FlowMods, st.Compiled, st.Restored, st.RestoreMissed)
	}
	e.eventuallyExact("after the warm restarts", ss, 5*time.Second)
}

// TestSimEarlyServer: an OpenFlow server serving before its controller exists (a daemon whose store is loading)
// has every bridge connect and handshake, reading or programming nothing; the controller that then takes it over
// uses those connections (no bridge reconnects), reads each bridge back and sends nothing. A server no controller
// took over stops at Close and its bridges see the connection end.
func TestSimEarlyServer(t *testing.T) {
	e, ss := convergenceEnv(t, 31, 6)
	e.stop()
	connects := map[*fleet.Host]int{}
	waitEarly := func(srv *controller.Server) {
		t.Helper()
		e.meter.SetUpstream(srv.Addr().String())
		deadline := time.Now().Add(10 * time.Second)
		for _, h := range e.fleet.Hosts {
			for srv.Switch(fmt.Sprintf("%016x", h.DatapathID)) == nil {
				if time.Now().After(deadline) {
					t.Fatalf("%s did not complete its handshake with the early server", h.Name)
				}
				time.Sleep(2 * time.Millisecond)
			}
			connects[h] = e.fleet.SwitchOf(h).Connects()
		}
	}

	// Taken over.
	srv, err := controller.Listen(controller.Config{Addr: "127.0.0.1:0", Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	srv.ServeEarly(e.ctx)
	before := e.snapshot()
	waitEarly(srv)
	for _, h := range e.fleet.Hosts {
		if got := e.meter.Of(h.DatapathID).Sub(before[h.DatapathID]); got.FlowStats != 0 || got.FlowMods != 0 {
			t.Fatalf("%s: %d flow-stats requests and %d flow_mods before any controller took the server over", h.Name, got.FlowStats, got.FlowMods)
		}
	}
	e.ctrlO.Early = srv // the controller takes the early server over
	e.startController()
	e.ctrlO.Early = nil
	for _, h := range e.fleet.Hosts {
		e.waitReadBack(h, before, 10*time.Second)
	}
	e.waitSettled(ss, 10*time.Second)
	if got := e.flowModsSince(before); len(got) != 0 {
		t.Errorf("flow_mods after the early server was taken over: %v, want none", got)
	}
	for _, h := range e.fleet.Hosts {
		if n := e.fleet.SwitchOf(h).Connects(); n != connects[h] {
			t.Errorf("%s connected %d more times after the controller took the early server over", h.Name, n-connects[h])
		}
	}
	e.eventuallyExact("after the early server was taken over", ss, 5*time.Second)

	// Not taken over: Close ends the connections.
	e.stop()
	e.stop = func() {}
	srv2, err := controller.Listen(controller.Config{Addr: "127.0.0.1:0", Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	srv2.ServeEarly(e.ctx)
	waitEarly(srv2)
	if err := srv2.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, h := range e.fleet.Hosts {
		for e.fleet.SwitchOf(h).Connects() == connects[h] && e.fleet.SwitchOf(h).Connected() {
			if time.Now().After(deadline) {
				t.Fatalf("%s is still connected after the early server closed", h.Name)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	if srv2.Switch(fmt.Sprintf("%016x", e.fleet.Hosts[0].DatapathID)) != nil {
		t.Error("the closed early server still lists a switch")
	}
}
