package graphql

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestEveryOperation drives every mutation and query of the contract through HTTP and checks what a user sees.
func TestEveryOperation(t *testing.T) {
	e := newEnv(t, nil)
	w := e.world()

	// inventory as queried
	d := e.ok(`query($h: ID!, $v: ID!, $n: ID!) {
	  hosts { uuid }
	  host(uuid: $h) { name bridge connected datapathId cluster { name } vmInstances { name } flowEndpoints { ip flowNetwork { name } } }
	  vmInstances { uuid }
	  vmInstance(uuid: $v) { name host { name } nics { uuid mac isDefault port { portNo } } }
	  vmNic(uuid: $n) { mac isDefault qos { inboundBandwidthBps } port { name } vmInstance { name } }
	  clusters { name hosts { name } flowNetworks { name } }
	}`, map[string]any{"h": w.host1, "v": w.monitor, "n": w.capture1})
	if got := len(get(d, "hosts").([]any)); got != 3 {
		t.Errorf("hosts: %d, want 3", got)
	}
	if str(d, "host.bridge") != "br-int" || get(d, "host.connected") != false || get(d, "host.datapathId") != nil ||
		str(d, "host.cluster.name") != "cluster-a" || str(d, "host.vmInstances.0.name") != "web1" {
		t.Errorf("host: %v", d["host"])
	}
	if str(d, "host.flowEndpoints.0.flowNetwork.name") != "mirror-net" || !strings.HasPrefix(str(d, "host.flowEndpoints.0.ip"), "198.18.0.") {
		t.Errorf("host.flowEndpoints: %v", get(d, "host.flowEndpoints"))
	}
	if len(get(d, "vmInstance.nics").([]any)) != 3 || get(d, "vmInstance.nics.1.isDefault") != false || get(d, "vmInstance.nics.0.port") != nil {
		t.Errorf("vmInstance: %v", d["vmInstance"])
	}
	if str(d, "vmNic.mac") != "52:54:00:00:00:d4" || get(d, "vmNic.qos") != nil || str(d, "vmNic.vmInstance.name") != "monitor" {
		t.Errorf("vmNic: %v", d["vmNic"])
	}
	if str(d, "clusters.0.flowNetworks.0.name") != "mirror-net" || get(d, "clusters.1.flowNetworks.0") != nil {
		t.Errorf("clusters: %v", d["clusters"])
	}

	// a port mirror, enabled, with one session
	d = e.ok(mCreatePM, map[string]any{"in": map[string]any{"name": "pm1", "description": "watch web1", "flowNetworkUuid": w.flowNet,
		"enable": true, "sessions": []any{map[string]any{"name": "s1", "type": "BIDIRECTION", "sourceNicUuid": w.web1Nic, "destinationNicUuid": w.capture1}}}})
	pm := str(d, "createPortMirror.uuid")
	s1 := str(d, "createPortMirror.sessions.0.uuid")
	if str(d, "createPortMirror.state") != "ENABLED" || str(d, "createPortMirror.sessions.0.type") != "BIDIRECTION" ||
		get(d, "createPortMirror.sessions.0.tunnelKey") == nil || str(d, "createPortMirror.sessions.0.status") != "PENDING" {
		t.Errorf("createPortMirror: %v", d)
	}

	// add a session, update, disable, enable
	d = e.ok(`mutation($pm: ID!, $in: SessionInput!) { addPortMirrorSession(portMirrorUuid: $pm, input: $in) { uuid name type portMirror { uuid } sourceNic { uuid } destinationNic { uuid } status statusReason createdAt } }`,
		map[string]any{"pm": pm, "in": map[string]any{"name": "s2", "type": "EGRESS", "sourceNicUuid": w.web2Nic, "destinationNicUuid": w.capture2}})
	s2 := str(d, "addPortMirrorSession.uuid")
	if str(d, "addPortMirrorSession.portMirror.uuid") != pm || str(d, "addPortMirrorSession.sourceNic.uuid") != w.web2Nic ||
		str(d, "addPortMirrorSession.destinationNic.uuid") != w.capture2 || str(d, "addPortMirrorSession.status") != "PENDING" ||
		str(d, "addPortMirrorSession.statusReason") == "" {
		t.Errorf("addPortMirrorSession: %v", d)
	}
	if _, err := time.Parse(time.RFC3339Nano, str(d, "addPortMirrorSession.createdAt")); err != nil || !strings.HasSuffix(str(d, "addPortMirrorSession.createdAt"), "Z") {
		t.Errorf("createdAt %q is not RFC 3339 in UTC", str(d, "addPortMirrorSession.createdAt"))
	}
	d = e.ok(`mutation($u: ID!) { updatePortMirror(uuid: $u, name: "pm-one") { name description } }`, map[string]any{"u": pm})
	if str(d, "updatePortMirror.name") != "pm-one" || str(d, "updatePortMirror.description") != "watch web1" {
		t.Errorf("updatePortMirror: %v", d)
	}
	d = e.ok(`mutation($u: ID!) { disablePortMirror(uuid: $u) { state sessions { status } } }`, map[string]any{"u": pm})
	if str(d, "disablePortMirror.state") != "DISABLED" || str(d, "disablePortMirror.sessions.0.status") != "INACTIVE" {
		t.Errorf("disablePortMirror: %v", d)
	}
	d = e.ok(`mutation($u: ID!) { enablePortMirror(uuid: $u) { state } }`, map[string]any{"u": pm})
	if str(d, "enablePortMirror.state") != "ENABLED" {
		t.Errorf("enablePortMirror: %v", d)
	}

	// queries of the mirror side
	d = e.ok(`query($pm: ID!, $s: ID!, $f: ID!) {
	  portMirrors { uuid }
	  portMirror(uuid: $pm) { name flowNetwork { uuid } sessions { name } createdAt updatedAt audits(first: 3) { operation resourceUuid success } }
	  portMirrorSession(uuid: $s) { name portMirror { name } }
	  flowNetwork(uuid: $f) { name cidr encapsulation clusters { uuid } endpoints { ip } portMirror { uuid } }
	  flowNetworks { uuid }
	  switches { datapathId }
	}`, map[string]any{"pm": pm, "s": s2, "f": w.flowNet})
	if names := []string{str(d, "portMirror.sessions.0.name"), str(d, "portMirror.sessions.1.name")}; !slices.Equal(names, []string{"s1", "s2"}) {
		t.Errorf("sessions %v, want [s1 s2] in creation order", names)
	}
	ops := []string{str(d, "portMirror.audits.0.operation"), str(d, "portMirror.audits.1.operation"), str(d, "portMirror.audits.2.operation")}
	if !slices.Equal(ops, []string{"enablePortMirror", "disablePortMirror", "updatePortMirror"}) {
		t.Errorf("PortMirror.audits(first: 3): %v, want the newest three, newest first", ops)
	}
	if str(d, "portMirrorSession.portMirror.name") != "pm-one" || str(d, "flowNetwork.portMirror.uuid") != pm ||
		str(d, "flowNetwork.encapsulation") != "GRE" || len(get(d, "flowNetwork.endpoints").([]any)) != 2 ||
		len(get(d, "switches").([]any)) != 0 {
		t.Errorf("queries: %v", d)
	}

	// flow network operations: attach the second cluster, give its host a fixed endpoint, detach it again
	d = e.ok(`mutation($f: ID!, $c: ID!) { attachFlowNetworkToCluster(flowNetworkUuid: $f, clusterUuid: $c) { clusters { uuid } endpoints { ip } } }`,
		map[string]any{"f": w.flowNet, "c": w.cluster2})
	if len(get(d, "attachFlowNetworkToCluster.clusters").([]any)) != 2 || len(get(d, "attachFlowNetworkToCluster.endpoints").([]any)) != 3 {
		t.Errorf("attachFlowNetworkToCluster: %v", d)
	}
	d = e.ok(`mutation($f: ID!, $h: ID!) { setFlowEndpoint(flowNetworkUuid: $f, hostUuid: $h, ip: "198.18.0.200") { ip host { name } flowNetwork { name } } }`,
		map[string]any{"f": w.flowNet, "h": w.host3})
	if str(d, "setFlowEndpoint.ip") != "198.18.0.200" || str(d, "setFlowEndpoint.host.name") != "hv3" {
		t.Errorf("setFlowEndpoint: %v", d)
	}
	d = e.ok(`mutation($f: ID!, $c: ID!) { detachFlowNetworkFromCluster(flowNetworkUuid: $f, clusterUuid: $c) { clusters { uuid } } }`,
		map[string]any{"f": w.flowNet, "c": w.cluster2})
	if len(get(d, "detachFlowNetworkFromCluster.clusters").([]any)) != 1 {
		t.Errorf("detachFlowNetworkFromCluster: %v", d)
	}

	// inventory operations: QoS on a NIC no session uses, set and cleared; migrate a VM
	d = e.ok(`mutation($n: ID!) { setVmNicQos(nicUuid: $n, qos: {inboundBandwidthBps: 1000000, outboundBandwidthBps: 2000000}) { qos { inboundBandwidthBps outboundBandwidthBps } } }`,
		map[string]any{"n": w.monDefault})
	if get(d, "setVmNicQos.qos.inboundBandwidthBps") != float64(1000000) || get(d, "setVmNicQos.qos.outboundBandwidthBps") != float64(2000000) {
		t.Errorf("setVmNicQos: %v", d)
	}
	// graphql-go v0.8.1 has no null literal: a variable set to null, or no qos argument, clears it
	d = e.ok(`mutation($n: ID!, $q: NicQosInput) { setVmNicQos(nicUuid: $n, qos: $q) { qos { inboundBandwidthBps } } }`,
		map[string]any{"n": w.monDefault, "q": nil})
	if get(d, "setVmNicQos.qos") != nil {
		t.Errorf("setVmNicQos(qos: $q = null): %v", d)
	}
	e.ok(`mutation($n: ID!) { setVmNicQos(nicUuid: $n, qos: {inboundBandwidthBps: 5}) { uuid } }`, map[string]any{"n": w.monDefault})
	d = e.ok(`mutation($n: ID!) { setVmNicQos(nicUuid: $n) { qos { inboundBandwidthBps } } }`, map[string]any{"n": w.monDefault})
	if get(d, "setVmNicQos.qos") != nil {
		t.Errorf("setVmNicQos without qos: %v", d)
	}
	d = e.ok(`mutation($v: ID!, $h: ID!) { migrateVmInstance(uuid: $v, hostUuid: $h) { host { name } } }`, map[string]any{"v": w.web1, "h": w.host2})
	if str(d, "migrateVmInstance.host.name") != "hv2" {
		t.Errorf("migrateVmInstance: %v", d)
	}

	// deletions, each answering the uuid
	for _, c := range []struct{ query, uuid, field string }{
		{`mutation($u: ID!) { deletePortMirrorSession(uuid: $u) }`, s2, "deletePortMirrorSession"},
		{`mutation($u: ID!) { deletePortMirror(uuid: $u) }`, pm, "deletePortMirror"},
		{`mutation($u: ID!) { deleteFlowNetwork(uuid: $u) }`, w.flowNet, "deleteFlowNetwork"},
		{`mutation($u: ID!) { deleteVmInstance(uuid: $u) }`, w.other, "deleteVmInstance"},
		{`mutation($u: ID!) { deleteHost(uuid: $u) }`, w.host3, "deleteHost"},
	} {
		if got := str(e.ok(c.query, map[string]any{"u": c.uuid}), c.field); got != c.uuid {
			t.Errorf("%s answered %q, want %q", c.field, got, c.uuid)
		}
	}
	_ = s1
	d = e.ok(`query($pm: ID!, $h: ID!) { portMirror(uuid: $pm) { uuid } portMirrorSession(uuid: $pm) { uuid } host(uuid: $h) { uuid } portMirrors { uuid } flowNetworks { uuid } }`,
		map[string]any{"pm": pm, "h": w.host3})
	if d["portMirror"] != nil || d["host"] != nil || len(d["portMirrors"].([]any)) != 0 || len(d["flowNetworks"].([]any)) != 0 {
		t.Errorf("after the deletions: %v", d)
	}

	// the audit log: every mutation above, newest first, as the actor "local"; paging with after
	evs := e.audits(1000)
	if len(evs) != 28 {
		t.Errorf("%d audit events, want 28 (one per mutation)", len(evs))
	}
	for _, ev := range evs {
		if str(ev, "actor") != "local" || get(ev, "success") != true {
			t.Errorf("audit event %v: want actor local and success", ev)
		}
	}
	if str(evs[0], "operation") != "deleteHost" || str(evs[len(evs)-1], "operation") != "createCluster" {
		t.Errorf("audits are not newest first: first %v, last %v", evs[0], evs[len(evs)-1])
	}
	d = e.ok(`query($after: ID) { audits(first: 2, after: $after, operation: "createVmInstance") { id operation } }`,
		map[string]any{"after": str(evs[0], "id")})
	if l := get(d, "audits").([]any); len(l) != 2 || str(l[0], "operation") != "createVmInstance" {
		t.Errorf("audits(after, operation): %v", d)
	}
	d = e.ok(`query($r: ID!, $since: Time) { audits(resourceUuid: $r, since: $since) { operation resourceUuid } }`,
		map[string]any{"r": pm, "since": time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)})
	if l := get(d, "audits").([]any); len(l) != 7 {
		t.Errorf("audits(resourceUuid: port mirror): %d events, want 7 (create, add, update, disable, enable, delete session, delete): %v", len(l), l)
	}
	d = e.ok(`query($until: Time) { audits(until: $until) { id } }`, map[string]any{"until": "2000-01-01T00:00:00Z"})
	if l := get(d, "audits").([]any); len(l) != 0 {
		t.Errorf("audits(until: 2000): %d events", len(l))
	}
}

// TestMutationsRunInDocumentOrder: the mutations of one document run one after another, in document order; a
// refused one stops the rest (its field is non-null, so GraphQL nulls the whole data), and the earlier ones stay done.
func TestMutationsRunInDocumentOrder(t *testing.T) {
	e := newEnv(t, nil)
	r := e.post("", `mutation {
	  a: createCluster(input: {uuid: "00000000-0000-4000-8000-000000000001", name: "first"}) { name }
	  b: createCluster(input: {uuid: "00000000-0000-4000-8000-000000000001", name: "second"}) { name }
	  c: createCluster(input: {name: "third"}) { name }
	}`, nil)
	if r.status != http.StatusOK || r.Data != nil || len(r.Errors) != 1 || r.code() != "CONFLICT" || get(r.Errors[0].Path, "0") != "b" {
		t.Fatalf("want data null and one CONFLICT at b; status %d: %s", r.status, r.raw)
	}
	d := e.ok(`{ clusters { name } }`, nil)
	if l := d["clusters"].([]any); len(l) != 1 || str(l[0], "name") != "first" {
		t.Errorf("clusters %v, want only the first", l)
	}
	var got []string
	for _, ev := range e.audits(10) {
		got = append(got, str(ev, "detail"))
	}
	if len(got) != 2 || !strings.Contains(got[0], "second") || !strings.Contains(got[1], "first") {
		t.Errorf("audit details newest first: %v, want the refused second, then the first", got)
	}
}
