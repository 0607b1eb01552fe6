package fleet

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"

	"portmirror/ofwire"
)

// Counts are the messages a controller sent to one bridge (or to all of them).
type Counts struct {
	Messages  int64    // every message, echo requests included (a bundle add is one message)
	FlowMods  int64    // every flow_mod: OFPT_FLOW_MOD, and those carried in bundle adds
	ByCommand [5]int64 // flow_mods by command: ADD, MODIFY, MODIFY_STRICT, DELETE, DELETE_STRICT
	Bundled   int64    // of FlowMods, those carried in bundle adds (ONF bundle extension)
	Commits   int64    // bundle commit requests
	Barriers  int64
	FlowStats int64 // flow-stats requests (the controller reading a bridge's flows back)
}

// Add returns the sum of two counts.
func (c Counts) Add(o Counts) Counts {
	c.Messages += o.Messages
	c.FlowMods += o.FlowMods
	for i := range c.ByCommand {
		c.ByCommand[i] += o.ByCommand[i]
	}
	c.Bundled += o.Bundled
	c.Commits += o.Commits
	c.Barriers += o.Barriers
	c.FlowStats += o.FlowStats
	return c
}

// Sub returns c minus o (what happened since o was taken).
func (c Counts) Sub(o Counts) Counts {
	c.Messages -= o.Messages
	c.FlowMods -= o.FlowMods
	for i := range c.ByCommand {
		c.ByCommand[i] -= o.ByCommand[i]
	}
	c.Bundled -= o.Bundled
	c.Commits -= o.Commits
	c.Barriers -= o.Barriers
	c.FlowStats -= o.FlowStats
	return c
}

type counters struct {
	messages, flowMods, bundled, commits, barriers, flowStats atomic.Int64
	byCmd                                                     [5]atomic.Int64
}

func (c *counters) load() Counts {
	out := Counts{Messages: c.messages.Load(), FlowMods: c.flowMods.Load(), Bundled: c.bundled.Load(), Commits: c.commits.Load(),
		Barriers: c.barriers.Load(), FlowStats: c.flowStats.Load()}
	for i := range out.ByCommand {
		out.ByCommand[i] = c.byCmd[i].Load()
	}
	return out
}

// Meter is a TCP proxy between simulated bridges and a controller that counts, per datapath id, the messages the
// controller sends. Bridges dial Addr; the meter dials the upstream controller, which SetUpstream may change (a
// controller restarted on another port).
type Meter struct {
	ln net.Listener

	mu       sync.Mutex
	upstream string
	per      map[uint64]*counters
	conns    map[net.Conn]struct{}
	closed   bool
	wg       sync.WaitGroup
}

// NewMeter listens on 127.0.0.1:0 and forwards to upstream (host:port).
func NewMeter(upstream string) (*Meter, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fleet: meter: %w", err)
	}
	m := &Meter{ln: ln, upstream: upstream, per: map[uint64]*counters{}, conns: map[net.Conn]struct{}{}}
	m.wg.Add(1)
	go m.accept()
	return m, nil
}

// Addr is where bridges dial.
func (m *Meter) Addr() string { return m.ln.Addr().String() }

// SetUpstream makes new connections go to addr; established ones stay.
func (m *Meter) SetUpstream(addr string) {
	m.mu.Lock()
	m.upstream = addr
	m.mu.Unlock()
}

// Of returns the counts of one datapath.
func (m *Meter) Of(dpid uint64) Counts {
	m.mu.Lock()
	c := m.per[dpid]
	m.mu.Unlock()
	if c == nil {
		return Counts{}
	}
	return c.load()
}

// All returns the counts of every datapath.
func (m *Meter) All() map[uint64]Counts {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[uint64]Counts, len(m.per))
	for dp, c := range m.per {
		out[dp] = c.load()
	}
	return out
}

// Total is the sum over every datapath.
func (m *Meter) Total() Counts {
	var t Counts
	for _, c := range m.All() {
		t = t.Add(c)
	}
	return t
}

// Close stops accepting, closes every connection and waits for the meter's goroutines.
func (m *Meter) Close() error {
	err := m.ln.Close()
	m.mu.Lock()
	m.closed = true
	for c := range m.conns {
		c.Close()
	}
	m.mu.Unlock()
	m.wg.Wait()
	return err
}

func (m *Meter) track(c net.Conn) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		c.Close()
		return false
	}
	m.conns[c] = struct{}{}
	return true
}

func (m *Meter) untrack(c net.Conn) {
	m.mu.Lock()
	delete(m.conns, c)
	m.mu.Unlock()
	c.Close()
}

func (m *Meter) accept() {
	defer m.wg.Done()
	for {
		down, err := m.ln.Accept()
		if err != nil {
			return
		}
		m.mu.Lock()
		upstream := m.upstream
		m.mu.Unlock()
		up, err := net.Dial("tcp", upstream)
		if err != nil {
			down.Close() // the bridge retries with its backoff
			continue
		}
		if !m.track(down) || !m.track(up) {
			down.Close()
			up.Close()
			return
		}
		// The datapath id is known once the bridge's FEATURES_REPLY passed; the controller sends nothing that
		// counts before it asked for features.
		var dp atomic.Pointer[counters]
		m.wg.Add(2)
		go func() {
			defer m.wg.Done()
			m.pipe(up, down, func(h [8]byte, body []byte) {
				if ofwire.Type(h[1]) == ofwire.TypeFeaturesReply && len(body) >= 8 {
					id := binary.BigEndian.Uint64(body[:8])
					m.mu.Lock()
					c := m.per[id]
					if c == nil {
						c = &counters{}
						m.per[id] = c
					}
					m.mu.Unlock()
					dp.Store(c)
				}
			})
			m.untrack(up)
			m.untrack(down)
		}()
		go func() {
			defer m.wg.Done()
			m.pipe(down, up, func(h [8]byte, body []byte) {
				c := dp.Load()
				if c == nil {
					return
				}
				c.messages.Add(1)
				switch ofwire.Type(h[1]) {
				case ofwire.TypeFlowMod:
					c.countFlowMod(body)
				case ofwire.TypeExperimenter:
					c.countExperimenter(body)
				case ofwire.TypeBarrierRequest:
					c.barriers.Add(1)
				case ofwire.TypeMultipartRequest:
					if len(body) >= 2 && binary.BigEndian.Uint16(body[:2]) == 1 { // OFPMP_FLOW
						c.flowStats.Add(1)
					}
				}
			})
			m.untrack(up)
			m.untrack(down)
		}()
	}
}

// countFlowMod counts one flow_mod, given its body (after the header).
func (c *counters) countFlowMod(body []byte) {
	c.flowMods.Add(1)
	// ofp_flow_mod after the header: cookie 8, cookie_mask 8, table_id 1, command 1
	if len(body) > 17 && body[17] < 5 {
		c.byCmd[body[17]].Add(1)
	}
}

// countExperimenter counts the ONF bundle extension's messages: a flow_mod inside a bundle add counts as a
// flow_mod, and a commit request as a commit.
func (c *counters) countExperimenter(body []byte) {
	// experimenter 4, exp_type 4, then for a bundle add: bundle_id 4, pad 2, flags 2, the inner message; for a
	// bundle control: bundle_id 4, type 2, flags 2.
	if len(body) < 16 || binary.BigEndian.Uint32(body) != ofwire.ONFExperimenter {
		return
	}
	switch binary.BigEndian.Uint32(body[4:]) {
	case ofwire.ONFBundleAdd:
		inner := body[16:]
		if len(inner) >= ofwire.HeaderLen && ofwire.Type(inner[1]) == ofwire.TypeFlowMod {
			c.bundled.Add(1)
			c.countFlowMod(inner[ofwire.HeaderLen:])
		}
	case ofwire.ONFBundleControl:
		if binary.BigEndian.Uint16(body[12:]) == ofwire.BundleCommitRequest {
			c.commits.Add(1)
		}
	}
}

// pipe copies OpenFlow messages from src to dst, calling see on each before forwarding it.
func (m *Meter) pipe(dst, src net.Conn, see func(h [8]byte, body []byte)) {
	r := bufio.NewReaderSize(src, 4<<10)
	w := bufio.NewWriterSize(dst, 4<<10)
	var h [8]byte
	body := make([]byte, 0, 4<<10)
	for {
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(h[2:4]))
		if n < 8 {
			return
		}
		body = append(body[:0], make([]byte, n-8)...)
		if _, err := io.ReadFull(r, body); err != nil {
			return
		}
		see(h, body)
		if _, err := w.Write(h[:]); err != nil {
			return
		}
		if _, err := w.Write(body); err != nil {
			return
		}
		if r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return
			}
		}
	}
}
