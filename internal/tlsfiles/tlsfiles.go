// Package tlsfiles turns the PEM files an operator names (a certificate, its private key, a CA) into TLS
// configurations that can be re-read while connections stay up: a Set holds the latest material, and the
// configurations it hands out consult it for every new handshake. Peers are verified against the CA only, as
// Open vSwitch does (its certificates from ovs-pki name no host), never against a host name.
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"
)

// MinVersion is the oldest TLS version any configuration of this package accepts.
const MinVersion = tls.VersionTLS12

// Which names one of the three files, so that a caller can name the flag that gave it.
type Which int

const (
	Cert Which = iota + 1
	Key
	CA
)

func (w Which) String() string {
	switch w {
	case Cert:
		return "certificate"
	case Key:
		return "private key"
	case CA:
		return "CA certificate"
	}
	return "file"
}

// FileError is a file that cannot serve: missing, unreadable, not PEM, or a key that does not match.
type FileError struct {
	Which Which
	Path  string
	Err   error
}

func (e *FileError) Error() string { return fmt.Sprintf("%s %s: %v", e.Which, e.Path, e.Err) }
func (e *FileError) Unwrap() error { return e.Err }

// Files names the PEM files of one TLS identity. CA is the authority peers' certificates must be signed by; it
// may be empty where peers are not verified (a server without client certificates).
type Files struct {
	Cert, Key, CA string
}

// Configured reports whether any of the files is named.
func (f Files) Configured() bool { return f.Cert != "" || f.Key != "" || f.CA != "" }

// material is one reading of the files.
type material struct {
	cert     tls.Certificate
	pool     *x509.CertPool // nil without a CA
	notAfter time.Time
}

// Set is the current reading of one identity's files. Its configurations are safe for concurrent use, and
// Reload changes what every later handshake uses.
type Set struct {
	files Files
	cur   atomic.Pointer[material]
}

// Load reads the files. The certificate and key are required; a *FileError says which file failed.
func Load(f Files) (*Set, error) {
	if f.Cert == "" {
		return nil, &FileError{Which: Cert, Path: "(none)", Err: errors.New("no certificate file given")}
	}
	if f.Key == "" {
		return nil, &FileError{Which: Key, Path: "(none)", Err: errors.New("no private key file given")}
	}
	s := &Set{files: f}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Files are the files the set reads.
func (s *Set) Files() Files { return s.files }

// NotAfter is when the current certificate expires.
func (s *Set) NotAfter() time.Time { return s.cur.Load().notAfter }

// Reload reads the files again. On an error the set keeps what it had.
func (s *Set) Reload() error {
	m, err := read(s.files)
	if err != nil {
		return err
	}
	s.cur.Store(m)
	return nil
}

func read(f Files) (*material, error) {
	certPEM, err := os.ReadFile(f.Cert)
	if err != nil {
		return nil, &FileError{Which: Cert, Path: f.Cert, Err: err}
	}
	leafs, err := certificates(certPEM)
	if err != nil {
		return nil, &FileError{Which: Cert, Path: f.Cert, Err: err}
	}
	keyPEM, err := os.ReadFile(f.Key)
	if err != nil {
		return nil, &FileError{Which: Key, Path: f.Key, Err: err}
	}
	if b, _ := pem.Decode(keyPEM); b == nil || !isKeyBlock(b.Type) {
		return nil, &FileError{Which: Key, Path: f.Key, Err: errors.New("no PEM private key in it")}
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, &FileError{Which: Key, Path: f.Key, Err: fmt.Errorf("does not go with the certificate %s: %w", f.Cert, err)}
	}
	m := &material{cert: pair, notAfter: leafs[0].NotAfter}
	if time.Now().After(m.notAfter) {
		return nil, &FileError{Which: Cert, Path: f.Cert, Err: fmt.Errorf("expired on %s", m.notAfter.UTC().Format(time.RFC3339))}
	}
	if f.CA != "" {
		caPEM, err := os.ReadFile(f.CA)
		if err != nil {
			return nil, &FileError{Which: CA, Path: f.CA, Err: err}
		}
		cas, err := certificates(caPEM)
		if err != nil {
			return nil, &FileError{Which: CA, Path: f.CA, Err: err}
		}
		m.pool = x509.NewCertPool()
		for _, c := range cas {
			m.pool.AddCert(c)
		}
	}
	return m, nil
}

func isKeyBlock(t string) bool {
	return t == "PRIVATE KEY" || t == "RSA PRIVATE KEY" || t == "EC PRIVATE KEY"
}

// certificates parses every CERTIFICATE block of a PEM file; there must be at least one.
func certificates(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing a certificate: %w", err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate in it")
	}
	return out, nil
}

// ClientAuth says what a server asks of its clients.
type ClientAuth int

const (
	// NoClientCert: clients are not asked for a certificate.
	NoClientCert ClientAuth = iota
	// RequireClientCert: every client presents a certificate the CA signed, or the handshake fails.
	RequireClientCert
)

// Server is a server configuration presenting the set's certificate, TLS 1.2 or later, with the given ALPN
// protocols (nil: none). With RequireClientCert the set must have a CA. The configuration may be cloned and its
// other fields set: the certificate and the CA are looked up at each handshake.
func (s *Set) Server(auth ClientAuth, nextProtos []string) (*tls.Config, error) {
	if auth == RequireClientCert && s.cur.Load().pool == nil {
		return nil, &FileError{Which: CA, Path: "(none)", Err: errors.New("client certificates are required but no CA is given")}
	}
	c := &tls.Config{
		MinVersion: MinVersion,
		NextProtos: nextProtos,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			c := s.cur.Load().cert
			return &c, nil
		},
	}
	if auth == RequireClientCert {
		// The chain is checked by VerifyConnection against the current CA, so that a reload takes effect.
		c.ClientAuth = tls.RequireAnyClientCert
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			return s.verify(cs, x509.ExtKeyUsageClientAuth, "client")
		}
	}
	return c, nil
}

// Client is a client configuration presenting the set's certificate and accepting a server whose certificate
// the set's CA signed, whatever name it carries. The set must have a CA.
func (s *Set) Client() (*tls.Config, error) {
	if s.cur.Load().pool == nil {
		return nil, &FileError{Which: CA, Path: "(none)", Err: errors.New("servers cannot be verified without a CA")}
	}
	return &tls.Config{
		MinVersion: MinVersion,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c := s.cur.Load().cert
			return &c, nil
		},
		// The name check is replaced by VerifyConnection's check against the CA (see the package doc).
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return s.verify(cs, x509.ExtKeyUsageServerAuth, "server")
		},
	}, nil
}

// verify checks the peer's chain against the current CA.
func (s *Set) verify(cs tls.ConnectionState, usage x509.ExtKeyUsage, peer string) error {
	if len(cs.PeerCertificates) == 0 {
		return fmt.Errorf("tls: the %s presented no certificate", peer)
	}
	opts := x509.VerifyOptions{
		Roots:         s.cur.Load().pool,
		Intermediates: x509.NewCertPool(),
		KeyUsages:     []x509.ExtKeyUsage{usage},
	}
	for _, c := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(c)
	}
	if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
		return fmt.Errorf("tls: the %s's certificate is not signed by the configured CA: %w", peer, err)
	}
	return nil
}
