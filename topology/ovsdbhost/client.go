package ovsdbhost

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/digitalocean/go-openvswitch/ovsdb"
)

const database = "Open_vSwitch"

// ParseAddress splits an OVSDB address ("unix:PATH", "tcp:IP:PORT" or "ssl:IP:PORT") into a network and an
// address for net.Dial; secure is true for ssl:.
func ParseAddress(addr string) (network, address string, secure bool, err error) {
	switch {
	case strings.HasPrefix(addr, "unix:") && len(addr) > len("unix:"):
		return "unix", strings.TrimPrefix(addr, "unix:"), false, nil
	case strings.HasPrefix(addr, "tcp:"), strings.HasPrefix(addr, "ssl:"):
		proto, hp, _ := strings.Cut(addr, ":")
		host, port, err := net.SplitHostPort(hp)
		if err != nil || host == "" || port == "" {
			return "", "", false, fmt.Errorf("ovsdb address %q: want %s:IP:PORT", addr, proto)
		}
		return "tcp", hp, proto == "ssl", nil
	}
	return "", "", false, fmt.Errorf("ovsdb address %q: want unix:PATH, tcp:IP:PORT or ssl:IP:PORT", addr)
}

// client is one OVSDB connection. It uses the go-openvswitch client for the JSON-RPC exchange, and watches the
// bytes under it (tapConn) for two things that client does not give: the full reply of each transact (it keeps
// only select rows and drops per-operation errors), and the end of the connection (its reader spins on a
// non-EOF read error, so the tap turns every read error into EOF and reports it).
type client struct {
	lib *ovsdb.Client
	tap *tapConn
	mu  sync.Mutex // one transact at a time, so that the tap knows which reply is ours
}

// dial connects to an OVSDB address; an ssl: address needs tlsConfig, and the TLS handshake is done before dial
// returns.
func dial(ctx context.Context, addr string, tlsConfig *tls.Config) (*client, error) {
	network, address, secure, err := ParseAddress(addr)
	if err != nil {
		return nil, err
	}
	if secure && tlsConfig == nil {
		return nil, fmt.Errorf("ovsdb address %s: ssl: needs the controller's TLS files (--openflow-tls-cert, --openflow-tls-key, --openflow-tls-ca)", addr)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, address)
	if err != nil {
		return nil, fmt.Errorf("dial ovsdb %s: %w", addr, err)
	}
	if secure {
		tc := tls.Client(conn, tlsConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("dial ovsdb %s: TLS handshake: %w", addr, err)
		}
		conn = tc
	}
	tap := &tapConn{Conn: conn, dead: make(chan struct{})}
	lib, err := ovsdb.New(tap)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("ovsdb client for %s: %w", addr, err)
	}
	return &client{lib: lib, tap: tap}, nil
}

func (c *client) close() {
	c.tap.kill(errors.New("closed"))
	c.lib.Close()
}

// dead is closed when the connection is gone.
func (c *client) dead() <-chan struct{} { return c.tap.dead }

// TxError is an OVSDB transaction that the server refused, with the operation that failed.
type TxError struct {
	Op      int    // index of the failed operation; len(ops) when the commit failed
	What    string // what the operation was for
	Err     string // OVSDB error, e.g. "constraint violation"
	Details string
}

func (e *TxError) Error() string {
	return fmt.Sprintf("ovsdb refused %s: %s: %s", e.What, e.Err, e.Details)
}

// transact runs ops in one transaction and returns one result per op. Any operation error, or a commit error,
// is returned as a *TxError and means nothing was changed. whats describe the ops for error messages.
func (c *client) transact(ctx context.Context, ops []ovsdb.TransactOp, whats []string) ([]opResult, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-c.tap.dead:
			cancel()
		case <-ctx.Done():
		}
	}()
	id := c.tap.expect()
	if _, err := c.lib.Transact(ctx, database, ops); err != nil {
		select {
		case <-c.tap.dead:
			return nil, fmt.Errorf("ovsdb transact: connection lost: %w", c.tap.err())
		default:
		}
		return nil, fmt.Errorf("ovsdb transact: %w", err)
	}
	raw, ok := c.tap.take(id)
	if !ok {
		return nil, errors.New("ovsdb transact: reply not seen on the connection")
	}
	var results []opResult
	if err := json.Unmarshal(raw, &results); err != nil {
		return nil, fmt.Errorf("ovsdb transact: decode reply: %w", err)
	}
	for i, r := range results {
		if r.Error == "" {
			continue
		}
		what := "commit"
		if i < len(whats) {
			what = whats[i]
		}
		return nil, &TxError{Op: i, What: what, Err: r.Error, Details: r.Details}
	}
	if len(results) < len(ops) {
		return nil, fmt.Errorf("ovsdb transact: %d results for %d operations", len(results), len(ops))
	}
	return results[:len(ops)], nil
}

// tapConn passes bytes through to the go-openvswitch client while recording the reply to the pending transact.
type tapConn struct {
	net.Conn

	mu      sync.Mutex
	seq     uint64 // expectations handed out
	want    uint64 // the expectation the next transact request fulfils
	wantID  string // its JSON-RPC id once the request was written
	reply   json.RawMessage
	replyOf uint64
	readErr error

	// reader side, used only by the go-openvswitch client's single reader goroutine
	split splitter
	in    []byte
	out   []byte

	dead     chan struct{}
	deadOnce sync.Once
}

// expect announces that the next transact request written is ours, and returns a handle for take.
func (t *tapConn) expect() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seq++
	t.want, t.wantID, t.reply, t.replyOf = t.seq, "", nil, 0
	return t.seq
}

func (t *tapConn) take(h uint64) (json.RawMessage, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.replyOf != h {
		return nil, false
	}
	r := t.reply
	t.reply, t.replyOf = nil, 0
	return r, true
}

func (t *tapConn) Write(p []byte) (int, error) {
	var req struct {
		ID     string `json:"id"`
		Method string `json:"method"`
	}
	if json.Unmarshal(p, &req) == nil && req.Method == "transact" {
		t.mu.Lock()
		if t.want != 0 && t.wantID == "" {
			t.wantID = req.ID
		}
		t.mu.Unlock()
	}
	n, err := t.Conn.Write(p)
	if err != nil {
		t.kill(err)
	}
	return n, err
}

// Read hands the go-openvswitch client whole messages only, so that when the connection ends it sees EOF at a
// message boundary (a partial message would make its reader spin on a sticky decode error forever).
func (t *tapConn) Read(p []byte) (int, error) {
	for len(t.out) == 0 {
		if t.in == nil {
			t.in = make([]byte, 64<<10)
		}
		n, err := t.Conn.Read(t.in)
		if n > 0 {
			t.split.feed(t.in[:n], func(msg []byte) {
				t.onMessage(msg)
				t.out = append(t.out, msg...)
			})
		}
		if err != nil {
			t.kill(err)
			if len(t.out) > 0 {
				break
			}
			return 0, io.EOF
		}
	}
	n := copy(p, t.out)
	t.out = t.out[n:]
	if len(t.out) == 0 {
		t.out = nil
	}
	return n, nil
}

func (t *tapConn) onMessage(msg []byte) {
	var m struct {
		ID     json.RawMessage `json:"id"`
		Result json.RawMessage `json:"result"`
	}
	if json.Unmarshal(msg, &m) != nil {
		return
	}
	var id string
	if json.Unmarshal(m.ID, &id) != nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.want != 0 && id == t.wantID {
		t.reply = bytes.Clone(m.Result)
		t.replyOf = t.want
		t.want, t.wantID = 0, ""
	}
}

func (t *tapConn) kill(err error) {
	t.deadOnce.Do(func() {
		t.mu.Lock()
		t.readErr = err
		t.mu.Unlock()
		close(t.dead)
		t.Conn.SetDeadline(time.Now())
	})
}

func (t *tapConn) err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.readErr
}

// splitter cuts a stream of concatenated JSON values into whole values.
type splitter struct {
	buf     []byte
	depth   int
	started bool
	inStr   bool
	esc     bool
}

func (s *splitter) feed(p []byte, emit func([]byte)) {
	for _, b := range p {
		if !s.started {
			if b == '{' || b == '[' {
				s.started, s.depth, s.inStr, s.esc = true, 1, false, false
				s.buf = append(s.buf[:0], b)
			}
			continue
		}
		s.buf = append(s.buf, b)
		if s.inStr {
			switch {
			case s.esc:
				s.esc = false
			case b == '\\':
				s.esc = true
			case b == '"':
				s.inStr = false
			}
			continue
		}
		switch b {
		case '"':
			s.inStr = true
		case '{', '[':
			s.depth++
		case '}', ']':
			s.depth--
			if s.depth == 0 {
				s.started = false
				emit(s.buf)
			}
		}
	}
}
