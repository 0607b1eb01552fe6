package controller

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"portmirror/internal/ovstest"
	"portmirror/internal/testpki"
	"portmirror/internal/tlsfiles"
	"portmirror/ofwire"
)

// refusals records Config.OnRefused calls.
type refusals struct {
	mu  sync.Mutex
	got []error
}

func (r *refusals) add(_ string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, err)
}

func (r *refusals) matching(target error, text string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.got {
		if errors.Is(e, target) && strings.Contains(e.Error(), text) {
			n++
		}
	}
	return n
}

func mustIssue(t *testing.T, ca *testpki.CA, cn string) testpki.Pair {
	t.Helper()
	p, err := ca.Issue(cn)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// tlsServer starts a server that speaks OpenFlow over TLS only, presenting a certificate of ca and accepting
// switches whose certificate ca signed.
func tlsServer(t *testing.T, ca *testpki.CA, rec *refusals) *testServer {
	t.Helper()
	ctrl := mustIssue(t, ca, "controller")
	set, err := tlsfiles.Load(tlsfiles.Files{Cert: ctrl.CertFile, Key: ctrl.KeyFile, CA: ca.CertFile})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := set.Server(tlsfiles.RequireClientCert, nil)
	if err != nil {
		t.Fatal(err)
	}
	return startServer(t, Config{TLS: cfg, OnRefused: rec.add, HandshakeTimeout: 3 * time.Second})
}

// TestOVSOpenFlowOverTLS: a real ovs-vswitchd with set-ssl connects over an ssl: target with a certificate the
// configured CA signed; a tcp: target to the same listener and a switch certified by another CA never connect.
func TestOVSOpenFlowOverTLS(t *testing.T) {
	dir := t.TempDir()
	ca, err := testpki.NewCA(dir, "pm")
	if err != nil {
		t.Fatal(err)
	}
	other, err := testpki.NewCA(dir, "other")
	if err != nil {
		t.Fatal(err)
	}
	rec := &refusals{}
	s := tlsServer(t, ca, rec)
	target := "ssl:" + s.Addr().String()

	good := ovstest.Must(t, ovstest.Options{})
	sw := mustIssue(t, ca, "hv1")
	good.Vsctl("set-ssl", sw.KeyFile, sw.CertFile, ca.CertFile)
	good.Vsctl("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=dummy", "protocols=OpenFlow13",
		"fail_mode=secure", "other-config:datapath-id=00000000000000e1", "--", "set-controller", "br0", target)
	var conn *Switch
	waitFor(t, "the CA-signed switch to connect over ssl:", 20*time.Second, func() bool {
		conn = s.Switch("00000000000000e1")
		return conn != nil
	})
	if conn.Features().DatapathID != 0xe1 {
		t.Errorf("features of the TLS switch: %+v", conn.Features())
	}

	// The same OVS, a second bridge pointed at the listener with plain tcp:.
	good.Vsctl("add-br", "br1", "--", "set", "bridge", "br1", "datapath_type=dummy", "protocols=OpenFlow13",
		"fail_mode=secure", "other-config:datapath-id=00000000000000e2", "--", "set-controller", "br1", "tcp:"+s.Addr().String())
	waitFor(t, "the plain tcp: connection to be refused", 20*time.Second, func() bool {
		return rec.matching(ErrTLSHandshake, "") > 0
	})

	// Another OVS whose certificate another CA signed (it trusts ours, so only our check refuses it).
	bad := ovstest.Must(t, ovstest.Options{})
	stranger := mustIssue(t, other, "hv2")
	bad.Vsctl("set-ssl", stranger.KeyFile, stranger.CertFile, ca.CertFile)
	bad.Vsctl("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=dummy", "protocols=OpenFlow13",
		"fail_mode=secure", "other-config:datapath-id=00000000000000e3", "--", "set-controller", "br0", target)
	waitFor(t, "the switch of another CA to be refused", 20*time.Second, func() bool {
		return rec.matching(ErrTLSHandshake, "certificate") > 0
	})
	// Give both refused bridges time to retry; neither may ever be registered.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if s.Switch("00000000000000e2") != nil || s.Switch("00000000000000e3") != nil {
			t.Fatalf("a refused bridge connected: plain %v, other CA %v", s.Switch("00000000000000e2"), s.Switch("00000000000000e3"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(s.Switches()) != 1 {
		t.Fatalf("connected switches: %d, want only the CA-signed one", len(s.Switches()))
	}
}

// TestMaxConnsPerAddr: connections beyond the bound from one address are closed at once, and a freed slot is
// usable again.
func TestMaxConnsPerAddr(t *testing.T) {
	rec := &refusals{}
	s := startServer(t, Config{MaxConnsPerAddr: 2, OnRefused: rec.add})
	dialHello := func() (net.Conn, error) {
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = ofwire.ReadMessage(bufio.NewReader(c), 0) // the server's hello, or EOF when refused
		return c, err
	}
	var open []net.Conn
	for i := range 2 {
		c, err := dialHello()
		if err != nil {
			t.Fatalf("connection %d within the bound: %v", i+1, err)
		}
		open = append(open, c)
	}
	c3, err := dialHello()
	if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !isReset(err) {
		t.Fatalf("third connection from one address: read %v, want it closed", err)
	}
	c3.Close()
	// the server records the refusal after closing the connection: wait for it
	waitFor(t, "the refusal to be recorded", 5*time.Second, func() bool { return rec.matching(ErrTooManyConns, "2 connections") >= 1 })
	if n := rec.matching(ErrTooManyConns, "2 connections"); n != 1 {
		t.Fatalf("%d refusals of the third connection, want 1", n)
	}
	open[0].Close()
	waitFor(t, "the closed connection to free its slot", 5*time.Second, func() bool {
		c, err := dialHello()
		c.Close()
		return err == nil
	})
	open[1].Close()
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

// ovsPKI makes a PKI with ovs-pki as an operator would (RSA 2048, a controller CA and a switch CA), with one
// controller and one switch certificate; it skips the test when ovs-pki is not installed.
func ovsPKI(t *testing.T) (dir string) {
	t.Helper()
	if _, err := exec.LookPath("ovs-pki"); err != nil {
		t.Skip("skipped: needs ovs-pki (install openvswitch-common)")
	}
	dir = t.TempDir()
	for _, args := range [][]string{{"init"}, {"req+sign", "ctl", "controller"}, {"req+sign", "sc", "switch"}} {
		cmd := exec.Command("ovs-pki", append([]string{"--dir=" + filepath.Join(dir, "pki"), "--force"}, args...)...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("ovs-pki %v: %v\n%s", args, err, out)
		}
	}
	return dir
}

// TestOVSOpenFlowOverTLSWithOVSPKI: certificates made by ovs-pki (RSA, a name-less subjectAltName, no extended
// key usage) work both ways: the controller's with the switch's CA, the switch's with the controller's.
func TestOVSOpenFlowOverTLSWithOVSPKI(t *testing.T) {
	dir := ovsPKI(t)
	set, err := tlsfiles.Load(tlsfiles.Files{Cert: filepath.Join(dir, "ctl-cert.pem"), Key: filepath.Join(dir, "ctl-privkey.pem"),
		CA: filepath.Join(dir, "pki", "switchca", "cacert.pem")})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := set.Server(tlsfiles.RequireClientCert, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := &refusals{}
	s := startServer(t, Config{TLS: cfg, OnRefused: rec.add})
	o := ovstest.Must(t, ovstest.Options{})
	o.Vsctl("set-ssl", filepath.Join(dir, "sc-privkey.pem"), filepath.Join(dir, "sc-cert.pem"), filepath.Join(dir, "pki", "controllerca", "cacert.pem"))
	o.Vsctl("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=dummy", "protocols=OpenFlow13",
		"fail_mode=secure", "other-config:datapath-id=00000000000000e4", "--", "set-controller", "br0", "ssl:"+s.Addr().String())
	deadline := time.Now().Add(20 * time.Second)
	for s.Switch("00000000000000e4") == nil {
		if time.Now().After(deadline) {
			rec.mu.Lock()
			defer rec.mu.Unlock()
			t.Fatalf("the ovs-pki switch did not connect; refusals %v\n%s", rec.got, s.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
