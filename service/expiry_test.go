package service

import (
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"portmirror/model"
)

// setClock gives the fixture's service a clock the test moves.
type setClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *setClock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *setClock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

func newExpiryFixture(t *testing.T) (*fx, *setClock) {
	f := newFixture(t)
	c := &setClock{t: time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)}
	f.svc.now = c.now
	return f, c
}

// TestExpiresAtRefusedInThePast: an expiresAt that is not in the future is INVALID_ARGUMENT naming the session
// and the rule, on every way in, and changes nothing.
func TestExpiresAtRefusedInThePast(t *testing.T) {
	f, c := newExpiryFixture(t)
	past := c.now().Add(-time.Second)
	now := c.now()
	in := SessionInput{Name: "late", Type: model.Egress, SourceNicUUID: f.n1b, DestinationNicUUID: f.n2c}
	for _, tc := range []struct {
		name string
		at   time.Time
		call func(at time.Time) error
	}{
		{"add, past", past, func(at time.Time) error {
			in := in
			in.ExpiresAt = &at
			_, err := f.svc.AddPortMirrorSession(f.ctx, f.pm1, in)
			return err
		}},
		{"add, now", now, func(at time.Time) error {
			in := in
			in.ExpiresAt = &at
			_, err := f.svc.AddPortMirrorSession(f.ctx, f.pm1, in)
			return err
		}},
		{"createPortMirror", past, func(at time.Time) error {
			in := in
			in.ExpiresAt = &at
			_, err := f.svc.CreatePortMirror(f.ctx, PortMirrorInput{Name: "pm-b", FlowNetworkUUID: f.fn2, Sessions: []SessionInput{in}})
			return err
		}},
		{"update", past, func(at time.Time) error {
			_, err := f.svc.UpdatePortMirrorSession(f.ctx, f.s1, SessionUpdate{ExpiresAtSet: true, ExpiresAt: &at})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := dump(t, f.st)
			err := tc.call(tc.at)
			var e *Error
			if !errors.As(err, &e) || e.Code != CodeValidation || e.Rule != RuleInvalidArgument {
				t.Fatalf("got %v, want VALIDATION/INVALID_ARGUMENT", err)
			}
			if !strings.Contains(e.Message, "session") || !strings.Contains(e.Message, "expiresAt") || !strings.Contains(e.Message, "not in the future") {
				t.Errorf("message %q does not name the session and the rule", e.Message)
			}
			if after := dump(t, f.st); after != before {
				t.Errorf("a refused %s changed the store", tc.name)
			}
		})
	}
}

// TestExpiresAtUpdate: expiresAt is kept when left out, changed when given, cleared by null; none of it is a new
// revision of the flows (the session does not go PENDING for it).
func TestExpiresAtUpdate(t *testing.T) {
	f, c := newExpiryFixture(t)
	at := c.now().Add(time.Hour)
	ses := f.must1(f.svc.AddPortMirrorSession(f.ctx, f.pm1, SessionInput{Name: "timed", Type: model.Egress,
		SourceNicUUID: f.n1b, DestinationNicUUID: f.n2c, ExpiresAt: &at})).(model.Session)
	if ses.ExpiresAt == nil || !ses.ExpiresAt.Equal(at) {
		t.Fatalf("added with expiresAt %v", ses.ExpiresAt)
	}
	name := "timed2"
	got := f.must1(f.svc.UpdatePortMirrorSession(f.ctx, ses.UUID, SessionUpdate{Name: &name})).(model.Session)
	if got.ExpiresAt == nil || !got.ExpiresAt.Equal(at) {
		t.Errorf("an update without expiresAt changed it to %v", got.ExpiresAt)
	}
	later := at.Add(time.Hour)
	got = f.must1(f.svc.UpdatePortMirrorSession(f.ctx, ses.UUID, SessionUpdate{ExpiresAtSet: true, ExpiresAt: &later})).(model.Session)
	if got.ExpiresAt == nil || !got.ExpiresAt.Equal(later) || got.Revision != 0 {
		t.Errorf("moved: expiresAt %v revision %d, want %v and 0", got.ExpiresAt, got.Revision, later)
	}
	if x, ok := f.svc.SessionExpiry(f.ctx, ses.UUID); !ok || !x.Equal(later) {
		t.Errorf("stored expiry %v %v", x, ok)
	}
	got = f.must1(f.svc.UpdatePortMirrorSession(f.ctx, ses.UUID, SessionUpdate{ExpiresAtSet: true})).(model.Session)
	if got.ExpiresAt != nil {
		t.Errorf("null did not clear expiresAt: %v", got.ExpiresAt)
	}
	if _, ok := f.svc.SessionExpiry(f.ctx, ses.UUID); ok {
		t.Error("the cleared expiry is still stored")
	}
	if n := len(f.svc.Expiries(f.ctx)); n != 0 {
		t.Errorf("%d expiries listed, want none", n)
	}
}

// TestExpirePortMirrorSession: before its time nothing happens and nothing is audited; at its time the session
// is deleted and audited as expirePortMirrorSession by "system" on its port mirror, the session in the detail.
func TestExpirePortMirrorSession(t *testing.T) {
	f, c := newExpiryFixture(t)
	at := c.now().Add(time.Minute)
	ses := f.must1(f.svc.AddPortMirrorSession(f.ctx, f.pm1, SessionInput{Name: "timed", Type: model.Egress,
		SourceNicUUID: f.n1b, DestinationNicUUID: f.n2c, ExpiresAt: &at})).(model.Session)
	if xs := f.svc.Expiries(f.ctx); len(xs) != 1 || xs[0].SessionUUID != ses.UUID || !xs[0].At.Equal(at) {
		t.Fatalf("expiries %+v", xs)
	}

	if deleted, err := f.svc.ExpirePortMirrorSession(f.ctx, ses.UUID); deleted || err != nil {
		t.Fatalf("before its time: deleted %v, %v", deleted, err)
	}
	if evs := audits(t, f.svc, AuditQuery{Operation: "expirePortMirrorSession"}); len(evs) != 0 {
		t.Fatalf("an expiry that did nothing was audited: %+v", evs)
	}
	if _, err := f.svc.Session(f.ctx, ses.UUID); err != nil {
		t.Fatalf("the session went before its time: %v", err)
	}

	c.set(at)
	deleted, err := f.svc.ExpirePortMirrorSession(f.ctx, ses.UUID) // f.ctx's actor is "tester": the expiry is still "system"'s
	if !deleted || err != nil {
		t.Fatalf("at its time: deleted %v, %v", deleted, err)
	}
	if _, err := f.svc.Session(f.ctx, ses.UUID); err == nil {
		t.Error("the expired session is still there")
	}
	if _, err := f.svc.Session(f.ctx, f.s1); err != nil {
		t.Errorf("another session went too: %v", err)
	}
	evs := audits(t, f.svc, AuditQuery{Operation: "expirePortMirrorSession"})
	if len(evs) != 1 {
		t.Fatalf("%d expiry events, want 1", len(evs))
	}
	ev := evs[0]
	if ev.Actor != ActorSystem || !ev.Success || ev.ResourceType != "PortMirror" || ev.ResourceUUID != f.pm1 {
		t.Errorf("event %+v: want actor system, success, on PortMirror %s", ev, f.pm1)
	}
	var detail struct {
		Session model.Session `json:"session"`
	}
	if err := json.Unmarshal([]byte(ev.Detail), &detail); err != nil || detail.Session.UUID != ses.UUID || detail.Session.Name != "timed" {
		t.Errorf("detail %s: want the session", ev.Detail)
	}
	if evs := audits(t, f.svc, AuditQuery{ResourceUUID: ses.UUID, Operation: "expirePortMirrorSession"}); len(evs) != 1 {
		t.Errorf("the event is not found by the session's uuid: %d", len(evs))
	}

	// Once gone, a second attempt (another controller's, a retry) does nothing and audits nothing.
	if deleted, err := f.svc.ExpirePortMirrorSession(f.ctx, ses.UUID); deleted || err != nil {
		t.Errorf("again: %v %v", deleted, err)
	}
	if evs := audits(t, f.svc, AuditQuery{Operation: "expirePortMirrorSession"}); len(evs) != 1 {
		t.Errorf("%d expiry events after a second attempt, want 1", len(evs))
	}
}
