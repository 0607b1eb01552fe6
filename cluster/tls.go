package cluster

import (
	"crypto/tls"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// TLS is mutual TLS between the controllers (--cluster-tls-*): Raft's replication and the forwarded API requests.
// Server is what this controller presents and which clients it accepts (ClientAuth required, the cluster's CA);
// Client is what it presents when it dials another member and which servers it trusts.
type TLS struct {
	Server *tls.Config
	Client *tls.Config
}

// tlsStream is Raft's stream layer over mutual TLS.
type tlsStream struct {
	net.Listener
	advertise net.Addr
	client    *tls.Config
}

func newTLSStream(listen string, advertise net.Addr, t *TLS) (*tlsStream, error) {
	ln, err := tls.Listen("tcp", listen, t.Server)
	if err != nil {
		return nil, err
	}
	return &tlsStream{Listener: ln, advertise: advertise, client: t.Client}, nil
}

// Addr is the address the others dial (the listener may be bound to an unspecified address).
func (s *tlsStream) Addr() net.Addr { return s.advertise }

func (s *tlsStream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	cfg := s.client.Clone()
	if cfg.ServerName == "" {
		if host, _, err := net.SplitHostPort(string(address)); err == nil {
			cfg.ServerName = host
		}
	}
	d := &net.Dialer{Timeout: timeout}
	return tls.DialWithDialer(d, "tcp", string(address), cfg)
}
