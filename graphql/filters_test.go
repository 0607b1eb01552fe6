package graphql

import (
	"testing"
)

// TestSessionFiltersAndUpdate: filters go in through SessionInput and come back canonical; a malformed one is
// INVALID_ARGUMENT; updatePortMirrorSession leaves out what is absent, clears what is null, and refuses a null name.
func TestSessionFiltersAndUpdate(t *testing.T) {
	e := newEnv(t, nil)
	w := e.world()
	const sel = `{ uuid name filters { action protocol sourceCidr destinationCidr sourcePorts destinationPorts } }`
	d := e.ok(mCreatePM, map[string]any{"in": map[string]any{"name": "pm1", "flowNetworkUuid": w.flowNet,
		"sessions": []any{map[string]any{"name": "s1", "type": "EGRESS", "sourceNicUuid": w.web1Nic, "destinationNicUuid": w.capture1}}}})
	pm, s1 := str(d, "createPortMirror.uuid"), str(d, "createPortMirror.sessions.0.uuid")

	web := []any{map[string]any{"protocol": "TCP", "destinationPorts": "80-80", "sourceCidr": "198.18.7.9/24"},
		map[string]any{"action": "REJECT", "protocol": "udp"}}
	d = e.ok(`mutation($pm: ID!, $in: SessionInput!) { addPortMirrorSession(portMirrorUuid: $pm, input: $in) `+sel+` }`,
		map[string]any{"pm": pm, "in": map[string]any{"name": "web", "type": "EGRESS", "sourceNicUuid": w.web1Nic,
			"destinationNicUuid": w.capture1, "filters": web}})
	ses := str(d, "addPortMirrorSession.uuid")
	if str(d, "addPortMirrorSession.filters.0.action") != "ACCEPT" || str(d, "addPortMirrorSession.filters.0.protocol") != "tcp" ||
		str(d, "addPortMirrorSession.filters.0.destinationPorts") != "80" || str(d, "addPortMirrorSession.filters.0.sourceCidr") != "198.18.7.0/24" ||
		get(d, "addPortMirrorSession.filters.0.sourcePorts") != nil || str(d, "addPortMirrorSession.filters.1.action") != "REJECT" {
		t.Errorf("addPortMirrorSession with filters: %v", d)
	}

	r := e.post("", `mutation($pm: ID!, $in: SessionInput!) { addPortMirrorSession(portMirrorUuid: $pm, input: $in) { uuid } }`,
		map[string]any{"pm": pm, "in": map[string]any{"name": "bad", "type": "EGRESS", "sourceNicUuid": w.web1Nic,
			"destinationNicUuid": w.capture1, "filters": []any{map[string]any{"protocol": "icmp", "sourcePorts": "1"}}}})
	if r.code() != "VALIDATION" || r.rule() != "INVALID_ARGUMENT" {
		t.Errorf("ports with icmp: %s", r.raw)
	}

	const upd = `mutation($u: ID!, $in: SessionUpdateInput!) { updatePortMirrorSession(uuid: $u, input: $in) ` + sel + ` }`
	// Only the name: the filters stay.
	d = e.ok(upd, map[string]any{"u": ses, "in": map[string]any{"name": "web-80"}})
	if str(d, "updatePortMirrorSession.name") != "web-80" || len(get(d, "updatePortMirrorSession.filters").([]any)) != 2 {
		t.Errorf("rename: %v", d)
	}
	// New filters: the name stays.
	d = e.ok(upd, map[string]any{"u": ses, "in": map[string]any{"filters": []any{map[string]any{"protocol": "udp", "destinationPorts": "53"}}}})
	if str(d, "updatePortMirrorSession.name") != "web-80" || len(get(d, "updatePortMirrorSession.filters").([]any)) != 1 {
		t.Errorf("refilter: %v", d)
	}
	// A null name is refused, and changes nothing.
	r = e.post("", upd, map[string]any{"u": ses, "in": map[string]any{"name": nil, "filters": nil}})
	if r.code() != "VALIDATION" || r.rule() != "INVALID_ARGUMENT" {
		t.Errorf("name: null: %s", r.raw)
	}
	d = e.ok(`query($u: ID!) { portMirrorSession(uuid: $u) `+sel+` }`, map[string]any{"u": ses})
	if len(get(d, "portMirrorSession.filters").([]any)) != 1 {
		t.Errorf("after a refused update: %v", d)
	}
	// filters: null clears them (the session then copies every frame, which s1 already does to the same NIC
	// in the same direction: a duplicate).
	r = e.post("", upd, map[string]any{"u": ses, "in": map[string]any{"filters": nil}})
	if r.code() != "CONFLICT" || r.rule() != "DUPLICATE_SESSION" {
		t.Errorf("filters: null into a duplicate: %s", r.raw)
	}
	e.ok(`mutation($u: ID!) { deletePortMirrorSession(uuid: $u) }`, map[string]any{"u": s1})
	d = e.ok(upd, map[string]any{"u": ses, "in": map[string]any{"filters": nil}})
	if len(get(d, "updatePortMirrorSession.filters").([]any)) != 0 || str(d, "updatePortMirrorSession.name") != "web-80" {
		t.Errorf("filters: null: %v", d)
	}
	// snapLength: set, left out (stays), null (cleared), out of range (refused).
	const snapSel = `mutation($u: ID!, $in: SessionUpdateInput!) { updatePortMirrorSession(uuid: $u, input: $in) { snapLength name } }`
	d = e.ok(snapSel, map[string]any{"u": ses, "in": map[string]any{"snapLength": 96}})
	if get(d, "updatePortMirrorSession.snapLength") != float64(96) {
		t.Errorf("snapLength 96: %v", d)
	}
	d = e.ok(snapSel, map[string]any{"u": ses, "in": map[string]any{"name": "cut"}})
	if get(d, "updatePortMirrorSession.snapLength") != float64(96) {
		t.Errorf("snapLength left out: %v", d)
	}
	d = e.ok(snapSel, map[string]any{"u": ses, "in": map[string]any{"snapLength": nil}})
	if get(d, "updatePortMirrorSession.snapLength") != nil {
		t.Errorf("snapLength null: %v", d)
	}
	r = e.post("", snapSel, map[string]any{"u": ses, "in": map[string]any{"snapLength": 10}})
	if r.code() != "VALIDATION" || r.rule() != "INVALID_ARGUMENT" {
		t.Errorf("snapLength 10: %s", r.raw)
	}
	d = e.ok(`mutation($pm: ID!, $in: SessionInput!) { addPortMirrorSession(portMirrorUuid: $pm, input: $in) { snapLength } }`,
		map[string]any{"pm": pm, "in": map[string]any{"name": "s9", "type": "INGRESS", "sourceNicUuid": w.web1Nic,
			"destinationNicUuid": w.capture1, "snapLength": 64}})
	if get(d, "addPortMirrorSession.snapLength") != float64(64) {
		t.Errorf("addPortMirrorSession snapLength 64: %v", d)
	}
	d = e.ok(`query($u: ID!) { audits(resourceUuid: $u, operation: "updatePortMirrorSession") { success actor } }`, map[string]any{"u": pm})
	if n := len(get(d, "audits").([]any)); n != 9 {
		t.Errorf("%d updatePortMirrorSession audit events, want 9: %v", n, d)
	}
}
