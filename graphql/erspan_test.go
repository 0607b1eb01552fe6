package graphql

import (
	"net/http"
	"strings"
	"testing"
)

// TestErspanThroughTheAPI: ERSPAN flow networks are created and listed with their encapsulation; a GRE and an
// ERSPAN flow network on one cluster are refused with ENCAPSULATION_CONFLICT (CONFLICT), naming both flow
// networks and the cluster, changing nothing but the audit log.
func TestErspanThroughTheAPI(t *testing.T) {
	e := newEnv(t, nil)
	w := e.world() // the GRE flow network mirror-net is attached to cluster-a
	span := uuidN(0xe5)
	e.ok(mCreateFN, map[string]any{"in": map[string]any{"uuid": span, "name": "span-net", "cidr": "198.18.8.0/24", "encapsulation": "ERSPAN_V2"}})
	r := e.ok(`query($u: ID!) { flowNetwork(uuid: $u) { encapsulation } }`, map[string]any{"u": span})
	if got := str(r, "flowNetwork.encapsulation"); got != "ERSPAN_V2" {
		t.Fatalf("encapsulation %q, want ERSPAN_V2", got)
	}
	for _, c := range []struct {
		name  string
		query string
		vars  map[string]any
	}{
		{"create attached", mCreateFN, map[string]any{"in": map[string]any{"name": "span2", "cidr": "198.18.9.0/24",
			"encapsulation": "ERSPAN_V1", "clusterUuids": []any{w.cluster}}}},
		{"attach", `mutation($f: ID!, $c: ID!) { attachFlowNetworkToCluster(flowNetworkUuid: $f, clusterUuid: $c) { uuid } }`,
			map[string]any{"f": span, "c": w.cluster}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e.t = t
			before, auditsBefore := e.snapshot(), e.auditCount()
			r := e.post("", c.query, c.vars)
			if r.status != http.StatusOK || len(r.Errors) != 1 {
				t.Fatalf("status %d, want 200 and one error: %s", r.status, r.raw)
			}
			if r.code() != "CONFLICT" || r.rule() != "ENCAPSULATION_CONFLICT" {
				t.Errorf("code %q rule %q, want CONFLICT ENCAPSULATION_CONFLICT: %s", r.code(), r.rule(), r.Errors[0].Message)
			}
			for _, n := range []string{"mirror-net", "cluster-a", "GRE", "ERSPAN"} {
				if !strings.Contains(r.Errors[0].Message, n) {
					t.Errorf("message %q does not name %q", r.Errors[0].Message, n)
				}
			}
			if after := e.snapshot(); after != before {
				t.Errorf("the refused call changed the state:\nbefore %s\nafter  %s", before, after)
			}
			if got := e.auditCount() - auditsBefore; got != 1 {
				t.Errorf("%d new audit events, want 1", got)
			}
		})
	}
}
