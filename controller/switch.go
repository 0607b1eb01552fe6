package controller

import (
	"bufio"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"

	"sync"
	"sync/atomic"
	"time"

	"portmirror/model"
	"portmirror/ofwire"
)

// Switch is one OpenFlow connection to a bridge, after a completed handshake. Its methods are safe for concurrent
// use. After the connection closes, requests fail with an error wrapping ErrDisconnected.
type Switch struct {
	srv    *Server
	conn   net.Conn
	remote string
	host   string // the remote IP address, for the per-address bound
	log    *slog.Logger

	// Set by the handshake, read-only afterwards.
	dpid        string
	features    ofwire.Features
	connectedAt time.Time
	registered  bool

	mu      sync.Mutex
	ports   map[uint32]model.SwitchPort
	pending map[uint32]*request
	batches []*batch
	nextXid uint32
	err     error // why the connection closed, once it has

	noBundles atomic.Bool // the switch refused the bundle extension: flow changes go as plain flow_mods
	// bundlesProven: a bundle of this connection was committed and its commit reply came, in order, before the
	// reply to the barrier that followed it: later bundles are confirmed by their commit reply alone.
	bundlesProven atomic.Bool

	role    ofwire.Role // the role the switch last granted us (EQUAL until asked), under mu
	roleGen uint64      // with that generation id, under mu

	wmu     sync.Mutex
	bw      *bufio.Writer // lent by the server while a write is under way (see writer), nil when idle
	scratch []byte

	echoReplies chan ofwire.Message // echo requests to answer, from the reader to the echo goroutine

	closeOnce sync.Once
	done      chan struct{} // closed when the connection is closed
	finished  chan struct{} // closed when run has returned everything it owns
}

// ErrDisconnected is wrapped by the errors of requests on a closed connection.
var ErrDisconnected = errors.New("switch disconnected")

// Buffer sizes. The read buffer is paid for every connected bridge (10k bridges × 128 KiB was 1.25 GiB), so it
// stays small: a large reply (flow stats) is read straight into its message body, past the read buffer. Write
// buffers are lent only while a connection writes; a long run of flow_mods flushes every writeBufferSize bytes.
const (
	writeBufferSize = 16 << 10
	readBufferSize  = 4 << 10
)

func newSwitch(s *Server, c net.Conn) *Switch {
	return &Switch{
		srv: s, conn: c, remote: c.RemoteAddr().String(), log: s.log,
		ports: map[uint32]model.SwitchPort{}, pending: map[uint32]*request{}, nextXid: 1,
		echoReplies: make(chan ofwire.Message, 16),
		done:        make(chan struct{}), finished: make(chan struct{}),
	}
}

// DatapathID is the switch's datapath id as 16 lower-case hex digits.
func (sw *Switch) DatapathID() string { return sw.dpid }

// Features is the switch's FEATURES_REPLY (tables, buffers, capabilities).
func (sw *Switch) Features() ofwire.Features { return sw.features }

// RemoteAddr is the switch's address as seen by the listener.
func (sw *Switch) RemoteAddr() string { return sw.remote }

// ConnectedAt is when the handshake completed.
func (sw *Switch) ConnectedAt() time.Time { return sw.connectedAt }

// Done is closed when the connection has closed.
func (sw *Switch) Done() <-chan struct{} { return sw.done }

// Role is the role the switch last granted this controller and its generation id (EQUAL, 0 until asked).
func (sw *Switch) Role() (ofwire.Role, uint64) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	return sw.role, sw.roleGen
}

// Atomic reports whether the switch takes flow changes in atomic bundles; it turns false when the switch refuses
// the bundle extension.
func (sw *Switch) Atomic() bool { return !sw.noBundles.Load() }

// Err says why the connection closed, or nil while it is open.
func (sw *Switch) Err() error {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	return sw.err
}

// Ports returns the switch's ports sorted by number, as port-desc and port-status messages reported them.
func (sw *Switch) Ports() []model.SwitchPort {
	sw.mu.Lock()
	out := make([]model.SwitchPort, 0, len(sw.ports))
	for _, p := range sw.ports {
		out = append(out, p)
	}
	sw.mu.Unlock()
	slices.SortFunc(out, func(a, b model.SwitchPort) int { return cmp.Compare(a.PortNo, b.PortNo) })
	return out
}

func (sw *Switch) modelPort(p ofwire.Port) model.SwitchPort {
	return model.SwitchPort{DatapathID: sw.dpid, PortNo: p.PortNo, Name: p.Name, Up: p.Up()}
}

// close closes the connection once; err says why.
func (sw *Switch) close(err error) {
	sw.closeOnce.Do(func() {
		sw.mu.Lock()
		sw.err = err
		sw.mu.Unlock()
		sw.conn.Close()
		close(sw.done)
	})
}

// run owns the connection: handshake, then the read loop, with the echo sender beside it. It returns after
// everything it started has stopped.
func (sw *Switch) run() {
	defer close(sw.finished)
	defer sw.srv.unregister(sw)
	var err error
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic in the connection reader: %v", p)
		}
		sw.close(err)
		sw.failAll(fmt.Errorf("%w: %w", ErrDisconnected, sw.Err()))
		sw.logClose(sw.Err())
	}()
	if tc, ok := sw.conn.(*tls.Conn); ok {
		if err = sw.tlsHandshake(tc); err != nil {
			sw.srv.refused(sw.remote, err)
			return
		}
	}
	br := bufio.NewReaderSize(sw.conn, readBufferSize)
	if err = sw.handshake(br); err != nil {
		err = fmt.Errorf("handshake: %w", err)
		return
	}
	if !sw.srv.register(sw) {
		err = errServerStopped
		return
	}
	sw.log.Info("openflow switch connected", "dpid", sw.dpid, "remote", sw.remote, "ports", len(sw.ports))
	var echoes sync.WaitGroup
	echoes.Add(1)
	go func() {
		defer echoes.Done()
		sw.echoLoop()
	}()
	err = sw.readLoop(br)
	sw.close(err)
	echoes.Wait()
}

func (sw *Switch) logClose(err error) {
	attrs := []any{"remote", sw.remote, "dpid", sw.dpid, "err", err}
	switch {
	case errors.Is(err, errServerStopped), errors.Is(err, errReplaced), errors.Is(err, io.EOF):
		sw.log.Info("openflow connection closed", attrs...)
	case errors.Is(err, ErrTLSHandshake) && sw.srv.cfg.OnRefused != nil:
		sw.log.Debug("openflow connection closed", attrs...) // OnRefused reports it
	default:
		sw.log.Warn("openflow connection closed", attrs...)
	}
}

// tlsHandshake completes the TLS handshake within HandshakeTimeout: the switch's certificate is verified here.
func (sw *Switch) tlsHandshake(tc *tls.Conn) error {
	ctx, cancel := context.WithTimeout(context.Background(), sw.srv.cfg.HandshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("%w: %w", ErrTLSHandshake, err)
	}
	return nil
}

// ErrTLSHandshake wraps the reason of a failed TLS handshake (a plain-TCP peer, an unknown CA, no certificate).
var ErrTLSHandshake = errors.New("TLS handshake failed")

// handshake exchanges hellos, then asks for features and port descriptions and whether the switch takes bundles
// (probeBundles), all within HandshakeTimeout. The three requests go in one write (a storm of reconnects costs a
// write and a round trip per bridge less than one write each); they wait for the peer's hello, so that a peer
// that does not speak OpenFlow 1.3 gets our hello and the HELLO_FAILED error only.
func (sw *Switch) handshake(br *bufio.Reader) error {
	deadline := time.Now().Add(sw.srv.cfg.HandshakeTimeout)
	if err := sw.conn.SetReadDeadline(deadline); err != nil {
		return err
	}
	if err := sw.writeMsg(func(b []byte) []byte { return ofwire.AppendHello(b, 0) }); err != nil {
		return fmt.Errorf("sending hello: %w", err)
	}
	m, err := ofwire.ReadMessage(br, 0)
	if err != nil {
		return fmt.Errorf("waiting for hello: %w", readErr(err, sw.srv.cfg.HandshakeTimeout))
	}
	switch m.Type {
	case ofwire.TypeHello:
	case ofwire.TypeError:
		e, derr := ofwire.DecodeError(m.Body)
		if derr != nil {
			return derr
		}
		return fmt.Errorf("switch sent %w instead of hello", e)
	default:
		return fmt.Errorf("%w: %s (version %d) before hello", ofwire.ErrMalformed, m.Type, m.Version)
	}
	versions, err := ofwire.DecodeHello(m.Header, m.Body)
	if err != nil {
		return err
	}
	if !versions.Has(ofwire.Version) {
		text := fmt.Sprintf("this controller speaks only OpenFlow 1.3 (wire version 4); peer offers %b", versions)
		_ = sw.writeMsg(func(b []byte) []byte {
			// An error to a peer of another version carries our version; the peer can still read the type.
			return ofwire.AppendError(b, m.Xid, ofwire.ErrTypeHelloFailed, ofwire.ErrCodeHelloIncompatible, []byte(text))
		})
		return fmt.Errorf("peer does not support OpenFlow 1.3 (hello version %d, bitmap %b)", m.Version, versions)
	}
	const featuresXid, portDescXid = 1, 2
	sw.nextXid = 3
	probe, err := sw.probeBundles()
	if err != nil {
		return fmt.Errorf("asking whether the switch takes bundles: %w", err)
	}
	if err := sw.writeMsg(func(b []byte) []byte {
		b = ofwire.AppendEmpty(b, ofwire.TypeFeaturesRequest, featuresXid)
		b = ofwire.AppendPortDescRequest(b, portDescXid)
		return probe(b)
	}); err != nil {
		return fmt.Errorf("sending features request: %w", err)
	}
	haveFeatures, havePorts := false, false
	var ports []ofwire.Port
	for !haveFeatures || !havePorts {
		m, err := ofwire.ReadMessage(br, ofwire.Version)
		if err != nil {
			return readErr(err, sw.srv.cfg.HandshakeTimeout)
		}
		switch {
		case m.Type == ofwire.TypeEchoRequest:
			if err := sw.writeMsg(func(b []byte) []byte { return ofwire.AppendEcho(b, ofwire.TypeEchoReply, m.Xid, m.Body) }); err != nil {
				return err
			}
		case m.Type == ofwire.TypeError && (m.Xid == featuresXid || m.Xid == portDescXid):
			e, err := ofwire.DecodeError(m.Body)
			if err != nil {
				return err
			}
			return fmt.Errorf("switch refused the handshake request xid %d: %w", m.Xid, e)
		case m.Type == ofwire.TypeFeaturesReply && m.Xid == featuresXid:
			f, err := ofwire.DecodeFeaturesReply(m.Body)
			if err != nil {
				return err
			}
			if f.AuxiliaryID != 0 {
				return fmt.Errorf("auxiliary connection %d of datapath %016x is not supported", f.AuxiliaryID, f.DatapathID)
			}
			sw.features, haveFeatures = f, true
			sw.dpid = fmt.Sprintf("%016x", f.DatapathID)
		case m.Type == ofwire.TypeMultipartReply && m.Xid == portDescXid:
			mp, err := ofwire.DecodeMultipartReply(m.Body)
			if err != nil {
				return err
			}
			if mp.Type != ofwire.MultipartPortDesc {
				return fmt.Errorf("%w: multipart reply of type %d to the port-desc request", ofwire.ErrMalformed, mp.Type)
			}
			p, err := ofwire.DecodePortDesc(mp.Body)
			if err != nil {
				return err
			}
			ports = append(ports, p...)
			havePorts = !mp.More()
		case m.Type == ofwire.TypeError || m.Type == ofwire.TypeExperimenter:
			// the bundle probe's answers (which come after the features reply: the switch answers in order)
			if err := sw.dispatch(m); err != nil {
				return fmt.Errorf("%s xid %d: %w", m.Type, m.Xid, err)
			}
		}
	}
	byNo := make(map[uint32]model.SwitchPort, len(ports)) // sized once: a storm handshakes every bridge at once
	for _, p := range ports {
		byNo[p.PortNo] = sw.modelPort(p)
	}
	sw.mu.Lock()
	sw.ports = byNo
	sw.mu.Unlock()
	sw.connectedAt = time.Now()
	return nil
}

func readErr(err error, after time.Duration) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("peer silent for %s: %w", after, err)
	}
	return err
}

// echoLoop sends an echo request every EchoInterval, and the replies to the switch's echo requests, until the
// connection closes.
func (sw *Switch) echoLoop() {
	t := time.NewTicker(sw.srv.cfg.EchoInterval)
	defer t.Stop()
	for {
		select {
		case <-sw.done:
			return
		case m := <-sw.echoReplies:
			if err := sw.writeMsg(func(b []byte) []byte { return ofwire.AppendEcho(b, ofwire.TypeEchoReply, m.Xid, m.Body) }); err != nil {
				sw.close(fmt.Errorf("sending echo reply: %w", err))
				return
			}
		case <-t.C:
			xid := sw.allocXids(1)
			if err := sw.writeMsg(func(b []byte) []byte { return ofwire.AppendEcho(b, ofwire.TypeEchoRequest, xid, nil) }); err != nil {
				sw.close(fmt.Errorf("sending echo request: %w", err))
				return
			}
		}
	}
}

// readLoop reads and dispatches messages until the connection fails or a message is malformed.
func (sw *Switch) readLoop(br *bufio.Reader) error {
	dead := sw.srv.cfg.DeadAfter
	for {
		if err := sw.conn.SetReadDeadline(time.Now().Add(dead)); err != nil {
			return err
		}
		var borrowed *[]byte
		m, err := ofwire.ReadMessageInto(br, ofwire.Version, func(h ofwire.Header) []byte {
			if h.Type != ofwire.TypeMultipartReply || !sw.borrows(h.Xid) {
				return nil
			}
			borrowed = sw.srv.bodies.Get().(*[]byte)
			return *borrowed
		})
		if err != nil {
			select {
			case <-sw.done:
				return sw.Err()
			default:
			}
			return readErr(err, dead)
		}
		err = sw.dispatch(m)
		if borrowed != nil {
			sw.srv.bodies.Put(borrowed) // the request's onPart kept nothing of it
		}
		if err != nil {
			return fmt.Errorf("%s xid %d: %w", m.Type, m.Xid, err)
		}
	}
}

// borrows reports whether the request xid reads its reply parts into a reused buffer (request.borrow).
func (sw *Switch) borrows(xid uint32) bool {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	r := sw.pending[xid]
	return r != nil && r.borrow
}

func (sw *Switch) dispatch(m ofwire.Message) error {
	switch m.Type {
	case ofwire.TypeEchoRequest:
		// The reply is written by the echo goroutine: the reader never waits for the write lock, which a long
		// Apply may hold while the switch waits for us to read its replies.
		select {
		case sw.echoReplies <- m:
		default:
			sw.log.Warn("dropping an echo reply: too many queued", "dpid", sw.dpid, "remote", sw.remote, "xid", m.Xid)
		}
	case ofwire.TypeError:
		e, err := ofwire.DecodeError(m.Body)
		if err != nil {
			return err
		}
		sw.deliverError(m.Xid, e)
	case ofwire.TypePortStatus:
		ps, err := ofwire.DecodePortStatus(m.Body)
		if err != nil {
			return err
		}
		port := sw.modelPort(ps.Port)
		sw.mu.Lock()
		if ps.Reason == ofwire.PortDeleted {
			delete(sw.ports, port.PortNo)
		} else {
			sw.ports[port.PortNo] = port
		}
		sw.mu.Unlock()
		reason := ps.Reason
		sw.srv.events.push(func(h Handler) { h.PortStatus(sw, reason, port) })
	case ofwire.TypeMultipartReply:
		mp, err := ofwire.DecodeMultipartReply(m.Body)
		if err != nil {
			return err
		}
		return sw.deliverPart(m.Xid, mp)
	case ofwire.TypeExperimenter:
		if ex, err := ofwire.DecodeExperimenter(m.Body); err == nil && ex.Experimenter == ofwire.ONFExperimenter &&
			ex.ExpType == ofwire.ONFRoleStatus {
			rs, err := ofwire.DecodeRoleStatus(ex.Data)
			if err != nil {
				return err
			}
			sw.mu.Lock()
			sw.role, sw.roleGen = rs.Role, rs.GenerationID
			sw.mu.Unlock()
			sw.log.Warn("another controller took over this switch", "dpid", sw.dpid, "role", rs.Role.String(),
				"generation", rs.GenerationID, "reason", rs.Reason)
			return nil
		}
		sw.deliver(m.Xid, m, nil) // bundle control replies
	case ofwire.TypePacketIn:
		if onPacketIn := sw.srv.packetIn.Load(); onPacketIn != nil {
			pi, err := ofwire.DecodePacketIn(m.Body)
			if err != nil {
				sw.log.Debug("ignoring a packet-in that does not decode", "dpid", sw.dpid, "err", err)
				return nil
			}
			(*onPacketIn)(sw, pi)
		}
	case ofwire.TypeBarrierReply, ofwire.TypeFeaturesReply, ofwire.TypeGetConfigReply, ofwire.TypeRoleReply:
		sw.deliver(m.Xid, m, nil)
	}
	// Echo replies only refresh the deadline; packet-in, flow-removed and the rest are ignored; an experimenter
	// message no request waits for is dropped.
	return nil
}

// writer returns the connection's buffered writer, borrowing one from the server when it has none. wmu is held.
func (sw *Switch) writer() *bufio.Writer {
	if sw.bw == nil {
		sw.bw = sw.srv.writers.Get().(*bufio.Writer)
		sw.bw.Reset(sw.conn)
	}
	return sw.bw
}

// releaseWriter gives the writer back once everything in it was flushed (a run of flow_mods keeps it between its
// chunks). wmu is held.
func (sw *Switch) releaseWriter() {
	if sw.bw != nil && sw.bw.Buffered() == 0 {
		sw.bw.Reset(nil)
		sw.srv.writers.Put(sw.bw)
		sw.bw = nil
	}
}
