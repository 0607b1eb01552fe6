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
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"portmirror/ofwire"
	"portmirror/simulator/dataplane"
)

// Config describes one simulated switch.
type Config struct {
	Controller string // host:port of a controller the switch dials
	// Controllers are more controllers (host:port) the switch dials besides Controller, as a bridge with several
	// controller targets: each connection is made, kept and reconnected on its own, each has its own role.
	Controllers   []string
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
	// Buffers, when set, is where the switch takes the buffers of its flow-stats replies and gives them back once
	// written: switches simulated in one process share one, so that a storm that reads back every bridge reuses a
	// few buffers instead of allocating (and faulting in) one per bridge. Nil: each reply allocates its own.
	Buffers *Buffers
}

// Buffers is a pool of reply buffers that several switches share (Config.Buffers). The zero value is ready.
type Buffers struct{ p sync.Pool }

// replyBuf is the capacity of a pooled buffer: one flow-stats reply part (at most ofwire.MaxMessageLen bytes).
const replyBuf = 64 << 10

func (bs *Buffers) get() []byte {
	if b, ok := bs.p.Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, replyBuf)
}

// put keeps b for another reply when it is one of the pool's size.
func (bs *Buffers) put(b []byte) {
	if cap(b) == replyBuf {
		b = b[:0]
		bs.p.Put(&b)
	}
}

// Switch is a simulated OVS bridge connected to one or more controllers over OpenFlow 1.3. Its flows live in the
// dataplane.Bridge and survive disconnections (fail_mode=secure). Per controller it runs two goroutines while
// connected (the reader, which also owns reconnection, and one writer); none per port.
//
// Every connection has an OpenFlow role (EQUAL when it opens) and the switch keeps one master election
// (generation) id for all of them, as OVS's connection manager does: see roles.go.
type Switch struct {
	cfg   Config
	log   *slog.Logger
	addrs []string        // the controllers dialled
	wakes []chan struct{} // per controller: reconnect now (cap 1)

	mu      sync.Mutex
	conns   map[*conn]struct{} // every open connection, negotiated or not
	offline bool
	stalled bool
	unstall chan struct{} // closed when the stall ends
	delay   time.Duration
	// The master election id: the highest generation id a MASTER or SLAVE request carried (genSet: since
	// ovs-vswitchd started). Guarded by mu, like every conn's role.
	genID  uint64
	genSet bool

	connects  atomic.Int64
	connected atomic.Int32 // negotiated connections
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
	var addrs []string
	for _, a := range append([]string{cfg.Controller}, cfg.Controllers...) {
		if a != "" && !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	s := &Switch{cfg: cfg, log: log, addrs: addrs, conns: map[*conn]struct{}{}, unstall: make(chan struct{})}
	for range addrs {
		s.wakes = append(s.wakes, make(chan struct{}, 1))
	}
	cfg.Bridge.SetPacketInHandler(s.packetIn)
	return s
}

// Bridge is the switch's data plane.
func (s *Switch) Bridge() *dataplane.Bridge { return s.cfg.Bridge }

// DatapathID is the switch's datapath id.
func (s *Switch) DatapathID() uint64 { return s.cfg.DatapathID }

// Connected reports whether at least one OpenFlow connection is up and negotiated.
func (s *Switch) Connected() bool { return s.connected.Load() > 0 }

// ConnectedControllers counts the OpenFlow connections up and negotiated.
func (s *Switch) ConnectedControllers() int { return int(s.connected.Load()) }

// Connects counts the connections negotiated so far, to every controller.
func (s *Switch) Connects() int { return int(s.connects.Load()) }

// Controllers are the addresses the switch dials.
func (s *Switch) Controllers() []string { return slices.Clone(s.addrs) }

// Run connects to every controller and keeps reconnecting to each, with backoff, until ctx ends.
func (s *Switch) Run(ctx context.Context) error {
	if len(s.addrs) == 0 {
		return errors.New("ofsim: no controller address")
	}
	if len(s.addrs) == 1 {
		s.dialLoop(ctx, s.addrs[0], s.wakes[0])
		return nil
	}
	var wg sync.WaitGroup
	for i, addr := range s.addrs {
		wg.Add(1)
		go func() { defer wg.Done(); s.dialLoop(ctx, addr, s.wakes[i]) }()
	}
	wg.Wait()
	return nil
}

// dialLoop keeps one controller connected, with its own backoff, as OVS keeps each controller target.
func (s *Switch) dialLoop(ctx context.Context, addr string, wake <-chan struct{}) {
	backoff := s.cfg.MinBackoff
	for {
		s.mu.Lock()
		offline := s.offline
		s.mu.Unlock()
		if !offline {
			d := net.Dialer{Timeout: 5 * time.Second}
			nc, err := d.DialContext(ctx, "tcp", addr)
			if err == nil && s.cfg.TLS != nil {
				nc, err = handshakeTLS(ctx, nc, s.cfg.TLS)
			}
			if err == nil {
				negotiated, err := s.serve(ctx, nc, addr)
				if negotiated {
					backoff = s.cfg.MinBackoff
				}
				if err != nil && ctx.Err() == nil {
					s.log.Info("openflow connection ended", "controller", addr, "err", err)
				}
			} else if ctx.Err() == nil {
				s.log.Debug("dial failed", "controller", addr, "err", err)
			}
		}
		if ctx.Err() != nil {
			return
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-wake:
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

// kick makes every controller's loop reconnect now.
func (s *Switch) kick() {
	for _, w := range s.wakes {
		select {
		case w <- struct{}{}:
		default:
		}
	}
}

// conn is one TCP connection and its writer.
type conn struct {
	addr     string // the controller's
	nc       net.Conn
	wmu      sync.Mutex // held while writing to nc
	mu       sync.Mutex
	q        []byte
	sig      chan struct{}
	done     chan struct{}
	once     sync.Once
	lastRecv atomic.Int64 // unix nanos

	bundles map[uint32]*bundle // open bundles by id; the reader's alone

	// Guarded by Switch.mu.
	negotiated bool
	role       ofwire.Role
}

func (c *conn) close() {
	c.once.Do(func() {
		close(c.done)
		_ = c.nc.Close()
	})
}

// send queues a copy of b for the writer.
func (c *conn) send(b []byte) { c.queue(b, false) }

// sendOwned queues b, which the caller gives up: when nothing is queued, b becomes the queue, not a copy of it
// (a flow dump is the largest reply and a reconnect storm asks every bridge for one).
func (c *conn) sendOwned(b []byte) { c.queue(b, true) }

func (c *conn) queue(b []byte, owned bool) {
	c.mu.Lock()
	if owned && len(c.q) == 0 {
		c.q = b
	} else {
		c.q = append(c.q, b...)
	}
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
			switch {
			case s.cfg.Buffers != nil && cap(out) == replyBuf:
				s.cfg.Buffers.put(out) // for the next reply of any switch
				spare = nil
			case cap(out) <= 64<<10:
				spare = out[:0]
			default:
				spare = nil // do not keep a large buffer around per bridge
			}
		}
	}
}

// serve runs one connection until it ends; negotiated reports whether the hello exchange succeeded.
func (s *Switch) serve(ctx context.Context, nc net.Conn, addr string) (negotiated bool, err error) {
	c := &conn{addr: addr, nc: nc, sig: make(chan struct{}, 1), done: make(chan struct{}), role: ofwire.RoleEqual}
	c.lastRecv.Store(time.Now().UnixNano())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.writer(c) }()
	stop := context.AfterFunc(ctx, c.close)
	defer func() {
		stop()
		s.mu.Lock()
		delete(s.conns, c)
		if c.negotiated {
			s.connected.Add(-1)
		}
		s.mu.Unlock()
		c.close()
		wg.Wait()
	}()
	s.mu.Lock()
	s.conns[c] = struct{}{}
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
			s.mu.Lock()
			c.negotiated = true
			s.mu.Unlock()
			s.connects.Add(1)
			s.connected.Add(1)
			s.log.Info("connected", "controller", addr)
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

// sendAsync queues an asynchronous message on every negotiated connection whose role takes it (OVS's default
// async config: PORT_STATUS to every role, PACKET_IN and FLOW_REMOVED not to a SLAVE); it reports how many.
func (s *Switch) sendAsync(b []byte, toSlaves bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for c := range s.conns {
		if c.negotiated && (toSlaves || c.role != ofwire.RoleSlave) {
			c.send(b)
			n++
		}
	}
	return n
}

func (s *Switch) portStatus(reason ofwire.PortReason, p dataplane.Port) {
	b := appendHeader(nil, ofwire.TypePortStatus, 0)
	b = append(b, byte(reason), 0, 0, 0, 0, 0, 0, 0)
	b = appendPort(b, p)
	s.sendAsync(finish(b, 0), true)
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

// Disconnect drops every connection; the switch reconnects to each controller after its backoff.
func (s *Switch) Disconnect() {
	s.mu.Lock()
	cs := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	for _, c := range cs {
		c.close()
	}
}

// DisconnectFrom drops the connection to one controller (its address as configured); the switch reconnects to
// it after its backoff.
func (s *Switch) DisconnectFrom(addr string) {
	s.mu.Lock()
	var cs []*conn
	for c := range s.conns {
		if c.addr == addr {
			cs = append(cs, c)
		}
	}
	s.mu.Unlock()
	for _, c := range cs {
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

// Restart simulates an ovs-vswitchd restart: the connections drop, the flow tables, groups and MAC table
// empty, the master election id is forgotten, and the switch reconnects at once.
func (s *Switch) Restart() {
	s.cfg.Bridge.Reset()
	s.mu.Lock()
	s.genID, s.genSet = 0, false
	s.mu.Unlock()
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
