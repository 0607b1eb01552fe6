package controller

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"portmirror/flows"
	"portmirror/model"
	"portmirror/ofwire"
)

// Probe timing: a probe frame is sent again every ProbeRetry (the first copy toward a new tunnel destination can
// be lost while OVS resolves the peer's address) until it is caught or ProbeTimeout has passed.
const (
	ProbeTimeout = 2 * time.Second
	ProbeRetry   = 250 * time.Millisecond
	// probeCatchSeconds is the hard timeout of a catch flow. Each probe adds it again (which restarts the
	// timeout); it is never deleted otherwise, so that back-to-back probes do not race the switch's flow caches
	// (a probe frame meeting a stale cache entry is only dropped: it is retried, and never reaches a VM).
	probeCatchSeconds = 30
)

// prober tracks the probes under way: who waits for which nonce.
type prober struct {
	mu      sync.Mutex
	waiting map[uint64]chan probeCatch // by nonce
}

// probeCatch is a probe frame the controller received back.
type probeCatch struct {
	dpid    string
	inPort  uint32
	attempt uint8
	at      time.Time
}

func newProber() *prober {
	return &prober{waiting: map[uint64]chan probeCatch{}}
}

// packetIn is the server's OnPacketIn: it hands a probe frame to the probe waiting for its nonce.
func (p *prober) packetIn(sw *Switch, pi ofwire.PacketIn) {
	nonce, attempt, ok := flows.ParseProbeFrame(pi.Data)
	if !ok {
		return
	}
	p.mu.Lock()
	ch := p.waiting[nonce]
	p.mu.Unlock()
	if ch == nil {
		return
	}
	select {
	case ch <- probeCatch{dpid: sw.DatapathID(), inPort: pi.InPort, attempt: attempt, at: time.Now()}:
	default: // an earlier attempt was caught already
	}
}

func (p *prober) wait() (uint64, chan probeCatch, func()) {
	ch := make(chan probeCatch, 1)
	p.mu.Lock()
	defer p.mu.Unlock()
	nonce := rand.Uint64()
	for p.waiting[nonce] != nil || nonce == 0 {
		nonce = rand.Uint64()
	}
	p.waiting[nonce] = ch
	return nonce, ch, func() {
		p.mu.Lock()
		delete(p.waiting, nonce)
		p.mu.Unlock()
	}
}

// ErrProbeNotLeading is returned by ProbeSession on a controller that does not lead: only the leader is every
// switch's MASTER, and a switch sends packet-ins to its MASTER only.
var ErrProbeNotLeading = errors.New("this controller does not lead the cluster: probes run at the leader")

// ProbeSession implements service.Prober: it checks that the session's flows are on its switches, injects a
// marked frame at its source port and waits for it at the destination's bridge (see flows/probe.go). An error
// means the probe could not run; an undelivered probe is a result with a reason.
func (c *Controller) ProbeSession(ctx context.Context, sessionUUID string) (model.ProbeResult, error) {
	if c.opts.Cluster != nil {
		if leading, _, _ := c.leading(); !leading {
			return model.ProbeResult{}, ErrProbeNotLeading
		}
	}
	res := model.ProbeResult{Path: []string{}}
	fail := func(format string, args ...any) (model.ProbeResult, error) {
		res.Reason = fmt.Sprintf(format, args...)
		return res, nil
	}
	c.mu.Lock()
	ps := c.plan
	c.mu.Unlock()
	if ps == nil {
		return fail("the controller has not reconciled yet")
	}
	route, ok := c.probeRoute(ctx, sessionUUID)
	if !ok {
		return fail("the controller has not compiled session %s yet", sessionUUID)
	}
	ses, _ := c.svc.Session(ctx, sessionUUID)
	encap := "tunnel"
	if pm, err := c.svc.PortMirror(ctx, ses.PortMirrorUUID); err == nil {
		if fn, err := c.svc.FlowNetwork(ctx, pm.FlowNetworkUUID); err == nil {
			encap = string(fn.Encapsulation)
		}
	}
	srcName, dstName := c.switchName(ctx, route.SourceBridge), c.switchName(ctx, route.DestBridge)
	if route.SourceBridge != "" {
		res.Path = append(res.Path, fmt.Sprintf("%s port %d (source, %s)", srcName, route.SourcePort, ses.Type))
	}
	if len(route.Reasons) > 0 {
		return fail("%s", joinReasons(route.Reasons))
	}
	if !route.Copies {
		return fail("session %s copies nothing at switch %s", sessionUUID, srcName)
	}
	src := c.srv.Switch(route.SourceBridge)
	if src == nil {
		return fail("switch %s of the source NIC is not connected", srcName)
	}
	have, err := src.DumpFlows(ctx, flows.CookieOurs, flows.CookieMask)
	if err != nil {
		return fail("reading the flows of switch %s: %v", srcName, err)
	}
	if f, missing := flows.MissingFlow(route.SourceFlows, have); missing {
		return fail("switch %s lacks the session's copy flow %q", srcName, f.String())
	}
	if route.Remote && route.Key == flows.ProbeTunnelKey {
		// Keys are allocated from 1: a session on key 0 would receive the probe frames.
		return fail("session %s has tunnel key %d, the probes' key: it cannot be probed", sessionUUID, route.Key)
	}
	var dst *Switch
	var caughtAt string // the last hop, once the frame is caught
	expect := route.SourceBridge
	if route.Remote {
		res.Path = append(res.Path, fmt.Sprintf("%s from %s tunnel port %d to %s (probe key %d; the session's key %d)", encap,
			srcName, route.Tunnel, route.PeerIP, flows.ProbeTunnelKey, route.Key))
		expect = route.DestBridge
		if dst = c.srv.Switch(route.DestBridge); dst == nil {
			return fail("switch %s of the destination NIC is not connected", dstName)
		}
		if route.DeliverFlow == nil {
			return fail("switch %s has no deliver flow for %s key %d", dstName, encap, route.Key)
		}
		have, err := dst.DumpFlows(ctx, flows.CookieOurs, flows.CookieMask)
		if err != nil {
			return fail("reading the flows of switch %s: %v", dstName, err)
		}
		if f, missing := flows.MissingFlow([]flows.Flow{*route.DeliverFlow}, have); missing {
			return fail("switch %s lacks the deliver flow for %s key %d: %q", dstName, encap, route.Key, f.String())
		}
		if err := dst.addCatchFlow(ctx, flows.ProbeCatchFlow(route.DeliverPort)); err != nil {
			return fail("installing the probe's catch flow on switch %s: %v", dstName, err)
		}
		caughtAt = fmt.Sprintf("%s tunnel port %d (caught there; the destination is port %d)", dstName,
			route.DeliverPort, route.DestPort)
	} else {
		caughtAt = fmt.Sprintf("%s port %d (destination), caught before it", srcName, route.DestPort)
	}

	nonce, caught, done := c.probes.wait()
	defer done()
	var srcMAC flows.MAC
	if nic, err := c.svc.VmNic(ctx, ses.SourceNicUUID); err == nil {
		srcMAC, _ = flows.ParseMAC(nic.MAC)
	}
	acts := route.CopyActions()
	deadline := time.NewTimer(ProbeTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(ProbeRetry)
	defer tick.Stop()
	var sent []time.Time
	for {
		if len(sent) < 256 {
			sent = append(sent, time.Now())
			frame := flows.ProbeFrame(srcMAC, nonce, uint8(len(sent)-1))
			if err := src.packetOut(ctx, route.SourcePort, acts, frame); err != nil {
				return fail("switch %s refused the probe frame: %v", srcName, err)
			}
		}
		select {
		case <-ctx.Done():
			return model.ProbeResult{}, fmt.Errorf("probe of session %s: %w", sessionUUID, ctx.Err())
		case got := <-caught:
			if got.dpid != expect {
				return fail("the probe frame came back from switch %s, not from %s", c.switchName(ctx, got.dpid), dstName)
			}
			ms := float64(got.at.Sub(sent[int(got.attempt)%len(sent)]).Microseconds()) / 1000
			res.Delivered, res.LatencyMs = true, &ms
			res.Path = append(res.Path, caughtAt)
			return res, nil
		case <-deadline.C:
			if route.Remote {
				return fail("no probe frame reached switch %s within %s (%d sent): %s from switch %s tunnel port %d to %s; check the flow network between the hosts",
					dstName, ProbeTimeout, len(sent), encap, srcName, route.Tunnel, route.PeerIP)
			}
			return fail("switch %s did not return the probe frame within %s (%d sent)", srcName, ProbeTimeout, len(sent))
		case <-tick.C:
		}
	}
}

func joinReasons(rs []string) string {
	out := rs[0]
	for _, r := range rs[1:] {
		out += "; " + r
	}
	return out
}

// switchName names a bridge by its host, for people.
func (c *Controller) switchName(ctx context.Context, dpid string) string {
	if dpid == "" {
		return ""
	}
	if host := c.view.HostOfDatapath(dpid); host != "" {
		if h, err := c.svc.Host(ctx, host); err == nil {
			return fmt.Sprintf("%s %s (%s)", h.Name, h.Bridge, dpid)
		}
	}
	return dpid
}

// addCatchFlow adds (again) a probe catch flow, with its hard timeout, and confirms the switch took it.
func (sw *Switch) addCatchFlow(ctx context.Context, f flows.Flow) error {
	return sw.checked(ctx, "the probe's catch flow", func(b []byte, xid uint32) ([]byte, error) {
		return ofwire.AppendFlowModHardTimeout(b, xid, ofwire.FlowAdd, f, probeCatchSeconds)
	})
}

// packetOut sends a frame through actions as if it had arrived on inPort, and confirms the switch took it.
func (sw *Switch) packetOut(ctx context.Context, inPort uint32, acts []flows.Action, frame []byte) error {
	return sw.checked(ctx, "packet-out", func(b []byte, xid uint32) ([]byte, error) {
		return ofwire.AppendPacketOut(b, xid, inPort, acts, frame)
	})
}

// checked sends one message and a barrier, and reports the switch's OFPT_ERROR for the message, if any.
func (sw *Switch) checked(ctx context.Context, what string, build func(b []byte, xid uint32) ([]byte, error)) error {
	xid := sw.allocXids(1)
	r := &request{what: what, done: make(chan struct{})}
	if err := sw.register(xid, r); err != nil {
		return err
	}
	var encErr error
	if err := sw.writeMsg(func(b []byte) []byte {
		out, err := build(b, xid)
		encErr = err
		return out
	}); err != nil {
		sw.deliver(xid, ofwire.Message{}, err)
	} else if encErr != nil {
		sw.deliver(xid, ofwire.Message{}, encErr)
	}
	berr := sw.Barrier(ctx)
	// The switch answers in order: an error for the message came before the barrier's reply.
	sw.deliver(xid, ofwire.Message{}, nil) // no-op when the error was delivered already
	<-r.done
	if r.err != nil {
		return r.err
	}
	return berr
}
