package graphql

import (
	"net/http"
	"strings"
	"testing"
)

// TestRulesRefused: each rule of API.md, broken through the API, is refused with its code and rule, a message
// naming the object, and changes nothing but the audit log (one refused event).
func TestRulesRefused(t *testing.T) {
	e := newEnv(t, nil)
	w := e.world()
	// a port mirror holding one session web1 → capture1, and a NIC with QoS
	pm := str(e.ok(mCreatePM, map[string]any{"in": map[string]any{"name": "pm1", "flowNetworkUuid": w.flowNet,
		"sessions": []any{map[string]any{"name": "s1", "type": "INGRESS", "sourceNicUuid": w.web1Nic, "destinationNicUuid": w.capture1}}}}),
		"createPortMirror.uuid")
	// web3 has a second, non-default NIC that is the source of a session
	web3b := uuidN(0xe2)
	e.ok(mCreateVM, map[string]any{"in": map[string]any{"name": "web3", "hostUuid": w.host1, "nics": []any{
		map[string]any{"mac": "52:54:00:00:00:e1", "isDefault": true}, map[string]any{"uuid": web3b, "mac": "52:54:00:00:00:e2"}}}})
	e.ok(`mutation($pm: ID!, $in: SessionInput!) { addPortMirrorSession(portMirrorUuid: $pm, input: $in) { uuid } }`,
		map[string]any{"pm": pm, "in": map[string]any{"name": "s0", "type": "EGRESS", "sourceNicUuid": web3b, "destinationNicUuid": w.capture1}})
	fn2 := uuidN(0xf2)
	e.ok(mCreateFN, map[string]any{"in": map[string]any{"uuid": fn2, "name": "net2", "cidr": "198.18.1.0/24", "clusterUuids": []any{w.cluster}}})
	e.ok(`mutation($n: ID!) { setVmNicQos(nicUuid: $n, qos: {outboundBandwidthBps: 1000}) { uuid } }`, map[string]any{"n": w.web2Nic})

	addSession := `mutation($pm: ID!, $in: SessionInput!) { addPortMirrorSession(portMirrorUuid: $pm, input: $in) { uuid } }`
	session := func(typ, src, dst string) map[string]any {
		return map[string]any{"pm": pm, "in": map[string]any{"name": "s", "type": typ, "sourceNicUuid": src, "destinationNicUuid": dst}}
	}
	cases := []struct {
		name       string
		query      string
		vars       map[string]any
		code, rule string
		mentions   string // the message names this
	}{
		{"second port mirror on an occupied flow network", mCreatePM,
			map[string]any{"in": map[string]any{"name": "pm2", "flowNetworkUuid": w.flowNet}}, "CONFLICT", "FLOW_NETWORK_IN_USE", "mirror-net"},
		{"delete an occupied flow network", `mutation($u: ID!) { deleteFlowNetwork(uuid: $u) }`,
			map[string]any{"u": w.flowNet}, "CONFLICT", "FLOW_NETWORK_IN_USE", "mirror-net"},
		{"a NIC on a flow network", mCreateVM, map[string]any{"in": map[string]any{"name": "vm", "hostUuid": w.host1,
			"nics": []any{map[string]any{"mac": "52:54:00:00:01:01", "l3NetworkUuid": w.flowNet}}}}, "VALIDATION", "FLOW_NETWORK_DEDICATED", "mirror-net"},
		{"source in a cluster the flow network is not attached to", addSession, session("EGRESS", w.otherNic, w.capture2),
			"VALIDATION", "CLUSTER_NOT_ATTACHED", w.otherNic},
		{"detach a cluster a session needs", `mutation($f: ID!, $c: ID!) { detachFlowNetworkFromCluster(flowNetworkUuid: $f, clusterUuid: $c) { uuid } }`,
			map[string]any{"f": w.flowNet, "c": w.cluster}, "CONFLICT", "CLUSTER_NOT_ATTACHED", "cluster-a"},
		{"destination is a default NIC", addSession, session("EGRESS", w.web1Nic, w.monDefault), "VALIDATION", "DESTINATION_IS_DEFAULT_NIC", w.monDefault},
		{"source has QoS", addSession, session("EGRESS", w.web2Nic, w.capture2), "VALIDATION", "NIC_HAS_QOS", w.web2Nic},
		{"QoS on a NIC a session uses", `mutation($n: ID!) { setVmNicQos(nicUuid: $n, qos: {inboundBandwidthBps: 1}) { uuid } }`,
			map[string]any{"n": w.capture1}, "VALIDATION", "NIC_HAS_QOS", w.capture1},
		{"same NIC", addSession, session("EGRESS", w.capture2, w.capture2), "VALIDATION", "SAME_NIC", w.capture2},
		{"destination is a source", addSession, session("EGRESS", w.capture2, web3b), "VALIDATION", "MIRROR_LOOP", web3b},
		{"source is a destination", addSession, session("EGRESS", w.capture1, w.capture2), "VALIDATION", "MIRROR_LOOP", w.capture1},
		{"duplicate session", addSession, session("INGRESS", w.web1Nic, w.capture1), "CONFLICT", "DUPLICATE_SESSION", "s1"},
		{"delete a VM a session uses", `mutation($u: ID!) { deleteVmInstance(uuid: $u) }`, map[string]any{"u": w.web1}, "CONFLICT", "IN_USE", "web1"},
		{"delete a host a session uses", `mutation($u: ID!) { deleteHost(uuid: $u) }`, map[string]any{"u": w.host1}, "CONFLICT", "IN_USE", "hv1"},
		{"empty name", mCreateCluster, map[string]any{"in": map[string]any{"name": " "}}, "VALIDATION", "INVALID_ARGUMENT", "name"},
		{"name over 128 characters", mCreateCluster, map[string]any{"in": map[string]any{"name": strings.Repeat("x", 129)}}, "VALIDATION", "INVALID_ARGUMENT", "128"},
		{"description over 1024 characters", `mutation($u: ID!, $d: String) { updatePortMirror(uuid: $u, description: $d) { uuid } }`,
			map[string]any{"u": pm, "d": strings.Repeat("x", 1025)}, "VALIDATION", "INVALID_ARGUMENT", "1024"},
		{"bad MAC", mCreateVM, map[string]any{"in": map[string]any{"name": "vm", "hostUuid": w.host1,
			"nics": []any{map[string]any{"mac": "52:54:00:zz:01:01"}}}}, "VALIDATION", "INVALID_ARGUMENT", "52:54:00:zz:01:01"},
		{"bad CIDR", mCreateFN, map[string]any{"in": map[string]any{"name": "n", "cidr": "198.18.0.0/33"}}, "VALIDATION", "INVALID_ARGUMENT", "198.18.0.0/33"},
		{"bad IP", `mutation($f: ID!, $h: ID!) { setFlowEndpoint(flowNetworkUuid: $f, hostUuid: $h, ip: "198.18.0.300") { ip } }`,
			map[string]any{"f": fn2, "h": w.host1}, "VALIDATION", "INVALID_ARGUMENT", "198.18.0.300"},
		{"unknown enum value", addSession, session("SIDEWAYS", w.web1Nic, w.capture2), "VALIDATION", "INVALID_ARGUMENT", "SIDEWAYS"},
		{"negative bandwidth", `mutation($n: ID!) { setVmNicQos(nicUuid: $n, qos: {inboundBandwidthBps: -1}) { uuid } }`,
			map[string]any{"n": w.capture2}, "VALIDATION", "INVALID_ARGUMENT", "inboundBandwidthBps"},
		{"unknown port mirror", `mutation($u: ID!) { enablePortMirror(uuid: $u) { uuid } }`, map[string]any{"u": uuidN(0x999)}, "NOT_FOUND", "", uuidN(0x999)},
		{"unknown flow network", mCreatePM, map[string]any{"in": map[string]any{"name": "pm", "flowNetworkUuid": uuidN(0x998)}}, "NOT_FOUND", "", uuidN(0x998)},
		{"existing uuid", mCreateCluster, map[string]any{"in": map[string]any{"uuid": w.cluster, "name": "again"}}, "CONFLICT", "", w.cluster},
		{"one bad session refuses createPortMirror whole", mCreatePM, map[string]any{"in": map[string]any{"name": "pm3", "flowNetworkUuid": fn2,
			"sessions": []any{
				map[string]any{"name": "good", "type": "EGRESS", "sourceNicUuid": w.web1Nic, "destinationNicUuid": w.capture2},
				map[string]any{"name": "bad", "type": "EGRESS", "sourceNicUuid": w.web1Nic, "destinationNicUuid": w.monDefault},
			}}}, "VALIDATION", "DESTINATION_IS_DEFAULT_NIC", w.monDefault},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.t = t
			before, auditsBefore := e.snapshot(), e.auditCount()
			r := e.post("", c.query, c.vars)
			if r.status != http.StatusOK || len(r.Errors) != 1 {
				t.Fatalf("status %d, want 200 and one error: %s", r.status, r.raw)
			}
			if r.code() != c.code || (c.rule != "" && r.rule() != c.rule) {
				t.Errorf("code %q rule %q, want %q %q: %s", r.code(), r.rule(), c.code, c.rule, r.Errors[0].Message)
			}
			if c.code == "NOT_FOUND" && r.rule() != "" {
				t.Errorf("NOT_FOUND with a rule %q", r.rule())
			}
			if !strings.Contains(r.Errors[0].Message, c.mentions) {
				t.Errorf("message %q does not name %q", r.Errors[0].Message, c.mentions)
			}
			if after := e.snapshot(); after != before {
				t.Errorf("the refused call changed the state:\nbefore %s\nafter  %s", before, after)
			}
			// a request GraphQL itself refuses (an unknown enum value) never reaches the service: no event
			wantEvents := 1
			if c.name == "unknown enum value" {
				wantEvents = 0
			}
			if got := e.auditCount() - auditsBefore; got != wantEvents {
				t.Errorf("%d new audit events, want %d", got, wantEvents)
			}
			if wantEvents == 1 {
				ev := e.audits(1)[0]
				if get(ev, "success") != false || str(ev, "error") == "" || str(ev, "actor") != "local" {
					t.Errorf("audit event %v: want a refused one with its error", ev)
				}
			}
		})
	}
}
