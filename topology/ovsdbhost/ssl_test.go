package ovsdbhost

import (
	"crypto/tls"
	"strings"
	"testing"

	"portmirror/internal/ovstest"
	"portmirror/internal/testpki"
	"portmirror/internal/tlsfiles"
)

// clientTLS is the controller's client configuration: a certificate of ca, and ca to check the server with.
func clientTLS(t *testing.T, certCA, trustCA *testpki.CA) *tls.Config {
	t.Helper()
	p, err := certCA.Issue("controller")
	if err != nil {
		t.Fatal(err)
	}
	set, err := tlsfiles.Load(tlsfiles.Files{Cert: p.CertFile, Key: p.KeyFile, CA: trustCA.CertFile})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := set.Client()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestManagerOverSSL: an ovsdb-server with a pssl remote is managed at its ssl: address with the controller's
// certificate; without TLS files, or with a certificate of another CA, the connection fails.
func TestManagerOverSSL(t *testing.T) {
	dir := t.TempDir()
	ca, err := testpki.NewCA(dir, "pm")
	if err != nil {
		t.Fatal(err)
	}
	other, err := testpki.NewCA(dir, "other")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ca.Issue("ovsdb")
	if err != nil {
		t.Fatal(err)
	}
	e := &ovsEnv{T: ovstest.Must(t, ovstest.Options{NoVswitchd: true,
		SSL: &ovstest.SSLFiles{PrivateKey: srv.KeyFile, Certificate: srv.CertFile, CACert: ca.CertFile}}), t: t, tcp: true}
	addr := e.addr()
	if !strings.HasPrefix(addr, "ssl:") {
		t.Fatalf("address %q", addr)
	}
	e.vsctl("add-br", "br-int")
	e.vsctl("add-port", "br-int", "tap9", "--", "set", "interface", "tap9", "external_ids:iface-id=nic-9")

	m := startManager(t, HostConfig{Address: addr, TLS: clientTLS(t, ca, ca)})
	waitApplied(t, m, 0)
	if i, ok := ifaceByName(m.Interfaces(), "tap9"); !ok || i.IfaceID != "nic-9" {
		t.Errorf("interfaces over %s: %+v", addr, m.Interfaces())
	}

	for _, tc := range []struct {
		name string
		cfg  *tls.Config
		want string
	}{
		{"no TLS files", nil, "--openflow-tls-cert"},
		{"client certificate of another CA", clientTLS(t, other, ca), "TLS handshake"},
		{"server not signed by the trusted CA", clientTLS(t, ca, other), "not signed by the configured CA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := dial(t.Context(), addr, tc.cfg)
			if err == nil {
				// TLS 1.3: the server checks the client's certificate after the client's handshake ends, so
				// the refusal shows on the first exchange.
				_, err = c.transact(t.Context(), []ovsdbOp{opSelect{Table: "Bridge"}}, []string{"read"})
				c.close()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) && !strings.Contains(err.Error(), "connection lost") {
				t.Fatalf("dial %s = %v, want an error containing %q", addr, err, tc.want)
			}
		})
	}
}
