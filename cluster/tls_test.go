package cluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"path/filepath"
	"testing"
	"time"

	"portmirror/store"
)

// testCA is a certificate authority made for a test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue makes a certificate for 127.0.0.1, usable as server and client.
func (ca *testCA) issue(t *testing.T, name string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		KeyUsage: x509.KeyUsageDigitalSignature, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func (ca *testCA) mutual(t *testing.T, name string) *TLS {
	c := ca.issue(t, name)
	return &TLS{
		Server: &tls.Config{Certificates: []tls.Certificate{c}, ClientCAs: ca.pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12},
		Client: &tls.Config{Certificates: []tls.Certificate{c}, RootCAs: ca.pool, MinVersion: tls.VersionTLS12},
	}
}

// TestReplicationOverMutualTLS: three members replicate over mutual TLS; a peer whose certificate another CA
// signed cannot open a connection to a member's Raft port.
func TestReplicationOverMutualTLS(t *testing.T) {
	ca := newTestCA(t, "cluster-ca")
	var peers []Peer
	for i := range 3 {
		peers = append(peers, Peer{ID: fmt.Sprintf("n%d", i+1), Addr: freeAddr(t)})
	}
	var nodes []*testNode
	for _, p := range peers {
		dir := t.TempDir()
		st, err := store.Open(context.Background(), store.Options{Dir: filepath.Join(dir, "store"), Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		n, err := Open(context.Background(), Options{NodeID: p.ID, RaftListen: p.Addr, Peers: peers, Dir: filepath.Join(dir, "raft"),
			Store: st, Logger: quiet(), TLS: ca.mutual(t, p.ID)})
		if err != nil {
			t.Fatal(err)
		}
		st.SetReplicator(n)
		ctx, cancel := context.WithCancel(context.Background())
		tn := &testNode{id: p.ID, dir: dir, addr: p.Addr, st: st, node: n, cancel: cancel, done: make(chan struct{})}
		go func() { defer close(tn.done); _ = n.Run(ctx) }()
		nodes = append(nodes, tn)
	}
	defer func() {
		for _, n := range nodes {
			n.stop(t)
		}
	}()
	l := leader(t, nodes)
	if err := putCluster(context.Background(), l.st, "00000000-0000-4000-8000-0000000000c1", "over-tls"); err != nil {
		t.Fatal(err)
	}
	waitAll(t, nodes, "00000000-0000-4000-8000-0000000000c1")

	// The intruder trusts the members' CA (it knows whom it talks to) but its own certificate is another CA's.
	intruder := &tls.Config{Certificates: []tls.Certificate{newTestCA(t, "other-ca").issue(t, "intruder")}, RootCAs: ca.pool}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", peers[0].Addr, intruder)
	if err == nil {
		// TLS 1.3 reports a refused client certificate on the first read
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
	}
	if err == nil {
		t.Fatal("a peer with a certificate from another CA reached the Raft port")
	}
}
