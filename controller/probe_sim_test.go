package controller_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"portmirror/flows"
	"portmirror/model"
	"portmirror/service"
	"portmirror/simulator/dataplane"
	"portmirror/simulator/fleet"
)

// TestSimProbe: on simulated bridges, a probe of a local and of a remote session is delivered with no frame
// reaching any VM NIC; with the remote bridge's deliver flow removed behind the controller's back the probe
// names that flow; probes are audited, and a probe of an unknown session or of a disabled port mirror is refused.
func TestSimProbe(t *testing.T) {
	topo := fleet.Topology{Clusters: []fleet.ClusterSpec{{Hosts: []fleet.HostSpec{{VMs: 1, Monitors: 1}, {VMs: 1, Monitors: 1}}}}}
	e := newSimEnv(t, topo, envOptions{})
	f := e.fleet
	e.waitBaseline(10 * time.Second)
	e.announceAll()

	h0, h1 := f.Hosts[0], f.Hosts[1]
	var src, localMon, remoteMon *fleet.NIC
	for _, n := range f.NICs {
		switch h := f.HostOf(n.VM); {
		case h == h0 && !n.Capture && !n.VM.Monitor && src == nil:
			src = n
		case h == h0 && n.Capture:
			localMon = n
		case h == h1 && n.Capture:
			remoteMon = n
		}
	}
	if src == nil || localMon == nil || remoteMon == nil {
		t.Fatalf("topology: source %v, local monitor %v, remote monitor %v", src, localMon, remoteMon)
	}
	pm, sessions, err := f.CreatePortMirror(e.ctx, e.svc, f.FlowNetworks[0], "probed", true, []fleet.Session{
		{Name: "local", Source: src, Destination: localMon, Direction: model.Ingress},
		{Name: "remote", Source: src, Destination: remoteMon, Direction: model.Egress},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.waitSettled(sessions, 10*time.Second)

	for _, s := range sessions {
		r, err := e.svc.ProbePortMirrorSession(e.ctx, s.UUID)
		if err != nil {
			t.Fatalf("probe of %s: %v", s.Name, err)
		}
		if !r.Delivered || r.LatencyMs == nil || r.Reason != "" {
			t.Errorf("probe of %s: %+v, want delivered", s.Name, r)
		}
		t.Logf("probe of %s: %.3f ms via %q", s.Name, *r.LatencyMs, r.Path)
	}
	// Concurrent probes are told apart: each gets its own frame back.
	results := make(chan error, 16)
	for i := range 16 {
		go func() {
			s := sessions[i%2]
			r, err := e.svc.ProbePortMirrorSession(e.ctx, s.UUID)
			if err == nil && !r.Delivered {
				err = fmt.Errorf("probe %d of %s not delivered: %s", i, s.Name, r.Reason)
			}
			results <- err
		}()
	}
	for range 16 {
		if err := <-results; err != nil {
			t.Error(err)
		}
	}
	arrivals, emitted := f.PacketOutArrivals()
	if len(arrivals) > 0 {
		t.Errorf("probe frames reached VM NICs: %+v", arrivals)
	}
	if emitted == 0 {
		t.Errorf("the remote probe's frame left no port (the simulator did not forward the packet-out)")
	}
	// The only probe flow is h1's catch flow for key 0.
	for _, h := range f.Hosts {
		want := 0
		if h == h1 {
			want = 1
		}
		if n := len(h.Bridge.Flows(dataplane.FlowFilter{Table: 0xff, OutPort: dataplane.PortAny, OutGroup: dataplane.GroupAny,
			Cookie: flows.CookieProbe, CookieMask: ^uint64(0)})); n != want {
			t.Errorf("%s holds %d probe flows after the probes, want %d", h.Name, n, want)
		}
	}

	// The deliver flow deleted behind the controller's back.
	deleted, err := h1.Bridge.DeleteFlows(dataplane.FlowFilter{Table: 0, OutPort: dataplane.PortAny, OutGroup: dataplane.GroupAny,
		Cookie: flows.CookieOurs | flows.KindTunnelDeliver, CookieMask: ^uint64(0)})
	if err != nil || len(deleted) != 1 {
		t.Fatalf("deleting the deliver flow: %d deleted, %v", len(deleted), err)
	}
	r, err := e.svc.ProbePortMirrorSession(e.ctx, sessions[1].UUID)
	if err != nil || r.Delivered || !strings.Contains(r.Reason, "deliver flow") || !strings.Contains(r.Reason, fmt.Sprintf("%016x", h1.DatapathID)) {
		t.Errorf("probe without the deliver flow: %+v, %v; want undelivered naming %016x's deliver flow", r, err, h1.DatapathID)
	}

	// Refusals.
	var se *service.Error
	if _, err := e.svc.ProbePortMirrorSession(e.ctx, "00000000-0000-4000-8000-000000000000"); !errors.As(err, &se) || se.Code != service.CodeNotFound {
		t.Errorf("probe of an unknown session: %v, want NOT_FOUND", err)
	}
	if _, err := e.svc.DisablePortMirror(e.ctx, pm.UUID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.ProbePortMirrorSession(e.ctx, sessions[0].UUID); !errors.As(err, &se) || se.Code != service.CodeConflict {
		t.Errorf("probe of a disabled port mirror's session: %v, want CONFLICT", err)
	}

	evs, err := e.svc.Audits(e.ctx, service.AuditQuery{Operation: "probePortMirrorSession"})
	if err != nil {
		t.Fatal(err)
	}
	ok, refused := 0, 0
	for _, ev := range evs {
		if ev.Actor != "sim-test" || ev.ResourceType != "PortMirror" {
			t.Errorf("audit event %+v: want actor sim-test on a PortMirror", ev)
		}
		if ev.Success {
			ok++
			if ev.ResourceUUID != pm.UUID || !strings.Contains(ev.Detail, `"delivered"`) {
				t.Errorf("audit event of a probe that ran: %+v, want the port mirror and the result", ev)
			}
		} else {
			refused++
		}
	}
	if ok != 19 || refused != 2 {
		t.Errorf("audit events: %d successful, %d refused; want 19 and 2", ok, refused)
	}
}
