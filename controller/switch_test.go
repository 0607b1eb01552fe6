package controller

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"portmirror/flows"
	"portmirror/model"
	"portmirror/ofwire"
)

// ---- a recording handler ----

type event struct {
	kind   string // "connected", "disconnected", "port"
	sw     *Switch
	reason PortReason
	port   model.SwitchPort
}

type recorder struct {
	mu     sync.Mutex
	events []event
}

func (r *recorder) add(e event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}
func (r *recorder) SwitchConnected(sw *Switch)    { r.add(event{kind: "connected", sw: sw}) }
func (r *recorder) SwitchDisconnected(sw *Switch) { r.add(event{kind: "disconnected", sw: sw}) }
func (r *recorder) PortStatus(sw *Switch, reason PortReason, p model.SwitchPort) {
	r.add(event{kind: "port", sw: sw, reason: reason, port: p})
}

func (r *recorder) snapshot() []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]event(nil), r.events...)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// lockedBuffer collects log output from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type testServer struct {
	*Server
	rec  *recorder
	logs *lockedBuffer
	stop func() // cancels and waits for Serve
}

func startServer(t *testing.T, cfg Config) *testServer {
	t.Helper()
	rec := &recorder{}
	logs := &lockedBuffer{}
	cfg.Addr = "127.0.0.1:0"
	cfg.Handler = rec
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-served:
				if err != nil {
					t.Errorf("Serve: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("Serve did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return &testServer{Server: s, rec: rec, logs: logs, stop: stop}
}

// ---- a fake switch over real TCP ----

type fakeSwitch struct {
	t     *testing.T
	c     net.Conn
	br    *bufio.Reader
	dpid  uint64
	ports []ofwire.Port
}

func dialFake(t *testing.T, addr net.Addr, dpid uint64) *fakeSwitch {
	t.Helper()
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &fakeSwitch{t: t, c: c, br: bufio.NewReader(c), dpid: dpid,
		ports: []ofwire.Port{{PortNo: 1, Name: "vm1"}, {PortNo: 2, Name: "vm2", State: 1}, {PortNo: ofwire.PortLocal, Name: "br-int"}}}
}

func (f *fakeSwitch) send(b []byte) {
	f.t.Helper()
	if _, err := f.c.Write(b); err != nil {
		f.t.Fatalf("fake switch write: %v", err)
	}
}

// read returns the next message, failing the test after 5s.
func (f *fakeSwitch) read() ofwire.Message {
	f.t.Helper()
	m, err := f.tryRead(5 * time.Second)
	if err != nil {
		f.t.Fatalf("fake switch read: %v", err)
	}
	return m
}

func (f *fakeSwitch) tryRead(d time.Duration) (ofwire.Message, error) {
	f.c.SetReadDeadline(time.Now().Add(d))
	return ofwire.ReadMessage(f.br, 0)
}

// expectClosed reads until the server closes the connection.
func (f *fakeSwitch) expectClosed(d time.Duration) []ofwire.Message {
	f.t.Helper()
	var got []ofwire.Message
	for {
		m, err := f.tryRead(d)
		if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || (err != nil && strings.Contains(err.Error(), "connection reset")) {
			return got
		}
		if err != nil && !errors.Is(err, ofwire.ErrMalformed) {
			f.t.Fatalf("waiting for the server to close: %v (got %d messages)", err, len(got))
		}
		got = append(got, m)
	}
}

func portBytes(p ofwire.Port) []byte {
	b := make([]byte, 64)
	binary.BigEndian.PutUint32(b, p.PortNo)
	copy(b[16:32], p.Name)
	binary.BigEndian.PutUint32(b[32:], p.Config)
	binary.BigEndian.PutUint32(b[36:], p.State)
	return b
}

func msg(t ofwire.Type, xid uint32, body []byte) []byte {
	b := []byte{ofwire.Version, byte(t), 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint16(b[2:], uint16(8+len(body)))
	binary.BigEndian.PutUint32(b[4:], xid)
	return append(b, body...)
}

func multipartReply(xid uint32, typ, flags uint16, body []byte) []byte {
	h := make([]byte, 8)
	binary.BigEndian.PutUint16(h, typ)
	binary.BigEndian.PutUint16(h[2:], flags)
	return msg(ofwire.TypeMultipartReply, xid, append(h, body...))
}

func (f *fakeSwitch) featuresReply(xid uint32) []byte {
	b := make([]byte, 24)
	binary.BigEndian.PutUint64(b, f.dpid)
	b[12] = 254
	return msg(ofwire.TypeFeaturesReply, xid, b)
}

// handshake answers the controller's hello, features and port-desc requests (port-desc in one part per port).
func (f *fakeSwitch) handshake() {
	f.t.Helper()
	if m := f.read(); m.Type != ofwire.TypeHello {
		f.t.Fatalf("first message %s, want HELLO", m.Type)
	}
	f.send(ofwire.AppendHello(nil, 100))
	for done := 0; done < 2; {
		m := f.read()
		switch m.Type {
		case ofwire.TypeFeaturesRequest:
			f.send(f.featuresReply(m.Xid))
			done++
		case ofwire.TypeMultipartRequest:
			for i, p := range f.ports {
				flags := ofwire.MultipartReplyMore
				if i == len(f.ports)-1 {
					flags = 0
				}
				f.send(multipartReply(m.Xid, ofwire.MultipartPortDesc, flags, portBytes(p)))
			}
			done++
		case ofwire.TypeEchoRequest:
			f.send(msg(ofwire.TypeEchoReply, m.Xid, m.Body))
		default:
			f.t.Fatalf("unexpected %s during handshake", m.Type)
		}
	}
}

// refuseBundleProbe answers the controller's bundle probe (an open and a discard, right after the handshake) as a
// switch without the extension does: BAD_REQUEST/BAD_EXPERIMENTER to each.
func (f *fakeSwitch) refuseBundleProbe() {
	f.t.Helper()
	for done := 0; done < 2; {
		m := f.read()
		switch m.Type {
		case ofwire.TypeExperimenter:
			f.send(ofwire.AppendError(nil, m.Xid, ofwire.ErrTypeBadRequest, ofwire.BadRequestBadExperimenter, m.Body))
			done++
		case ofwire.TypeEchoRequest:
			f.send(msg(ofwire.TypeEchoReply, m.Xid, m.Body))
		default:
			f.t.Fatalf("unexpected %s after the handshake, want the bundle probe", m.Type)
		}
	}
}

// connect dials and handshakes a fake switch without bundles and waits for the server to list it.
func connect(t *testing.T, s *testServer, dpid uint64) (*fakeSwitch, *Switch) {
	t.Helper()
	f := dialFake(t, s.Addr(), dpid)
	f.handshake()
	f.refuseBundleProbe()
	id := fmt.Sprintf("%016x", dpid)
	var sw *Switch
	waitFor(t, "switch "+id+" registered", 5*time.Second, func() bool {
		sw = s.Switch(id)
		return sw != nil && sw.remote == f.c.LocalAddr().String()
	})
	return f, sw
}

// serveRequests answers barrier requests and echo requests until the connection closes; other messages go to
// onMsg, which may send replies.
func (f *fakeSwitch) serveRequests(onMsg func(m ofwire.Message)) (stop func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := ofwire.ReadMessage(f.br, ofwire.Version)
			if err != nil {
				return
			}
			switch m.Type {
			case ofwire.TypeEchoRequest:
				f.c.Write(msg(ofwire.TypeEchoReply, m.Xid, m.Body))
			default:
				onMsg(m)
			}
		}
	}()
	return func() { f.c.Close(); <-done }
}

// ---- tests ----

func TestHandshakePortsAndEvents(t *testing.T) {
	s := startServer(t, Config{})
	f, sw := connect(t, s, 0xab)
	if sw.DatapathID() != "00000000000000ab" || sw.Features().NTables != 254 {
		t.Fatalf("dpid %q", sw.DatapathID())
	}
	want := []model.SwitchPort{
		{DatapathID: "00000000000000ab", PortNo: 1, Name: "vm1", Up: true},
		{DatapathID: "00000000000000ab", PortNo: 2, Name: "vm2", Up: false},
		{DatapathID: "00000000000000ab", PortNo: ofwire.PortLocal, Name: "br-int", Up: true},
	}
	if got := sw.Ports(); !reflect.DeepEqual(got, want) {
		t.Fatalf("ports %+v, want %+v", got, want)
	}
	if sw.RemoteAddr() != f.c.LocalAddr().String() || time.Since(sw.ConnectedAt()) > time.Minute {
		t.Fatalf("remote %q connectedAt %v", sw.RemoteAddr(), sw.ConnectedAt())
	}
	waitFor(t, "connected event", 5*time.Second, func() bool {
		ev := s.rec.snapshot()
		return len(ev) == 1 && ev[0].kind == "connected" && ev[0].sw == sw
	})
	// A port status: port 2 comes up; port 7 is added; port 1 is deleted.
	f.send(msg(ofwire.TypePortStatus, 0, append([]byte{2, 0, 0, 0, 0, 0, 0, 0}, portBytes(ofwire.Port{PortNo: 2, Name: "vm2"})...)))
	f.send(msg(ofwire.TypePortStatus, 0, append([]byte{0, 0, 0, 0, 0, 0, 0, 0}, portBytes(ofwire.Port{PortNo: 7, Name: "pmabc"})...)))
	f.send(msg(ofwire.TypePortStatus, 0, append([]byte{1, 0, 0, 0, 0, 0, 0, 0}, portBytes(ofwire.Port{PortNo: 1, Name: "vm1"})...)))
	waitFor(t, "three port events", 5*time.Second, func() bool { return len(s.rec.snapshot()) == 4 })
	ev := s.rec.snapshot()
	if ev[1].reason != PortModified || !ev[1].port.Up || ev[2].reason != PortAdded || ev[2].port.Name != "pmabc" || ev[3].reason != PortDeleted {
		t.Fatalf("port events %+v", ev[1:])
	}
	var names []string
	for _, p := range sw.Ports() {
		names = append(names, p.Name)
	}
	if strings.Join(names, ",") != "vm2,pmabc,br-int" {
		t.Fatalf("ports after status: %v", names)
	}
	// Stopping the server closes the switch and reports it.
	s.stop()
	f.expectClosed(5 * time.Second)
	ev = s.rec.snapshot()
	if last := ev[len(ev)-1]; last.kind != "disconnected" || last.sw != sw {
		t.Fatalf("last event %+v", last)
	}
	if s.Switch("00000000000000ab") != nil {
		t.Fatal("switch still listed after stop")
	}
}

func TestEchoBothWays(t *testing.T) {
	s := startServer(t, Config{EchoInterval: 50 * time.Millisecond, DeadAfter: 5 * time.Second})
	f, _ := connect(t, s, 1)
	f.send(msg(ofwire.TypeEchoRequest, 77, []byte("ping")))
	sawReply, sawRequest := false, false
	for !sawReply || !sawRequest {
		m := f.read()
		switch {
		case m.Type == ofwire.TypeEchoReply && m.Xid == 77 && string(m.Body) == "ping":
			sawReply = true
		case m.Type == ofwire.TypeEchoRequest:
			sawRequest = true
		default:
			t.Fatalf("unexpected %s xid %d", m.Type, m.Xid)
		}
	}
}

func TestDeadPeerIsClosed(t *testing.T) {
	s := startServer(t, Config{EchoInterval: 50 * time.Millisecond, DeadAfter: 300 * time.Millisecond})
	f, sw := connect(t, s, 2)
	// The fake switch reads (so the server's writes go through) but never answers.
	start := time.Now()
	f.expectClosed(5 * time.Second)
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("closed after %s, before the dead interval", d)
	}
	<-sw.Done()
	if err := sw.Err(); err == nil || !strings.Contains(err.Error(), "silent") {
		t.Fatalf("close reason %v", err)
	}
	waitFor(t, "disconnected event", 5*time.Second, func() bool {
		ev := s.rec.snapshot()
		return len(ev) == 2 && ev[1].kind == "disconnected"
	})
	if _, err := sw.DumpFlows(context.Background(), 0, 0); !errors.Is(err, ErrDisconnected) {
		t.Fatalf("request on a closed switch: %v", err)
	}
}

func TestIncompatibleVersionGetsHelloFailed(t *testing.T) {
	s := startServer(t, Config{})
	f := dialFake(t, s.Addr(), 3)
	if m := f.read(); m.Type != ofwire.TypeHello {
		t.Fatalf("got %s", m.Type)
	}
	// An OpenFlow 1.0 hello without a bitmap.
	f.send([]byte{1, 0, 0, 8, 0, 0, 0, 9})
	got := f.expectClosed(5 * time.Second)
	if len(got) != 1 || got[0].Type != ofwire.TypeError || got[0].Xid != 9 {
		t.Fatalf("got %+v, want one ERROR", got)
	}
	e, err := ofwire.DecodeError(got[0].Body)
	if err != nil || e.Type != ofwire.ErrTypeHelloFailed || e.Code != ofwire.ErrCodeHelloIncompatible {
		t.Fatalf("error %+v %v", e, err)
	}
	waitFor(t, "log line", 5*time.Second, func() bool { return strings.Contains(s.logs.String(), "does not support OpenFlow 1.3") })
}

func TestRequestsMatchedByXidWithMultipart(t *testing.T) {
	s := startServer(t, Config{})
	f, sw := connect(t, s, 4)
	const cookie = flows.CookieOurs
	flowA := flows.Flow{Table: 0, Priority: 10, Cookie: cookie | 1, Match: flows.Match{InPort: 1}, Actions: []flows.Action{{Type: flows.ActNormal}}}
	flowB := flows.Flow{Table: 1, Priority: 20, Cookie: cookie | 2, Match: flows.Match{HasTunID: true, TunID: 5}, Actions: []flows.Action{{Type: flows.ActOutput, Port: 3}}}
	entry := func(fl flows.Flow) []byte {
		fm, err := ofwire.AppendFlowMod(nil, 0, ofwire.FlowAdd, fl)
		if err != nil {
			t.Fatal(err)
		}
		return statFromFlowMod(fm)
	}
	// Collect two flow-stats requests, then answer the second first, each in two parts interleaved.
	reqs := make(chan ofwire.Message, 2)
	stop := f.serveRequests(func(m ofwire.Message) {
		if m.Type == ofwire.TypeMultipartRequest {
			reqs <- m
		}
	})
	defer stop()
	type result struct {
		fl  []flows.Flow
		err error
	}
	res := make(chan result, 2)
	for range 2 {
		go func() {
			fl, err := sw.DumpFlows(context.Background(), cookie, flows.CookieMask)
			res <- result{fl, err}
		}()
	}
	r1, r2 := <-reqs, <-reqs
	f.send(multipartReply(r2.Xid, ofwire.MultipartFlow, ofwire.MultipartReplyMore, entry(flowB)))
	f.send(multipartReply(r1.Xid, ofwire.MultipartFlow, ofwire.MultipartReplyMore, entry(flowA)))
	f.send(multipartReply(r2.Xid, ofwire.MultipartFlow, 0, entry(flowB)))
	f.send(multipartReply(r1.Xid, ofwire.MultipartFlow, 0, nil))
	a, b := <-res, <-res
	if a.err != nil || b.err != nil {
		t.Fatal(a.err, b.err)
	}
	got := [][]flows.Flow{a.fl, b.fl}
	oneA, twoB := []flows.Flow{flowA}, []flows.Flow{flowB, flowB}
	if !(reflect.DeepEqual(got[0], oneA) && reflect.DeepEqual(got[1], twoB) || reflect.DeepEqual(got[1], oneA) && reflect.DeepEqual(got[0], twoB)) {
		t.Fatalf("got %+v", got)
	}
}

// statFromFlowMod turns an ADD flow_mod into the flow-stats entry a switch would report.
func statFromFlowMod(fm []byte) []byte {
	rest := fm[48:]
	e := make([]byte, 48, 48+len(rest))
	binary.BigEndian.PutUint16(e, uint16(48+len(rest)))
	e[2] = fm[24]
	copy(e[12:14], fm[30:32])
	copy(e[24:32], fm[8:16])
	return append(e, rest...)
}

func TestApplyReportsErrorsBeforeBarrier(t *testing.T) {
	s := startServer(t, Config{})
	f, sw := connect(t, s, 5)
	var mu sync.Mutex
	var mods []ofwire.Message
	stop := f.serveRequests(func(m ofwire.Message) {
		switch m.Type {
		case ofwire.TypeFlowMod:
			mu.Lock()
			mods = append(mods, m)
			n := len(mods)
			mu.Unlock()
			if n == 2 || n == 4 { // refuse the second and fourth flow_mod
				f.c.Write(msg(ofwire.TypeError, m.Xid, append([]byte{0, 2, 0, 4}, m.Body[:min(len(m.Body), 56)]...)))
			}
		case ofwire.TypeBarrierRequest:
			f.c.Write(msg(ofwire.TypeBarrierReply, m.Xid, nil))
		}
	})
	defer stop()
	mk := func(i int) flows.Flow {
		return flows.Flow{Priority: uint16(100 + i), Cookie: flows.CookieOurs | uint64(i), Match: flows.Match{InPort: uint32(i)},
			Actions: []flows.Action{{Type: flows.ActOutput, Port: uint32(i)}, {Type: flows.ActSetTunDst, IP: flows.IPv4{198, 18, 0, byte(i)}}}}
	}
	deletes := []flows.Flow{mk(1)}
	modifies := []flows.Flow{mk(2)}
	adds := []flows.Flow{mk(3), mk(4), mk(5)}
	refused, err := sw.Apply(context.Background(), adds, modifies, deletes)
	if err != nil {
		t.Fatal(err)
	}
	if len(refused) != 2 || refused[0].Command != ofwire.FlowModifyStrict || !reflect.DeepEqual(refused[0].Flow, mk(2)) ||
		refused[1].Command != ofwire.FlowAdd || !reflect.DeepEqual(refused[1].Flow, mk(4)) {
		t.Fatalf("refused %+v", refused)
	}
	if refused[0].Err.Type != ofwire.ErrTypeBadAction || refused[0].Err.Code != 4 || !strings.Contains(refused[0].Error(), "BAD_ACTION/BAD_OUT_PORT") {
		t.Fatalf("error %v", refused[0])
	}
	mu.Lock()
	defer mu.Unlock()
	var cmds []ofwire.FlowModCommand
	for _, m := range mods {
		cmds = append(cmds, ofwire.FlowModCommand(m.Body[17]))
	}
	if !reflect.DeepEqual(cmds, []ofwire.FlowModCommand{ofwire.FlowDeleteStrict, ofwire.FlowModifyStrict, ofwire.FlowAdd, ofwire.FlowAdd, ofwire.FlowAdd}) {
		t.Fatalf("commands sent %v", cmds)
	}
	// A flow that cannot be encoded: nothing is sent.
	bad := flows.Flow{Actions: []flows.Action{{Type: flows.ActSetReg0, Value: 1 << 40}}}
	before := len(mods)
	mu.Unlock()
	_, err = sw.Apply(context.Background(), []flows.Flow{mk(9), bad}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "32 bits") {
		t.Fatalf("bad flow: %v", err)
	}
	if err := sw.Barrier(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(mods) != before {
		t.Fatalf("%d flow_mods sent for a refused batch", len(mods)-before)
	}
}

func TestBarrierTimeoutAndCancel(t *testing.T) {
	s := startServer(t, Config{RequestTimeout: 200 * time.Millisecond})
	f, sw := connect(t, s, 6)
	stop := f.serveRequests(func(ofwire.Message) {}) // never answers barriers
	defer stop()
	if err := sw.Barrier(context.Background()); err == nil || !strings.Contains(err.Error(), "no reply within") {
		t.Fatalf("barrier: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := sw.Barrier(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled barrier: %v", err)
	}
	sw.mu.Lock()
	n := len(sw.pending)
	sw.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d requests left pending", n)
	}
}

func TestReconnectReplacesOldConnection(t *testing.T) {
	s := startServer(t, Config{})
	f1, sw1 := connect(t, s, 7)
	_, sw2 := connect(t, s, 7)
	f1.expectClosed(5 * time.Second)
	<-sw1.Done()
	if !errors.Is(sw1.Err(), errReplaced) {
		t.Fatalf("old connection closed with %v", sw1.Err())
	}
	if s.Switch("0000000000000007") != sw2 {
		t.Fatal("new connection not listed")
	}
	waitFor(t, "three events", 5*time.Second, func() bool { return len(s.rec.snapshot()) == 3 })
	ev := s.rec.snapshot()
	if ev[0].kind != "connected" || ev[0].sw != sw1 || ev[1].kind != "disconnected" || ev[1].sw != sw1 || ev[2].kind != "connected" || ev[2].sw != sw2 {
		t.Fatalf("events %+v", ev)
	}
}

// TestHostilePeers: each hostile peer gets its connection closed, with a log line naming it and why, and the
// server still handshakes with a proper switch afterwards.
func TestHostilePeers(t *testing.T) {
	pbbEntry := func() []byte {
		fm, _ := ofwire.AppendFlowMod(nil, 0, ofwire.FlowAdd, flows.Flow{Priority: 1, Cookie: flows.CookieOurs, Match: flows.Match{InPort: 1}})
		e := statFromFlowMod(fm)
		instr := []byte{0, 4, 0, 16, 0, 0, 0, 0, 0, 27, 0, 8, 0, 0, 0, 0} // apply-actions [POP_PBB]
		e = append(e, instr...)
		binary.BigEndian.PutUint16(e, uint16(len(e)))
		return e
	}
	tests := []struct {
		name      string
		handshake bool   // complete the handshake first
		send      []byte // then send this
		closeW    bool   // and close the write side
		stays     bool   // the connection survives
		logPart   string // the close log line contains this
	}{
		{name: "truncated header", handshake: true, send: []byte{4, 2, 0}, closeW: true, logPart: "unexpected EOF"},
		{name: "oversized length, body cut", handshake: true, send: append(msg(ofwire.TypeEchoRequest, 1, nil)[:2], 0xff, 0xff, 0, 0, 0, 1, 1, 2, 3), closeW: true, logPart: "65527-byte body"},
		{name: "length below header", handshake: true, send: []byte{4, 2, 0, 4, 0, 0, 0, 1}, logPart: "shorter than the header"},
		{name: "unknown type", handshake: true, send: msg(99, 1, nil), logPart: "unknown message type 99"},
		{name: "unknown version after hello", handshake: true, send: []byte{7, 2, 0, 8, 0, 0, 0, 1}, logPart: "version 7"},
		{name: "port status too short", handshake: true, send: msg(ofwire.TypePortStatus, 0, make([]byte, 30)), logPart: "minimum is 80"},
		{name: "port status with bad reason", handshake: true, send: msg(ofwire.TypePortStatus, 0, append([]byte{9, 0, 0, 0, 0, 0, 0, 0}, make([]byte, 64)...)), logPart: "reason 9"},
		{name: "unsolicited flow-stats with POP_PBB", handshake: true, send: multipartReply(555, ofwire.MultipartFlow, 0, pbbEntry()), stays: true},
		{name: "garbage instead of hello", send: []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), logPart: "malformed"},
		{name: "features reply instead of hello", send: msg(ofwire.TypeFeaturesReply, 1, make([]byte, 24)), logPart: "before hello"},
		{name: "never speaks", logPart: "silent"},
	}
	s := startServer(t, Config{HandshakeTimeout: 300 * time.Millisecond, EchoInterval: time.Hour, DeadAfter: time.Hour})
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dpid := uint64(0x1000 + i)
			f := dialFake(t, s.Addr(), dpid)
			var sw *Switch
			if tc.handshake {
				f.handshake()
				waitFor(t, "registered", 5*time.Second, func() bool { sw = s.Switch(fmt.Sprintf("%016x", dpid)); return sw != nil })
			} else if m := f.read(); m.Type != ofwire.TypeHello {
				t.Fatalf("got %s", m.Type)
			}
			if tc.send != nil {
				f.send(tc.send)
			}
			if tc.closeW {
				f.c.(*net.TCPConn).CloseWrite()
			}
			if tc.stays {
				stop := f.serveRequests(func(m ofwire.Message) {
					if m.Type == ofwire.TypeBarrierRequest {
						f.c.Write(msg(ofwire.TypeBarrierReply, m.Xid, nil))
					}
				})
				defer stop()
				if err := sw.Barrier(context.Background()); err != nil {
					t.Fatalf("connection did not survive: %v", err)
				}
			} else {
				f.expectClosed(5 * time.Second)
				remote := f.c.LocalAddr().String()
				waitFor(t, "close log line", 5*time.Second, func() bool {
					for _, l := range strings.Split(s.logs.String(), "\n") {
						if strings.Contains(l, "openflow connection closed") && strings.Contains(l, remote) && strings.Contains(l, tc.logPart) {
							return true
						}
					}
					return false
				})
			}
			// The server still works for a proper switch.
			connect(t, s, 0xfeed)
		})
	}
}

func TestDumpFlowsWithPopPBBAndForeignMatch(t *testing.T) {
	s := startServer(t, Config{})
	f, sw := connect(t, s, 8)
	ours := flows.Flow{Priority: 5, Cookie: flows.CookieOurs | 3, Match: flows.Match{InPort: 2}, Actions: []flows.Action{{Type: flows.ActNormal}}}
	fm, _ := ofwire.AppendFlowMod(nil, 0, ofwire.FlowAdd, ours)
	good := statFromFlowMod(fm)
	pbb := append(bytes.Clone(good[:len(good)-16-8]), 0, 4, 0, 16, 0, 0, 0, 0, 0, 27, 0, 8, 0, 0, 0, 0) // apply [POP_PBB]
	binary.BigEndian.PutUint16(pbb, uint16(len(pbb)))
	// A match with vlan_vid (not expressible): in_port=2, vlan_vid=0x1005.
	foreign := make([]byte, 48)
	binary.BigEndian.PutUint64(foreign[24:], flows.CookieOurs|4)
	binary.BigEndian.PutUint16(foreign[12:], 7)
	foreign = append(foreign, 0, 1, 0, 18, 0x80, 0, 0, 4, 0, 0, 0, 2, 0x80, 0, 12, 2, 0x10, 5, 0, 0, 0, 0, 0, 0)
	binary.BigEndian.PutUint16(foreign, uint16(len(foreign)))
	var deleted []ofwire.Message
	var mu sync.Mutex
	stop := f.serveRequests(func(m ofwire.Message) {
		switch m.Type {
		case ofwire.TypeMultipartRequest:
			f.c.Write(multipartReply(m.Xid, ofwire.MultipartFlow, 0, append(append(bytes.Clone(good), pbb...), foreign...)))
		case ofwire.TypeFlowMod:
			mu.Lock()
			deleted = append(deleted, m)
			mu.Unlock()
		case ofwire.TypeBarrierRequest:
			f.c.Write(msg(ofwire.TypeBarrierReply, m.Xid, nil))
		}
	})
	defer stop()
	got, err := sw.DumpFlows(context.Background(), flows.CookieOurs, flows.CookieMask)
	if err != nil {
		t.Fatal(err)
	}
	// in any order (a read-back is in canonical order, not the switch's)
	if len(got) == 2 && len(got[0].Actions) > 0 && got[0].Actions[0].Type == ofwire.ActUnknown {
		got = append(got[1:], got[0])
	}
	if len(got) != 2 || !reflect.DeepEqual(got[0], ours) || got[1].Actions[0].Type != ofwire.ActUnknown {
		t.Fatalf("got %+v", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(deleted) != 1 || deleted[0].Body[17] != byte(ofwire.FlowDeleteStrict) || !bytes.Contains(deleted[0].Body, []byte{0x80, 0, 12, 2, 0x10, 5}) {
		t.Fatalf("foreign flow not deleted strictly: %+v", deleted)
	}
}

// TestReaderNotBlockedByStuckWriter: while a long Apply is stuck because the switch does not read, the reader
// still takes in the switch's messages (an echo request, then a port status), so a switch whose replies back up
// cannot deadlock with us.
func TestReaderNotBlockedByStuckWriter(t *testing.T) {
	s := startServer(t, Config{WriteTimeout: time.Minute, EchoInterval: time.Hour, DeadAfter: time.Hour})
	f, sw := connect(t, s, 9)
	many := make([]flows.Flow, 300000) // ~30 MB of flow_mods: more than the socket buffers hold
	for i := range many {
		many[i] = flows.Flow{Priority: 1, Cookie: flows.CookieOurs | uint64(i), Match: flows.Match{InPort: uint32(i + 1)}, Actions: []flows.Action{{Type: flows.ActNormal}}}
	}
	applied := make(chan error, 1)
	go func() {
		_, err := sw.Apply(context.Background(), many, nil, nil)
		applied <- err
	}()
	// Echo requests over a second: Apply fills the socket buffers within a few tens of milliseconds, so later
	// ones arrive while the writer is stuck (a reader that answered inline would then block for good).
	for i := range 100 {
		f.send(msg(ofwire.TypeEchoRequest, uint32(i), nil))
		time.Sleep(10 * time.Millisecond)
	}
	f.send(msg(ofwire.TypePortStatus, 0, append([]byte{0, 0, 0, 0, 0, 0, 0, 0}, portBytes(ofwire.Port{PortNo: 8, Name: "late"})...)))
	waitFor(t, "port status while the writer is stuck", 5*time.Second, func() bool {
		return slices.ContainsFunc(s.rec.snapshot(), func(e event) bool { return e.kind == "port" && e.port.Name == "late" })
	})
	select {
	case err := <-applied:
		t.Fatalf("Apply finished against a switch that reads nothing: %v", err)
	default:
	}
	f.c.Close()
	if err := <-applied; !errors.Is(err, ErrDisconnected) && !strings.Contains(err.Error(), "writing") {
		t.Fatalf("Apply after the switch went away: %v", err)
	}
}
