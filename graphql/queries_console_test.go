package graphql

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

const qCandidates = `query($fn: ID!, $role: NicRole!, $pm: ID, $vm: ID) {
  candidateNics(flowNetworkUuid: $fn, role: $role, portMirrorUuid: $pm, vmInstanceUuid: $vm) { nic { uuid } eligible rule reason }
}`

// candidates returns, per NIC uuid, the rule that refuses it ("" when eligible).
func (e *env) candidates(fn, role, pm, vm string) map[string]string {
	e.t.Helper()
	vars := map[string]any{"fn": fn, "role": role}
	if pm != "" {
		vars["pm"] = pm
	}
	if vm != "" {
		vars["vm"] = vm
	}
	out := map[string]string{}
	for _, c := range e.ok(qCandidates, vars)["candidateNics"].([]any) {
		eligible := get(c, "eligible") == true
		if eligible != (str(c, "rule") == "") || eligible != (str(c, "reason") == "") {
			e.t.Errorf("candidate %v: eligible and rule/reason disagree", c)
		}
		out[str(c, "nic.uuid")] = str(c, "rule")
	}
	return out
}

// TestCandidateNics: the pickers' query says of each NIC what the session mutations decide, rule for rule.
func TestCandidateNics(t *testing.T) {
	e := newEnv(t, nil)
	w := e.world()
	pm := str(e.ok(mCreatePM, map[string]any{"in": map[string]any{"name": "pm", "flowNetworkUuid": w.flowNet, "sessions": []any{
		map[string]any{"name": "s1", "type": "INGRESS", "sourceNicUuid": w.web1Nic, "destinationNicUuid": w.capture1}}}}),
		"createPortMirror.uuid")
	e.ok(`mutation($n: ID!) { setVmNicQos(nicUuid: $n, qos: {inboundBandwidthBps: 1000}) { uuid } }`, map[string]any{"n": w.capture2})

	dst := e.candidates(w.flowNet, "DESTINATION", pm, "")
	wantDst := map[string]string{
		w.web1Nic: "DESTINATION_IS_DEFAULT_NIC", w.web2Nic: "DESTINATION_IS_DEFAULT_NIC", w.monDefault: "DESTINATION_IS_DEFAULT_NIC",
		w.capture1: "", // one destination serves many sessions
		w.capture2: "NIC_HAS_QOS", w.otherNic: "DESTINATION_IS_DEFAULT_NIC",
	}
	src := e.candidates(w.flowNet, "SOURCE", pm, "")
	wantSrc := map[string]string{
		w.web1Nic: "", w.web2Nic: "", w.monDefault: "",
		w.capture1: "MIRROR_LOOP", w.capture2: "NIC_HAS_QOS", w.otherNic: "CLUSTER_NOT_ATTACHED",
	}
	for _, c := range []struct {
		role      string
		got, want map[string]string
	}{{"DESTINATION", dst, wantDst}, {"SOURCE", src, wantSrc}} {
		if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
			t.Errorf("%s candidates %v, want %v", c.role, c.got, c.want)
		}
	}

	// The mutation agrees: every NIC, tried as the destination of a new session from web2's NIC (and as the source
	// of one to capture1), is accepted exactly when it is offered, and refused under the rule given.
	const mAdd = `mutation($pm: ID!, $in: SessionInput!) { addPortMirrorSession(portMirrorUuid: $pm, input: $in) { uuid } }`
	try := func(srcNic, dstNic string) string {
		r := e.post("", mAdd, map[string]any{"pm": pm, "in": map[string]any{"name": "try", "type": "EGRESS",
			"sourceNicUuid": srcNic, "destinationNicUuid": dstNic}})
		if len(r.Errors) > 0 {
			return r.rule()
		}
		e.ok(`mutation($u: ID!) { deletePortMirrorSession(uuid: $u) }`, map[string]any{"u": str(r.Data, "addPortMirrorSession.uuid")})
		return ""
	}
	for nic, rule := range dst {
		if nic == w.web2Nic {
			continue // SAME_NIC: a rule of the pair
		}
		if got := try(w.web2Nic, nic); got != rule {
			t.Errorf("destination %s: the mutation says %q, candidateNics %q", nic, got, rule)
		}
	}
	for nic, rule := range src {
		if nic == w.capture1 {
			continue // SAME_NIC: a rule of the pair
		}
		if got := try(nic, w.capture1); got != rule {
			t.Errorf("source %s: the mutation says %q, candidateNics %q", nic, got, rule)
		}
	}

	// one VM's NICs; a new port mirror on a flow network; the reason names the NIC and the rule
	mon := e.candidates(w.flowNet, "DESTINATION", "", w.monitor)
	if len(mon) != 3 || mon[w.capture1] != "" || mon[w.monDefault] != "DESTINATION_IS_DEFAULT_NIC" {
		t.Errorf("monitor's destination candidates %v", mon)
	}
	d := e.ok(qCandidates, map[string]any{"fn": w.flowNet, "role": "SOURCE", "vm": w.other})
	reason := str(d, "candidateNics.0.reason")
	for _, want := range []string{"52:54:00:00:00:d6", "cluster-b", "mirror-net", "CLUSTER_NOT_ATTACHED"} {
		if !strings.Contains(reason, want) {
			t.Errorf("reason %q does not name %s", reason, want)
		}
	}

	for _, c := range []struct {
		name string
		vars map[string]any
		code string
	}{
		{"unknown flow network", map[string]any{"fn": uuidN(0x999), "role": "SOURCE"}, "NOT_FOUND"},
		{"unknown VM", map[string]any{"fn": w.flowNet, "role": "SOURCE", "vm": uuidN(0x999)}, "NOT_FOUND"},
		{"port mirror of another flow network", map[string]any{"fn": str(e.ok(mCreateFN, map[string]any{"in": map[string]any{
			"name": "fn2", "cidr": "198.18.1.0/24"}}), "createFlowNetwork.uuid"), "role": "SOURCE", "pm": pm}, "VALIDATION"},
		{"unknown role", map[string]any{"fn": w.flowNet, "role": "BOTH"}, "VALIDATION"},
	} {
		if r := e.post("", qCandidates, c.vars); r.code() != c.code {
			t.Errorf("%s: code %q, want %s: %s", c.name, r.code(), c.code, r.raw)
		}
	}
}

func TestMe(t *testing.T) {
	local := newEnv(t, nil)
	if d := local.ok(`{ me { actor role } }`, nil); fmt.Sprint(d["me"]) != "map[actor:local role:ADMIN]" {
		t.Errorf("without tokens, me = %v", d["me"])
	}
	e := newEnv(t, withTokens)
	for _, c := range []struct{ token, want string }{
		{adminToken, "map[actor:ops role:ADMIN]"}, {viewerToken, "map[actor:console role:VIEWER]"},
	} {
		if r := e.post(c.token, `{ me { actor role } }`, nil); fmt.Sprint(r.Data["me"]) != c.want {
			t.Errorf("me = %s, want %s", r.raw, c.want)
		}
	}
	if r := e.post("", `{ me { actor } }`, nil); r.status != http.StatusUnauthorized || r.code() != "UNAUTHENTICATED" {
		t.Errorf("me without a token: %d %s", r.status, r.raw)
	}
}

// TestPagedLists: the large lists page by cursor or offset and filter by name; the plain lists stay whole.
func TestPagedLists(t *testing.T) {
	e := newEnv(t, nil)
	w := e.world()
	for i := range 7 {
		e.ok(mCreateVM, map[string]any{"in": map[string]any{"name": fmt.Sprintf("Batch-%d", i), "hostUuid": w.host1,
			"nics": []any{map[string]any{"mac": fmt.Sprintf("52:54:00:00:01:%02x", i)}}}})
	}
	all := e.ok(`{ vmInstances { name } }`, nil)["vmInstances"].([]any)
	if len(all) != 11 {
		t.Fatalf("the plain list has %d VMs, want 11", len(all))
	}
	names := func(l any) string {
		var out []string
		for _, v := range l.([]any) {
			out = append(out, str(v, "name"))
		}
		return strings.Join(out, ",")
	}
	// walk the filtered list three at a time
	var walked []string
	after := any(nil)
	for range 5 {
		d := e.ok(`query($a: String) { vmInstancePage(first: 3, after: $a, nameContains: "batch") {
		  items { name } totalCount offset hasNextPage endCursor } }`, map[string]any{"a": after})
		p := d["vmInstancePage"]
		if get(p, "totalCount") != float64(7) {
			t.Fatalf("totalCount %v, want 7", get(p, "totalCount"))
		}
		walked = append(walked, names(get(p, "items")))
		if get(p, "hasNextPage") != true {
			break
		}
		after = get(p, "endCursor")
	}
	if got := strings.Join(walked, "|"); got != "Batch-0,Batch-1,Batch-2|Batch-3,Batch-4,Batch-5|Batch-6" {
		t.Errorf("pages %s", got)
	}
	d := e.ok(`{ vmInstancePage(first: 2, offset: 5, nameContains: "BATCH") { items { name } offset hasNextPage }
	  vmInstances(first: 1, nameContains: "WEB") { name } hosts(nameContains: "hv3") { name }
	  portMirrorPage { totalCount items { uuid } hasNextPage endCursor } switchPage { totalCount } flowNetworkPage(nameContains: "mirror") { totalCount } }`, nil)
	if got := names(get(d, "vmInstancePage.items")); got != "Batch-5,Batch-6" || get(d, "vmInstancePage.hasNextPage") != false ||
		get(d, "vmInstancePage.offset") != float64(5) {
		t.Errorf("offset page %v", d["vmInstancePage"])
	}
	if names(d["vmInstances"]) != "web1" || names(d["hosts"]) != "hv3" {
		t.Errorf("filtered plain lists: %v %v", d["vmInstances"], d["hosts"])
	}
	if get(d, "portMirrorPage.totalCount") != float64(0) || get(d, "portMirrorPage.endCursor") != nil ||
		get(d, "switchPage.totalCount") != float64(0) || get(d, "flowNetworkPage.totalCount") != float64(1) {
		t.Errorf("empty pages: %v", d)
	}
	for _, q := range []string{
		`{ vmInstancePage(first: 0) { totalCount } }`,
		`{ vmInstancePage(first: 1001) { totalCount } }`,
		`{ vmInstances(after: "nothing") { name } }`,
		`{ vmInstancePage(offset: -1) { totalCount } }`,
		`{ portMirrorPage(offset: 1, after: "x") { totalCount } }`,
	} {
		if r := e.post("", q, nil); r.code() != "VALIDATION" {
			t.Errorf("%s: %s, want VALIDATION", q, r.raw)
		}
	}
}

// TestAuditFilters: the audit trail filters by actor and by the type of object, with the other filters.
func TestAuditFilters(t *testing.T) {
	e := newEnv(t, withTokens)
	e.post(adminToken, `mutation { createCluster(input: {name: "c"}) { uuid } }`, nil)
	e.post(adminToken, `mutation { createFlowNetwork(input: {name: "f", cidr: "198.18.0.0/24"}) { uuid } }`, nil)
	e.post(viewerToken, `mutation { createFlowNetwork(input: {name: "g", cidr: "198.18.1.0/24"}) { uuid } }`, nil)
	q := `query($actor: String, $type: String, $op: String) { audits(actor: $actor, resourceType: $type, operation: $op) { actor operation success } }`
	for _, c := range []struct {
		vars map[string]any
		want string
	}{
		{map[string]any{"actor": "console"}, "console createFlowNetwork false"},
		{map[string]any{"actor": "ops"}, "ops createFlowNetwork true|ops createCluster true"},
		{map[string]any{"type": "FlowNetwork"}, "console createFlowNetwork false|ops createFlowNetwork true"},
		{map[string]any{"type": "FlowNetwork", "actor": "ops"}, "ops createFlowNetwork true"},
		{map[string]any{"actor": "ops", "op": "createCluster"}, "ops createCluster true"},
		{map[string]any{"actor": "nobody"}, ""},
	} {
		var got []string
		for _, ev := range e.post(adminToken, q, c.vars).Data["audits"].([]any) {
			got = append(got, fmt.Sprintf("%s %s %v", str(ev, "actor"), str(ev, "operation"), get(ev, "success")))
		}
		if strings.Join(got, "|") != c.want {
			t.Errorf("%v: %q, want %q", c.vars, strings.Join(got, "|"), c.want)
		}
	}
}

// TestHostSwitch: a host's page of hosts carries its bridge as the controller knows it, without the list of
// every switch.
func TestHostSwitch(t *testing.T) {
	e := newEnv(t, nil)
	w := e.world()
	e.svc.SetLive(staticLive{w})
	d := e.ok(`{ hostPage(first: 2) { items { name switch { datapathId flowCount connected remoteAddress } } } }`, nil)
	got := fmt.Sprint(get(d, "hostPage.items"))
	want := "[map[name:hv1 switch:map[connected:true datapathId:0000000000000001 flowCount:12 remoteAddress:127.0.0.1:4000]] map[name:hv2 switch:<nil>]]"
	if got != want {
		t.Errorf("hosts with their switch:\n got %s\nwant %s", got, want)
	}
}
