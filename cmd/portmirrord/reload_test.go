package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"portmirror/internal/ovstest"
	"portmirror/internal/testpki"
)

const (
	tokenA = "token-a-0123456789abcdef"
	tokenB = "token-b-0123456789abcdef"
)

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestDaemonSIGHUPReload: SIGHUP re-reads the config file (tokens, here given as SHA-256 digests) and the
// certificates; a bridge connected over ssl: stays connected throughout, the API presents the new certificate
// to new clients, and a config that does not parse changes nothing. Refused tokens are logged with their source.
func TestDaemonSIGHUPReload(t *testing.T) {
	p := newPKI(t)
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	copyFile(t, p.ctrl.CertFile, cert)
	copyFile(t, p.ctrl.KeyFile, key)
	conf := filepath.Join(dir, "portmirrord.yaml")
	writeConf := func(token string) {
		body := fmt.Sprintf("api_tls_cert: %s\napi_tls_key: %s\nopenflow_tls_cert: %s\nopenflow_tls_key: %s\nopenflow_tls_ca: %s\n"+
			"metrics_require_token: true\ntokens:\n  - {name: ops, sha256: %x, role: admin}\n", cert, key, cert, key, p.ca.CertFile, sha256.Sum256([]byte(token)))
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeConf(tokenA)
	d := startDaemon(t, t.TempDir(), "--config", conf)

	o := ovstest.Must(t, ovstest.Options{})
	o.Vsctl("set-ssl", p.peer.KeyFile, p.peer.CertFile, p.ca.CertFile)
	o.Vsctl("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=dummy", "protocols=OpenFlow13",
		"fail_mode=secure", "other-config:datapath-id=00000000000000f2", "--", "set-controller", "br0", "ssl:"+d.ofAddr)

	client, err := httpsClient(p.ca.CertFile, testpki.Pair{})
	if err != nil {
		t.Fatal(err)
	}
	type answer struct {
		status int
		serial string
		body   string
	}
	post := func(token, query string) answer {
		t.Helper()
		body, _ := json.Marshal(map[string]any{"query": query})
		req, _ := http.NewRequest(http.MethodPost, "https://"+d.addr+"/graphql", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		client.CloseIdleConnections() // a new handshake each time, to see the certificate served now
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return answer{resp.StatusCode, resp.TLS.PeerCertificates[0].SerialNumber.String(), string(b)}
	}
	switches := `{ switches { datapathId connected connectedAt } }`
	var before answer
	deadline := time.Now().Add(20 * time.Second)
	for before = post(tokenA, switches); !strings.Contains(before.body, `"connected":true`); before = post(tokenA, switches) {
		if time.Now().After(deadline) {
			t.Fatalf("the ssl: bridge did not connect: %s\n%s", before.body, d.logText())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if a := post(tokenB, switches); a.status != http.StatusUnauthorized {
		t.Fatalf("token B before the reload: %d %s", a.status, a.body)
	}
	// the daemon's log reaches the test through a pipe: the line may come a moment after the answer
	refusedLogged := func() bool {
		l := d.logText()
		return strings.Contains(l, `"msg":"refused"`) && strings.Contains(l, `"remote":"127.0.0.1:`)
	}
	for deadline := time.Now().Add(5 * time.Second); !refusedLogged(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("the refused token is not logged with its source:\n%s", d.logText())
			break
		}
	}

	// Rotate the certificate and the token, then SIGHUP.
	next, err := p.ca.Issue("controller-next")
	if err != nil {
		t.Fatal(err)
	}
	copyFile(t, next.CertFile, cert)
	copyFile(t, next.KeyFile, key)
	writeConf(tokenB)
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	var after answer
	deadline = time.Now().Add(10 * time.Second)
	for after = post(tokenB, switches); after.status != http.StatusOK; after = post(tokenB, switches) {
		if time.Now().After(deadline) {
			t.Fatalf("token B not accepted after SIGHUP: %d %s\n%s", after.status, after.body, d.logText())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The handshake of the answer above may have come just before the reload: a new one comes after it.
	after = post(tokenB, switches)
	if after.serial == before.serial {
		t.Errorf("the API still presents the old certificate (serial %s)", after.serial)
	}
	if after.body != before.body {
		t.Errorf("the bridge's connection changed across the reload:\nbefore %s\nafter  %s", before.body, after.body)
	}
	if a := post(tokenA, switches); a.status != http.StatusUnauthorized {
		t.Errorf("token A after the reload: %d", a.status)
	}

	// A config that does not parse is refused as a whole.
	if err := os.WriteFile(conf, []byte("tokens: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for !strings.Contains(d.logText(), "the configuration was not reloaded") {
		if time.Now().After(deadline) {
			t.Fatalf("no refusal of the broken config in the log:\n%s", d.logText())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if a := post(tokenB, switches); a.status != http.StatusOK || a.body != before.body {
		t.Errorf("after a refused reload: %d %s", a.status, a.body)
	}
}
