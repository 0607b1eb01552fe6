package controller_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"portmirror/model"
	"portmirror/simulator/fleet"
)

// TestSimErspanReconnectSendsNothing: on ERSPAN flow networks of both versions, copies reach their destinations
// exactly, and a bridge that reconnects holding its flows gets no flow_mod: the ERSPAN set_fields read back
// (through the simulated switch's codec) as the compiler wrote them, so reconciliation diffs to zero.
func TestSimErspanReconnectSendsNothing(t *testing.T) {
	for _, enc := range []model.Encapsulation{model.ERSPANv1, model.ERSPANv2} {
		t.Run(string(enc), func(t *testing.T) {
			topo := fleet.Uniform(21, 4, 2, 1)
			topo.Encapsulation = enc
			e, ss := convergenceEnvOf(t, topo, 6)
			h := busyHost(e, ss)
			remote := 0
			for _, f := range ourFlows(h) {
				if strings.Contains(f, "set_field:"+fmt.Sprint(enc.ERSPANVersion())+"->tun_erspan_ver") {
					remote++
				}
			}
			if remote == 0 {
				t.Fatalf("no ERSPAN copy on %s: %v", h.Name, ourFlows(h))
			}
			sw := e.fleet.SwitchOf(h)
			before := e.snapshot()
			connects := sw.Connects()
			sw.Disconnect()
			for sw.Connects() == connects || !sw.Connected() {
				time.Sleep(2 * time.Millisecond)
			}
			e.waitReadBack(h, before, 10*time.Second)
			e.waitSettled(ss, 10*time.Second)
			if got := e.flowModsSince(before); len(got) != 0 {
				t.Errorf("flow_mods after a reconnect with nothing changed: %v, want none", got)
			}
			e.eventuallyExact("after the reconnect", ss, 5*time.Second)
		})
	}
}

// TestSimProbeErspan: a probe of a remote session over ERSPAN carries the version the erspan port needs (without
// it the switch drops the frame, as OVS does) and is delivered.
func TestSimProbeErspan(t *testing.T) {
	for _, enc := range []model.Encapsulation{model.ERSPANv1, model.ERSPANv2} {
		t.Run(string(enc), func(t *testing.T) {
			topo := fleet.Topology{Encapsulation: enc, Clusters: []fleet.ClusterSpec{{Hosts: []fleet.HostSpec{{VMs: 1}, {Monitors: 1}}}}}
			e := newSimEnv(t, topo, envOptions{})
			f := e.fleet
			e.waitBaseline(10 * time.Second)
			e.announceAll()
			var src, mon *fleet.NIC
			for _, n := range f.NICs {
				switch {
				case n.Capture:
					mon = n
				case !n.VM.Monitor && src == nil:
					src = n
				}
			}
			_, sessions, err := f.CreatePortMirror(e.ctx, e.svc, f.FlowNetworks[0], "probed", true, []fleet.Session{
				{Name: "remote", Source: src, Destination: mon, Direction: model.Ingress}})
			if err != nil {
				t.Fatal(err)
			}
			e.waitSettled(sessions, 10*time.Second)
			r, err := e.svc.ProbePortMirrorSession(e.ctx, sessions[0].UUID)
			if err != nil || !r.Delivered || r.Reason != "" {
				t.Fatalf("probe: %+v, %v; want delivered", r, err)
			}
			t.Logf("probe over %s: path %q", enc, r.Path)
		})
	}
}
