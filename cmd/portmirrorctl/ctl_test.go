package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	adminToken  = "admin-token-0123456789abcdef"
	viewerToken = "viewer-token-0123456789abcdef"
)

// startDaemon builds and starts portmirrord with an admin and a viewer token, and returns its API URL.
func startDaemon(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "portmirrord")
	if out, err := exec.Command("go", "build", "-o", bin, "portmirror/cmd/portmirrord").CombinedOutput(); err != nil {
		t.Fatalf("go build portmirrord: %v\n%s", err, out)
	}
	conf := filepath.Join(dir, "portmirrord.yaml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("tokens:\n  - {name: ops, token: %s, role: admin}\n  - {name: console, token: %s, role: viewer}\n", adminToken, viewerToken)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", conf, "--data-dir", filepath.Join(dir, "data"), "--api-listen", "127.0.0.1:0",
		"--openflow-listen", "127.0.0.1:0", "--log-format", "json")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var logs bytes.Buffer
	ready := make(chan string, 1)
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			mu.Lock()
			logs.Write(sc.Bytes())
			logs.WriteByte('\n')
			mu.Unlock()
			var rec struct {
				Msg     string `json:"msg"`
				APIAddr string `json:"api_addr"`
			}
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "portmirrord ready" {
				ready <- rec.APIAddr
			}
		}
		_ = cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	select {
	case addr := <-ready:
		return "http://" + addr
	case <-exited:
	case <-time.After(30 * time.Second):
	}
	mu.Lock()
	defer mu.Unlock()
	t.Fatalf("portmirrord not ready:\n%s", logs.String())
	return ""
}

// gql sends one request as the admin, straight to the API (the inventory is the cloud tooling's, not the CLI's).
func gql(t *testing.T, api, query string, vars map[string]any) map[string]any {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, api+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var r map[string]any
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("%s: %s", query, raw)
	}
	if r["errors"] != nil {
		return r
	}
	return r["data"].(map[string]any)
}

func uuidN(n int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012x", n) }

type ctlResult struct {
	code           int
	stdout, stderr string
}

// ctl runs portmirrorctl in this process with the given environment variables set.
func ctl(t *testing.T, env map[string]string, args ...string) ctlResult {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := run(ctx, args, &out, &errOut)
	for k := range env {
		t.Setenv(k, "")
	}
	return ctlResult{code, out.String(), errOut.String()}
}

// TestCtlEndToEnd drives the product guide's operations through portmirrorctl against a real daemon.
func TestCtlEndToEnd(t *testing.T) {
	api := startDaemon(t)
	// Inventory: two hosts, a watched VM with two NICs, a monitoring VM whose second NIC receives copies.
	gql(t, api, `mutation { createCluster(input: {uuid: "`+uuidN(0xc1)+`", name: "cluster-a"}) { uuid } }`, nil)
	for i, h := range []string{"hv1", "hv2"} {
		gql(t, api, `mutation($in: HostInput!) { registerHost(input: $in) { uuid } }`, map[string]any{"in": map[string]any{
			"uuid": uuidN(0xa1 + i), "name": h, "clusterUuid": uuidN(0xc1), "datapathId": fmt.Sprintf("%016x", 0xa1+i)}})
	}
	gql(t, api, `mutation($in: VmInstanceInput!) { createVmInstance(input: $in) { uuid } }`, map[string]any{"in": map[string]any{
		"uuid": uuidN(0xb1), "name": "web-1", "hostUuid": uuidN(0xa1), "nics": []any{
			map[string]any{"uuid": uuidN(0xd1), "mac": "52:54:00:00:00:01", "isDefault": true, "portName": "web1-0"},
			map[string]any{"uuid": uuidN(0xd2), "mac": "52:54:00:00:00:02", "portName": "web1-1"}}}})
	gql(t, api, `mutation($in: VmInstanceInput!) { createVmInstance(input: $in) { uuid } }`, map[string]any{"in": map[string]any{
		"uuid": uuidN(0xb2), "name": "monitor-1", "hostUuid": uuidN(0xa2), "nics": []any{
			map[string]any{"uuid": uuidN(0xd3), "mac": "52:54:00:00:00:03", "isDefault": true, "portName": "mon-0"},
			map[string]any{"uuid": uuidN(0xd4), "mac": "52:54:00:00:00:04", "portName": "mon-1"}}}})
	gql(t, api, `mutation { createFlowNetwork(input: {uuid: "`+uuidN(0xf1)+`", name: "mirror-net", cidr: "198.18.0.0/24", clusterUuids: ["`+uuidN(0xc1)+`"]}) { uuid } }`, nil)

	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(adminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	admin := map[string]string{envAPI: api, envToken: adminToken}
	must := func(env map[string]string, args ...string) string {
		t.Helper()
		r := ctl(t, env, args...)
		if r.code != 0 {
			t.Fatalf("portmirrorctl %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
		return r.stdout
	}

	// Inventory and flow networks, for people and for scripts.
	if out := must(admin, "inventory", "list"); !strings.Contains(out, "monitor-1") || !strings.Contains(out, uuidN(0xd4)) ||
		!strings.HasPrefix(out, "CLUSTER") {
		t.Errorf("inventory list:\n%s", out)
	}
	// Bulk sync from a file: one host as it is, one new, and a new VM on it; twice, the second time all unchanged.
	syncFile := filepath.Join(t.TempDir(), "inventory.json")
	if err := os.WriteFile(syncFile, []byte(`{"hosts": [
		{"uuid": "`+uuidN(0xa1)+`", "name": "hv1", "clusterUuid": "`+uuidN(0xc1)+`", "datapathId": "`+fmt.Sprintf("%016x", 0xa1)+`"},
		{"uuid": "`+uuidN(0xa3)+`", "name": "hv3", "clusterUuid": "`+uuidN(0xc1)+`"}],
	 "vmInstances": [{"uuid": "`+uuidN(0xb3)+`", "name": "db-1", "hostUuid": "`+uuidN(0xa3)+`",
		"nics": [{"uuid": "`+uuidN(0xd5)+`", "mac": "52:54:00:00:00:05", "isDefault": true}]}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := must(admin, "-o", "json", "inventory", "sync", syncFile); !strings.Contains(out, `"created": 1`) || !strings.Contains(out, `"unchanged": 1`) {
		t.Errorf("inventory sync:\n%s", out)
	}
	if out := must(admin, "inventory", "sync", syncFile); !strings.Contains(out, "hosts        2      0        0        2") {
		t.Errorf("inventory sync again:\n%s", out)
	}
	if out := must(admin, "flow-network", "list", "-o", "json"); !strings.Contains(out, `"name": "mirror-net"`) {
		t.Errorf("flow-network list -o json:\n%s", out)
	}

	// Create, enabled at once, with a session at once.
	out := must(map[string]string{envAPI: api}, "--token-file", tokenFile, "-o", "json", "mirror", "create", "--name", "watch-web",
		"--flow-network", uuidN(0xf1), "--enable", "--description", "first",
		"--session", "name=s1,type=ingress,source="+uuidN(0xd1)+",destination="+uuidN(0xd4))
	var created []portMirror
	if err := json.Unmarshal([]byte(out), &created); err != nil || len(created) != 1 || created[0].State != "ENABLED" || len(created[0].Sessions) != 1 {
		t.Fatalf("mirror create -o json: %v\n%s", err, out)
	}
	pm := created[0].UUID

	out = must(admin, "mirror", "rename", pm, "--name", "watch-web-1", "--description", "the web tier")
	if !strings.Contains(out, "watch-web-1") || !strings.Contains(out, "the web tier") {
		t.Errorf("mirror rename:\n%s", out)
	}
	out = must(admin, "session", "add", pm, "--name", "s2", "--type", "EGRESS", "--source", uuidN(0xd2), "--destination", uuidN(0xd4))
	if !strings.Contains(out, "s2") || !strings.Contains(out, "EGRESS") {
		t.Errorf("session add:\n%s", out)
	}
	var s2 string
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, " s2 ") {
			s2 = strings.Fields(line)[0]
		}
	}

	// A refusal: the API's code, rule and message as they are, and the exit status of a refused rule.
	direct := gql(t, api, `mutation($pm: ID!, $in: SessionInput!) { addPortMirrorSession(portMirrorUuid: $pm, input: $in) { uuid } }`,
		map[string]any{"pm": pm, "in": map[string]any{"name": "bad", "type": "INGRESS", "sourceNicUuid": uuidN(0xd2), "destinationNicUuid": uuidN(0xd3)}})
	apiMsg := direct["errors"].([]any)[0].(map[string]any)["message"].(string)
	r := ctl(t, admin, "session", "add", pm, "--name", "bad", "--type", "INGRESS", "--source", uuidN(0xd2), "--destination", uuidN(0xd3))
	if r.code != exitRefused || !strings.Contains(r.stderr, "VALIDATION DESTINATION_IS_DEFAULT_NIC: "+apiMsg) {
		t.Errorf("refused session: exit %d, stderr %q; the API said %q", r.code, r.stderr, apiMsg)
	}

	must(admin, "mirror", "disable", pm)
	if out := must(admin, "mirror", "list"); !strings.Contains(out, "DISABLED") || !strings.Contains(out, "watch-web-1") {
		t.Errorf("mirror list after disable:\n%s", out)
	}
	must(admin, "mirror", "enable", pm)
	if out := must(admin, "mirror", "show", pm); !strings.Contains(out, "ENABLED") || !strings.Contains(out, "s1") || !strings.Contains(out, "monitor-1/"+uuidN(0xd4)) {
		t.Errorf("mirror show:\n%s", out)
	}

	// Operations the API may not have yet: the API's own error, exit status 7 when it carries no code.
	// Operations the API may not have yet: the API's own error as it is.
	has := map[string]bool{}
	for _, c := range []struct {
		args     []string
		mutation string
	}{
		{[]string{"session", "update", s2, "--snap-length", "128"}, "updatePortMirrorSession"},
		{[]string{"session", "probe", s2}, "probePortMirrorSession"},
	} {
		r := ctl(t, admin, c.args...)
		direct := gql(t, api, `mutation($u: ID!) { `+c.mutation+`(uuid: $u) { __typename } }`, map[string]any{"u": s2})
		errs, _ := direct["errors"].([]any)
		var msg string
		if len(errs) > 0 {
			msg = errs[0].(map[string]any)["message"].(string)
			msg, _, _ = strings.Cut(msg, " Did you mean") // graphql-go lists its suggestions in no fixed order
		}
		// The API has the mutation unless GraphQL says there is no such field (a missing argument says it exists).
		if strings.Contains(msg, "Cannot query field") {
			if r.code != exitRefused || !strings.Contains(r.stderr, msg) {
				t.Errorf("%v: exit %d, stderr %q; the API says %q", c.args, r.code, r.stderr, msg)
			}
		} else {
			has[c.mutation] = true
			if r.code != 0 {
				t.Errorf("%v: exit %d, stderr %q, though the API has %s", c.args, r.code, r.stderr, c.mutation)
			}
		}
	}

	if out := must(admin, "session", "delete", s2); out != "deleted "+s2+"\n" {
		t.Errorf("session delete: %q", out)
	}

	// Audit of the port mirror, newest first.
	var events []struct {
		Operation string `json:"operation"`
		Success   bool   `json:"success"`
		Actor     string `json:"actor"`
	}
	out = must(admin, "audit", "--resource", pm, "-o", "json")
	if err := json.Unmarshal([]byte(out), &events); err != nil {
		t.Fatalf("audit -o json: %v\n%s", err, out)
	}
	var ops []string
	for _, e := range events {
		ops = append(ops, fmt.Sprintf("%s:%v", e.Operation, e.Success))
	}
	want := []string{"deletePortMirrorSession:true", "enablePortMirror:true", "disablePortMirror:true", "addPortMirrorSession:false", "addPortMirrorSession:false",
		"addPortMirrorSession:true", "updatePortMirror:true", "createPortMirror:true"}
	for _, m := range []string{"updatePortMirrorSession", "probePortMirrorSession"} { // inserted after the delete: newest first, the probe ran after the update
		if has[m] {
			want = append(want[:1], append([]string{m + ":true"}, want[1:]...)...)
		}
		if has[m] && m == "probePortMirrorSession" {
			// the direct query above probed too: a probe is not refused for a missing selection
			want = append(want[:1], append([]string{m + ":true"}, want[1:]...)...)
		}
	}
	if strings.Join(ops, " ") != strings.Join(want, " ") || events[0].Actor != "ops" {
		t.Errorf("audit of the port mirror:\n got %v\nwant %v", ops, want)
	}
	if out := must(admin, "audit", "--first", "2"); strings.Count(out, "\n") != 3 {
		t.Errorf("audit --first 2:\n%s", out)
	}
	if out := must(admin, "switch", "list"); !strings.HasPrefix(out, "DATAPATH ID") {
		t.Errorf("switch list:\n%s", out)
	}

	// Exit statuses that say what failed.
	for _, c := range []struct {
		name string
		env  map[string]string
		args []string
		code int
		text string
	}{
		{"viewer mutation", map[string]string{envAPI: api, envToken: viewerToken}, []string{"mirror", "delete", pm}, exitAuth, "FORBIDDEN"},
		{"no token", map[string]string{envAPI: api}, []string{"mirror", "list"}, exitAuth, "UNAUTHENTICATED"},
		{"wrong token flag", map[string]string{envAPI: api, envToken: adminToken}, []string{"--token", "nope-nope-nope-nope-1", "mirror", "list"}, exitAuth, "UNAUTHENTICATED"},
		{"unknown port mirror", admin, []string{"mirror", "show", uuidN(0x999)}, exitNotFound, uuidN(0x999)},
		{"unknown port mirror to enable", admin, []string{"mirror", "enable", uuidN(0x999)}, exitNotFound, "NOT_FOUND"},
		{"unreachable", map[string]string{envAPI: "http://127.0.0.1:1"}, []string{"mirror", "list"}, exitUnreachable, "127.0.0.1:1"},
		{"missing flag", admin, []string{"mirror", "create", "--flow-network", uuidN(0xf1)}, exitUsage, "name"},
		{"unknown command", admin, []string{"mirror", "explode"}, exitUsage, "explode"},
		{"bad session spec", admin, []string{"mirror", "create", "--name", "x", "--flow-network", uuidN(0xf1), "--session", "name=a"}, exitUsage, "type="},
		{"bad output", admin, []string{"-o", "yaml", "mirror", "list"}, exitUsage, "yaml"},
	} {
		r := ctl(t, c.env, c.args...)
		if r.code != c.code || !strings.Contains(r.stderr, c.text) {
			t.Errorf("%s: exit %d (want %d), stderr %q (want %q)", c.name, r.code, c.code, r.stderr, c.text)
		}
	}

	if out := must(admin, "mirror", "delete", pm); out != "deleted "+pm+"\n" {
		t.Errorf("mirror delete: %q", out)
	}
	if out := must(admin, "mirror", "list", "-o", "json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("mirror list after delete: %s", out)
	}
	for _, sh := range []string{"bash", "zsh", "fish"} {
		if out := must(nil, "completion", sh); !strings.Contains(out, "portmirrorctl") {
			t.Errorf("completion %s: %.100s", sh, out)
		}
	}
}
