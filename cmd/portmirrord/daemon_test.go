package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// buildDaemon builds ./cmd/portmirrord once per test binary run.
var buildDaemon = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "portmirrord-test-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "portmirrord")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func TestMain(m *testing.M) {
	code := m.Run()
	if bin, err := buildDaemon(); err == nil {
		_ = os.RemoveAll(filepath.Dir(bin))
	}
	os.Exit(code)
}

// daemon is a running portmirrord.
type daemon struct {
	t      *testing.T
	cmd    *exec.Cmd
	addr   string // the API's host:port
	ofAddr string // the OpenFlow listener's host:port
	mu     sync.Mutex
	log    bytes.Buffer
	exited chan error
}

// startDaemon runs the daemon on dataDir with API and OpenFlow on free loopback ports, and waits until it is ready.
func startDaemon(t *testing.T, dataDir string, extra ...string) *daemon {
	t.Helper()
	bin, err := buildDaemon()
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--data-dir", dataDir, "--api-listen", "127.0.0.1:0", "--openflow-listen", "127.0.0.1:0",
		"--log-format", "json"}, extra...)
	d := &daemon{t: t, cmd: exec.Command(bin, args...), exited: make(chan error, 1)}
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	// reads the log until the process closes stderr (it exits); then reaps the process
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Bytes()
			d.mu.Lock()
			d.log.Write(line)
			d.log.WriteByte('\n')
			d.mu.Unlock()
			var rec struct {
				Msg     string `json:"msg"`
				APIAddr string `json:"api_addr"`
				Addr    string `json:"addr"`
			}
			if json.Unmarshal(line, &rec) == nil {
				switch rec.Msg {
				case "OpenFlow listener up":
					d.mu.Lock()
					d.ofAddr = rec.Addr
					d.mu.Unlock()
				case "portmirrord ready":
					ready <- rec.APIAddr
				}
			}
		}
		d.exited <- d.cmd.Wait()
	}()
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			_ = d.cmd.Process.Kill()
			<-d.exited
		}
	})
	select {
	case d.addr = <-ready:
	case err := <-d.exited:
		d.exited <- err
		t.Fatalf("portmirrord exited before it was ready: %v\n%s", err, d.logText())
	case <-time.After(30 * time.Second):
		t.Fatalf("portmirrord not ready after 30s:\n%s", d.logText())
	}
	return d
}

func (d *daemon) logText() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.String()
}

// stop sends sig and waits for the exit, returning the exit status.
func (d *daemon) stop(sig os.Signal, within time.Duration) int {
	d.t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		d.t.Fatal(err)
	}
	select {
	case err := <-d.exited:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			d.t.Fatal(err)
		}
		return 0
	case <-time.After(within):
		d.t.Fatalf("portmirrord did not exit within %v after %v:\n%s", within, sig, d.logText())
		return -1
	}
}

// gql posts a request and returns data, failing on any error.
func (d *daemon) gql(query string, vars map[string]any) map[string]any {
	d.t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	resp, err := http.Post("http://"+d.addr+"/graphql", "application/json", bytes.NewReader(body))
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var r struct {
		Data   map[string]any    `json:"data"`
		Errors []json.RawMessage `json:"errors"`
	}
	if err := json.Unmarshal(raw, &r); err != nil || resp.StatusCode != 200 || len(r.Errors) > 0 {
		d.t.Fatalf("%s: %d %s", query, resp.StatusCode, raw)
	}
	return r.Data
}

// get fetches a path of the API server.
func (d *daemon) get(path string) (int, string) {
	d.t.Helper()
	resp, err := http.Get("http://" + d.addr + path)
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func uuidN(n int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012x", n) }

// populate creates an inventory with nSources watched NICs, a flow network, and a port mirror with one session
// per watched NIC; it returns the port mirror's uuid.
func populate(d *daemon, nSources int) string {
	d.gql(`mutation { createCluster(input: {uuid: "`+uuidN(0xc1)+`", name: "cluster-a"}) { uuid } }`, nil)
	d.gql(`mutation { registerHost(input: {uuid: "`+uuidN(0xa1)+`", name: "hv1", clusterUuid: "`+uuidN(0xc1)+`"}) { uuid } }`, nil)
	d.gql(`mutation { registerHost(input: {uuid: "`+uuidN(0xa2)+`", name: "hv2", clusterUuid: "`+uuidN(0xc1)+`"}) { uuid } }`, nil)
	d.gql(`mutation($in: VmInstanceInput!) { createVmInstance(input: $in) { uuid } }`, map[string]any{"in": map[string]any{
		"name": "monitor", "hostUuid": uuidN(0xa2), "nics": []any{
			map[string]any{"mac": "52:54:00:00:ff:00", "isDefault": true},
			map[string]any{"uuid": uuidN(0xdd), "mac": "52:54:00:00:ff:01"}}}})
	var sessions []any
	for i := range nSources {
		nic := uuidN(0x1000 + i)
		d.gql(`mutation($in: VmInstanceInput!) { createVmInstance(input: $in) { uuid } }`, map[string]any{"in": map[string]any{
			"name": fmt.Sprintf("web%d", i), "hostUuid": uuidN(0xa1), "nics": []any{
				map[string]any{"uuid": nic, "mac": fmt.Sprintf("52:54:00:01:%02x:%02x", i>>8, i&0xff), "isDefault": true}}}})
		sessions = append(sessions, map[string]any{"name": fmt.Sprintf("s%d", i), "type": "BIDIRECTION",
			"sourceNicUuid": nic, "destinationNicUuid": uuidN(0xdd)})
	}
	d.gql(`mutation { createFlowNetwork(input: {uuid: "`+uuidN(0xf1)+`", name: "mirror-net", cidr: "198.18.0.0/24", clusterUuids: ["`+uuidN(0xc1)+`"]}) { uuid } }`, nil)
	pm := d.gql(`mutation($in: PortMirrorInput!) { createPortMirror(input: $in) { uuid } }`, map[string]any{"in": map[string]any{
		"name": "pm1", "flowNetworkUuid": uuidN(0xf1), "enable": true, "sessions": sessions}})
	return pm["createPortMirror"].(map[string]any)["uuid"].(string)
}

const everything = `{
  clusters { uuid name hosts { uuid name vmInstances { uuid name nics { uuid mac isDefault } } flowEndpoints { ip } } }
  flowNetworks { uuid name cidr clusters { uuid } endpoints { ip host { uuid } } }
  portMirrors { uuid name description state createdAt updatedAt sessions { uuid name type tunnelKey createdAt sourceNic { uuid } destinationNic { uuid } } }
  audits(first: 1000) { id time actor operation resourceType resourceUuid success error detail }
}`

func (d *daemon) snapshot() string {
	d.t.Helper()
	b, _ := json.Marshal(d.gql(everything, nil))
	return string(b)
}

// TestDaemonSurvivesSIGKILL: every mutation acknowledged before a SIGKILL is there after a restart.
func TestDaemonSurvivesSIGKILL(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, dir)
	pm := populate(d, 5)
	d.gql(`mutation($u: ID!) { updatePortMirror(uuid: $u, description: "five web servers") { uuid } }`, map[string]any{"u": pm})
	d.gql(`mutation($u: ID!) { disablePortMirror(uuid: $u) { uuid } }`, map[string]any{"u": pm})
	before := d.snapshot()
	if !strings.Contains(before, "five web servers") || strings.Count(before, `"tunnelKey"`) != 5 {
		t.Fatalf("unexpected state before the kill: %s", before)
	}
	if code := d.stop(syscall.SIGKILL, 10*time.Second); code != -1 {
		t.Logf("exit code after SIGKILL: %d", code)
	}

	d2 := startDaemon(t, dir)
	if after := d2.snapshot(); after != before {
		t.Errorf("after SIGKILL and restart the state differs:\nbefore %s\nafter  %s", before, after)
	}
	d2.gql(`mutation($u: ID!) { enablePortMirror(uuid: $u) { state } }`, map[string]any{"u": pm})
}

// TestDaemonSIGTERM: SIGTERM stops the daemon promptly with status 0 and the store closed.
func TestDaemonSIGTERM(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, dir)
	d.gql(`mutation { createCluster(input: {name: "before-stop"}) { uuid } }`, nil)

	// health: the store is up; the OpenFlow check is whatever the build wires in
	resp, err := http.Get("http://" + d.addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `{"name":"store","ok":true}`) || !strings.Contains(string(body), `"name":"openflow"`) {
		t.Errorf("/healthz: %d %s", resp.StatusCode, body)
	}

	start := time.Now()
	if code := d.stop(syscall.SIGTERM, 10*time.Second); code != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0:\n%s", code, d.logText())
	}
	t.Logf("stopped %v after SIGTERM", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(d.logText(), `"msg":"store closed"`) {
		t.Errorf("the log does not say the store was closed:\n%s", d.logText())
	}
	d2 := startDaemon(t, dir)
	if !strings.Contains(d2.snapshot(), "before-stop") {
		t.Error("the mutation before SIGTERM is lost")
	}
	if code := d2.stop(syscall.SIGINT, 10*time.Second); code != 0 {
		t.Errorf("exit status %d after SIGINT, want 0", code)
	}
}

func TestDaemonBadConfigExits2(t *testing.T) {
	bin, err := buildDaemon()
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "pm.yaml")
	if err := os.WriteFile(cfg, []byte("tokens: [{name: a, token: 0123456789abcdef0123, role: superuser}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "--config", cfg).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), `"superuser"`) || !strings.Contains(string(out), cfg) {
		t.Errorf("exit %v: %s", err, out)
	}
}

// TestDaemonSIGTERMUnderLoad: mutations keep arriving while SIGTERM stops the daemon; every one that was
// acknowledged is there after a restart.
func TestDaemonSIGTERMUnderLoad(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, dir)
	var (
		mu    sync.Mutex
		acked []string
		wg    sync.WaitGroup
	)
	client := &http.Client{Timeout: 20 * time.Second}
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				name := fmt.Sprintf("w%d-%d", w, i)
				body := fmt.Sprintf(`{"query": "mutation { createCluster(input: {name: \"%s\"}) { uuid } }"}`, name)
				resp, err := client.Post("http://"+d.addr+"/graphql", "application/json", strings.NewReader(body))
				if err != nil {
					return // the server is gone
				}
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 && !bytes.Contains(raw, []byte(`"errors"`)) && bytes.Contains(raw, []byte(`"uuid"`)) {
					mu.Lock()
					acked = append(acked, name)
					mu.Unlock()
				}
			}
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 40 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if code := d.stop(syscall.SIGTERM, 20*time.Second); code != 0 {
		t.Fatalf("exit status %d after SIGTERM under load:\n%s", code, d.logText())
	}
	wg.Wait()
	d2 := startDaemon(t, dir)
	stored := map[string]bool{}
	for _, c := range d2.gql(`{ clusters { name } }`, nil)["clusters"].([]any) {
		stored[c.(map[string]any)["name"].(string)] = true
	}
	mu.Lock()
	defer mu.Unlock()
	if len(acked) < 40 {
		t.Fatalf("only %d mutations acknowledged before the stop", len(acked))
	}
	for _, name := range acked {
		if !stored[name] {
			t.Errorf("acknowledged cluster %s is lost", name)
		}
	}
	t.Logf("%d acknowledged, %d stored", len(acked), len(stored))
}
