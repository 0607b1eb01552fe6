// Package testpki makes certificate authorities and the certificates they sign, as PEM files in a directory, for
// tests and benchmarks of the TLS links. Keys are ECDSA P-256; certificates carry both the server and the client
// extended key usage and the names 127.0.0.1, ::1 and localhost.
package testpki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// CA is a certificate authority whose certificate is the PEM file CertFile.
type CA struct {
	Name     string
	Dir      string
	CertFile string
	cert     *x509.Certificate
	key      crypto.Signer
	rsaBits  int // the size of RSA keys it makes; 0: ECDSA P-256
}

// Pair is a signed certificate and its key, as PEM files.
type Pair struct {
	CertFile, KeyFile string
}

// NewCA makes a CA named name, writing its certificate to dir/name-ca.pem. Its keys, and those it issues, are
// ECDSA P-256.
func NewCA(dir, name string) (*CA, error) { return NewRSACA(dir, name, 0) }

// NewRSACA is NewCA with RSA keys of bits bits (as ovs-pki makes them: 2048); bits 0 means ECDSA P-256.
func NewRSACA(dir, name string, bits int) (*CA, error) {
	key, err := newKey(bits)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name + " CA", Organization: []string{"portmirror tests"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	ca := &CA{Name: name, Dir: dir, CertFile: filepath.Join(dir, name+"-ca.pem"), cert: cert, key: key, rsaBits: bits}
	if err := writePEM(ca.CertFile, "CERTIFICATE", der); err != nil {
		return nil, err
	}
	return ca, nil
}

// Issue signs a certificate for cn, writing dir/<ca>-<cn>-cert.pem and -key.pem.
func (ca *CA) Issue(cn string) (Pair, error) {
	return ca.issue(cn, time.Now().Add(24*time.Hour))
}

// IssueExpired signs a certificate that expired an hour ago.
func (ca *CA) IssueExpired(cn string) (Pair, error) {
	return ca.issue(cn, time.Now().Add(-time.Hour))
}

func newKey(rsaBits int) (crypto.Signer, error) {
	if rsaBits > 0 {
		return rsa.GenerateKey(rand.Reader, rsaBits)
	}
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

func (ca *CA) issue(cn string, notAfter time.Time) (Pair, error) {
	key, err := newKey(ca.rsaBits)
	if err != nil {
		return Pair{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"portmirror tests"}},
		NotBefore:    time.Now().Add(-2 * time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return Pair{}, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return Pair{}, err
	}
	base := filepath.Join(ca.Dir, ca.Name+"-"+cn)
	p := Pair{CertFile: base + "-cert.pem", KeyFile: base + "-key.pem"}
	if err := writePEM(p.CertFile, "CERTIFICATE", der); err != nil {
		return Pair{}, err
	}
	if err := writePEM(p.KeyFile, "PRIVATE KEY", keyDER); err != nil {
		return Pair{}, err
	}
	return p, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		panic(fmt.Sprintf("testpki: reading random bytes: %v", err))
	}
	return n
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}
