package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// reservation is the Mirror row that reserves a port for mirroring on h's br-int ("" when there is none).
func reservation(t *testing.T, h *Hypervisor, port string) string {
	t.Helper()
	for _, u := range strings.Fields(h.MustVsctl(t, "--bare", "--columns=_uuid", "find", "Mirror", "external_ids:portmirror-isolation="+port)) {
		out := h.MustVsctl(t, "get", "Mirror", u, "output_port")
		if out == "[]" {
			continue
		}
		if h.MustVsctl(t, "get", "Port", out, "name") == port && strings.Contains(h.MustVsctl(t, "get", "Bridge", h.Bridge, "mirrors"), u) {
			return u
		}
	}
	return ""
}

func waitReservation(t *testing.T, h *Hypervisor, port string, want bool) {
	t.Helper()
	if err := poll(t.Context(), 10*time.Second, 20*time.Millisecond, func() (bool, error) {
		return (reservation(t, h, port) != "") == want, nil
	}); err != nil {
		t.Fatalf("%s: port %s reserved for mirroring: want %v: %v", h.Name, port, want, err)
	}
}

// TestDestinationIsolation: while a NIC is a session's destination, nothing but the copies reaches it: no
// broadcast, multicast, unknown unicast or unicast to its own MAC, untagged or tagged (VLAN 4095, its own former
// VLAN, another), sent from a trunk port on its bridge or arriving from the other hypervisor over the business
// link, not even after it sent a frame itself. It holds after ovs-vswitchd restarts and after the controller
// restarts; releasing the destination gives the port its own VLAN and its ordinary forwarding back.
func TestDestinationIsolation(t *testing.T) {
	t.Parallel()
	tp := NewTopology(t, TopologyOptions{Secure: true})
	b := tp.AddVM(t, tp.HV1, "b")    // the source (EGRESS: the floods it receives are not selected)
	c := tp.AddVM(t, tp.HV1, "c")    // a sender on the other hypervisor (its frames cross the business link)
	a := tp.AddVM(t, tp.HV2, "a")    // a sender on the destination's bridge, on a trunk port (no tag: every VLAN)
	peer := tp.AddVM(t, tp.HV2, "p") // b's ping peer
	m := tp.AddVM(t, tp.HV2, "m", NICSpec{}, NICSpec{Capture: true, Isolate: true})
	dst := m.NICs[1]
	ownTag := dst.Tag
	if tag := PortTag(t, tp.HV2, a.DefaultNIC().HostPort); tag != "" {
		t.Fatalf("a's port has tag %q: the test needs a trunk port", tag)
	}
	w := NewWorld(t, tp, InventoryOptions{Encapsulation: "GRE"})

	frames := isoFrames(dst.MAC, ownTag)
	check := func(label string) {
		t.Helper()
		// The destination speaks first (as a monitoring VM may): nothing it sends may teach NORMAL its MAC.
		m.SendFrame(t, dst, GratuitousARP(dst.MAC, "198.18.9.9"))
		for _, s := range []*VM{a, c} {
			cap := StartCapture(t, dst)
			if leaks := isoLeaks(t, s, s.DefaultNIC(), cap, frames); len(leaks) > 0 {
				t.Errorf("%s: %d of %d frames from %s reached the destination: %v", label, len(leaks), len(frames), s.Name, leaks)
			} else {
				t.Logf("ISOLATION %s: 0 of %d frames from %s reached the destination", label, len(frames), s.Name)
			}
		}
		ExpectCopies(t, label, b, peer.DefaultNIC().IP, 3, Want{dst, PingCount{Requests: 3}})
	}

	// The NIC before it is a destination: its own VLAN's frames reach it (what the harness's tag allows).
	m.SendFrame(t, dst, GratuitousARP(dst.MAC, "198.18.9.9"))
	cap := StartCapture(t, dst)
	before := isoLeaks(t, a, a.DefaultNIC(), cap, frames)
	t.Logf("ISOLATION before: %d of %d frames reach the NIC: %v", len(before), len(frames), before)
	if !slices.Contains(before, fmt.Sprintf("broadcast/vlan%d", ownTag)) {
		t.Fatalf("before any session, a broadcast in the NIC's own VLAN did not reach it: the check proves nothing (%v)", before)
	}

	pm, _ := w.CreatePortMirror(t, "iso", true, SessionSpec{"s", "EGRESS", b.DefaultNIC(), dst})
	w.WaitStatus(t, pm, "ENABLED", "ACTIVE")
	waitPortTag(t, tp.HV2, dst.HostPort, "4095")
	waitReservation(t, tp.HV2, dst.HostPort, true)
	flows := Flows(t, tp.HV2)
	check("destination")
	if got := Flows(t, tp.HV2); !slices.Equal(got, flows) {
		t.Errorf("hv2's flows changed while nothing changed (a flush?):\n%s\nbefore:\n%s", strings.Join(got, "\n"), strings.Join(flows, "\n"))
	}

	// Someone removes the reservation: the parking alone lets the VLAN 4095 frames through, and the datapath caches
	// flows that deliver them. The controller puts the reservation back at its next pass over the bridge (woken
	// here by a new port, as by any port change; else its resync), and those cached flows deliver no more.
	tp.HV2.MustVsctl(t, "remove", "Bridge", tp.HV2.Bridge, "mirrors", reservation(t, tp.HV2, dst.HostPort))
	// (OVS 3.1 does not re-translate cached datapath flows for a Mirror row's removal either: purge them, as time
	// or any flow change would)
	if _, err := tp.HV2.Appctl(t.Context(), "revalidator/purge"); err != nil {
		t.Fatal(err)
	}
	cap = StartCapture(t, dst)
	unreserved := isoLeaks(t, a, a.DefaultNIC(), cap, frames)
	t.Logf("ISOLATION reservation removed by hand: %d of %d frames reach the destination: %v", len(unreserved), len(frames), unreserved)
	if !slices.Contains(unreserved, "broadcast/vlan4095") {
		t.Errorf("with the reservation removed, a VLAN 4095 broadcast did not reach the destination: the next check proves nothing (%v)", unreserved)
	}
	tp.HV2.MustVsctl(t, "add-port", tp.HV2.Bridge, "pmwake0", "--", "set", "Interface", "pmwake0", "type=internal")
	waitReservation(t, tp.HV2, dst.HostPort, true)
	waitPortTag(t, tp.HV2, dst.HostPort, "4095")
	check("after the reservation was put back")
	tp.HV2.MustVsctl(t, "del-port", tp.HV2.Bridge, "pmwake0")

	// ovs-vswitchd restarts: the reservation is in OVSDB, the flows come back from the controller.
	tp.HV2.RestartVswitchd(t)
	waitFlows(t, tp.HV2, flows)
	w.WaitStatus(t, pm, "ENABLED", "ACTIVE")
	check("after an ovs-vswitchd restart")

	// The controller restarts: nothing to change, and nothing flushed.
	w.D.Restart(t)
	w.WaitConnected(t)
	w.WaitStatus(t, pm, "ENABLED", "ACTIVE")
	waitReservation(t, tp.HV2, dst.HostPort, true)
	if got := Flows(t, tp.HV2); !slices.Equal(got, flows) {
		t.Errorf("hv2's flows after the controller's restart differ:\n%s\nbefore:\n%s", strings.Join(got, "\n"), strings.Join(flows, "\n"))
	}
	check("after a controller restart")

	// Released: the port's own VLAN and ordinary forwarding come back.
	w.Mutate(t, "deletePortMirror", pm)
	for _, h := range tp.Hypervisors() {
		w.WaitBaselineOnly(t, h)
	}
	waitPortTag(t, tp.HV2, dst.HostPort, fmt.Sprint(ownTag))
	waitReservation(t, tp.HV2, dst.HostPort, false)
	cap = StartCapture(t, dst)
	after := isoLeaks(t, a, a.DefaultNIC(), cap, frames)
	t.Logf("ISOLATION released: %d of %d frames reach the NIC: %v", len(after), len(frames), after)
	if !slices.Equal(after, before) {
		t.Errorf("after release the NIC receives %v, want what it received before it was a destination: %v", after, before)
	}
}
