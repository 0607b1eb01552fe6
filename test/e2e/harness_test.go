package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestTopologyPing: VMs on different hypervisors reach each other through NORMAL
// over the business link, and VMs on one hypervisor through br-int alone.
func TestTopologyPing(t *testing.T) {
	t.Parallel()
	tp := NewTopology(t, TopologyOptions{})
	a := tp.AddVM(t, tp.HV1, "a")
	b := tp.AddVM(t, tp.HV2, "b")
	m := tp.AddMonitorVM(t, tp.HV2, "m")

	start := time.Now()
	r := a.Ping(t, b.DefaultNIC().IP, 3)
	t.Logf("a(hv1) -> b(hv2): first RTT %v, then %v", r.RTTs[0], r.RTTs[1:])
	b.Ping(t, a.DefaultNIC().IP, 3)
	b.Ping(t, m.DefaultNIC().IP, 3)
	m.Ping(t, a.DefaultNIC().IP, 3)
	t.Logf("12 pings in %v", time.Since(start).Round(time.Millisecond))
	for _, h := range tp.Hypervisors() {
		if got := h.DatapathID(t, h.Bridge); got != h.DPID {
			t.Errorf("%s: br-int datapath id %s, want %s", h.Name, got, h.DPID)
		}
	}

	// The VMs' ports are bound the way the controller expects.
	for _, n := range []*NIC{a.DefaultNIC(), b.DefaultNIC(), m.NICs[1]} {
		hv := n.Hypervisor()
		got := hv.MustVsctl(t, "--bare", "--columns=name", "find", "Interface", "external_ids:iface-id="+n.UUID, "external_ids:attached-mac=\""+n.MAC+"\"")
		if got != n.HostPort {
			t.Errorf("%s: Interface with iface-id %s is %q, want %q", hv.Name, n.UUID, got, n.HostPort)
		}
	}
	// An unreachable address gets no reply: the ping helper can fail.
	res, err := a.PingN(t.Context(), "198.18.1.250", 1, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if res.Received != 0 {
		t.Errorf("ping to an address no VM has: %d replies, want 0", res.Received)
	}
}

// TestTunnelCopies: hand-installed flows copy VM a's frames (both directions, like
// a BIDIRECTION session) through a flow-based tunnel port to the capture NIC of a
// monitoring VM on the other hypervisor, and tcpdump there sees exactly one copy of
// each request and each reply, nothing else. For GRE and for VXLAN.
func TestTunnelCopies(t *testing.T) {
	for _, kind := range []string{"gre", "vxlan"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			tp := NewTopology(t, TopologyOptions{})
			a := tp.AddVM(t, tp.HV1, "a")
			b := tp.AddVM(t, tp.HV2, "b")
			m := tp.AddVM(t, tp.HV2, "m", NICSpec{}, NICSpec{Capture: true, Isolate: true})
			const key = 4242
			installCopyFlows(t, tp, kind, a.DefaultNIC(), m.NICs[1], key)

			cap := StartCapture(t, m.NICs[1])
			const n = 10
			p := a.Ping(t, b.DefaultNIC().IP, n)
			_, lat := cap.ExpectPing(t, p, PingCount{Requests: n, Replies: n}, 5*time.Second)
			t.Logf("%s: %d requests and %d replies copied; ping-to-copy latency %s", kind, n, n, latencySummary(lat))

			// b's own traffic to m's default NIC is not selected: the capture stays empty.
			cap2 := StartCapture(t, m.NICs[1])
			b.Ping(t, m.DefaultNIC().IP, 3)
			p2 := a.Ping(t, b.DefaultNIC().IP, 1) // a marker that is copied: once it is in, b's frames would be too
			cap2.ExpectPing(t, p2, PingCount{Requests: 1, Replies: 1}, 5*time.Second)
		})
	}
}

// installCopyFlows adds a flow-based tunnel port of kind on both hypervisors and
// the flows that copy every frame src sends or receives to dst over it with key.
func installCopyFlows(t *testing.T, tp *Topology, kind string, src, dst *NIC, key int) {
	t.Helper()
	srcHV, dstHV := src.Hypervisor(), dst.Hypervisor()
	tunSrc := srcHV.AddTunnelPort(t, "pm-"+kind, kind)
	tunDst := dstHV.AddTunnelPort(t, "pm-"+kind, kind)
	copyTo := fmt.Sprintf("NORMAL,set_field:%d->tun_id,set_field:%s->tun_dst,output:%d", key, dstHV.EndpointIP, tunSrc)
	srcHV.AddFlow(t, "br-int", fmt.Sprintf("priority=100,in_port=%d,actions=%s", src.OFPort(t), copyTo))
	srcHV.AddFlow(t, "br-int", fmt.Sprintf("priority=100,dl_dst=%s,actions=%s", src.MAC, copyTo))
	dstHV.AddFlow(t, "br-int", fmt.Sprintf("priority=100,in_port=%d,tun_id=%d,actions=output:%d", tunDst, key, dst.OFPort(t)))
	dstHV.AddFlow(t, "br-int", fmt.Sprintf("priority=90,in_port=%d,actions=drop", tunDst))
}

// TestMigration: a VM moved to the other hypervisor keeps its MAC, IP and iface-id,
// leaves the old br-int, and is reachable again in both directions.
func TestMigration(t *testing.T) {
	t.Parallel()
	tp := NewTopology(t, TopologyOptions{})
	a := tp.AddVM(t, tp.HV1, "a")
	b := tp.AddVM(t, tp.HV2, "b")
	c := tp.AddVM(t, tp.HV1, "c")
	a.Ping(t, b.DefaultNIC().IP, 2)
	c.Ping(t, a.DefaultNIC().IP, 2)

	a.Migrate(t, tp.HV2)
	nic := a.DefaultNIC()
	if got := tp.HV1.MustVsctl(t, "--bare", "--columns=name", "find", "Interface", "external_ids:iface-id="+nic.UUID); got != "" {
		t.Errorf("hv1 still has interface %q for the migrated NIC", got)
	}
	if got := tp.HV2.MustVsctl(t, "--bare", "--columns=name", "find", "Interface", "external_ids:iface-id="+nic.UUID); got != nic.HostPort {
		t.Errorf("hv2 interface for the migrated NIC is %q, want %q", got, nic.HostPort)
	}
	// The peer on the old hypervisor speaks first: only the announcement lets
	// hv1's learning table know a is behind the business link now.
	c.Ping(t, nic.IP, 2)
	b.Ping(t, nic.IP, 2)
	a.Ping(t, c.DefaultNIC().IP, 2)

	a.Migrate(t, tp.HV1)
	b.Ping(t, nic.IP, 2)
	c.Ping(t, nic.IP, 2)
}

// TestVswitchdRestart: after ovs-vswitchd on the tunnel's sending hypervisor is
// stopped and started again, the bridges come back with their ports (same OpenFlow
// numbers), without flows, and business traffic and tunnelled copies work again
// once the flows are put back.
func TestVswitchdRestart(t *testing.T) {
	t.Parallel()
	tp := NewTopology(t, TopologyOptions{})
	a := tp.AddVM(t, tp.HV1, "a")
	b := tp.AddVM(t, tp.HV2, "b")
	m := tp.AddVM(t, tp.HV2, "m", NICSpec{}, NICSpec{Capture: true, Isolate: true})
	installCopyFlows(t, tp, "gre", a.DefaultNIC(), m.NICs[1], 7)
	portsBefore := portNumbers(t, tp.HV1)
	oldPid := tp.HV1.VswitchdPid()

	tp.HV1.RestartVswitchd(t)
	if tp.HV1.VswitchdPid() == oldPid {
		t.Fatalf("ovs-vswitchd pid unchanged (%d) after restart", oldPid)
	}
	if after := portNumbers(t, tp.HV1); !slices.Equal(after, portsBefore) {
		t.Errorf("ports after restart %v, before %v", after, portsBefore)
	}
	flows, err := tp.HV1.DumpFlows(t.Context(), "br-int")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(flows, "tun_dst") {
		t.Errorf("hand-installed flows survived the restart:\n%s", flows)
	}
	a.Ping(t, b.DefaultNIC().IP, 2)

	// Put a's copy flows back (the tunnel port is still there, from conf.db).
	tun := tp.HV1.OFPort(t, "pm-gre")
	copyTo := fmt.Sprintf("NORMAL,set_field:7->tun_id,set_field:%s->tun_dst,output:%d", tp.HV2.EndpointIP, tun)
	tp.HV1.AddFlow(t, "br-int", fmt.Sprintf("priority=100,in_port=%d,actions=%s", a.DefaultNIC().OFPort(t), copyTo))
	tp.HV1.AddFlow(t, "br-int", fmt.Sprintf("priority=100,dl_dst=%s,actions=%s", a.DefaultNIC().MAC, copyTo))
	cap := StartCapture(t, m.NICs[1])
	p := a.Ping(t, b.DefaultNIC().IP, 4)
	cap.ExpectPing(t, p, PingCount{Requests: 4, Replies: 4}, 5*time.Second)
}

// portNumbers lists "name=ofport" for every interface of a hypervisor, sorted.
func portNumbers(t *testing.T, h *Hypervisor) []string {
	t.Helper()
	out := h.MustVsctl(t, "--bare", "--columns=name,ofport", "list", "Interface")
	var ports []string
	for block := range strings.SplitSeq(strings.TrimSpace(out), "\n\n") {
		f := strings.Fields(block)
		if len(f) == 2 {
			ports = append(ports, f[0]+"="+f[1])
		}
	}
	slices.Sort(ports)
	return ports
}

// latencySummary formats min/median/max of durations.
func latencySummary(d []time.Duration) string {
	if len(d) == 0 {
		return "n/a"
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return fmt.Sprintf("min %v median %v max %v", s[0].Round(time.Microsecond), s[len(s)/2].Round(time.Microsecond), s[len(s)-1].Round(time.Microsecond))
}

// TestCopyActionOrder pins down the OVS behaviour the flow compiler relies on: with
// NORMAL before the copy actions, a frame NORMAL floods (here a broadcast) is copied
// once; with the copy first, the flood also goes out of the flow-based tunnel port
// with the tunnel metadata still set, and every copy arrives twice.
func TestCopyActionOrder(t *testing.T) {
	for _, tc := range []struct {
		order       string
		normalFirst bool
		perFrame    int
	}{{"normal-first", true, 1}, {"copy-first", false, 2}} {
		t.Run(tc.order, func(t *testing.T) {
			t.Parallel()
			tp := NewTopology(t, TopologyOptions{})
			a := tp.AddVM(t, tp.HV1, "a")
			m := tp.AddVM(t, tp.HV2, "m", NICSpec{}, NICSpec{Capture: true, Isolate: true})
			t1 := tp.HV1.AddTunnelPort(t, "pm-gre", "gre")
			t2 := tp.HV2.AddTunnelPort(t, "pm-gre", "gre")
			cp := fmt.Sprintf("set_field:5->tun_id,set_field:%s->tun_dst,output:%d", tp.HV2.EndpointIP, t1)
			acts := "NORMAL," + cp
			if !tc.normalFirst {
				acts = cp + ",NORMAL"
			}
			tp.HV1.AddFlow(t, "br-int", fmt.Sprintf("priority=100,in_port=%d,actions=%s", a.DefaultNIC().OFPort(t), acts))
			tp.HV2.AddFlow(t, "br-int", fmt.Sprintf("priority=100,in_port=%d,tun_id=5,actions=output:%d", t2, m.NICs[1].OFPort(t)))

			c := StartCapture(t, m.NICs[1])
			const n = 3
			for range n {
				a.SendFrame(t, a.DefaultNIC(), GratuitousARP(a.DefaultNIC().MAC, a.DefaultNIC().IP))
			}
			want := n * tc.perFrame
			c.WaitFor(t, 5*time.Second, fmt.Sprintf("%d copies", want), func(fs []Frame) bool { return len(fs) >= want })
			if fs := c.Stop(t); len(fs) != want {
				t.Fatalf("%d broadcasts from a: %d copies, want %d:\n%s", n, len(fs), want, FramesString(fs))
			}
		})
	}
}
