package e2e

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"portmirror/model"
)

// World is one scenario's setup: a topology whose bridges start fail_mode=secure
// with no flows, portmirrord, and the inventory registered through its API.
type World struct {
	TP  *Topology
	D   *Daemon
	GC  *GraphQLClient
	Inv *Inventory
}

// NewWorld starts portmirrord for tp (VMs added so far get registered), registers
// the inventory and waits until both bridges are connected to the controller.
func NewWorld(t *testing.T, tp *Topology, opts InventoryOptions) *World {
	t.Helper()
	d := StartDaemon(t, tp, DaemonOptions{})
	w := &World{TP: tp, D: d, GC: d.Client()}
	w.Inv = RegisterInventory(t, w.GC, tp, opts)
	w.WaitConnected(t)
	return w
}

// WaitConnected polls until every host reports its bridge connected.
func (w *World) WaitConnected(t *testing.T) {
	t.Helper()
	start := time.Now()
	var out struct {
		Hosts []struct {
			UUID, Name string
			Connected  bool
			DatapathID *string
		}
	}
	w.GC.Eventually(t, 30*time.Second, `{ hosts { uuid name connected datapathId } }`, nil, &out, func() (bool, string) {
		if len(out.Hosts) != 2 {
			return false, fmt.Sprintf("%d hosts", len(out.Hosts))
		}
		for _, h := range out.Hosts {
			if !h.Connected {
				return false, fmt.Sprintf("host %s not connected", h.Name)
			}
		}
		return true, ""
	})
	t.Logf("e2e: both bridges connected %v after asking", time.Since(start).Round(time.Millisecond))
}

// SessionSpec is a session to create.
type SessionSpec struct {
	Name string
	Type string // INGRESS, EGRESS, BIDIRECTION
	Src  *NIC
	Dst  *NIC
}

func sessionInputs(ss []SessionSpec) []map[string]any {
	var out []map[string]any
	for _, s := range ss {
		out = append(out, map[string]any{"name": s.Name, "type": s.Type,
			"sourceNicUuid": s.Src.UUID, "destinationNicUuid": s.Dst.UUID})
	}
	return out
}

// CreatePortMirror creates a port mirror on the world's flow network with sessions,
// enabled or not, and returns its uuid and the time the mutation was sent.
func (w *World) CreatePortMirror(t *testing.T, name string, enable bool, ss ...SessionSpec) (string, time.Time) {
	t.Helper()
	var out struct{ CreatePortMirror struct{ UUID string } }
	t0 := time.Now()
	w.GC.Must(t, `mutation($in: PortMirrorInput!) { createPortMirror(input: $in) { uuid } }`,
		map[string]any{"in": map[string]any{"name": name, "flowNetworkUuid": w.Inv.FlowNetworkUUID,
			"enable": enable, "sessions": sessionInputs(ss)}}, &out)
	return out.CreatePortMirror.UUID, t0
}

// Mutate runs a mutation that takes the port mirror's uuid ($u) and returns when it was sent.
func (w *World) Mutate(t *testing.T, op, pm string) time.Time {
	t.Helper()
	t0 := time.Now()
	sel := " { uuid }"
	if op == "deletePortMirror" {
		sel = ""
	}
	w.GC.Must(t, fmt.Sprintf(`mutation($u: ID!) { %s(uuid: $u)%s }`, op, sel), map[string]any{"u": pm}, nil)
	return t0
}

// WaitStatus polls until the port mirror has the state and every session the status.
func (w *World) WaitStatus(t *testing.T, pm, state, status string) time.Duration {
	t.Helper()
	start := time.Now()
	var out struct {
		PortMirror struct {
			State    string
			Sessions []struct{ Name, Status, StatusReason string }
		}
	}
	w.GC.Eventually(t, 30*time.Second, `query($u: ID!) { portMirror(uuid: $u) { state sessions { name status statusReason } } }`,
		map[string]any{"u": pm}, &out, func() (bool, string) {
			if out.PortMirror.State != state {
				return false, "state " + out.PortMirror.State
			}
			for _, s := range out.PortMirror.Sessions {
				if s.Status != status {
					return false, fmt.Sprintf("session %s: %s (%s)", s.Name, s.Status, s.StatusReason)
				}
			}
			return true, ""
		})
	return time.Since(start)
}

// FirstCopy pings from src to dst, once at a time, until every capture holds a
// frame of one of those pings, and returns, per capture, how long after t0 its
// first such frame was captured. It stops the captures. Each result is logged as
// "FIRSTCOPY <label> <vm>/<nic> <duration>".
func FirstCopy(t *testing.T, label string, t0 time.Time, src *VM, dst string, caps ...*Capture) []time.Duration {
	t.Helper()
	ids := map[uint16]bool{}
	got := make([]time.Duration, len(caps))
	seen := make([]bool, len(caps))
	deadline := time.Now().Add(30 * time.Second)
	for {
		p, err := src.PingN(t.Context(), dst, 1, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		ids[p.ID] = true
		done := true
		for i, c := range caps {
			if seen[i] {
				continue
			}
			for _, f := range c.Frames(t) {
				if f.Proto == 1 && ids[f.ICMPID] {
					seen[i], got[i] = true, f.Time.Sub(t0)
					break
				}
			}
			done = done && seen[i]
		}
		if done {
			for i, c := range caps {
				c.Stop(t)
				t.Logf("FIRSTCOPY %s %s/%s %v", label, c.NIC.VM.Name, c.NIC.Name, got[i].Round(time.Millisecond))
			}
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no copy at every destination within 30s (seen: %v)", label, seen)
		}
		time.Sleep(10 * time.Millisecond) // pacing the probe pings, not waiting for a result
	}
}

// Want is what one capture NIC should hold of a ping run.
type Want struct {
	NIC   *NIC
	Count PingCount
}

// quietWindow is how long a capture expected to stay empty is kept open after the
// traffic that would have been copied: copies arrive within a few milliseconds of
// the frame they copy (ping-to-copy latency measured at < 5 ms here), so 300 ms
// bounds it with a wide margin. Absence can only be shown over a window.
const quietWindow = 300 * time.Millisecond

// ExpectCopies captures on every NIC of wants, pings n times from src to dst, and
// checks each capture holds exactly its Count of that run (Other included). Captures
// expecting nothing are checked after those expecting copies are complete, or after
// quietWindow when none expects anything.
func ExpectCopies(t *testing.T, label string, src *VM, dst string, n int, wants ...Want) {
	t.Helper()
	caps := make([]*Capture, len(wants))
	for i, w := range wants {
		caps[i] = StartCapture(t, w.NIC)
	}
	p := src.Ping(t, dst, n)
	var lat []time.Duration
	anyPositive := false
	for i, w := range wants {
		if w.Count != (PingCount{}) {
			anyPositive = true
			_, l := caps[i].ExpectPing(t, p, w.Count, 5*time.Second)
			lat = append(lat, l...)
		}
	}
	if !anyPositive {
		deadline := time.Now().Add(quietWindow)
		for time.Now().Before(deadline) {
			for i, w := range wants {
				if fs := caps[i].Frames(t); len(fs) > 0 {
					t.Fatalf("%s: capture on VM %s %s expected nothing, got:\n%s", label, w.NIC.VM.Name, w.NIC.Name, FramesString(fs))
				}
			}
			time.Sleep(20 * time.Millisecond) // polling the capture file during the quiet window
		}
	}
	for i, w := range wants {
		if w.Count == (PingCount{}) {
			fs := caps[i].Stop(t)
			if got := CountPing(fs, p); got != w.Count {
				t.Fatalf("%s: capture on VM %s %s: got %+v, want nothing; captured:\n%s", label, w.NIC.VM.Name, w.NIC.Name, got, FramesString(fs))
			}
		}
	}
	t.Logf("e2e: %s: %d pings %s -> %s: copies as expected (ping-to-copy %s)", label, n, p.Src, p.Dst, latencySummary(lat))
}

var flowCounters = regexp.MustCompile(`\s*\b(duration|n_packets|n_bytes|idle_age|hard_age)=[^,\s]*,?`)

// Flows returns br-int's flows as ovs-ofctl dump-flows shows them, without
// counters and durations, sorted.
func Flows(t *testing.T, h *Hypervisor) []string {
	t.Helper()
	out, err := h.DumpFlows(t.Context(), h.Bridge)
	if err != nil {
		t.Fatal(err)
	}
	var flows []string
	for line := range strings.SplitSeq(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "OFPST_FLOW") {
			continue
		}
		flows = append(flows, flowCounters.ReplaceAllString(line, ""))
	}
	slices.Sort(flows)
	return flows
}

const baselineFlow = "cookie=0x504d000000000001, table=0, priority=0 actions=NORMAL"

// BaselineFlows is what a managed br-int holds with no port mirror enabled: the
// baseline NORMAL flow, and the drop of whatever arrives on the flow network's
// tunnel port (kept on every bridge with that port, so that a copy arriving
// while bridges are being reprogrammed never reaches NORMAL).
func (w *World) BaselineFlows(t *testing.T, h *Hypervisor) []string {
	t.Helper()
	tun := h.OFPort(t, model.TunnelPortName(w.Inv.FlowNetworkUUID))
	want := []string{baselineFlow, fmt.Sprintf("cookie=0x504d000000000005, table=0, priority=400,in_port=%d actions=drop", tun)}
	slices.Sort(want)
	return want
}

// WaitBaselineOnly polls until br-int of h holds exactly BaselineFlows.
func (w *World) WaitBaselineOnly(t *testing.T, h *Hypervisor) {
	t.Helper()
	want := w.BaselineFlows(t, h)
	var last []string
	err := poll(t.Context(), 15*time.Second, 20*time.Millisecond, func() (bool, error) {
		last = Flows(t, h)
		return slices.Equal(last, want), nil
	})
	if err != nil {
		t.Fatalf("%s: br-int does not hold the baseline only: %v\n%s\nwant:\n%s", h.Name, err, strings.Join(last, "\n"), strings.Join(want, "\n"))
	}
}

// PortTag returns the tag of a port on h's br-int ("" when none).
func PortTag(t *testing.T, h *Hypervisor, port string) string {
	t.Helper()
	return strings.Trim(h.MustVsctl(t, "get", "Port", port, "tag"), "[] ")
}
