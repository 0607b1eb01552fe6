package e2e

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"portmirror/model"
)

// TestMirrorERSPAN drives ERSPAN flow networks on real OVS, type II (ERSPAN_V1) and type III (ERSPAN_V2): a on hv1
// pings b on hv2 and sends it UDP; three sessions copy to monitoring VMs on the other host: a BIDIRECTION to mr
// (whole), a EGRESS to ms cut to 64 bytes, b INGRESS to ml (on hv1). Each monitor receives every selected frame
// exactly once, decapsulated (plain Ethernet, the ERSPAN header gone); the datapath shows the copies left as
// ERSPAN of the flow network's version with the destination's session id (and, in type III, the direction:
// 0 for a's copies, 1 for b's INGRESS ones). A GRE flow network on the same cluster is refused
// (ENCAPSULATION_CONFLICT) and changes nothing.
func TestMirrorERSPAN(t *testing.T) {
	for _, enc := range []string{"ERSPAN_V1", "ERSPAN_V2"} {
		t.Run(enc, func(t *testing.T) {
			t.Parallel()
			testMirrorERSPAN(t, model.Encapsulation(enc))
		})
	}
}

func testMirrorERSPAN(t *testing.T, enc model.Encapsulation) {
	tp := NewTopology(t, TopologyOptions{Secure: true})
	a := tp.AddVM(t, tp.HV1, "a")
	b := tp.AddVM(t, tp.HV2, "b")
	mr := tp.AddMonitorVM(t, tp.HV2, "mr")
	ms := tp.AddMonitorVM(t, tp.HV2, "ms")
	ml := tp.AddMonitorVM(t, tp.HV1, "ml")
	w := NewWorld(t, tp, InventoryOptions{Encapsulation: string(enc)})
	an, bn, dr, ds, dl := a.DefaultNIC(), b.DefaultNIC(), mr.NICs[1], ms.NICs[1], ml.NICs[1]
	waitNICBound(t, w, an, tp.HV1)
	waitNICBound(t, w, bn, tp.HV2)

	// The tunnel port on each bridge: type erspan, every header field from the flows.
	tun := model.TunnelPortName(w.Inv.FlowNetworkUUID)
	for _, h := range tp.Hypervisors() {
		var typ, opts string
		err := poll(t.Context(), 10*time.Second, 20*time.Millisecond, func() (bool, error) {
			out, err := h.Vsctl(t.Context(), "--bare", "--columns=type,options", "find", "Interface", "name="+tun)
			f := strings.SplitN(strings.TrimSpace(out), "\n", 2)
			if err != nil || len(f) != 2 {
				return false, fmt.Errorf("tunnel port %s: %q %v", tun, out, err)
			}
			typ, opts = f[0], f[1]
			return true, nil
		})
		if err != nil {
			t.Fatalf("%s: %v", h.Name, err)
		}
		for _, o := range []string{"local_ip=" + h.EndpointIP, "remote_ip=flow", "key=flow", "erspan_ver=flow",
			"erspan_idx=flow", "erspan_dir=flow", "erspan_hwid=flow"} {
			if typ != "erspan" || !strings.Contains(opts, o) {
				t.Errorf("%s: tunnel port %s is type %q options %q, want erspan with %s", h.Name, tun, typ, opts, o)
			}
		}
	}

	var out struct{ CreatePortMirror struct{ UUID string } }
	w.GC.Must(t, `mutation($in: PortMirrorInput!) { createPortMirror(input: $in) { uuid } }`,
		map[string]any{"in": map[string]any{"name": "span", "flowNetworkUuid": w.Inv.FlowNetworkUUID, "enable": true,
			"sessions": []map[string]any{
				{"name": "a-both", "type": "BIDIRECTION", "sourceNicUuid": an.UUID, "destinationNicUuid": dr.UUID},
				{"name": "a-out-cut", "type": "EGRESS", "sourceNicUuid": an.UUID, "destinationNicUuid": ds.UUID, "snapLength": 64},
				{"name": "b-in", "type": "INGRESS", "sourceNicUuid": bn.UUID, "destinationNicUuid": dl.UUID},
			}}}, &out)
	pm := out.CreatePortMirror.UUID
	w.WaitStatus(t, pm, "ENABLED", "ACTIVE")
	var keys struct {
		PortMirror struct {
			Sessions []struct {
				UUID, Name, Status string
				TunnelKey          int
			}
		}
	}
	w.GC.Must(t, `query($u: ID!) { portMirror(uuid: $u) { sessions { uuid name status tunnelKey } } }`, map[string]any{"u": pm}, &keys)
	key := map[string]int{}
	for _, s := range keys.PortMirror.Sessions {
		if s.TunnelKey < 1 || s.TunnelKey > 1023 {
			t.Errorf("session %s: tunnel key %d outside the ERSPAN session ids 1..1023", s.Name, s.TunnelKey)
		}
		key[s.Name] = s.TunnelKey
	}

	// Pings: each copy once, decapsulated. A first ping warms the path (OVS resolves the tunnel's next hop).
	FirstCopy(t, string(enc), time.Now(), a, bn.IP, StartCapture(t, dr), StartCapture(t, ds), StartCapture(t, dl))
	const n = 10
	ExpectCopies(t, string(enc)+"/ping", a, bn.IP, n, Want{dr, PingCount{Requests: n, Replies: n}},
		Want{ds, PingCount{Requests: n}}, Want{dl, PingCount{Requests: n}})

	// The copies left hv1 and hv2 as ERSPAN of this version with each destination's session id.
	want := map[*Hypervisor][]string{}
	switch enc {
	case model.ERSPANv1:
		want[tp.HV1] = []string{fmt.Sprintf("erspan(ver=1,sid=%#x,idx=0x0)", key["a-both"]), fmt.Sprintf("erspan(ver=1,sid=%#x,idx=0x0)", key["a-out-cut"])}
		want[tp.HV2] = []string{fmt.Sprintf("erspan(ver=1,sid=%#x,idx=0x0)", key["b-in"])}
	case model.ERSPANv2:
		want[tp.HV1] = []string{fmt.Sprintf("erspan(ver=2,sid=%#x,dir=0,hwid=0x0)", key["a-both"]), fmt.Sprintf("erspan(ver=2,sid=%#x,dir=0,hwid=0x0)", key["a-out-cut"])}
		want[tp.HV2] = []string{fmt.Sprintf("erspan(ver=2,sid=%#x,dir=1,hwid=0x0)", key["b-in"])}
	}
	for h, hs := range want {
		dp, err := h.Appctl(t.Context(), "dpctl/dump-flows")
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range hs {
			if !strings.Contains(dp, s) {
				t.Errorf("%s: no datapath flow pushes %s:\n%s", h.Name, s, dp)
			}
		}
		if !strings.Contains(dp, "tnl_pop(") {
			t.Errorf("%s: no datapath flow decapsulates (tnl_pop):\n%s", h.Name, dp)
		}
	}

	// UDP: ms gets a's datagrams cut to 64 bytes (cut, then encapsulated), mr whole, b whole.
	const payload = 1000
	const whole = 14 + 20 + 8 + payload
	caps := map[*NIC]*Capture{dr: StartCapture(t, dr), ds: StartCapture(t, ds), bn: StartCapture(t, bn)}
	if err := a.Do(func() error {
		for range n {
			c, err := net.Dial("udp", net.JoinHostPort(bn.IP, "5000"))
			if err != nil {
				return err
			}
			_, err = c.Write(make([]byte, payload))
			c.Close()
			if err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	lengths := func(fs []Frame) map[int]int {
		out := map[int]int{}
		for _, f := range fs {
			if f.Proto == 17 && f.SrcIP.String() == an.IP && f.DstIP.String() == bn.IP && f.DstPort == 5000 {
				out[len(f.Data)]++
			}
		}
		return out
	}
	wantLen := map[*NIC]map[int]int{dr: {whole: n}, ds: {64: n}, bn: {whole: n}}
	for nic, wl := range wantLen {
		caps[nic].WaitFor(t, 10*time.Second, "datagrams", func(fs []Frame) bool {
			got := lengths(fs)
			for k, c := range wl {
				if got[k] < c {
					return false
				}
			}
			return true
		})
	}
	time.Sleep(quietWindow) // the quiet window of ExpectCopies: nothing more arrives
	for nic, wl := range wantLen {
		if got := lengths(caps[nic].Stop(t)); fmt.Sprint(got) != fmt.Sprint(wl) {
			t.Errorf("%s: VM %s %s: datagrams by length %v, want %v", enc, nic.VM.Name, nic.Name, got, wl)
		}
	}
	t.Logf("e2e: %s: %d pings and %d datagrams of %d bytes copied once each, decapsulated; cut copies %d bytes",
		enc, n, n, whole, 64)

	// A restarted controller reads the ERSPAN flows back from both bridges as it wrote them: no flow_mod.
	w.D.Restart(t)
	w.WaitConnected(t)
	w.WaitStatus(t, pm, "ENABLED", "ACTIVE")
	if got := w.D.FlowModsSent(t); got != 0 {
		t.Errorf("%s: the restarted controller sent %v flow_mods to bridges that hold what it wants", enc, got)
	}

	// Probes cross the ERSPAN flow network (the probe frame carries the version the erspan port needs) and are
	// caught before the monitoring VMs.
	pc := StartCapture(t, dr)
	for _, s := range keys.PortMirror.Sessions {
		if r := probe(t, w, s.UUID); !r.Delivered {
			t.Errorf("%s: probe of %s not delivered: %q", enc, s.Name, deref(r.Reason))
		}
	}
	time.Sleep(quietWindow)
	if fs := probeFrames(pc.Stop(t)); len(fs) > 0 {
		t.Errorf("%s: probe frames reached the monitoring VM:\n%s", enc, FramesString(fs))
	}
	// The probes' catch flows expire after 30 s; remove them now so that the bridges can return to the baseline.
	for _, h := range tp.Hypervisors() {
		if _, err := h.Ofctl(t.Context(), "del-flows", h.Bridge, "cookie=0x5052000000000001/-1"); err != nil {
			t.Fatal(err)
		}
	}

	// GRE beside ERSPAN on one cluster: refused, nothing changed.
	var before, after struct{ FlowNetworks []struct{ UUID string } }
	w.GC.Must(t, `{ flowNetworks { uuid } }`, nil, &before)
	err := w.GC.Do(t.Context(), `mutation($in: FlowNetworkInput!) { createFlowNetwork(input: $in) { uuid } }`,
		map[string]any{"in": map[string]any{"name": "gre-too", "cidr": "198.18.102.0/24", "encapsulation": "GRE",
			"clusterUuids": []string{w.Inv.ClusterUUID}}}, nil)
	if ErrorCode(err) != "CONFLICT" || ErrorRule(err) != "ENCAPSULATION_CONFLICT" {
		t.Errorf("GRE flow network on the ERSPAN cluster: %v, want CONFLICT / ENCAPSULATION_CONFLICT", err)
	}
	w.GC.Must(t, `{ flowNetworks { uuid } }`, nil, &after)
	if len(after.FlowNetworks) != len(before.FlowNetworks) {
		t.Errorf("the refused create changed the flow networks: %d -> %d", len(before.FlowNetworks), len(after.FlowNetworks))
	}

	w.Mutate(t, "deletePortMirror", pm)
	for _, h := range tp.Hypervisors() {
		w.WaitBaselineOnly(t, h)
	}
}
