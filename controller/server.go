// Package controller is the OpenFlow side of portmirror: the server every bridge dials, the per-switch connection
// (handshake, keepalive, requests matched to replies by xid, multipart reassembly, flow_mod errors delivered to the
// batch that caused them) and, in its own files, the reconciler.
package controller

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"portmirror/internal/netlimit"
	"portmirror/model"
	"portmirror/ofwire"
)

// PortReason says why a port-status message was sent.
type PortReason = ofwire.PortReason

// Port-status reasons.
const (
	PortAdded    = ofwire.PortAdded
	PortDeleted  = ofwire.PortDeleted
	PortModified = ofwire.PortModified
)

// Handler receives switch events. Events are delivered one at a time, in order, from one goroutine owned by the
// server, never from a connection's reader: a handler may call the Switch's methods (DumpFlows, Apply) directly.
// For a datapath that reconnects, SwitchDisconnected of the old connection comes before SwitchConnected of the new.
type Handler interface {
	SwitchConnected(sw *Switch)
	SwitchDisconnected(sw *Switch)
	PortStatus(sw *Switch, reason PortReason, port model.SwitchPort)
}

// Config configures a Server. Zero durations take the defaults.
type Config struct {
	Addr             string        // listen address, e.g. ":6653"; default "127.0.0.1:6653"
	Handler          Handler       // may be nil
	Logger           *slog.Logger  // default slog.Default()
	EchoInterval     time.Duration // an echo request is sent this often; default 5s
	DeadAfter        time.Duration // a switch silent this long is closed; default 3 × EchoInterval
	HandshakeTimeout time.Duration // hello, features and port-desc must complete within; default 10s
	RequestTimeout   time.Duration // a request (dump, barrier) without reply is abandoned after; default 60s
	WriteTimeout     time.Duration // one write blocked this long closes the connection; default 15s
	// TLS, when set, makes every connection TLS (as OVS's ssl: targets speak it): a connection that does not
	// complete a TLS handshake within HandshakeTimeout, or whose certificate the config refuses, is closed.
	// The config should require and verify client certificates.
	TLS *tls.Config
	// MaxConnsPerAddr bounds the open connections from one remote IP address, handshaking ones included; a
	// connection beyond it is closed at once. 0: no bound.
	MaxConnsPerAddr int
	// OnRefused, when set, is called (from the accepting or the connection's goroutine) for every connection
	// closed because of the bound above or a failed TLS handshake, with the remote address and the reason.
	OnRefused func(remote string, reason error)
	// OnPacketIn, when set, is called from the connection's reader for every PACKET_IN the switch sends; it must
	// not block.
	OnPacketIn func(sw *Switch, pi ofwire.PacketIn)
}

func (c *Config) defaults() {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:6653"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.EchoInterval <= 0 {
		c.EchoInterval = 5 * time.Second
	}
	if c.DeadAfter <= 0 {
		c.DeadAfter = 3 * c.EchoInterval
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 10 * time.Second
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 60 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 15 * time.Second
	}
}

// Server accepts OpenFlow connections and keeps one Switch per datapath id.
type Server struct {
	cfg Config
	ln  net.Listener
	log *slog.Logger

	mu       sync.Mutex
	conns    map[*Switch]struct{} // every live connection, handshaking ones included
	perAddr  map[string]int       // live connections by remote IP
	switches map[string]*Switch   // by datapath id, after the handshake
	closed   bool

	events eventQueue

	// writers lends a buffered writer to a connection while it writes: an idle connection holds none, which is
	// what most of 10k connected bridges are.
	writers sync.Pool

	stats Stats

	packetIn atomic.Pointer[func(*Switch, ofwire.PacketIn)] // Config.OnPacketIn, or the attached controller's

	// bodies lends a reader a buffer of the largest message for a reply part whose request keeps nothing of it
	// (request.borrow): *[]byte
	bodies sync.Pool

	// Serving early (ServeEarly): the events wait for the handler that attach brings.
	early *earlyServing
}

// earlyServing is a Server's run started before its handler exists.
type earlyServing struct {
	attached chan struct{} // closed by attach, once handler is set
	handler  Handler
	stop     context.CancelFunc
	done     chan struct{} // closed when Serve has returned, err set
	err      error
}

// Stats counts what the server's connections sent, over its lifetime.
type Stats struct {
	FlowMods         [ofwire.FlowDeleteStrict + 1]atomic.Uint64 // by command
	BundlesCommitted atomic.Uint64                              // flow changes applied atomically
	BundlesRefused   atomic.Uint64                              // bundles the switch refused at commit (each attempt)
	BundleRetries    atomic.Uint64                              // bundles sent again without the flow_mods a refused commit named
	BundleFallbacks  atomic.Uint64                              // refused bundles whose flow_mods then went plain, one by one
	PlainRuns        atomic.Uint64                              // flow changes sent as plain flow_mods and a barrier
	BarriersSent     atomic.Uint64                              // barrier requests, for flow changes and every other request
	BarriersSkipped  atomic.Uint64                              // bundles confirmed by their commit reply alone, without a barrier
}

// Stats returns the server's counters.
func (s *Server) Stats() *Stats { return &s.stats }

// Listen opens the listener; Serve runs the server.
func Listen(cfg Config) (*Server, error) {
	cfg.defaults()
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("openflow listener on %s: %w", cfg.Addr, err)
	}
	s := &Server{
		cfg: cfg, ln: ln, log: cfg.Logger,
		conns: map[*Switch]struct{}{}, switches: map[string]*Switch{}, perAddr: map[string]int{},
		events:  newEventQueue(cfg.Logger),
		writers: sync.Pool{New: func() any { return bufio.NewWriterSize(nil, writeBufferSize) }},
		bodies:  sync.Pool{New: func() any { b := make([]byte, ofwire.MaxMessageLen); return &b }},
	}
	if cfg.OnPacketIn != nil {
		s.packetIn.Store(&cfg.OnPacketIn)
	}
	return s, nil
}

// ServeEarly starts serving before the handler exists, for a daemon whose controller waits for its store to load:
// the switches connect, complete their handshakes and are kept alive meanwhile, instead of redialling, and their
// events wait for the controller that attaches (Options.Early), which then serves until its Run ends. It stops
// when ctx ends, when that Run ends, or at Close.
func (s *Server) ServeEarly(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	e := &earlyServing{attached: make(chan struct{}), stop: cancel, done: make(chan struct{})}
	s.early = e
	go func() {
		defer close(e.done)
		e.err = s.Serve(ctx)
	}()
}

// Close stops a server serving early (ServeEarly) that no controller took over, and waits for it; otherwise it
// does nothing.
func (s *Server) Close() error {
	if s.early == nil {
		return nil
	}
	s.early.stop()
	<-s.early.done
	return s.early.err
}

// attach hands the early server's events to h, and its packet-ins to packetIn, and returns a channel closed once
// h has had every event queued before (the switches that connected meanwhile). serveAttached then serves.
func (s *Server) attach(h Handler, packetIn func(*Switch, ofwire.PacketIn)) <-chan struct{} {
	e := s.early
	e.handler = h // read by the events' goroutine once attached is closed
	s.packetIn.Store(&packetIn)
	caughtUp := make(chan struct{})
	s.events.push(func(Handler) { close(caughtUp) })
	close(e.attached)
	return caughtUp
}

// serveAttached serves until ctx ends, then stops the server and returns what Serve returned.
func (s *Server) serveAttached(ctx context.Context) error {
	e := s.early
	select {
	case <-ctx.Done():
	case <-e.done: // the listener failed
	}
	e.stop()
	<-e.done
	return e.err
}

// Addr is the listener's address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve accepts connections until ctx is cancelled, then closes the listener and every connection, delivers the
// remaining events, waits for every goroutine it started, and returns nil. Serve may be called once.
func (s *Server) Serve(ctx context.Context) error {
	var wg sync.WaitGroup
	evDone := make(chan struct{})
	go func() {
		defer close(evDone)
		h := s.cfg.Handler
		if e := s.early; e != nil {
			select {
			case <-e.attached:
				h = e.handler
			case <-ctx.Done(): // stopped before any controller attached: the events go nowhere
			}
		}
		s.events.run(h)
	}()
	stop := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-stop:
		}
		s.mu.Lock()
		s.closed = true
		conns := make([]*Switch, 0, len(s.conns))
		for sw := range s.conns {
			conns = append(conns, sw)
		}
		s.mu.Unlock()
		s.ln.Close()
		for _, sw := range conns {
			sw.close(errServerStopped)
		}
	}()
	var acceptErr error
	backoff := 5 * time.Millisecond
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if errors.Is(err, net.ErrClosed) {
				acceptErr = fmt.Errorf("openflow listener on %s closed: %w", s.ln.Addr(), err)
				break
			}
			// Out of file descriptors and the like: wait and retry rather than give up the listener.
			s.log.Warn("openflow accept failed, retrying", "addr", s.ln.Addr().String(), "err", err, "backoff", backoff)
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		host := netlimit.Host(c.RemoteAddr())
		if s.cfg.TLS != nil {
			c = tls.Server(c, s.cfg.TLS)
		}
		sw := newSwitch(s, c)
		sw.host = host
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			continue
		}
		if s.cfg.MaxConnsPerAddr > 0 && s.perAddr[host] >= s.cfg.MaxConnsPerAddr {
			s.mu.Unlock()
			// Reported before the close: whoever sees the connection end sees it counted.
			s.refused(sw.remote, fmt.Errorf("%w: %d connections from %s are open already", ErrTooManyConns, s.cfg.MaxConnsPerAddr, host))
			c.Close()
			continue
		}
		s.perAddr[host]++
		s.conns[sw] = struct{}{}
		s.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			sw.run()
		}()
	}
	close(stop)
	wg.Wait()
	s.events.close()
	<-evDone
	return acceptErr
}

// ErrTooManyConns is the reason given to Config.OnRefused for a connection over Config.MaxConnsPerAddr.
var ErrTooManyConns = errors.New("too many OpenFlow connections from one address")

// refused reports a refused connection to Config.OnRefused.
func (s *Server) refused(remote string, reason error) {
	if s.cfg.OnRefused != nil {
		s.cfg.OnRefused(remote, reason)
	}
}

var (
	errServerStopped = errors.New("controller stopped")
	errReplaced      = errors.New("replaced by a new connection from the same datapath")
)

// Switch returns the connected switch of a datapath id (16 lower-case hex digits), or nil.
func (s *Server) Switch(datapathID string) *Switch {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.switches[datapathID]
}

// Switches returns every connected switch.
func (s *Server) Switches() []*Switch {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Switch, 0, len(s.switches))
	for _, sw := range s.switches {
		out = append(out, sw)
	}
	return out
}

// register makes sw the switch of its datapath, closing and waiting out an older connection of the same datapath,
// then queues SwitchConnected. It reports false when the server is stopping.
func (s *Server) register(sw *Switch) bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	old := s.switches[sw.dpid]
	s.switches[sw.dpid] = sw
	s.mu.Unlock()
	if old != nil {
		s.log.Info("openflow switch reconnected, closing the old connection", "dpid", sw.dpid,
			"old_remote", old.remote, "remote", sw.remote)
		old.close(errReplaced)
		<-old.finished // its SwitchDisconnected is queued before our SwitchConnected
	}
	sw.registered = true
	s.events.push(func(h Handler) { h.SwitchConnected(sw) })
	return true
}

// unregister removes a finished connection and queues SwitchDisconnected if it had been connected.
func (s *Server) unregister(sw *Switch) {
	s.mu.Lock()
	delete(s.conns, sw)
	if s.perAddr[sw.host]--; s.perAddr[sw.host] <= 0 {
		delete(s.perAddr, sw.host)
	}
	if s.switches[sw.dpid] == sw {
		delete(s.switches, sw.dpid)
	}
	s.mu.Unlock()
	if sw.registered {
		s.events.push(func(h Handler) { h.SwitchDisconnected(sw) })
	}
}

// eventQueue is an unbounded FIFO of handler calls, run by one goroutine.
type eventQueue struct {
	log    *slog.Logger
	mu     sync.Mutex
	queue  []func(Handler)
	closed bool
	wake   chan struct{}
}

func newEventQueue(log *slog.Logger) eventQueue {
	return eventQueue{log: log, wake: make(chan struct{}, 1)}
}

// call runs one handler call; a panic in the handler is logged, not fatal to the server.
func (q *eventQueue) call(f func(Handler), h Handler) {
	defer func() {
		if p := recover(); p != nil {
			q.log.Error("openflow event handler panicked", "panic", p)
		}
	}()
	f(h)
}

func (q *eventQueue) push(f func(Handler)) {
	q.mu.Lock()
	q.queue = append(q.queue, f)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *eventQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// run delivers events until the queue is closed and empty.
func (q *eventQueue) run(h Handler) {
	for {
		q.mu.Lock()
		batch, closed := q.queue, q.closed
		q.queue = nil
		q.mu.Unlock()
		for _, f := range batch {
			if h != nil {
				q.call(f, h)
			}
		}
		if len(batch) == 0 {
			if closed {
				return
			}
			<-q.wake
		}
	}
}
