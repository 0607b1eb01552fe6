package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"portmirror/internal/ovstest"
	"portmirror/internal/testpki"
)

// pki is a CA with a controller certificate, and a stranger CA with one of its own.
type pki struct {
	ca, other  *testpki.CA
	ctrl, peer testpki.Pair // signed by ca
	stranger   testpki.Pair // signed by other
	expired    testpki.Pair // signed by ca, expired
	dir        string
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir()}
	var err error
	must := func(e error) {
		t.Helper()
		if e != nil {
			t.Fatal(e)
		}
	}
	p.ca, err = testpki.NewCA(p.dir, "pm")
	must(err)
	p.other, err = testpki.NewCA(p.dir, "other")
	must(err)
	p.ctrl, err = p.ca.Issue("controller")
	must(err)
	p.peer, err = p.ca.Issue("peer")
	must(err)
	p.stranger, err = p.other.Issue("stranger")
	must(err)
	p.expired, err = p.ca.IssueExpired("old")
	must(err)
	return p
}

func TestConfigTLSRefused(t *testing.T) {
	p := newPKI(t)
	notPEM := filepath.Join(p.dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	of := func(cert, key, ca string) []string {
		return []string{"--openflow-tls-cert", cert, "--openflow-tls-key", key, "--openflow-tls-ca", ca}
	}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"certificate alone", []string{"--openflow-tls-cert", p.ctrl.CertFile}, "--openflow-tls-key"},
		{"key alone", []string{"--api-tls-key", p.ctrl.KeyFile}, "--api-tls-cert"},
		{"no CA for OpenFlow", []string{"--openflow-tls-cert", p.ctrl.CertFile, "--openflow-tls-key", p.ctrl.KeyFile}, "--openflow-tls-ca"},
		{"missing certificate file", of("/nonexistent/c.pem", p.ctrl.KeyFile, p.ca.CertFile), "--openflow-tls-cert"},
		{"certificate not PEM", of(notPEM, p.ctrl.KeyFile, p.ca.CertFile), "--openflow-tls-cert"},
		{"key of another certificate", of(p.ctrl.CertFile, p.peer.KeyFile, p.ca.CertFile), "--openflow-tls-key"},
		{"key not PEM", of(p.ctrl.CertFile, notPEM, p.ca.CertFile), "--openflow-tls-key"},
		{"CA not PEM", of(p.ctrl.CertFile, p.ctrl.KeyFile, notPEM), "--openflow-tls-ca"},
		{"expired certificate", []string{"--api-tls-cert", p.expired.CertFile, "--api-tls-key", p.expired.KeyFile}, "expired"},
		{"client CA without a certificate", []string{"--api-tls-client-ca", p.ca.CertFile}, "--api-tls-cert"},
		{"missing client CA", []string{"--api-tls-cert", p.ctrl.CertFile, "--api-tls-key", p.ctrl.KeyFile, "--api-tls-client-ca", "/nonexistent/ca.pem"}, "--api-tls-client-ca"},
		{"no cluster CA", []string{"--cluster-tls-cert", p.ctrl.CertFile, "--cluster-tls-key", p.ctrl.KeyFile}, "--cluster-tls-ca"},
		{"tcp: advertised over TLS", append(of(p.ctrl.CertFile, p.ctrl.KeyFile, p.ca.CertFile), "--openflow-advertise", "tcp:192.0.2.1:6653"), "--openflow-advertise"},
		{"ssl: advertised without TLS", []string{"--openflow-advertise", "ssl:192.0.2.1:6653"}, "--openflow-advertise"},
	} {
		_, err := parseConfig(c.args, io.Discard)
		if _, ok := err.(errUsage); !ok || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want a usage error naming %q", c.name, err, c.want)
		}
	}
	// The same keys in the config file.
	file := writeFile(t, "api_tls_cert: "+p.ctrl.CertFile+"\n")
	if _, err := parseConfig([]string{"--config", file}, io.Discard); err == nil || !strings.Contains(err.Error(), "api_tls_key") {
		t.Errorf("config file with a certificate and no key: %v", err)
	}
}

func TestDaemonBadTLSFlagExits2(t *testing.T) {
	bin, err := buildDaemon()
	if err != nil {
		t.Fatal(err)
	}
	p := newPKI(t)
	out, err := exec.Command(bin, "--data-dir", t.TempDir(), "--api-tls-cert", p.ctrl.CertFile, "--api-tls-key", p.peer.KeyFile).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "--api-tls-key") {
		t.Errorf("exit %v: %s", err, out)
	}
}

// TestConfigClusterTLS: the cluster pair does mutual TLS between two nodes of the same CA, and refuses a peer
// of another CA in either direction.
func TestConfigClusterTLS(t *testing.T) {
	p := newPKI(t)
	load := func(pair testpki.Pair, ca string) *ClusterTLS {
		t.Helper()
		cfg, err := parseConfig([]string{"--cluster-tls-cert", pair.CertFile, "--cluster-tls-key", pair.KeyFile, "--cluster-tls-ca", ca}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.TLS.Cluster == nil || cfg.TLS.OpenFlow != nil || cfg.TLS.API != nil {
			t.Fatalf("TLS configs %+v", cfg.TLS)
		}
		return cfg.TLS.Cluster
	}
	node1 := load(p.ctrl, p.ca.CertFile)
	node2 := load(p.peer, p.ca.CertFile)
	rogue := load(p.stranger, p.ca.CertFile) // trusts our CA, but its own certificate is another's
	for _, c := range []struct {
		name   string
		server *tls.Config
		client *tls.Config
		ok     bool
	}{
		{"two nodes of the cluster CA", node1.Server, node2.Client, true},
		{"a client of another CA", node1.Server, rogue.Client, false},
		{"a server of another CA", rogue.Server, node2.Client, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			ln, err := tls.Listen("tcp", "127.0.0.1:0", c.server)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			srvErr := make(chan error, 1)
			go func() {
				conn, err := ln.Accept()
				if err != nil {
					srvErr <- err
					return
				}
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
				if err := conn.(*tls.Conn).Handshake(); err != nil {
					srvErr <- err
					return
				}
				_, err = conn.Write([]byte("ok"))
				srvErr <- err
			}()
			conn, err := tls.Dial("tcp", ln.Addr().String(), c.client)
			if err == nil {
				_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
				_, err = io.ReadFull(conn, make([]byte, 2))
				conn.Close()
			}
			serr := <-srvErr
			if c.ok && (err != nil || serr != nil) {
				t.Fatalf("mutual TLS failed: client %v, server %v", err, serr)
			}
			if !c.ok && err == nil && serr == nil {
				t.Fatal("a peer of another CA got through")
			}
		})
	}
}

// httpsClient trusts ca and presents pair (none when pair is empty).
func httpsClient(ca string, pair testpki.Pair) (*http.Client, error) {
	pem, err := os.ReadFile(ca)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	cfg := &tls.Config{RootCAs: pool}
	if pair.CertFile != "" {
		c, err := tls.LoadX509KeyPair(pair.CertFile, pair.KeyFile)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}}, nil
}

// TestDaemonTLSEverywhere: a daemon with every TLS flag. A real OVS bridge with set-ssl connects over ssl:; the API
// answers over HTTPS with HTTP/2 to a client with a certificate of the client CA, and refuses a client without
// one, a client of another CA, and plain HTTP.
func TestDaemonTLSEverywhere(t *testing.T) {
	p := newPKI(t)
	d := startDaemon(t, t.TempDir(),
		"--openflow-tls-cert", p.ctrl.CertFile, "--openflow-tls-key", p.ctrl.KeyFile, "--openflow-tls-ca", p.ca.CertFile,
		"--api-tls-cert", p.ctrl.CertFile, "--api-tls-key", p.ctrl.KeyFile, "--api-tls-client-ca", p.ca.CertFile,
		"--cluster-tls-cert", p.ctrl.CertFile, "--cluster-tls-key", p.ctrl.KeyFile, "--cluster-tls-ca", p.ca.CertFile)

	o := ovstest.Must(t, ovstest.Options{})
	o.Vsctl("set-ssl", p.peer.KeyFile, p.peer.CertFile, p.ca.CertFile)
	o.Vsctl("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=dummy", "protocols=OpenFlow13",
		"fail_mode=secure", "other-config:datapath-id=00000000000000f1", "--", "set-controller", "br0", "ssl:"+d.ofAddr)

	good, err := httpsClient(p.ca.CertFile, p.peer)
	if err != nil {
		t.Fatal(err)
	}
	query := func(c *http.Client) (*http.Response, string, error) {
		body, _ := json.Marshal(map[string]any{"query": "{ switches { datapathId connected } }"})
		resp, err := c.Post("https://"+d.addr+"/graphql", "application/json", bytes.NewReader(body))
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b), nil
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, body, err := query(good)
		if err != nil {
			t.Fatalf("HTTPS with a client certificate: %v", err)
		}
		if resp.Proto != "HTTP/2.0" || resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
			t.Fatalf("answered over %s, TLS %+v", resp.Proto, resp.TLS)
		}
		if strings.Contains(body, `{"connected":true,"datapathId":"00000000000000f1"}`) ||
			strings.Contains(body, `{"datapathId":"00000000000000f1","connected":true}`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the ssl: bridge is not connected after 20s: %s\n%s", body, d.logText())
		}
		time.Sleep(100 * time.Millisecond)
	}

	noCert, err := httpsClient(p.ca.CertFile, testpki.Pair{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := query(noCert); err == nil {
		t.Error("a client without a certificate was answered")
	}
	strangerClient, err := httpsClient(p.ca.CertFile, p.stranger)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := query(strangerClient); err == nil {
		t.Error("a client with a certificate of another CA was answered")
	}
	plain := &http.Client{Timeout: 5 * time.Second}
	if resp, err := plain.Get("http://" + d.addr + "/healthz"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("plain HTTP answered 200: %s", b)
		}
	}
	// A raw plain-TCP OpenFlow peer is refused too: the listener expects a TLS ClientHello.
	c, err := net.Dial("tcp", d.ofAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = c.Write([]byte{4, 0, 0, 8, 0, 0, 0, 1}) // OFPT_HELLO
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 8)
	if n, err := io.ReadFull(c, buf); err == nil && buf[0] == 4 {
		t.Errorf("a plain OpenFlow peer got an OpenFlow answer: % x", buf[:n])
	}
}

// TestDaemonClusterTLS: --cluster-tls-* reach the cluster: a one-node cluster's Raft port speaks mutual TLS,
// taking a peer certified by the cluster CA and refusing one of another CA.
func TestDaemonClusterTLS(t *testing.T) {
	p := newPKI(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	raft := ln.Addr().String()
	ln.Close()
	startDaemon(t, t.TempDir(), "--node-id", "n1", "--raft-listen", raft, "--peers", "n1="+raft,
		"--cluster-tls-cert", p.ctrl.CertFile, "--cluster-tls-key", p.ctrl.KeyFile, "--cluster-tls-ca", p.ca.CertFile)
	dial := func(pair testpki.Pair) error {
		cfg, err := parseConfig([]string{"--cluster-tls-cert", pair.CertFile, "--cluster-tls-key", pair.KeyFile, "--cluster-tls-ca", p.ca.CertFile}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", raft, cfg.TLS.Cluster.Client)
		if err != nil {
			return err
		}
		defer c.Close()
		// TLS 1.3: the server's verdict on our certificate comes with the first read.
		_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		_, err = c.Read(make([]byte, 1))
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return nil // still open: accepted, Raft waits for our request
		}
		return err
	}
	if err := dial(p.peer); err != nil {
		t.Errorf("a peer of the cluster CA: %v", err)
	}
	if err := dial(p.stranger); err == nil {
		t.Error("a peer of another CA was accepted at the Raft port")
	}
}
