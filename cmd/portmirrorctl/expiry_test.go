package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestCtlSessionExpiry: --expires-in and --expires-at on session add, expires-in= in mirror create --session,
// --no-expiry on session update; a past time is the API's INVALID_ARGUMENT with the refused exit status.
func TestCtlSessionExpiry(t *testing.T) {
	api := startDaemon(t)
	gql(t, api, `mutation { createCluster(input: {uuid: "`+uuidN(0xc1)+`", name: "cluster-a"}) { uuid } }`, nil)
	for i, h := range []string{"hv1", "hv2"} {
		gql(t, api, `mutation($in: HostInput!) { registerHost(input: $in) { uuid } }`, map[string]any{"in": map[string]any{
			"uuid": uuidN(0xa1 + i), "name": h, "clusterUuid": uuidN(0xc1), "datapathId": fmt.Sprintf("%016x", 0xa1+i)}})
	}
	gql(t, api, `mutation($in: VmInstanceInput!) { createVmInstance(input: $in) { uuid } }`, map[string]any{"in": map[string]any{
		"uuid": uuidN(0xb1), "name": "web-1", "hostUuid": uuidN(0xa1), "nics": []any{
			map[string]any{"uuid": uuidN(0xd1), "mac": "52:54:00:00:00:01", "isDefault": true},
			map[string]any{"uuid": uuidN(0xd2), "mac": "52:54:00:00:00:02"}}}})
	gql(t, api, `mutation($in: VmInstanceInput!) { createVmInstance(input: $in) { uuid } }`, map[string]any{"in": map[string]any{
		"uuid": uuidN(0xb2), "name": "monitor-1", "hostUuid": uuidN(0xa2), "nics": []any{
			map[string]any{"uuid": uuidN(0xd3), "mac": "52:54:00:00:00:03", "isDefault": true},
			map[string]any{"uuid": uuidN(0xd4), "mac": "52:54:00:00:00:04"}}}})
	gql(t, api, `mutation { createFlowNetwork(input: {uuid: "`+uuidN(0xf1)+`", name: "mirror-net", cidr: "198.18.0.0/24", clusterUuids: ["`+uuidN(0xc1)+`"]}) { uuid } }`, nil)
	admin := map[string]string{envAPI: api, envToken: adminToken}
	must := func(args ...string) string {
		t.Helper()
		r := ctl(t, admin, args...)
		if r.code != 0 {
			t.Fatalf("portmirrorctl %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
		return r.stdout
	}
	expiresIn := func(s *string, d time.Duration) bool {
		if s == nil {
			return false
		}
		at, err := time.Parse(time.RFC3339Nano, *s)
		return err == nil && time.Until(at) > d-time.Minute && time.Until(at) <= d
	}

	var created []portMirror
	out := must("-o", "json", "mirror", "create", "--name", "timed", "--flow-network", uuidN(0xf1),
		"--session", "name=s1,type=ingress,source="+uuidN(0xd1)+",destination="+uuidN(0xd4)+",expires-in=2h")
	if err := json.Unmarshal([]byte(out), &created); err != nil || len(created) != 1 || len(created[0].Sessions) != 1 ||
		!expiresIn(created[0].Sessions[0].ExpiresAt, 2*time.Hour) {
		t.Fatalf("mirror create with expires-in=2h: %v\n%s", err, out)
	}
	pm := created[0].UUID

	var ss []session
	out = must("-o", "json", "session", "add", pm, "--name", "s2", "--type", "EGRESS", "--source", uuidN(0xd1), "--destination", uuidN(0xd4),
		"--expires-in", "30m")
	if err := json.Unmarshal([]byte(out), &ss); err != nil || len(ss) != 1 || !expiresIn(ss[0].ExpiresAt, 30*time.Minute) {
		t.Fatalf("session add --expires-in 30m: %v\n%s", err, out)
	}
	s2 := ss[0].UUID
	if out := must("session", "update", s2, "--expires-at", "2099-01-02T03:04:05Z"); !strings.Contains(out, "2099-01-02T03:04:05Z") || !strings.Contains(out, "EXPIRES") {
		t.Errorf("session update --expires-at:\n%s", out)
	}
	r := ctl(t, admin, "session", "update", s2, "--expires-at", "2001-01-01T00:00:00Z")
	if r.code != exitRefused || !strings.Contains(r.stderr, "INVALID_ARGUMENT") || !strings.Contains(r.stderr, "expiresAt") {
		t.Errorf("a past --expires-at: exit %d, stderr %q", r.code, r.stderr)
	}
	out = must("-o", "json", "session", "update", s2, "--no-expiry")
	if err := json.Unmarshal([]byte(out), &ss); err != nil || len(ss) != 1 || ss[0].ExpiresAt != nil {
		t.Errorf("session update --no-expiry: %v\n%s", err, out)
	}
	if r := ctl(t, admin, "session", "update", s2, "--expires-in", "1h", "--no-expiry"); r.code == 0 {
		t.Errorf("--expires-in with --no-expiry accepted:\n%s", r.stdout)
	}
	if r := ctl(t, admin, "session", "add", pm, "--name", "s3", "--type", "EGRESS", "--source", uuidN(0xd2), "--destination", uuidN(0xd4),
		"--expires-in", "-5m"); r.code == 0 {
		t.Errorf("a negative --expires-in accepted:\n%s", r.stdout)
	}
}
