package graphql

import (
	"testing"
	"time"
)

// TestSessionExpiresAt: expiresAt goes in through SessionInput and SessionUpdateInput and comes back on
// PortMirrorSession; a past time and a malformed one are INVALID_ARGUMENT; left out it stays, null clears it.
func TestSessionExpiresAt(t *testing.T) {
	e := newEnv(t, nil)
	w := e.world()
	at := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	d := e.ok(mCreatePM, map[string]any{"in": map[string]any{"name": "pm1", "flowNetworkUuid": w.flowNet,
		"sessions": []any{map[string]any{"name": "s1", "type": "EGRESS", "sourceNicUuid": w.web1Nic, "destinationNicUuid": w.capture1,
			"expiresAt": at.Format(time.RFC3339)}}}})
	pm, s1 := str(d, "createPortMirror.uuid"), str(d, "createPortMirror.sessions.0.uuid")
	const q = `query($u: ID!) { portMirrorSession(uuid: $u) { expiresAt name } }`
	if got := str(e.ok(q, map[string]any{"u": s1}), "portMirrorSession.expiresAt"); got != at.Format(time.RFC3339Nano) {
		t.Errorf("expiresAt %q, want %q", got, at.Format(time.RFC3339Nano))
	}

	const add = `mutation($pm: ID!, $in: SessionInput!) { addPortMirrorSession(portMirrorUuid: $pm, input: $in) { uuid expiresAt } }`
	for _, bad := range []string{time.Now().Add(-time.Minute).UTC().Format(time.RFC3339), "tomorrow"} {
		r := e.post("", add, map[string]any{"pm": pm, "in": map[string]any{"name": "s2", "type": "INGRESS", "sourceNicUuid": w.web1Nic,
			"destinationNicUuid": w.capture1, "expiresAt": bad}})
		if r.code() != "VALIDATION" || r.rule() != "INVALID_ARGUMENT" {
			t.Errorf("expiresAt %q: %s", bad, r.raw)
		}
	}
	d = e.ok(add, map[string]any{"pm": pm, "in": map[string]any{"name": "s2", "type": "INGRESS", "sourceNicUuid": w.web1Nic,
		"destinationNicUuid": w.capture1}})
	if get(d, "addPortMirrorSession.expiresAt") != nil {
		t.Errorf("a session added without expiresAt: %v", d)
	}

	const upd = `mutation($u: ID!, $in: SessionUpdateInput!) { updatePortMirrorSession(uuid: $u, input: $in) { expiresAt name } }`
	d = e.ok(upd, map[string]any{"u": s1, "in": map[string]any{"name": "renamed"}})
	if str(d, "updatePortMirrorSession.expiresAt") != at.Format(time.RFC3339Nano) {
		t.Errorf("expiresAt left out: %v", d)
	}
	r := e.post("", upd, map[string]any{"u": s1, "in": map[string]any{"expiresAt": "2001-01-01T00:00:00Z"}})
	if r.code() != "VALIDATION" || r.rule() != "INVALID_ARGUMENT" {
		t.Errorf("a past expiresAt on update: %s", r.raw)
	}
	later := at.Add(time.Hour)
	d = e.ok(upd, map[string]any{"u": s1, "in": map[string]any{"expiresAt": later.Format(time.RFC3339)}})
	if str(d, "updatePortMirrorSession.expiresAt") != later.Format(time.RFC3339Nano) {
		t.Errorf("expiresAt moved: %v", d)
	}
	d = e.ok(upd, map[string]any{"u": s1, "in": map[string]any{"expiresAt": nil}})
	if get(d, "updatePortMirrorSession.expiresAt") != nil {
		t.Errorf("expiresAt: null: %v", d)
	}
	// written as a literal in the document, too
	d = e.ok(`mutation($u: ID!) { updatePortMirrorSession(uuid: $u, input: {expiresAt: "`+later.Format(time.RFC3339)+`"}) { expiresAt } }`,
		map[string]any{"u": s1})
	if str(d, "updatePortMirrorSession.expiresAt") != later.Format(time.RFC3339Nano) {
		t.Errorf("expiresAt as a literal: %v", d)
	}
}
