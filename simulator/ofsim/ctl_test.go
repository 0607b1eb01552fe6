package ofsim

import (
	"bufio"
	"context"
	"encoding/binary"
	"net"
	"sync"
	"testing"
	"time"

	"portmirror/ofwire"
	"portmirror/simulator/dataplane"
)

// testCtl is a minimal OpenFlow controller for tests: it accepts connections and hands out each one.
type testCtl struct {
	t     testing.TB
	ln    net.Listener
	conns chan *ctlConn
}

type ctlConn struct {
	t    testing.TB
	nc   net.Conn
	msgs chan ofwire.Message
	mu   sync.Mutex
	xid  uint32
}

func newCtl(t testing.TB) *testCtl {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &testCtl{t: t, ln: ln, conns: make(chan *ctlConn, 2048)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			cc := &ctlConn{t: t, nc: nc, msgs: make(chan ofwire.Message, 4096), xid: 1000}
			go cc.read()
			c.conns <- cc
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return c
}

func (c *ctlConn) read() {
	defer close(c.msgs)
	r := bufio.NewReader(c.nc)
	for {
		m, err := ofwire.ReadMessage(r, 0)
		if err != nil {
			return
		}
		c.msgs <- m
	}
}

// accept waits for the next connection and completes the hello exchange.
func (c *testCtl) accept() *ctlConn {
	c.t.Helper()
	select {
	case cc := <-c.conns:
		c.t.Cleanup(func() { cc.nc.Close() })
		h := cc.expect(ofwire.TypeHello, 0)
		if h.Version != ofwire.Version {
			c.t.Fatalf("switch hello has version %d", h.Version)
		}
		cc.send(ofwire.AppendHello(nil, 1))
		return cc
	case <-time.After(10 * time.Second):
		c.t.Fatal("no switch connected within 10s")
		return nil
	}
}

func (c *ctlConn) nextXid() uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.xid++
	return c.xid
}

func (c *ctlConn) send(b []byte) {
	c.t.Helper()
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("controller write: %v", err)
	}
}

// next returns the next message, skipping echo requests (answered) and port-status (unless asked for).
func (c *ctlConn) next(timeout time.Duration, keepPortStatus bool) (ofwire.Message, bool) {
	deadline := time.After(timeout)
	for {
		select {
		case m, ok := <-c.msgs:
			if !ok {
				return m, false
			}
			if m.Type == ofwire.TypeEchoRequest {
				c.send(ofwire.AppendEcho(nil, ofwire.TypeEchoReply, m.Xid, m.Body))
				continue
			}
			if m.Type == ofwire.TypePortStatus && !keepPortStatus {
				continue
			}
			return m, true
		case <-deadline:
			return ofwire.Message{}, false
		}
	}
}

// expect waits for a message of type typ (and xid, unless 0).
func (c *ctlConn) expect(typ ofwire.Type, xid uint32) ofwire.Message {
	c.t.Helper()
	m, ok := c.next(10*time.Second, typ == ofwire.TypePortStatus)
	if !ok {
		c.t.Fatalf("no %v (xid %d) from the switch within 10s", typ, xid)
	}
	if m.Type != typ || (xid != 0 && m.Xid != xid) {
		detail := ""
		if m.Type == ofwire.TypeError {
			e, _ := ofwire.DecodeError(m.Body)
			detail = e.Error()
		}
		c.t.Fatalf("got %v xid %d %s, want %v xid %d", m.Type, m.Xid, detail, typ, xid)
	}
	return m
}

// barrier sends a barrier and returns every message that arrived before its reply.
func (c *ctlConn) barrier() []ofwire.Message {
	c.t.Helper()
	xid := c.nextXid()
	c.send(ofwire.AppendEmpty(nil, ofwire.TypeBarrierRequest, xid))
	var before []ofwire.Message
	for {
		// 30s: a barrier may follow thousands of flow_mods, on a loaded machine under the race detector.
		m, ok := c.next(30*time.Second, false)
		if !ok {
			c.t.Fatal("no barrier reply within 30s")
		}
		if m.Type == ofwire.TypeBarrierReply && m.Xid == xid {
			return before
		}
		before = append(before, m)
	}
}

// multipart sends a request and reassembles the reply parts; it returns the bodies and the part count.
func (c *ctlConn) multipart(typ uint16, body []byte) ([]byte, int) {
	c.t.Helper()
	xid := c.nextXid()
	b := appendHeader(nil, ofwire.TypeMultipartRequest, xid)
	b = binary.BigEndian.AppendUint16(b, typ)
	b = append(b, 0, 0, 0, 0, 0, 0)
	b = append(b, body...)
	c.send(finish(b, 0))
	var all []byte
	parts := 0
	for {
		m := c.expect(ofwire.TypeMultipartReply, xid)
		r, err := ofwire.DecodeMultipartReply(m.Body)
		if err != nil {
			c.t.Fatal(err)
		}
		if r.Type != typ {
			c.t.Fatalf("multipart reply of type %d, want %d", r.Type, typ)
		}
		parts++
		all = append(all, r.Body...)
		if !r.More() {
			return all, parts
		}
	}
}

func flowStatsRequest(table uint8, outPort uint32, cookie, mask uint64, m dataplane.Match) []byte {
	b := []byte{table, 0, 0, 0}
	b = binary.BigEndian.AppendUint32(b, outPort)
	b = binary.BigEndian.AppendUint32(b, ofwire.GroupAny)
	b = append(b, 0, 0, 0, 0)
	b = binary.BigEndian.AppendUint64(b, cookie)
	b = binary.BigEndian.AppendUint64(b, mask)
	return appendMatch(b, m)
}

func (c *ctlConn) flowStats(cookie, mask uint64) ([]ofwire.FlowStat, int) {
	c.t.Helper()
	body, parts := c.multipart(ofwire.MultipartFlow, flowStatsRequest(0xff, ofwire.PortAny, cookie, mask, dataplane.Match{}))
	fs, err := ofwire.DecodeFlowStats(body)
	if err != nil {
		c.t.Fatalf("decoding flow stats: %v", err)
	}
	return fs, parts
}

// flowMod encodes a flow_mod for an ovs-ofctl-syntax flow.
type fmOpts struct {
	cmd        ofwire.FlowModCommand
	flags      uint16
	cookieMask uint64
	outPort    uint32
}

func flowModMsg(t testing.TB, xid uint32, flow string, o fmOpts) []byte {
	t.Helper()
	f, err := dataplane.ParseFlow(flow)
	if err != nil {
		t.Fatal(err)
	}
	return encodeFlowMod(xid, f, o)
}

func encodeFlowMod(xid uint32, f dataplane.Flow, o fmOpts) []byte {
	if o.outPort == 0 {
		o.outPort = ofwire.PortAny
	}
	b := appendHeader(nil, ofwire.TypeFlowMod, xid)
	b = binary.BigEndian.AppendUint64(b, f.Cookie)
	b = binary.BigEndian.AppendUint64(b, o.cookieMask)
	b = append(b, f.Table, byte(o.cmd))
	b = binary.BigEndian.AppendUint16(b, 0)
	b = binary.BigEndian.AppendUint16(b, 0)
	b = binary.BigEndian.AppendUint16(b, f.Priority)
	b = binary.BigEndian.AppendUint32(b, ofwire.NoBuffer)
	b = binary.BigEndian.AppendUint32(b, o.outPort)
	b = binary.BigEndian.AppendUint32(b, ofwire.GroupAny)
	b = binary.BigEndian.AppendUint16(b, o.flags)
	b = append(b, 0, 0)
	b = appendMatch(b, f.Match)
	b = appendInstructions(b, &f)
	return finish(b, 0)
}

// startSwitch runs a switch with ports p1..pN against addr until the test ends.
func startSwitch(t testing.TB, addr string, dpid uint64, nports int, tune func(*Config)) *Switch {
	t.Helper()
	br := dataplane.NewBridge("br-int", dataplane.MAC{2, 0, 0, 0, 0xff, 1})
	for i := 1; i <= nports; i++ {
		if err := br.AddPort(dataplane.Port{No: uint32(i), Name: "p" + string(rune('0'+i)), Up: true, MAC: dataplane.MAC{2, 0, 0, 0, 1, byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := Config{Controller: addr, DatapathID: dpid, Bridge: br, MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}
	if tune != nil {
		tune(&cfg)
	}
	sw := New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = sw.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return sw
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
