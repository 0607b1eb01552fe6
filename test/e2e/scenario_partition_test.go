package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestMirrorPartition: hv1 loses its controller link (the bridge keeps its flows,
// fail_mode=secure) while the port mirror changes: a session from a (hv1) is
// deleted and another added. Meanwhile hv2 converges alone and the copies hv1
// still sends under the deleted session are dropped there; the new session on hv1
// is PENDING, not ACTIVE. When the link comes back, hv1 is converged from what it
// really holds: the stale flows go, the new ones come.
func TestMirrorPartition(t *testing.T) {
	t.Parallel()
	tp := NewTopology(t, TopologyOptions{Secure: true})
	a := tp.AddVM(t, tp.HV1, "a")
	b := tp.AddVM(t, tp.HV2, "b")
	m := tp.AddVM(t, tp.HV2, "m", NICSpec{}, NICSpec{Capture: true, Isolate: true})
	m2 := tp.AddVM(t, tp.HV2, "m2", NICSpec{}, NICSpec{Capture: true, Isolate: true})
	w := NewWorld(t, tp, InventoryOptions{Encapsulation: "VXLAN"})
	an, bn, dst, dst2 := a.DefaultNIC(), b.DefaultNIC(), m.NICs[1], m2.NICs[1]
	const n = 5

	pm, _ := w.CreatePortMirror(t, "part", true, SessionSpec{"s1", "BIDIRECTION", an, dst})
	w.WaitStatus(t, pm, "ENABLED", "ACTIVE")
	ExpectCopies(t, "partition/before", a, bn.IP, n, Want{dst, PingCount{Requests: n, Replies: n}})
	hv1Before := Flows(t, tp.HV1)

	// Cut hv1's controller link and wait until ovs-vswitchd itself says it lost the controller.
	if _, err := tp.HV1.Exec(t.Context(), "ip", "link", "set", "ctl0", "down"); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	waitControllerConnected(t, tp.HV1, false)
	t.Logf("e2e: hv1 noticed the lost controller link after %v", time.Since(cut).Round(time.Millisecond))

	var s1 struct {
		PortMirror struct{ Sessions []struct{ UUID string } }
	}
	w.GC.Must(t, `query($u: ID!) { portMirror(uuid: $u) { sessions { uuid } } }`, map[string]any{"u": pm}, &s1)
	w.GC.Must(t, `mutation($u: ID!) { deletePortMirrorSession(uuid: $u) }`, map[string]any{"u": s1.PortMirror.Sessions[0].UUID}, nil)
	var add struct{ AddPortMirrorSession struct{ UUID string } }
	for _, s := range []SessionSpec{{"s2", "INGRESS", bn, dst}, {"s3", "EGRESS", an, dst2}} {
		w.GC.Must(t, `mutation($pm: ID!, $in: SessionInput!) { addPortMirrorSession(portMirrorUuid: $pm, input: $in) { uuid } }`,
			map[string]any{"pm": pm, "in": sessionInputs([]SessionSpec{s})[0]}, &add)
	}
	s3 := add.AddPortMirrorSession.UUID

	// s3 needs hv1: PENDING, saying so; s2 lives on hv2 alone: ACTIVE.
	var st struct {
		PortMirror struct {
			Sessions []struct{ UUID, Name, Status, StatusReason string }
		}
	}
	w.GC.Eventually(t, 15*time.Second, `query($u: ID!) { portMirror(uuid: $u) { sessions { uuid name status statusReason } } }`,
		map[string]any{"u": pm}, &st, func() (bool, string) {
			got := map[string]string{}
			for _, s := range st.PortMirror.Sessions {
				got[s.Name] = s.Status
				if s.UUID == s3 && s.Status == "PENDING" && !strings.Contains(s.StatusReason, tp.HV1.DPID) {
					return false, "s3 PENDING without naming hv1's switch: " + s.StatusReason
				}
			}
			return got["s2"] == "ACTIVE" && got["s3"] == "PENDING", fmt.Sprintf("%+v", st.PortMirror.Sessions)
		})
	if got := Flows(t, tp.HV1); strings.Join(got, "\n") != strings.Join(hv1Before, "\n") {
		t.Errorf("hv1's flows changed while it was cut off:\n%s", strings.Join(got, "\n"))
	}
	waitControllerConnected(t, tp.HV1, false)
	// hv1 still copies a's frames under s1 (and not yet under s3); hv2 drops those on
	// the tunnel port. m gets the requests once, from s2 at hv2; m2 nothing yet.
	// (s3 goes to another destination than s1 on purpose: keys are per destination
	// NIC, so copies of a stale session to the same destination carry a live key.)
	ExpectCopies(t, "partition/cut", a, bn.IP, n, Want{dst, PingCount{Requests: n}}, Want{dst2, PingCount{}})

	// Restore the link: hv1 reconnects and is converged.
	if _, err := tp.HV1.Exec(t.Context(), "ip", "link", "set", "ctl0", "up"); err != nil {
		t.Fatal(err)
	}
	up := time.Now()
	w.WaitConnected(t)
	w.WaitStatus(t, pm, "ENABLED", "ACTIVE")
	t.Logf("RECOVERY partition/link-restored ACTIVE %v after the link came back (OVS reconnect backoff included)", time.Since(up).Round(time.Millisecond))
	for _, f := range Flows(t, tp.HV1) {
		if strings.Contains(f, "priority=100,") { // not the counting flows of table 2 (priority=1000)
			t.Errorf("hv1 still holds an INGRESS flow of the deleted session s1: %s", f)
		}
	}
	// Now s2 at hv2 copies each request to m, s3 at hv1 to m2; no reply anywhere.
	ExpectCopies(t, "partition/restored", a, bn.IP, n, Want{dst, PingCount{Requests: n}}, Want{dst2, PingCount{Requests: n}})
}

// waitControllerConnected polls until h's br-int controller reports is_connected = want.
func waitControllerConnected(t *testing.T, h *Hypervisor, want bool) {
	t.Helper()
	var got string
	if err := poll(t.Context(), 30*time.Second, 50*time.Millisecond, func() (bool, error) {
		out, err := h.Vsctl(t.Context(), "--bare", "--columns=is_connected", "list", "Controller")
		got = out
		return err == nil && out == fmt.Sprint(want), err
	}); err != nil {
		t.Fatalf("%s: controller is_connected %q, want %v: %v", h.Name, got, want, err)
	}
}
