package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestMirrorLifecycle follows one port mirror (BIDIRECTION, source a on hv1,
// destination the capture NIC of m on hv2) through everything that happens to it:
// create enabled, disable, enable, SIGKILL of the controller and restart, restart
// of hv1's ovs-vswitchd, migration of a to hv2, a refused duplicate session, delete;
// and checks the audit trail of it all.
func TestMirrorLifecycle(t *testing.T) {
	t.Parallel()
	tp := NewTopology(t, TopologyOptions{Secure: true})
	a := tp.AddVM(t, tp.HV1, "a")
	b := tp.AddVM(t, tp.HV2, "b")
	// The harness gives m's capture port a VLAN of its own: the product isolates it
	// (tag 4095) while it is a destination and must put this tag back afterwards.
	m := tp.AddVM(t, tp.HV2, "m", NICSpec{}, NICSpec{Capture: true, Isolate: true})
	w := NewWorld(t, tp, InventoryOptions{Encapsulation: "GRE"})
	an, bn, dst := a.DefaultNIC(), b.DefaultNIC(), m.NICs[1]
	ownTag := fmt.Sprint(dst.Tag)
	aPort := an.OFPort(t)
	const n = 5
	both := PingCount{Requests: n, Replies: n}

	// Create, enabled.
	c := StartCapture(t, dst)
	pm, t0 := w.CreatePortMirror(t, "life", true, SessionSpec{"s", "BIDIRECTION", an, dst})
	FirstCopy(t, "lifecycle/create", t0, a, bn.IP, c)
	w.WaitStatus(t, pm, "ENABLED", "ACTIVE")
	if tag := PortTag(t, tp.HV2, dst.HostPort); tag != "4095" {
		t.Errorf("destination port %s has tag %q while a destination, want 4095", dst.HostPort, tag)
	}
	ExpectCopies(t, "lifecycle/created", a, bn.IP, n, Want{dst, both})

	// Disable: no copies, nothing but the baseline on either bridge, the port's own tag back.
	w.Mutate(t, "disablePortMirror", pm)
	w.WaitStatus(t, pm, "DISABLED", "INACTIVE")
	for _, h := range tp.Hypervisors() {
		w.WaitBaselineOnly(t, h)
	}
	waitPortTag(t, tp.HV2, dst.HostPort, ownTag)
	ExpectCopies(t, "lifecycle/disabled", a, bn.IP, n, Want{dst, PingCount{}})

	// Enable again.
	c = StartCapture(t, dst)
	t0 = w.Mutate(t, "enablePortMirror", pm)
	FirstCopy(t, "lifecycle/enable", t0, a, bn.IP, c)
	w.WaitStatus(t, pm, "ENABLED", "ACTIVE")
	ExpectCopies(t, "lifecycle/enabled", a, bn.IP, n, Want{dst, both})
	before := map[string][]string{}
	for _, h := range tp.Hypervisors() {
		before[h.Name] = Flows(t, h)
	}

	// SIGKILL of the controller: the switches keep the flows (fail_mode=secure) and
	// copies continue; after the restart the flow tables are exactly what they were.
	w.D.Kill(t)
	ExpectCopies(t, "lifecycle/controller-down", a, bn.IP, n, Want{dst, both})
	for _, h := range tp.Hypervisors() {
		if got := Flows(t, h); !slices.Equal(got, before[h.Name]) {
			t.Errorf("%s: flows changed while the controller was down:\n%s\nbefore:\n%s", h.Name, strings.Join(got, "\n"), strings.Join(before[h.Name], "\n"))
		}
	}
	tr := time.Now()
	w.D.Start(t)
	w.WaitConnected(t)
	w.WaitStatus(t, pm, "ENABLED", "ACTIVE")
	t.Logf("RECOVERY lifecycle/controller-restart ACTIVE %v after start", time.Since(tr).Round(time.Millisecond))
	for _, h := range tp.Hypervisors() {
		if got := Flows(t, h); !slices.Equal(got, before[h.Name]) {
			t.Errorf("%s: flows after the controller's restart differ:\n%s\nbefore:\n%s", h.Name, strings.Join(got, "\n"), strings.Join(before[h.Name], "\n"))
		}
	}
	ExpectCopies(t, "lifecycle/controller-restarted", a, bn.IP, n, Want{dst, both})

	// While the controller is down someone deletes one of its flows and leaves a
	// stale one with its cookie, next to a flow of someone else's: the restarted
	// controller reads back what is there, restores the first, removes the second
	// and leaves the foreign flow alone.
	w.D.Kill(t)
	ours := before[tp.HV1.Name]
	victim := ""
	for _, f := range ours {
		if strings.Contains(f, "priority=100,") { // not the counting flows of table 2 (priority=1000)
			victim = f
		}
	}
	if victim == "" {
		t.Fatalf("hv1 has no ingress flow to delete:\n%s", strings.Join(ours, "\n"))
	}
	if _, err := tp.HV1.Ofctl(t.Context(), "del-flows", tp.HV1.Bridge, "--strict", strings.TrimSuffix(strings.SplitN(victim, " actions=", 2)[0][strings.Index(victim, "priority="):], ",")); err != nil {
		t.Fatal(err)
	}
	tp.HV1.AddFlow(t, tp.HV1.Bridge, "cookie=0x504d000000000003,priority=200,in_port=999,actions=NORMAL")
	tp.HV1.AddFlow(t, tp.HV1.Bridge, "cookie=0x1234,priority=50,in_port=998,actions=drop")
	if got := Flows(t, tp.HV1); slices.Contains(got, victim) || len(got) != len(ours)+1 {
		t.Fatalf("tampering did not take:\n%s", strings.Join(got, "\n"))
	}
	tr = time.Now()
	w.D.Start(t)
	w.WaitConnected(t)
	wantHV1 := append(slices.Clone(ours), "cookie=0x1234, table=0, priority=50,in_port=998 actions=drop")
	slices.Sort(wantHV1)
	waitFlows(t, tp.HV1, wantHV1)
	w.WaitStatus(t, pm, "ENABLED", "ACTIVE")
	t.Logf("RECOVERY lifecycle/controller-restart-tampered converged %v after start", time.Since(tr).Round(time.Millisecond))
	if _, err := tp.HV1.Ofctl(t.Context(), "del-flows", tp.HV1.Bridge, "cookie=0x1234/-1"); err != nil {
		t.Fatal(err)
	}
	ExpectCopies(t, "lifecycle/controller-restarted-tampered", a, bn.IP, n, Want{dst, both})

	// Restart of hv2's ovs-vswitchd (the destination side).
	tp.HV2.RestartVswitchd(t)
	c = StartCapture(t, dst)
	FirstCopy(t, "lifecycle/vswitchd-restart-hv2", time.Now(), a, bn.IP, c)
	waitFlows(t, tp.HV2, before[tp.HV2.Name])
	w.WaitStatus(t, pm, "ENABLED", "ACTIVE")
	ExpectCopies(t, "lifecycle/vswitchd-restarted-hv2", a, bn.IP, n, Want{dst, both})

	// Restart of hv1's ovs-vswitchd: its flows are gone; the controller reprograms it.
	tp.HV1.RestartVswitchd(t)
	c = StartCapture(t, dst)
	FirstCopy(t, "lifecycle/vswitchd-restart-hv1", time.Now(), a, bn.IP, c)
	waitFlows(t, tp.HV1, before[tp.HV1.Name])
	w.WaitStatus(t, pm, "ENABLED", "ACTIVE")
	ExpectCopies(t, "lifecycle/vswitchd-restarted", a, bn.IP, n, Want{dst, both})

	// migrate moves a to another hypervisor, tells the API, and times the first copy
	// from the API call.
	migrate := func(to *Hypervisor, label string) {
		t.Helper()
		a.Migrate(t, to)
		c := StartCapture(t, dst)
		t0 := time.Now()
		w.GC.Must(t, `mutation($vm: ID!, $h: ID!) { migrateVmInstance(uuid: $vm, hostUuid: $h) { uuid } }`,
			map[string]any{"vm": a.UUID, "h": w.Inv.HostUUID(to)}, nil)
		FirstCopy(t, label, t0, a, bn.IP, c)
		w.WaitStatus(t, pm, "ENABLED", "ACTIVE")
	}

	// Migration of the source VM to hv2: copies come from hv2 (locally) exactly
	// once, and nothing of the session is left on hv1.
	migrate(tp.HV2, "lifecycle/migrate")
	w.WaitBaselineOnly(t, tp.HV1)
	ExpectCopies(t, "lifecycle/migrated", a, bn.IP, n, Want{dst, both})

	// And back to hv1: the copies cross the flow network again, from hv1 only.
	migrate(tp.HV1, "lifecycle/migrate-back")
	// hv2 holds what it held before; hv1 too, but a's port is a new one now.
	waitFlows(t, tp.HV2, before[tp.HV2.Name])
	var wantHV1Back []string
	for _, f := range before[tp.HV1.Name] {
		wantHV1Back = append(wantHV1Back, strings.Replace(f, fmt.Sprintf("in_port=%d ", aPort), fmt.Sprintf("in_port=%d ", an.OFPort(t)), 1))
	}
	slices.Sort(wantHV1Back)
	waitFlows(t, tp.HV1, wantHV1Back)
	ExpectCopies(t, "lifecycle/migrated-back", a, bn.IP, n, Want{dst, both})

	// A refused mutation changes nothing and is audited.
	err := w.GC.Do(t.Context(), `mutation($pm: ID!, $in: SessionInput!) { addPortMirrorSession(portMirrorUuid: $pm, input: $in) { uuid } }`,
		map[string]any{"pm": pm, "in": sessionInputs([]SessionSpec{{"dup", "BIDIRECTION", an, dst}})[0]}, nil)
	if ErrorCode(err) != "CONFLICT" || ErrorRule(err) != "DUPLICATE_SESSION" {
		t.Errorf("duplicate session: %v, want CONFLICT/DUPLICATE_SESSION", err)
	}

	// Delete: no copies, no flow of ours but the baseline, the port's own tag back.
	w.Mutate(t, "deletePortMirror", pm)
	for _, h := range tp.Hypervisors() {
		w.WaitBaselineOnly(t, h)
	}
	waitPortTag(t, tp.HV2, dst.HostPort, ownTag)
	ExpectCopies(t, "lifecycle/deleted", a, bn.IP, n, Want{dst, PingCount{}})

	// The audit trail, newest first.
	var au struct {
		Audits []struct {
			Time, Operation, ResourceType string
			Success                       bool
			Error                         *string
		}
	}
	w.GC.Must(t, `query($u: ID!) { audits(resourceUuid: $u) { time operation resourceType success error } }`, map[string]any{"u": pm}, &au)
	var ops []string
	for i, e := range au.Audits {
		op := e.Operation
		if !e.Success {
			op += "!"
			if e.Error == nil || !strings.Contains(*e.Error, "DUPLICATE_SESSION") && !strings.Contains(strings.ToLower(*e.Error), "already") {
				t.Errorf("refused %s: error %v, want it to say why (the duplicate session)", e.Operation, e.Error)
			}
		}
		ops = append(ops, op)
		if i > 0 && e.Time > au.Audits[i-1].Time {
			t.Errorf("audits not newest first: %s at %s after %s at %s", e.Operation, e.Time, au.Audits[i-1].Operation, au.Audits[i-1].Time)
		}
	}
	want := []string{"deletePortMirror", "addPortMirrorSession!", "enablePortMirror", "disablePortMirror", "createPortMirror"}
	if !slices.Equal(ops, want) {
		t.Errorf("audits(resourceUuid: pm) operations %v, want %v", ops, want)
	}
}

// waitPortTag polls until a port's tag is want.
func waitPortTag(t *testing.T, h *Hypervisor, port, want string) {
	t.Helper()
	var got string
	if err := poll(t.Context(), 10*time.Second, 20*time.Millisecond, func() (bool, error) {
		got = PortTag(t, h, port)
		return got == want, nil
	}); err != nil {
		t.Fatalf("%s: port %s tag %q, want %q", h.Name, port, got, want)
	}
}

// waitFlows polls until h's br-int holds exactly want (as Flows returns them).
func waitFlows(t *testing.T, h *Hypervisor, want []string) {
	t.Helper()
	var got []string
	if err := poll(t.Context(), 20*time.Second, 20*time.Millisecond, func() (bool, error) {
		got = Flows(t, h)
		return slices.Equal(got, want), nil
	}); err != nil {
		t.Fatalf("%s: flows\n%s\nwant\n%s", h.Name, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
