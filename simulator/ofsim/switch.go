package ofsim

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"portmirror/ofwire"
	"portmirror/simulator/dataplane"
)

// Config describes one simulated switch.
type Config struct {
	Controller    string // host:port the switch dials
	DatapathID    uint64
	Bridge        *dataplane.Bridge
	Logger        *slog.Logger  // nil: discard
	ProbeInterval time.Duration // echo request after this much silence, disconnect after twice it; 0: 5s; <0: never
	MinBackoff    time.Duration // first reconnect delay; 0: 50ms
	MaxBackoff    time.Duration // reconnect delay cap; 0: 2s
	WriteTimeout  time.Duration // a write blocked this long drops the connection; 0: 30s
	// OnPacketOut, when set, receives what a PACKET_OUT made the bridge emit (the fabric delivers it).
	OnPacketOut func(dataplane.Result)
	// TLS, when set, makes the switch speak OpenFlow over TLS (an OVS ssl: target): it completes a TLS
	// handshake with this client configuration before the OpenFlow hello.
	TLS *tls.Config
	// NoBundles makes the switch answer every experimenter message, bundles (the ONF extension) included, with
	// BAD_REQUEST/BAD_EXPERIMENTER, as a switch without the extension does.
	NoBundles bool
}

// Switch is a simulated OVS bridge connected to a controller over OpenFlow 1.3. Its flows live in the
// dataplane.Bridge and survive disconnections (fail_mode=secure). While connected it runs two goroutines (the
// reader, which also owns reconnection, and one writer); none per port.
type Switch struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	cur     *conn
	offline bool
	stalled bool
	unstall chan struct{} // closed when the stall ends
	delay   time.Duration
	wake    chan struct{} // reconnect now (cap 1)

	connects  atomic.Int64
	connected atomic.Bool
}

// New returns a switch; call Run to connect it.
func New(cfg Config) *Switch {
	if cfg.ProbeInterval == 0 {
		cfg.ProbeInterval = 5 * time.Second
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 50 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 2 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 30 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("bridge", cfg.Bridge.Name(), "dpid", fmt.Sprintf("%016x", cfg.DatapathID))
	return &Switch{cfg: cfg, log: log, wake: make(chan struct{}, 1), unstall: make(chan struct{})}
}

// Bridge is the switch's data plane.
func (s *Switch) Bridge() *dataplane.Bridge { return s.cfg.Bridge }

// DatapathID is the switch's datapath id.
func (s *Switch) DatapathID() uint64 { return s.cfg.DatapathID }

// Connected reports whether the OpenFlow connection is up and negotiated.
func (s *Switch) Connected() bool { return s.connected.Load() }

// Connects counts the connections negotiated so far.
func (s *Switch) Connects() int { return int(s.connects.Load()) }

// Run connects to the controller and keeps reconnecting, with backoff, until ctx ends.
func (s *Switch) Run(ctx context.Context) error {
	backoff := s.cfg.MinBackoff
	for {
		s.mu.Lock()
		offline := s.offline
		s.mu.Unlock()
		if !offline {
			d := net.Dialer{Timeout: 5 * time.Second}
			nc, err := d.DialContext(ctx, "tcp", s.cfg.Controller)
			if err == nil && s.cfg.TLS != nil {
				nc, err = handshakeTLS(ctx, nc, s.cfg.TLS)
			}
			if err == nil {
				negotiated, err := s.serve(ctx, nc)
				if negotiated {
					backoff = s.cfg.MinBackoff
				}
				if err != nil && ctx.Err() == nil {
					s.log.Info("openflow connection ended", "controller", s.cfg.Controller, "err", err)
				}
			} else if ctx.Err() == nil {
				s.log.Debug("dial failed", "controller", s.cfg.Controller, "err", err)
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-s.wake:
			t.Stop()
		case <-t.C:
		}
		backoff = min(backoff*2, s.cfg.MaxBackoff)
	}
}

// handshakeTLS completes a client TLS handshake on nc within 5 seconds, closing nc when it fails.
func handshakeTLS(ctx context.Context, nc net.Conn, cfg *tls.Config) (net.Conn, error) {
	tc := tls.Client(nc, cfg)
	hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		nc.Close()
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	return tc, nil
}

func (s *Switch) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// conn is one TCP connection and its writer.
type conn struct {
	nc       net.Conn
	wmu      sync.Mutex // held while writing to nc
	mu       sync.Mutex
	q        []byte
	sig      chan struct{}
	done     chan struct{}
	once     sync.Once
	lastRecv atomic.Int64 // unix nanos

	bundles map[uint32]*bundle // open bundles by id; the reader's alone
}

func (c *conn) close() {
	c.once.Do(func() {
		close(c.done)
		_ = c.nc.Close()
	})
}

func (c *conn) send(b []byte) {
	c.mu.Lock()
	c.q = append(c.q, b...)
	c.mu.Unlock()
	select {
	case c.sig <- struct{}{}:
	default:
	}
}

// flush writes whatever is queued now, from the caller's goroutine (before closing on a fatal error).
func (c *conn) flush(timeout time.Duration) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	out := c.q
	c.q = nil
	c.mu.Unlock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(timeout))
	_, _ = c.nc.Write(out)
}

// writer drains the queue in batches: whatever accumulated since the last write goes out in one write. It also
// sends echo probes when the controller has been silent.
func (s *Switch) writer(c *conn) {
	var spare []byte
	var probe <-chan time.Time
	var probedAt int64 // the lastRecv of the silence last probed
	if s.cfg.ProbeInterval > 0 {
		t := time.NewTicker(s.cfg.ProbeInterval)
		defer t.Stop()
		probe = t.C
	}
	for {
		select {
		case <-c.done:
			return
		case <-probe:
			s.mu.Lock()
			stalled := s.stalled
			s.mu.Unlock()
			last := c.lastRecv.Load()
			idle := time.Since(time.Unix(0, last))
			switch {
			case stalled:
			case idle >= 2*s.cfg.ProbeInterval && probedAt == last:
				// Only once this silence was probed: the ticker's phase could otherwise skip the probe.
				s.log.Info("controller silent: disconnecting", "idle", idle)
				c.close()
				return
			case idle >= s.cfg.ProbeInterval && probedAt != last:
				c.send(ofwire.AppendEmpty(nil, ofwire.TypeEchoRequest, 0))
				probedAt = last
			}
		case <-c.sig:
			// Take the queue with wmu held, so flush (which takes wmu first) cannot find it empty and return
			// before what was queued is written.
			c.wmu.Lock()
			c.mu.Lock()
			if len(c.q) == 0 {
				c.mu.Unlock()
				c.wmu.Unlock()
				continue
			}
			out := c.q
			c.q = spare[:0]
			c.mu.Unlock()
			_ = c.nc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
			_, err := c.nc.Write(out)
			c.wmu.Unlock()
			if err != nil {
				s.log.Info("write failed: disconnecting", "err", err)
				c.close()
				return
			}
			if cap(out) <= 64<<10 {
				spare = out[:0]
			} else {
				spare = nil // do not keep a large buffer around per bridge
			}
		}
	}
}

// serve runs one connection until it ends; negotiated reports whether the hello exchange succeeded.
func (s *Switch) serve(ctx context.Context, nc net.Conn) (negotiated bool, err error) {
	c := &conn{nc: nc, sig: make(chan struct{}, 1), done: make(chan struct{})}
	c.lastRecv.Store(time.Now().UnixNano())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.writer(c) }()
	stop := context.AfterFunc(ctx, c.close)
	defer func() {
		stop()
		s.mu.Lock()
		if s.cur == c {
			s.cur = nil
		}
		s.mu.Unlock()
		s.connected.Store(false)
		c.close()
		wg.Wait()
	}()
	s.mu.Lock()
	s.cur = c
	s.mu.Unlock()

	c.send(ofwire.AppendHello(nil, 1))
	r := bufio.NewReaderSize(nc, 2048)
	hb := make([]byte, ofwire.HeaderLen)
	for {
		if err := s.gate(c); err != nil {
			return negotiated, err
		}
		if _, err := io.ReadFull(r, hb); err != nil {
			return negotiated, fmt.Errorf("reading from controller: %w", err)
		}
		version, typ, length, xid := hb[0], ofwire.Type(hb[1]), int(binary.BigEndian.Uint16(hb[2:])), binary.BigEndian.Uint32(hb[4:])
		if length < ofwire.HeaderLen {
			return negotiated, fmt.Errorf("message length %d is shorter than a header", length)
		}
		msg := make([]byte, length)
		copy(msg, hb)
		if _, err := io.ReadFull(r, msg[ofwire.HeaderLen:]); err != nil {
			return negotiated, fmt.Errorf("reading a %d-byte %v: %w", length, typ, err)
		}
		c.lastRecv.Store(time.Now().UnixNano())
		if err := s.slow(c); err != nil {
			return negotiated, err
		}
		if !negotiated {
			if typ != ofwire.TypeHello {
				c.send(ofwire.AppendError(nil, xid, 0, 0, msg)) // HELLO_FAILED/INCOMPATIBLE
				c.flush(time.Second)
				return false, fmt.Errorf("controller sent %v before hello", typ)
			}
			vs, err := ofwire.DecodeHello(ofwire.Header{Version: version, Type: typ, Length: uint16(length), Xid: xid}, msg[ofwire.HeaderLen:])
			if err != nil || !vs.Has(ofwire.Version) {
				c.send(ofwire.AppendError(nil, xid, 0, 0, []byte("OpenFlow 1.3 (version 4) is the only version supported")))
				c.flush(time.Second)
				return false, fmt.Errorf("version negotiation failed: controller does not speak OpenFlow 1.3")
			}
			negotiated = true
			s.connects.Add(1)
			s.connected.Store(true)
			s.log.Info("connected", "controller", s.cfg.Controller)
			continue
		}
		if version != ofwire.Version {
			c.send(ofwire.AppendError(nil, xid, dataplane.ErrTypeBadRequest, dataplane.BadRequestBadVersion, msg))
			continue
		}
		if err := s.handle(c, typ, xid, msg); err != nil {
			var oe *dataplane.OFError
			if errors.As(err, &oe) {
				s.log.Debug("refused", "type", typ, "xid", xid, "err", oe)
				c.send(appendOFError(nil, xid, oe, msg))
				continue
			}
			return negotiated, err
		}
	}
}

// gate holds the reader while the switch is stalled.
func (s *Switch) gate(c *conn) error {
	for {
		s.mu.Lock()
		stalled, ch := s.stalled, s.unstall
		s.mu.Unlock()
		if !stalled {
			return nil
		}
		select {
		case <-ch:
		case <-c.done:
			return errors.New("connection closed while stalled")
		}
	}
}

// slow applies the per-message delay fault.
func (s *Switch) slow(c *conn) error {
	s.mu.Lock()
	delay := s.delay
	s.mu.Unlock()
	if delay <= 0 {
		return nil
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-c.done:
		return errors.New("connection closed")
	}
}

// send queues a message on the current connection, if any.
func (s *Switch) send(b []byte) bool {
	s.mu.Lock()
	c := s.cur
	s.mu.Unlock()
	if c == nil || !s.connected.Load() {
		return false
	}
	c.send(b)
	return true
}

func (s *Switch) portStatus(reason ofwire.PortReason, p dataplane.Port) {
	b := appendHeader(nil, ofwire.TypePortStatus, 0)
	b = append(b, byte(reason), 0, 0, 0, 0, 0, 0, 0)
	b = appendPort(b, p)
	s.send(finish(b, 0))
}

// AddPort adds a port to the bridge and reports it to the controller.
func (s *Switch) AddPort(p dataplane.Port) error {
	if err := s.cfg.Bridge.AddPort(p); err != nil {
		return err
	}
	q, _ := s.cfg.Bridge.Port(p.No)
	s.portStatus(ofwire.PortAdded, q)
	return nil
}

// RemovePort removes a port and reports it.
func (s *Switch) RemovePort(no uint32) error {
	p, err := s.cfg.Bridge.RemovePort(no)
	if err != nil {
		return err
	}
	s.portStatus(ofwire.PortDeleted, p)
	return nil
}

// SetPortUp changes a port's link state and reports it.
func (s *Switch) SetPortUp(no uint32, up bool) error {
	p, err := s.cfg.Bridge.SetPortUp(no, up)
	if err != nil {
		return err
	}
	s.portStatus(ofwire.PortModified, p)
	return nil
}

// Disconnect drops the current connection; the switch reconnects after its backoff.
func (s *Switch) Disconnect() {
	s.mu.Lock()
	c := s.cur
	s.mu.Unlock()
	if c != nil {
		c.close()
	}
}

// SetOffline keeps the switch disconnected (true) or lets it reconnect at once (false).
func (s *Switch) SetOffline(off bool) {
	s.mu.Lock()
	s.offline = off
	s.mu.Unlock()
	if off {
		s.Disconnect()
	} else {
		s.kick()
	}
}

// Restart simulates an ovs-vswitchd restart: the connection drops, the flow tables, groups and MAC table
// empty, and the switch reconnects at once.
func (s *Switch) Restart() {
	s.cfg.Bridge.Reset()
	s.Disconnect()
	s.kick()
}

// SetStalled stops (true) or resumes (false) reading from the controller; the TCP connection stays open.
func (s *Switch) SetStalled(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if on == s.stalled {
		return
	}
	s.stalled = on
	if on {
		s.unstall = make(chan struct{})
	} else {
		close(s.unstall)
	}
}

// SetDelay makes the switch wait d before handling each message (0: no delay).
func (s *Switch) SetDelay(d time.Duration) {
	s.mu.Lock()
	s.delay = d
	s.mu.Unlock()
}
