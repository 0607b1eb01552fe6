package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestCtlFlowNetworkCreate: flow-network create makes GRE and ERSPAN flow networks, refuses an unknown
// encapsulation as a usage error, and reports ENCAPSULATION_CONFLICT as a refused rule with the API's message.
func TestCtlFlowNetworkCreate(t *testing.T) {
	api := startDaemon(t)
	gql(t, api, `mutation { createCluster(input: {uuid: "`+uuidN(0xc1)+`", name: "cluster-a"}) { uuid } }`, nil)
	admin := map[string]string{envAPI: api, envToken: adminToken}

	r := ctl(t, admin, "flow-network", "create", "--name", "gre-net", "--cidr", "198.18.0.0/24", "--cluster", uuidN(0xc1))
	if r.code != 0 || !strings.Contains(r.stdout, "gre-net") || !strings.Contains(r.stdout, " GRE ") || !strings.Contains(r.stdout, "cluster-a") {
		t.Fatalf("create GRE: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = ctl(t, admin, "-o", "json", "flow-network", "create", "--name", "span-net", "--cidr", "198.18.1.0/24", "--encapsulation", "erspan_v2")
	var fn struct{ Encapsulation string }
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &fn) != nil || fn.Encapsulation != "ERSPAN_V2" {
		t.Fatalf("create ERSPAN_V2: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = ctl(t, admin, "flow-network", "create", "--name", "x", "--cidr", "198.18.2.0/24", "--encapsulation", "IPIP")
	if r.code != exitUsage || !strings.Contains(r.stderr, "ERSPAN_V1") {
		t.Errorf("unknown encapsulation: exit %d, want %d\n%s", r.code, exitUsage, r.stderr)
	}
	r = ctl(t, admin, "flow-network", "create", "--name", "span2", "--cidr", "198.18.3.0/24", "--encapsulation", "ERSPAN_V1", "--cluster", uuidN(0xc1))
	if r.code != exitRefused || !strings.Contains(r.stderr, "ENCAPSULATION_CONFLICT") || !strings.Contains(r.stderr, "gre-net") {
		t.Errorf("GRE and ERSPAN on one cluster: exit %d, want %d\n%s", r.code, exitRefused, r.stderr)
	}
	if out := ctl(t, admin, "flow-network", "list").stdout; strings.Contains(out, "span2") || !strings.Contains(out, "ERSPAN_V2") {
		t.Errorf("flow-network list:\n%s", out)
	}
}
