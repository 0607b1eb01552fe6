package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestMirrorExpiry: a session with an expiresAt a few seconds ahead copies until then; at that time the controller
// deletes it (the API no longer has it, one audit event expirePortMirrorSession by "system" on the port mirror with
// the session in its detail), both bridges hold the baseline again (no stale flow), the destination port has its
// own tag back, and no copy arrives any more. A second session whose time comes while the controller is down is
// deleted as soon as the controller is back.
func TestMirrorExpiry(t *testing.T) {
	t.Parallel()
	tp := NewTopology(t, TopologyOptions{Secure: true})
	a := tp.AddVM(t, tp.HV1, "a")
	b := tp.AddVM(t, tp.HV2, "b")
	m := tp.AddVM(t, tp.HV2, "m", NICSpec{}, NICSpec{Capture: true, Isolate: true})
	w := NewWorld(t, tp, InventoryOptions{Encapsulation: "GRE"})
	an, bn, dst := a.DefaultNIC(), b.DefaultNIC(), m.NICs[1]
	ownTag := fmt.Sprint(dst.Tag)
	const n = 5
	pm, _ := w.CreatePortMirror(t, "timed", true)

	at := time.Now().Add(8 * time.Second).UTC()
	var added struct {
		AddPortMirrorSession struct {
			UUID      string
			ExpiresAt string
		}
	}
	c := StartCapture(t, dst)
	t0 := time.Now()
	w.GC.Must(t, `mutation($pm: ID!, $in: SessionInput!) { addPortMirrorSession(portMirrorUuid: $pm, input: $in) { uuid expiresAt } }`,
		map[string]any{"pm": pm, "in": map[string]any{"name": "timed", "type": "BIDIRECTION", "sourceNicUuid": an.UUID,
			"destinationNicUuid": dst.UUID, "expiresAt": at.Format(time.RFC3339Nano)}}, &added)
	ses := added.AddPortMirrorSession.UUID
	if got, err := time.Parse(time.RFC3339Nano, added.AddPortMirrorSession.ExpiresAt); err != nil || !got.Equal(at) {
		t.Fatalf("expiresAt %q, want %v", added.AddPortMirrorSession.ExpiresAt, at)
	}
	FirstCopy(t, "expiry/add", t0, a, bn.IP, c)
	w.WaitStatus(t, pm, "ENABLED", "ACTIVE")
	ExpectCopies(t, "expiry/before", a, bn.IP, n, Want{dst, PingCount{Requests: n, Replies: n}})
	if time.Now().After(at) {
		t.Fatalf("the copies were checked only after the session's expiry: the machine is too slow for this test")
	}

	var out struct {
		PortMirror struct{ Sessions []struct{ UUID string } }
	}
	w.GC.Eventually(t, 20*time.Second, `query($u: ID!) { portMirror(uuid: $u) { sessions { uuid } } }`, map[string]any{"u": pm}, &out,
		func() (bool, string) {
			return len(out.PortMirror.Sessions) == 0, fmt.Sprintf("%d sessions", len(out.PortMirror.Sessions))
		})
	gone := time.Now()
	if gone.Before(at) {
		t.Errorf("the session went at %v, before its expiresAt %v", gone, at)
	}
	t.Logf("EXPIRY deleted and seen through the API %v after expiresAt", gone.Sub(at).Round(time.Millisecond))
	for _, h := range tp.Hypervisors() {
		w.WaitBaselineOnly(t, h)
	}
	t.Logf("EXPIRY both bridges at the baseline %v after expiresAt", time.Since(at).Round(time.Millisecond))
	waitPortTag(t, tp.HV2, dst.HostPort, ownTag)
	ExpectCopies(t, "expiry/after", a, bn.IP, n, Want{dst, PingCount{}})

	// Durable: a session whose time comes while the controller is down is deleted as soon as it is back.
	at2 := time.Now().Add(3 * time.Second).UTC()
	w.GC.Must(t, `mutation($pm: ID!, $in: SessionInput!) { addPortMirrorSession(portMirrorUuid: $pm, input: $in) { uuid } }`,
		map[string]any{"pm": pm, "in": map[string]any{"name": "timed-2", "type": "EGRESS", "sourceNicUuid": an.UUID,
			"destinationNicUuid": dst.UUID, "expiresAt": at2.Format(time.RFC3339Nano)}}, nil)
	w.WaitStatus(t, pm, "ENABLED", "ACTIVE")
	w.D.Kill(t)
	time.Sleep(time.Until(at2.Add(500 * time.Millisecond))) // the time passes while no controller runs
	restarted := time.Now()
	w.D.Start(t)
	w.GC.Eventually(t, 20*time.Second, `query($u: ID!) { portMirror(uuid: $u) { sessions { uuid } } }`, map[string]any{"u": pm}, &out,
		func() (bool, string) {
			return len(out.PortMirror.Sessions) == 0, fmt.Sprintf("%d sessions", len(out.PortMirror.Sessions))
		})
	t.Logf("EXPIRY a session due while the controller was down: gone %v after its start", time.Since(restarted).Round(time.Millisecond))
	w.WaitConnected(t)
	for _, h := range tp.Hypervisors() {
		w.WaitBaselineOnly(t, h)
	}

	var evs struct {
		Audits []struct {
			Actor, Operation, ResourceType, Detail string
			ResourceUUID                           string `json:"resourceUuid"`
			Success                                bool
		}
	}
	w.GC.Must(t, `query($u: ID!) { audits(resourceUuid: $u, operation: "expirePortMirrorSession") { actor operation resourceType resourceUuid success detail } }`,
		map[string]any{"u": ses}, &evs)
	var all struct{ Audits []struct{ Actor string } }
	w.GC.Must(t, `query($u: ID!) { audits(resourceUuid: $u, operation: "expirePortMirrorSession") { actor } }`, map[string]any{"u": pm}, &all)
	if len(all.Audits) != 2 || all.Audits[0].Actor != "system" || all.Audits[1].Actor != "system" {
		t.Errorf("expiry events of the port mirror: %+v, want two by system", all.Audits)
	}
	if len(evs.Audits) != 1 {
		t.Fatalf("%d expiry events for the session, want 1: %+v", len(evs.Audits), evs.Audits)
	}
	ev := evs.Audits[0]
	if ev.Actor != "system" || !ev.Success || ev.ResourceType != "PortMirror" || ev.ResourceUUID != pm || !strings.Contains(ev.Detail, ses) {
		t.Errorf("expiry event %+v: want actor system, success, on port mirror %s, the session in the detail", ev, pm)
	}
}
