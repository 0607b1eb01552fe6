package bench

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"portmirror/model"
	"portmirror/ofwire"
	"portmirror/simulator/dataplane"
	"portmirror/simulator/ofsim"
)

// tunnelPortNo is the OpenFlow number of the flow network's tunnel port on every simulated bridge.
const tunnelPortNo = 100

// simBridges runs one simulated bridge per fleet host (ports nic0..nic9 as 1..10 and the tunnel port of its
// cluster's flow network), dialling controller. Stop ends them all.
type simBridges struct {
	sw     []*ofsim.Switch
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startSimBridges starts hosts bridges; fnOf gives the flow network uuid of host h (for its tunnel port's name).
func startSimBridges(ctx context.Context, controller string, hosts int, fnOf func(h int) string) (*simBridges, error) {
	ctx, cancel := context.WithCancel(ctx)
	s := &simBridges{cancel: cancel}
	for h := range hosts {
		dp := fleetDPID(h)
		br := dataplane.NewBridge("br-int", dataplane.MAC{0x0a, 0, byte(h >> 24), byte(h >> 16), byte(h >> 8), byte(h)})
		for j := range nicsPerHost {
			if err := br.AddPort(dataplane.Port{No: uint32(j + 1), Name: fmt.Sprintf("nic%d", j), Up: true,
				MAC: dataplane.MAC{0x0e, byte(j), byte(h >> 24), byte(h >> 16), byte(h >> 8), byte(h)}}); err != nil {
				cancel()
				return nil, err
			}
		}
		if err := br.AddPort(dataplane.Port{No: tunnelPortNo, Name: model.TunnelPortName(fnOf(h)), Up: true,
			MAC: dataplane.MAC{0x0e, 0xff, byte(h >> 24), byte(h >> 16), byte(h >> 8), byte(h)}}); err != nil {
			cancel()
			return nil, err
		}
		sw := ofsim.New(ofsim.Config{Controller: controller, DatapathID: dp, Bridge: br, ProbeInterval: 15 * time.Second,
			MinBackoff: 20 * time.Millisecond, MaxBackoff: time.Second})
		s.sw = append(s.sw, sw)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			_ = sw.Run(ctx)
		}()
	}
	return s, nil
}

func (s *simBridges) connected() int {
	n := 0
	for _, sw := range s.sw {
		if sw.Connected() {
			n++
		}
	}
	return n
}

func (s *simBridges) stop() {
	s.cancel()
	s.wg.Wait()
}

// raiseFileLimit lifts the soft RLIMIT_NOFILE to the hard limit (processes started afterwards inherit it) and
// returns the new soft limit.
func raiseFileLimit() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return 0, err
		}
	}
	return rl.Cur, nil
}

// countingProxy sits between simulated bridges and the controller and counts the messages the controller sends,
// by type: what the bridges received.
type countingProxy struct {
	ln       net.Listener
	upstream string
	flowMods atomic.Int64
	byCmd    [5]atomic.Int64 // flow_mods by command: ADD, MODIFY, MODIFY_STRICT, DELETE, DELETE_STRICT
	barriers atomic.Int64
	stats    atomic.Int64 // flow-stats requests (multipart type FLOW)
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    []net.Conn
}

func startProxy(upstream string) (*countingProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &countingProxy{ln: ln, upstream: upstream}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

func (p *countingProxy) addr() string { return p.ln.Addr().String() }

func (p *countingProxy) accept() {
	defer p.wg.Done()
	for {
		down, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.upstream)
		if err != nil {
			down.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, down, up)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() {
			defer p.wg.Done()
			_, _ = io.Copy(up, down)
			up.Close()
			down.Close()
		}()
		go func() {
			defer p.wg.Done()
			p.countCopy(down, up)
			up.Close()
			down.Close()
		}()
	}
}

// countCopy copies controller → switch message by message, counting them.
func (p *countingProxy) countCopy(dst, src net.Conn) {
	r := bufio.NewReaderSize(src, 64<<10)
	w := bufio.NewWriterSize(dst, 64<<10)
	var h [8]byte
	buf := make([]byte, 0, 64<<10)
	for {
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(h[2:4]))
		if n < 8 {
			return
		}
		buf = append(buf[:0], h[:]...)
		buf = append(buf, make([]byte, n-8)...)
		if _, err := io.ReadFull(r, buf[8:]); err != nil {
			return
		}
		switch ofwire.Type(h[1]) {
		case ofwire.TypeFlowMod:
			p.flowMods.Add(1)
			if n > 25 && buf[25] < 5 { // ofp_flow_mod: header 8, cookie 8, cookie_mask 8, table_id 1, command 1
				p.byCmd[buf[25]].Add(1)
			}
		case ofwire.TypeBarrierRequest:
			p.barriers.Add(1)
		case ofwire.TypeMultipartRequest:
			if n >= 10 && binary.BigEndian.Uint16(buf[8:10]) == 1 { // OFPMP_FLOW
				p.stats.Add(1)
			}
		}
		if _, err := w.Write(buf); err != nil {
			return
		}
		if r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return
			}
		}
	}
}

func (p *countingProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
