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
