package e2e

import (
	"bytes"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// probeMAC is the destination address of probe frames (flows.ProbeMAC).
var probeMAC = net.HardwareAddr{0x0a, 0x50, 0x4d, 0x50, 0x52, 0x42}

type probeResult struct {
	Delivered bool
	LatencyMs *float64
	Path      []string
	Reason    *string
}

const probeMutation = `mutation($u: ID!) { probePortMirrorSession(uuid: $u) { delivered latencyMs path reason } }`

func probe(t *testing.T, w *World, session string) probeResult {
	t.Helper()
	var out struct{ ProbePortMirrorSession probeResult }
	w.GC.Must(t, probeMutation, map[string]any{"u": session}, &out)
	r := out.ProbePortMirrorSession
	if !r.Delivered {
		t.Logf("e2e: probe %s: delivered=%v latencyMs=%v path=%q reason=%q", session, r.Delivered, deref64(r.LatencyMs), r.Path, deref(r.Reason))
	}
	return r
}

func deref64(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

// probeFrames are the frames of a capture that are probe frames (to probeMAC, or UDP 65000 to 65001).
func probeFrames(fs []Frame) []Frame {
	var out []Frame
	for _, f := range fs {
		if bytes.Equal(f.Dst, probeMAC) || (f.Proto == 17 && f.SrcPort == 65000 && f.DstPort == 65001) {
			out = append(out, f)
		}
	}
	return out
}

var deliverFlowRE = regexp.MustCompile(`priority=500,tun_id=(0x[0-9a-f]+),in_port=(\d+)`)

// TestProbeSession on real OVS: probePortMirrorSession delivers locally and across the flow network while no
// capture (the monitoring VMs, the source VM, the business peer) sees a probe frame; with the remote bridge's
// deliver flow removed by hand it reports the missing flow; with the flow network's underlay down it reports that
// no frame reached the remote switch; an unknown session and a disabled port mirror are refused, and each
// probe is audited.
func TestProbeSession(t *testing.T) {
	for _, encap := range []string{"GRE", "VXLAN"} {
		t.Run(encap, func(t *testing.T) { testProbeSession(t, encap) })
	}
}

func testProbeSession(t *testing.T, encap string) {
	tp := NewTopology(t, TopologyOptions{Secure: true})
	a := tp.AddVM(t, tp.HV1, "a")
	b := tp.AddVM(t, tp.HV2, "b")
	mr := tp.AddMonitorVM(t, tp.HV2, "mr")
	ml := tp.AddMonitorVM(t, tp.HV1, "ml")
	w := NewWorld(t, tp, InventoryOptions{Encapsulation: encap})
	an, bn, dr, dl := a.DefaultNIC(), b.DefaultNIC(), mr.NICs[1], ml.NICs[1]
	waitNICBound(t, w, an, tp.HV1)
	waitNICBound(t, w, bn, tp.HV2)

	var out struct {
		CreatePortMirror struct {
			UUID     string
			Sessions []struct{ UUID, Name string }
		}
	}
	w.GC.Must(t, `mutation($in: PortMirrorInput!) { createPortMirror(input: $in) { uuid sessions { uuid name } } }`,
		map[string]any{"in": map[string]any{"name": "probed", "flowNetworkUuid": w.Inv.FlowNetworkUUID, "enable": true,
			"sessions": []map[string]any{
				{"name": "local", "type": "INGRESS", "sourceNicUuid": an.UUID, "destinationNicUuid": dl.UUID},
				{"name": "remote", "type": "EGRESS", "sourceNicUuid": an.UUID, "destinationNicUuid": dr.UUID},
			}}}, &out)
	pm := out.CreatePortMirror.UUID
	sessions := map[string]string{}
	for _, s := range out.CreatePortMirror.Sessions {
		sessions[s.Name] = s.UUID
	}
	w.WaitStatus(t, pm, "ENABLED", "ACTIVE")

	caps := map[string]*Capture{"ml": StartCapture(t, dl), "mr": StartCapture(t, dr), "a": StartCapture(t, an), "b": StartCapture(t, bn)}
	latencies := map[string][]float64{}
	for i := range 20 {
		name := []string{"local", "remote"}[i%2]
		r := probe(t, w, sessions[name])
		if !r.Delivered || r.LatencyMs == nil || r.Reason != nil || len(r.Path) < 2 {
			t.Errorf("probe of %s: %+v, want delivered with a latency and a path", name, r)
			continue
		}
		latencies[name] = append(latencies[name], *r.LatencyMs)
		if name == "remote" && !strings.Contains(strings.Join(r.Path, " | "), encap+" from") {
			t.Errorf("remote probe path %q names no %s hop", r.Path, encap)
		}
	}
	t.Logf("e2e: remote probe path: %q", probe(t, w, sessions["remote"]).Path)
	for name, ls := range latencies {
		slices.Sort(ls)
		t.Logf("e2e: probe latency %s: min %.3f ms, median %.3f ms, max %.3f ms over %d probes", name, ls[0], ls[len(ls)/2], ls[len(ls)-1], len(ls))
	}
	// Copies still flow: a's ping to b reaches mr (EGRESS) and ml (INGRESS: b's replies).
	a.Ping(t, bn.IP, 3)
	caps["mr"].WaitFor(t, 10*time.Second, "a's pings copied to mr", func(fs []Frame) bool { return len(fs) >= 3 })
	caps["ml"].WaitFor(t, 10*time.Second, "b's replies copied to ml", func(fs []Frame) bool { return len(fs) >= 3 })
	time.Sleep(quietWindow) // absence over a window: a probe frame would arrive within milliseconds
	for name, c := range caps {
		if pf := probeFrames(c.Stop(t)); len(pf) > 0 {
			t.Errorf("capture on %s saw %d probe frames: %s", name, len(pf), FramesString(pf))
		}
	}
	// The only probe flow is hv2's catch flow for key 0 (it expires by itself): no session's flow was touched.
	for _, h := range tp.Hypervisors() {
		for _, f := range Flows(t, h) {
			if strings.Contains(f, "0x5052") && (h != tp.HV2 || !strings.Contains(f, "priority=501,") || !strings.Contains(f, "tun_id=0,") ||
				!strings.Contains(f, "actions=CONTROLLER")) {
				t.Errorf("%s holds an unexpected probe flow: %s", h.Name, f)
			}
		}
	}

	// The remote bridge's deliver flow removed by hand: the probe names it.
	var deliver []string
	for _, f := range Flows(t, tp.HV2) {
		if m := deliverFlowRE.FindStringSubmatch(f); m != nil {
			deliver = m
		}
	}
	if deliver == nil {
		t.Fatalf("no deliver flow on %s: %q", tp.HV2.Name, Flows(t, tp.HV2))
	}
	if _, err := tp.HV2.Ofctl(t.Context(), "del-flows", tp.HV2.Bridge, "--strict",
		fmt.Sprintf("priority=500,in_port=%s,tun_id=%s", deliver[2], deliver[1])); err != nil {
		t.Fatal(err)
	}
	r := probe(t, w, sessions["remote"])
	if r.Delivered || r.Reason == nil || !strings.Contains(*r.Reason, "deliver flow") || !strings.Contains(*r.Reason, tp.HV2.DPID) {
		t.Errorf("probe without the deliver flow: %+v, want undelivered naming %s's deliver flow", r, tp.HV2.DPID)
	}
	// The local session does not need it.
	if r := probe(t, w, sessions["local"]); !r.Delivered {
		t.Errorf("local probe with the remote deliver flow gone: %+v", r)
	}

	// The underlay down (the deliver flow put back first): the frame never reaches hv2.
	if _, err := tp.HV2.Ofctl(t.Context(), "add-flow", tp.HV2.Bridge,
		fmt.Sprintf("cookie=0x504d000000000006,priority=500,in_port=%s,tun_id=%s,actions=output:%d", deliver[2], deliver[1], dr.OFPort(t))); err != nil {
		t.Fatal(err)
	}
	if r := probe(t, w, sessions["remote"]); !r.Delivered {
		t.Fatalf("probe with the deliver flow put back: %+v", r)
	}
	if _, err := tp.HV2.Exec(t.Context(), "ip", "link", "set", "uf0", "down"); err != nil {
		t.Fatal(err)
	}
	r = probe(t, w, sessions["remote"])
	if r.Delivered || r.Reason == nil || !strings.Contains(*r.Reason, "no probe frame reached") {
		t.Errorf("probe with the underlay down: %+v, want undelivered: no probe frame reached the switch", r)
	}
	if _, err := tp.HV2.Exec(t.Context(), "ip", "link", "set", "uf0", "up"); err != nil {
		t.Fatal(err)
	}

	// Refusals: an unknown session, a disabled port mirror.
	err := w.GC.Do(t.Context(), probeMutation, map[string]any{"u": "00000000-0000-4000-8000-000000000000"}, nil)
	if ErrorCode(err) != "NOT_FOUND" {
		t.Errorf("probe of an unknown session: %v, want NOT_FOUND", err)
	}
	w.Mutate(t, "disablePortMirror", pm)
	err = w.GC.Do(t.Context(), probeMutation, map[string]any{"u": sessions["local"]}, nil)
	if ErrorCode(err) != "CONFLICT" {
		t.Errorf("probe of a session of a disabled port mirror: %v, want CONFLICT", err)
	}

	// Audited: every probe that ran succeeded, the refusals did not.
	var audits struct {
		Audits []struct {
			Operation string
			Success   bool
		}
	}
	w.GC.Must(t, `query { audits(operation: "probePortMirrorSession", first: 50) { operation success } }`, nil, &audits)
	ok, refused := 0, 0
	for _, e := range audits.Audits {
		if e.Success {
			ok++
		} else {
			refused++
		}
	}
	if ok != 25 || refused != 2 {
		t.Errorf("audit events of probePortMirrorSession: %d successful and %d refused, want 25 and 2", ok, refused)
	}
}
