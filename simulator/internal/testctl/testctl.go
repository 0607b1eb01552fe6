// Package testctl is a minimal OpenFlow 1.3 controller for the simulator's tests (the simulator never talks to
// the real controller in its own tests): it programs every switch that connects and counts the ones confirmed.
package testctl

import (
	"bufio"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"portmirror/ofwire"
)

// Controller, per connection: sends hello, a features request and a port-desc request; on the features reply
// sends the flow_mods Program returns for the switch's datapath id, then a barrier; on the barrier reply counts
// the datapath as programmed. It answers echo requests for as long as the connection lives (a slow run must not
// make a switch reconnect) and reports every OFPT_ERROR as a test error.
type Controller struct {
	t       testing.TB
	ln      net.Listener
	program func(dpid uint64) []byte
	role    ofwire.Role // asked for after the hello, unless NOCHANGE
	gen     uint64

	mu         sync.Mutex
	conns      []net.Conn
	programmed map[uint64]bool
	wg         sync.WaitGroup
}

// Start listens on 127.0.0.1 and serves until the test ends (t.Cleanup closes the listener and every connection
// and waits for the goroutines). program returns encoded flow_mods (e.g. ofwire.AppendFlowMod) for a datapath id.
func Start(t testing.TB, program func(dpid uint64) []byte) *Controller {
	t.Helper()
	return StartAs(t, ofwire.RoleNoChange, 0, program)
}

// StartAs is Start for one of several controllers: right after the hello it asks every switch for role with
// generation id gen (a SLAVE's program must return nothing: the switch would refuse its flow_mods).
func StartAs(t testing.TB, role ofwire.Role, gen uint64, program func(dpid uint64) []byte) *Controller {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &Controller{t: t, ln: ln, program: program, role: role, gen: gen, programmed: map[uint64]bool{}}
	c.wg.Add(1)
	go c.accept()
	t.Cleanup(func() {
		ln.Close()
		c.mu.Lock()
		for _, nc := range c.conns {
			nc.Close()
		}
		c.mu.Unlock()
		c.wg.Wait()
	})
	return c
}

// Addr is where switches dial.
func (c *Controller) Addr() string { return c.ln.Addr().String() }

// Programmed is how many distinct datapaths have confirmed their flows with a barrier reply.
func (c *Controller) Programmed() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.programmed)
}

// WaitProgrammed polls until n distinct datapaths are programmed, failing the test after timeout.
func (c *Controller) WaitProgrammed(n int, timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for c.Programmed() < n {
		if time.Now().After(deadline) {
			c.t.Fatalf("only %d of %d switches programmed within %v", c.Programmed(), n, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (c *Controller) accept() {
	defer c.wg.Done()
	for {
		nc, err := c.ln.Accept()
		if err != nil {
			return
		}
		c.mu.Lock()
		c.conns = append(c.conns, nc)
		c.mu.Unlock()
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.serve(nc)
		}()
	}
}

func (c *Controller) serve(nc net.Conn) {
	r := bufio.NewReaderSize(nc, 4096)
	// next reads until a message of type want, answering echo requests and reporting errors on the way.
	next := func(want ofwire.Type) (ofwire.Message, bool) {
		for {
			m, err := ofwire.ReadMessage(r, 0)
			if err != nil {
				return m, false
			}
			switch m.Type {
			case want:
				return m, true
			case ofwire.TypeEchoRequest:
				if _, err := nc.Write(ofwire.AppendEcho(nil, ofwire.TypeEchoReply, m.Xid, m.Body)); err != nil {
					return m, false
				}
			case ofwire.TypeError:
				e, err := ofwire.DecodeError(m.Body)
				if err != nil {
					c.t.Errorf("switch sent an error that does not decode (%v): %x", err, m.Body)
					continue
				}
				c.t.Errorf("switch refused a message: %v (data %x)", e, e.Data)
			}
		}
	}
	if _, ok := next(ofwire.TypeHello); !ok {
		return
	}
	out := ofwire.AppendHello(nil, 1)
	if c.role != ofwire.RoleNoChange {
		out = ofwire.AppendRole(out, ofwire.TypeRoleRequest, 5, c.role, c.gen)
	}
	out = ofwire.AppendEmpty(out, ofwire.TypeFeaturesRequest, 2)
	out = ofwire.AppendPortDescRequest(out, 3)
	if _, err := nc.Write(out); err != nil {
		return
	}
	m, ok := next(ofwire.TypeFeaturesReply)
	if !ok {
		return
	}
	f, err := ofwire.DecodeFeaturesReply(m.Body)
	if err != nil {
		c.t.Errorf("features reply: %v", err)
		return
	}
	// a copy: program may hand every connection the same slice
	out = ofwire.AppendEmpty(slices.Clone(c.program(f.DatapathID)), ofwire.TypeBarrierRequest, 4)
	if _, err := nc.Write(out); err != nil {
		return
	}
	if _, ok := next(ofwire.TypeBarrierReply); !ok {
		return
	}
	c.mu.Lock()
	c.programmed[f.DatapathID] = true
	c.mu.Unlock()
	next(255) // keep answering echoes until the connection closes
}
