package ofsim

import (
	"encoding/binary"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"portmirror/flows"
	"portmirror/ofwire"
	"portmirror/simulator/dataplane"
)

func TestHandshakeFeaturesPortsEcho(t *testing.T) {
	ctl := newCtl(t)
	sw := startSwitch(t, ctl.ln.Addr().String(), 0xabc, 3, func(c *Config) { c.ProbeInterval = 200 * time.Millisecond })
	cc := ctl.accept()

	cc.send(ofwire.AppendEmpty(nil, ofwire.TypeFeaturesRequest, 7))
	f, err := ofwire.DecodeFeaturesReply(cc.expect(ofwire.TypeFeaturesReply, 7).Body)
	if err != nil || f.DatapathID != 0xabc {
		t.Fatalf("features: %+v, %v; want datapath id 0xabc", f, err)
	}
	waitFor(t, "connected", sw.Connected)

	body, _ := cc.multipart(ofwire.MultipartPortDesc, nil)
	ports, err := ofwire.DecodePortDesc(body)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range ports {
		names = append(names, fmt.Sprintf("%s=%s up=%v", dataplane.PortString(p.PortNo), p.Name, p.Up()))
	}
	want := []string{"1=p1 up=true", "2=p2 up=true", "3=p3 up=true", "LOCAL=br-int up=true"}
	if !slices.Equal(names, want) {
		t.Errorf("port-desc: %q, want %q", names, want)
	}

	cc.send(ofwire.AppendEcho(nil, ofwire.TypeEchoRequest, 9, []byte("ping")))
	if m := cc.expect(ofwire.TypeEchoReply, 9); string(m.Body) != "ping" {
		t.Errorf("echo reply carries %q, want ping", m.Body)
	}
	// The switch probes a silent controller with its own echo request.
	select {
	case m := <-cc.msgs:
		if m.Type != ofwire.TypeEchoRequest {
			t.Fatalf("got %v, want the switch's echo request", m.Type)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the switch never probed a silent controller")
	}
}

func TestVersionNegotiationFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	startSwitch(t, ln.Addr().String(), 1, 1, nil)
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// An OpenFlow 1.0-only hello (version 1, no bitmap).
	if _, err := nc.Write([]byte{1, 0, 0, 8, 0, 0, 0, 1}); err != nil {
		t.Fatal(err)
	}
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	var got []byte
	for {
		n, err := nc.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			break
		}
	}
	// The switch's hello, then an error HELLO_FAILED/INCOMPATIBLE, then it closes.
	if len(got) < 16+12 || got[16+1] != byte(ofwire.TypeError) || binary.BigEndian.Uint32(got[24:]) != 0 {
		t.Fatalf("want hello then HELLO_FAILED error, got % x", got)
	}
}

func TestFlowModsStatsAndFilters(t *testing.T) {
	ctl := newCtl(t)
	sw := startSwitch(t, ctl.ln.Addr().String(), 1, 4, nil)
	cc := ctl.accept()
	ours := flows.CookieOurs
	for i, f := range []string{
		fmt.Sprintf("cookie=%#x,priority=100,in_port=1,actions=NORMAL,set_field:5->tun_id,set_field:198.18.0.2->tun_dst,output:4", ours|1),
		fmt.Sprintf("cookie=%#x,priority=100,in_port=2,actions=output:3", ours|2),
		fmt.Sprintf("cookie=%#x,priority=100,in_port=3,actions=output:4", ours|3),
		"cookie=0x77,priority=0,actions=NORMAL",
	} {
		cc.send(flowModMsg(t, uint32(i+1), f, fmOpts{cmd: ofwire.FlowAdd}))
	}
	if errs := cc.barrier(); len(errs) != 0 {
		t.Fatalf("unexpected replies: %v", errs)
	}
	fs, _ := cc.flowStats(flows.CookieOurs, flows.CookieMask)
	if len(fs) != 3 {
		t.Fatalf("flow stats filtered by our cookie: %d flows, want 3", len(fs))
	}

	// Check-overlap: same priority, overlapping match is refused with OFPFMFC_OVERLAP and changes nothing.
	cc.send(flowModMsg(t, 50, "priority=100,dl_dst=02:00:00:00:00:01,actions=drop", fmOpts{cmd: ofwire.FlowAdd, flags: flagCheckOverlap}))
	errs := cc.barrier()
	if len(errs) != 1 || errs[0].Type != ofwire.TypeError || errs[0].Xid != 50 {
		t.Fatalf("want one error for xid 50 before the barrier reply, got %v", errs)
	}
	if e, _ := ofwire.DecodeError(errs[0].Body); e.Type != dataplane.ErrTypeFlowModFailed || e.Code != dataplane.FlowModOverlap {
		t.Fatalf("got %v, want FLOW_MOD_FAILED/OVERLAP", e)
	}
	if n := sw.Bridge().FlowCount(); n != 4 {
		t.Fatalf("refused flow changed the table: %d flows", n)
	}
	// Without check-overlap the same flow is added.
	cc.send(flowModMsg(t, 51, "priority=100,dl_dst=02:00:00:00:00:01,actions=drop", fmOpts{cmd: ofwire.FlowAdd}))
	cc.barrier()

	// Modify-strict changes one flow's actions only.
	cc.send(flowModMsg(t, 52, "priority=100,in_port=2,actions=output:1", fmOpts{cmd: ofwire.FlowModifyStrict}))
	// Delete by out_port: only the flow that outputs to 4 from in_port=3 and the in_port=1 flow output to 4.
	cc.send(flowModMsg(t, 53, "priority=1,actions=drop", fmOpts{cmd: ofwire.FlowDelete, outPort: 4}))
	if errs := cc.barrier(); len(errs) != 0 {
		t.Fatalf("unexpected replies: %v", errs)
	}
	var got []string
	for _, f := range sw.Bridge().Flows(dataplane.AllFlows()) {
		got = append(got, f.String())
	}
	want := []string{
		fmt.Sprintf("table=0,priority=100,cookie=%#x,in_port=2,actions=output:1", ours|2),
		"table=0,priority=100,dl_dst=02:00:00:00:00:01,actions=drop",
		"table=0,priority=0,cookie=0x77,actions=NORMAL",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("after modify-strict and delete out_port=4:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Delete by cookie under mask removes only ours; delete-strict needs the exact priority.
	cc.send(flowModMsg(t, 54, "priority=0,actions=drop", fmOpts{cmd: ofwire.FlowDeleteStrict}))
	cc.send(flowModMsg(t, 55, fmt.Sprintf("cookie=%#x,actions=drop", ours), fmOpts{cmd: ofwire.FlowDelete, cookieMask: flows.CookieMask}))
	cc.barrier()
	fs, _ = cc.flowStats(0, 0)
	if len(fs) != 1 || fs[0].Flow.Priority != 100 || fs[0].Flow.Cookie != 0 {
		t.Fatalf("after delete-strict priority 0 and delete by cookie: %+v", fs)
	}

	// A flow written by the controller's own encoder reads back the same through ofwire's decoder.
	pf := flows.Flow{Table: 0, Priority: 200, Cookie: ours | 9, Match: flows.Match{InPort: 2},
		Actions: []flows.Action{{Type: flows.ActNormal}, {Type: flows.ActSetTunID, Value: 7}, {Type: flows.ActOutput, Port: 4}}}
	b, err := ofwire.AppendFlowMod(nil, 60, ofwire.FlowAdd, pf)
	if err != nil {
		t.Fatal(err)
	}
	cc.send(b)
	if errs := cc.barrier(); len(errs) != 0 {
		t.Fatalf("ofwire flow_mod refused: %v", errs)
	}
	fs, _ = cc.flowStats(ours, flows.CookieMask)
	if len(fs) != 1 || !slices.Equal(fs[0].Flow.Actions, pf.Actions) || fs[0].Flow.Match != pf.Match {
		t.Fatalf("flow read back: %+v, want %+v", fs, pf)
	}
}

func TestLargeFlowStatsAreSplit(t *testing.T) {
	ctl := newCtl(t)
	startSwitch(t, ctl.ln.Addr().String(), 1, 2, nil)
	cc := ctl.accept()
	const n = 3000
	var batch []byte
	for i := range n {
		f := fmt.Sprintf("cookie=%#x,priority=10,in_port=1,dl_dst=02:00:00:%02x:%02x:01,actions=set_field:%d->tun_id,set_field:198.18.0.2->tun_dst,output:2",
			flows.CookieOurs|uint64(i), i>>8, i&0xff, i)
		batch = append(batch, flowModMsg(t, uint32(i+1), f, fmOpts{cmd: ofwire.FlowAdd})...)
	}
	cc.send(batch)
	if errs := cc.barrier(); len(errs) != 0 {
		t.Fatalf("unexpected replies: %d, first %v", len(errs), errs[0])
	}
	fs, parts := cc.flowStats(flows.CookieOurs, flows.CookieMask)
	if len(fs) != n {
		t.Fatalf("flow stats: %d flows, want %d", len(fs), n)
	}
	if parts < 2 {
		t.Fatalf("%d flows came in %d reply, want several with REPLY_MORE", n, parts)
	}
	seen := map[uint64]bool{}
	for _, f := range fs {
		seen[f.Flow.Cookie] = true
	}
	if len(seen) != n {
		t.Fatalf("%d distinct cookies, want %d", len(seen), n)
	}
	t.Logf("%d flows in %d multipart replies", n, parts)
}

func TestBarrierOrdering(t *testing.T) {
	ctl := newCtl(t)
	startSwitch(t, ctl.ln.Addr().String(), 1, 2, nil)
	cc := ctl.accept()
	// Interleave good and bad flow-mods and barriers: each error must come before the barrier that follows it.
	var b []byte
	for i := range 20 {
		if i%3 == 0 {
			b = append(b, flowModMsg(t, uint32(100+i), "priority=1,in_port=1,actions=output:ANY", fmOpts{cmd: ofwire.FlowAdd})...)
		} else {
			b = append(b, flowModMsg(t, uint32(100+i), fmt.Sprintf("priority=%d,in_port=1,actions=output:2", i), fmOpts{cmd: ofwire.FlowAdd})...)
		}
		b = append(b, ofwire.AppendEmpty(nil, ofwire.TypeBarrierRequest, uint32(200+i))...)
	}
	cc.send(b)
	for i := range 20 {
		if i%3 == 0 {
			if m := cc.expect(ofwire.TypeError, uint32(100+i)); m.Xid != uint32(100+i) {
				t.Fatal("error out of order")
			}
		}
		cc.expect(ofwire.TypeBarrierReply, uint32(200+i))
	}
}

func TestPortStatus(t *testing.T) {
	ctl := newCtl(t)
	sw := startSwitch(t, ctl.ln.Addr().String(), 1, 1, nil)
	cc := ctl.accept()
	waitFor(t, "connected", sw.Connected)
	check := func(reason ofwire.PortReason, name string, up bool) {
		t.Helper()
		ps, err := ofwire.DecodePortStatus(cc.expect(ofwire.TypePortStatus, 0).Body)
		if err != nil || ps.Reason != reason || ps.Port.Name != name || ps.Port.Up() != up {
			t.Fatalf("port status %+v (%v), want reason %d name %s up %v", ps, err, reason, name, up)
		}
	}
	if err := sw.AddPort(dataplane.Port{No: 7, Name: "vnet7", Up: true}); err != nil {
		t.Fatal(err)
	}
	check(ofwire.PortAdded, "vnet7", true)
	if err := sw.SetPortUp(7, false); err != nil {
		t.Fatal(err)
	}
	check(ofwire.PortModified, "vnet7", false)
	if err := sw.RemovePort(7); err != nil {
		t.Fatal(err)
	}
	check(ofwire.PortDeleted, "vnet7", false)
	if err := sw.AddPort(dataplane.Port{No: 1, Name: "dup"}); err == nil {
		t.Fatal("adding a port with a number in use succeeded")
	}
}

func TestReconnectKeepsFlows(t *testing.T) {
	ctl := newCtl(t)
	sw := startSwitch(t, ctl.ln.Addr().String(), 1, 2, nil)
	cc := ctl.accept()
	cc.send(flowModMsg(t, 1, "priority=5,in_port=1,actions=output:2", fmOpts{cmd: ofwire.FlowAdd}))
	cc.barrier()
	cc.nc.Close() // the controller goes away
	cc2 := ctl.accept()
	waitFor(t, "second connection", func() bool { return sw.Connects() == 2 })
	if fs, _ := cc2.flowStats(0, 0); len(fs) != 1 {
		t.Fatalf("after reconnect: %d flows, want the 1 installed before (fail_mode secure)", len(fs))
	}

	// The controller is down for a while: the switch keeps retrying with backoff and comes back.
	addr := ctl.ln.Addr().String()
	ctl.ln.Close()
	cc2.nc.Close()
	waitFor(t, "disconnected", func() bool { return !sw.Connected() })
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen again on %s: %v", addr, err)
	}
	defer ln.Close()
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Write(ofwire.AppendHello(nil, 1)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "third connection", func() bool { return sw.Connects() == 3 })
	if n := sw.Bridge().FlowCount(); n != 1 {
		t.Fatalf("flows after the controller came back: %d, want 1", n)
	}
}

func TestFaults(t *testing.T) {
	ctl := newCtl(t)
	sw := startSwitch(t, ctl.ln.Addr().String(), 1, 2, nil)
	cc := ctl.accept()
	cc.send(flowModMsg(t, 1, "priority=5,in_port=1,actions=output:2", fmOpts{cmd: ofwire.FlowAdd}))
	cc.barrier()

	t.Run("stall", func(t *testing.T) {
		sw.SetStalled(true)
		// The stall takes effect at the next message boundary: a reader already waiting for a message when the
		// switch stalls handles that one message (76 may be answered) and then parks, so 77 is never read.
		cc.send(ofwire.AppendEmpty(nil, ofwire.TypeBarrierRequest, 76))
		cc.send(ofwire.AppendEmpty(nil, ofwire.TypeBarrierRequest, 77))
		seen76 := false
		for {
			m, ok := cc.next(300*time.Millisecond, false)
			if !ok {
				break
			}
			if m.Type != ofwire.TypeBarrierReply || m.Xid != 76 || seen76 {
				t.Fatalf("stalled switch answered: %v xid %d", m.Type, m.Xid)
			}
			seen76 = true
		}
		if !sw.Connected() {
			t.Fatal("stalled switch dropped the connection")
		}
		sw.SetStalled(false)
		if !seen76 {
			cc.expect(ofwire.TypeBarrierReply, 76)
		}
		cc.expect(ofwire.TypeBarrierReply, 77)
	})
	t.Run("slow", func(t *testing.T) {
		sw.SetDelay(40 * time.Millisecond)
		start := time.Now()
		for range 5 {
			cc.barrier()
		}
		if el := time.Since(start); el < 200*time.Millisecond {
			t.Fatalf("5 round trips with 40ms delay took %v", el)
		}
		sw.SetDelay(0)
	})
	t.Run("restart", func(t *testing.T) {
		sw.Restart()
		cc2 := ctl.accept()
		waitFor(t, "reconnect", func() bool { return sw.Connects() == 2 })
		if fs, _ := cc2.flowStats(0, 0); len(fs) != 0 {
			t.Fatalf("restarted switch kept %d flows", len(fs))
		}
		cc = cc2
	})
	t.Run("offline", func(t *testing.T) {
		sw.SetOffline(true)
		waitFor(t, "disconnected", func() bool { return !sw.Connected() })
		sw.SetOffline(false)
		ctl.accept()
		waitFor(t, "reconnect", func() bool { return sw.Connects() == 3 })
	})
}

// Switches that share reply buffers (Config.Buffers) each answer with their own flows, whole, however their
// replies interleave: a buffer goes back to the pool only once written, and a reply larger than one part takes
// several.
func TestSharedBuffersKeepRepliesApart(t *testing.T) {
	ctl := newCtl(t)
	bufs := &Buffers{}
	share := func(c *Config) { c.Buffers = bufs }
	want := map[*ctlConn]int{}
	var conns []*ctlConn
	for i, n := range []int{700, 3} { // 700 flows: more than one 64 KiB part
		startSwitch(t, ctl.ln.Addr().String(), uint64(i+1), 2, share)
		cc := ctl.accept()
		for j := range n {
			cc.send(flowModMsg(t, uint32(j+1), fmt.Sprintf("cookie=%#x,priority=100,in_port=1,dl_dst=02:00:00:%02x:%02x:%02x,actions=output:2",
				flows.CookieOurs|uint64(i)<<16|uint64(j), i, j>>8, j&0xff), fmOpts{cmd: ofwire.FlowAdd}))
		}
		if errs := cc.barrier(); len(errs) != 0 {
			t.Fatalf("switch %d: unexpected replies: %v", i+1, errs)
		}
		want[cc] = n
		conns = append(conns, cc)
	}
	if _, parts := conns[0].flowStats(flows.CookieOurs, flows.CookieMask); parts < 2 {
		t.Fatalf("the big bridge's flows came in %d part(s); the test needs several", parts)
	}
	var wg sync.WaitGroup
	for i, cc := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range 30 {
				fs, _ := cc.flowStats(flows.CookieOurs, flows.CookieMask)
				seen := map[uint64]bool{}
				for _, f := range fs {
					if f.Flow.Cookie>>16&0xff != uint64(i) || seen[f.Flow.Cookie] {
						t.Errorf("switch %d round %d: flow with cookie %#x (another switch's, or twice)", i+1, round, f.Flow.Cookie)
						return
					}
					seen[f.Flow.Cookie] = true
				}
				if len(seen) != want[cc] {
					t.Errorf("switch %d round %d: %d flows, want %d", i+1, round, len(seen), want[cc])
					return
				}
			}
		}()
	}
	wg.Wait()
}
