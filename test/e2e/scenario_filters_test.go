package e2e

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// flowKind names the traffic TestMirrorFilters sends from a to b.
type flowKind struct {
	proto uint8
	port  uint16
}

func (k flowKind) String() string { return fmt.Sprintf("proto %d port %d", k.proto, k.port) }

var (
	udp53   = flowKind{17, 53}
	udp5000 = flowKind{17, 5000}
	tcp8080 = flowKind{6, 8080}
	icmp    = flowKind{1, 0}
)

// countKinds counts the frames from src to dst of each kind (ICMP: echo requests).
func countKinds(frames []Frame, src, dst string) map[flowKind]int {
	out := map[flowKind]int{}
	for _, f := range frames {
		if f.SrcIP.String() != src || f.DstIP.String() != dst {
			continue
		}
		switch {
		case f.Proto == 1 && f.ICMPType == ICMPEchoRequest:
			out[icmp]++
		case f.Proto == 6 || f.Proto == 17:
			out[flowKind{f.Proto, f.DstPort}]++
		}
	}
	return out
}

// sendMix sends n UDP datagrams to port 53 and to 5000 and n TCP connection attempts to 8080 (one SYN each) from a to b, then n pings.
func sendMix(t *testing.T, a *VM, dst string, n int) {
	t.Helper()
	err := a.Do(func() error {
		for i := range n {
			for _, port := range []int{53, 5000} {
				c, err := net.Dial("udp", net.JoinHostPort(dst, strconv.Itoa(port)))
				if err != nil {
					return err
				}
				_, err = c.Write([]byte(fmt.Sprintf("filter test %d", i)))
				c.Close()
				if err != nil {
					return err
				}
			}
			// One SYN: b may answer with a reset or not at all (the userspace datapath leaves veth checksums
			// unfilled, so b's stack may drop the SYN); the kernel retransmits only after a second.
			c, err := net.DialTimeout("tcp", net.JoinHostPort(dst, "8080"), 300*time.Millisecond)
			if err == nil {
				c.Close()
				return fmt.Errorf("something listens on %s:8080 in b", dst)
			}
			var ne net.Error
			if !errors.Is(err, syscall.ECONNREFUSED) && !(errors.As(err, &ne) && ne.Timeout()) {
				return fmt.Errorf("TCP to %s:8080: %w, want connection refused or a timeout", dst, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if p := a.Ping(t, dst, n); p.Received != n {
		t.Fatalf("ping %s: %d of %d answered: business forwarding is broken", dst, p.Received, n)
	}
}

// expectKinds runs the traffic with captures on each NIC and checks each holds exactly its counts.
func expectKinds(t *testing.T, label string, a *VM, dst string, n int, want map[*NIC]map[flowKind]int) {
	t.Helper()
	caps := map[*NIC]*Capture{}
	for nic := range want {
		caps[nic] = StartCapture(t, nic)
	}
	sendMix(t, a, dst, n)
	src := a.DefaultNIC().IP
	complete := func(fs []Frame, w map[flowKind]int) bool {
		got := countKinds(fs, src, dst)
		for k, c := range w {
			if got[k] < c {
				return false
			}
		}
		return true
	}
	for nic, w := range want {
		caps[nic].WaitFor(t, 10*time.Second, label+": expected copies", func(fs []Frame) bool { return complete(fs, w) })
	}
	// Absence over a window: copies arrive within milliseconds of their frame.
	deadline := time.Now().Add(quietWindow)
	for time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // the quiet window of ExpectCopies
	}
	for nic, w := range want {
		got := countKinds(caps[nic].Stop(t), src, dst)
		for _, k := range []flowKind{udp53, udp5000, tcp8080, icmp} {
			if got[k] != w[k] {
				t.Errorf("%s: VM %s %s holds %d frames of %v, want %d (all: %v)", label, nic.VM.Name, nic.Name, got[k], k, w[k], got)
			}
		}
	}
}

// TestMirrorFilters on real OVS: filtered sessions copy exactly the frames their rules select, two filtered
// sessions to one destination deliver a frame both select once, business traffic reaches b whole, and
// updatePortMirrorSession changes a session's filter in place; a malformed filter is refused and changes no flow.
func TestMirrorFilters(t *testing.T) {
	tp := NewTopology(t, TopologyOptions{Secure: true})
	a := tp.AddVM(t, tp.HV1, "a")
	b := tp.AddVM(t, tp.HV2, "b")
	mr := tp.AddMonitorVM(t, tp.HV2, "mr")
	ml := tp.AddMonitorVM(t, tp.HV1, "ml")
	w := NewWorld(t, tp, InventoryOptions{Encapsulation: "GRE"})
	an, bn, dr, dl := a.DefaultNIC(), b.DefaultNIC(), mr.NICs[1], ml.NICs[1]
	waitNICBound(t, w, an, tp.HV1)
	waitNICBound(t, w, bn, tp.HV2)

	session := func(name string, dst *NIC, filters ...map[string]any) map[string]any {
		return map[string]any{"name": name, "type": "EGRESS", "sourceNicUuid": an.UUID, "destinationNicUuid": dst.UUID, "filters": filters}
	}
	var out struct {
		CreatePortMirror struct {
			UUID     string
			Sessions []struct{ UUID, Name string }
		}
	}
	w.GC.Must(t, `mutation($in: PortMirrorInput!) { createPortMirror(input: $in) { uuid sessions { uuid name } } }`,
		map[string]any{"in": map[string]any{"name": "filtered", "flowNetworkUuid": w.Inv.FlowNetworkUUID, "enable": true,
			"sessions": []map[string]any{
				// Two sessions to mr that differ only in filters; UDP 53 is selected by both.
				session("dns", dr, map[string]any{"protocol": "udp", "destinationPorts": "53"}),
				session("web", dr, map[string]any{"protocol": "tcp", "destinationPorts": "8000-8100"},
					map[string]any{"protocol": "udp", "destinationPorts": "50-60", "destinationCidr": bn.IP + "/32"}),
				// Local: every UDP frame except DNS.
				session("udp-not-dns", dl, map[string]any{"action": "REJECT", "protocol": "udp", "destinationPorts": "53"},
					map[string]any{"protocol": "17"}),
			}}}, &out)
	pm := out.CreatePortMirror.UUID
	w.WaitStatus(t, pm, "ENABLED", "ACTIVE")

	const n = 10
	expectKinds(t, "filtered", a, bn.IP, n, map[*NIC]map[flowKind]int{
		dr: {udp53: n, tcp8080: n},
		dl: {udp5000: n},
		bn: {udp53: n, udp5000: n, tcp8080: n, icmp: n}, // business traffic, whole
	})

	// A malformed filter is refused and changes no flow.
	before := [2][]string{Flows(t, tp.HV1), Flows(t, tp.HV2)}
	var local string
	for _, s := range out.CreatePortMirror.Sessions {
		if s.Name == "udp-not-dns" {
			local = s.UUID
		}
	}
	const upd = `mutation($u: ID!, $in: SessionUpdateInput!) { updatePortMirrorSession(uuid: $u, input: $in) { uuid status } }`
	err := w.GC.Do(t.Context(), upd, map[string]any{"u": local, "in": map[string]any{
		"filters": []map[string]any{{"protocol": "icmp", "destinationPorts": "1-2"}}}}, nil)
	if ErrorCode(err) != "VALIDATION" || ErrorRule(err) != "INVALID_ARGUMENT" {
		t.Errorf("malformed filter: %v, want VALIDATION/INVALID_ARGUMENT", err)
	}
	if after := [2][]string{Flows(t, tp.HV1), Flows(t, tp.HV2)}; fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("a refused update changed flows:\nbefore %v\nafter %v", before, after)
	}

	// In place: the local session's filter cleared (explicit null) now copies every frame a sends.
	var up struct{ UpdatePortMirrorSession struct{ UUID, Status string } }
	w.GC.Must(t, upd, map[string]any{"u": local, "in": map[string]any{"filters": nil}}, &up)
	t.Logf("e2e: status right after updatePortMirrorSession: %s", up.UpdatePortMirrorSession.Status)
	if up.UpdatePortMirrorSession.UUID != local {
		t.Errorf("update returned %+v", up)
	}
	w.WaitStatus(t, pm, "ENABLED", "ACTIVE")
	expectKinds(t, "updated", a, bn.IP, n, map[*NIC]map[flowKind]int{
		dr: {udp53: n, tcp8080: n},
		dl: {udp53: n, udp5000: n, tcp8080: n, icmp: n},
	})

	w.Mutate(t, "deletePortMirror", pm)
	for _, h := range tp.Hypervisors() {
		w.WaitBaselineOnly(t, h)
	}
}

// TestMirrorSnapLength on real OVS: copies cut to a session's snapLength, to a remote destination (cut before
// GRE encapsulation) and a local one, while b receives every frame whole; where an unfiltered session cuts to 128
// bytes and a filtered one keeps its frames whole, the destination gets the selected frames whole and the others
// cut, each once.
func TestMirrorSnapLength(t *testing.T) {
	tp := NewTopology(t, TopologyOptions{Secure: true})
	a := tp.AddVM(t, tp.HV1, "a")
	b := tp.AddVM(t, tp.HV2, "b")
	mr := tp.AddMonitorVM(t, tp.HV2, "mr")
	ml := tp.AddMonitorVM(t, tp.HV1, "ml")
	w := NewWorld(t, tp, InventoryOptions{Encapsulation: "GRE"})
	an, bn, dr, dl := a.DefaultNIC(), b.DefaultNIC(), mr.NICs[1], ml.NICs[1]
	waitNICBound(t, w, an, tp.HV1)
	waitNICBound(t, w, bn, tp.HV2)
	sess := func(name string, dst *NIC, snap any, filters ...map[string]any) map[string]any {
		return map[string]any{"name": name, "type": "EGRESS", "sourceNicUuid": an.UUID, "destinationNicUuid": dst.UUID,
			"snapLength": snap, "filters": filters}
	}
	pm, _ := func() (string, error) {
		var out struct{ CreatePortMirror struct{ UUID string } }
		w.GC.Must(t, `mutation($in: PortMirrorInput!) { createPortMirror(input: $in) { uuid } }`,
			map[string]any{"in": map[string]any{"name": "cut", "flowNetworkUuid": w.Inv.FlowNetworkUUID, "enable": true,
				"sessions": []map[string]any{
					sess("remote-64", dr, 64),
					sess("local-128", dl, 128),
					sess("local-whole-5000", dl, nil, map[string]any{"protocol": "udp", "destinationPorts": "5000"}),
				}}}, &out)
		return out.CreatePortMirror.UUID, nil
	}()
	w.WaitStatus(t, pm, "ENABLED", "ACTIVE")

	const n, payload = 10, 1000
	const whole = 14 + 20 + 8 + payload
	caps := map[*NIC]*Capture{dr: StartCapture(t, dr), dl: StartCapture(t, dl), bn: StartCapture(t, bn)}
	a.SendUDPRounds(t, bn.IP, []string{"53", "5000"}, n, payload, 0)
	// lengths counts, per destination port, the captured lengths of a's datagrams to b.
	lengths := func(fs []Frame) map[string]int {
		out := map[string]int{}
		for _, f := range fs {
			if f.Proto == 17 && f.SrcIP.String() == an.IP && f.DstIP.String() == bn.IP {
				out[fmt.Sprintf("%d/%d", f.DstPort, len(f.Data))]++
			}
		}
		return out
	}
	want := map[*NIC]map[string]int{
		dr: {"53/64": n, "5000/64": n},
		dl: {"53/128": n, fmt.Sprintf("5000/%d", whole): n},
		bn: {fmt.Sprintf("53/%d", whole): n, fmt.Sprintf("5000/%d", whole): n},
	}
	for nic, wl := range want {
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
	deadline := time.Now().Add(quietWindow)
	for time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // the quiet window of ExpectCopies
	}
	for nic, wl := range want {
		got := lengths(caps[nic].Stop(t))
		if fmt.Sprint(got) != fmt.Sprint(wl) {
			t.Errorf("VM %s %s: datagrams by port/length %v, want %v", nic.VM.Name, nic.Name, got, wl)
		}
	}
	w.Mutate(t, "deletePortMirror", pm)
	for _, h := range tp.Hypervisors() {
		w.WaitBaselineOnly(t, h)
	}
}
