package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// sessionCounters is SessionCounters as the API answers it.
type sessionCounters struct {
	Packets, Bytes, DroppedByLimit int64
	UpdatedAt                      *time.Time
}

// counterView is a port mirror's counters and its sessions', by session name.
type counterView struct {
	total    sessionCounters
	sessions map[string]sessionCounters
}

const countersQuery = `query($u: ID!) { portMirror(uuid: $u) { counters { packets bytes droppedByLimit updatedAt }
  sessions { name counters { packets bytes droppedByLimit updatedAt } } } }`

func readCounters(t *testing.T, w *World, pm string) counterView {
	t.Helper()
	var out struct {
		PortMirror struct {
			Counters sessionCounters
			Sessions []struct {
				Name     string
				Counters sessionCounters
			}
		}
	}
	w.GC.Must(t, countersQuery, map[string]any{"u": pm}, &out)
	v := counterView{total: out.PortMirror.Counters, sessions: map[string]sessionCounters{}}
	for _, s := range out.PortMirror.Sessions {
		v.sessions[s.Name] = s.Counters
	}
	return v
}

// readAfter polls until every session's counters were read from the switch after t0, and returns them.
func readAfter(t *testing.T, w *World, pm string, t0 time.Time, within time.Duration) counterView {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		v := readCounters(t, w, pm)
		fresh := len(v.sessions) > 0
		for _, c := range v.sessions {
			fresh = fresh && c.UpdatedAt != nil && c.UpdatedAt.After(t0)
		}
		if fresh {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("counters not read from the switches after %v within %v: %+v", t0, within, v)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestMirrorCounters on real OVS: each session's counters equal the frames it selected (counted on the switch,
// bytes before truncation), where two sessions to one destination share flows and the destination gets each frame
// once; the port mirror's counters are their sum; /metrics has the same per port mirror.
func TestMirrorCounters(t *testing.T) {
	tp := NewTopology(t, TopologyOptions{Secure: true})
	a := tp.AddVM(t, tp.HV1, "a")
	b := tp.AddVM(t, tp.HV2, "b")
	mr := tp.AddMonitorVM(t, tp.HV2, "mr")
	ml := tp.AddMonitorVM(t, tp.HV1, "ml")
	d := StartDaemon(t, tp, DaemonOptions{ExtraArgs: []string{"--counter-period", "200ms"}})
	w := &World{TP: tp, D: d, GC: d.Client()}
	w.Inv = RegisterInventory(t, w.GC, tp, InventoryOptions{Encapsulation: "GRE"})
	w.WaitConnected(t)
	an, bn, dr, dl := a.DefaultNIC(), b.DefaultNIC(), mr.NICs[1], ml.NICs[1]
	waitNICBound(t, w, an, tp.HV1)
	waitNICBound(t, w, bn, tp.HV2)

	sess := func(name string, dst *NIC, snap any, filters ...map[string]any) map[string]any {
		return map[string]any{"name": name, "type": "EGRESS", "sourceNicUuid": an.UUID, "destinationNicUuid": dst.UUID,
			"snapLength": snap, "filters": filters}
	}
	var out struct{ CreatePortMirror struct{ UUID string } }
	w.GC.Must(t, `mutation($in: PortMirrorInput!) { createPortMirror(input: $in) { uuid } }`,
		map[string]any{"in": map[string]any{"name": "counted", "flowNetworkUuid": w.Inv.FlowNetworkUUID, "enable": true,
			"sessions": []map[string]any{
				// Two sessions to ml: every frame a sends, and UDP to port 5000 only (a frame both select reaches
				// ml once, and counts once for each).
				sess("all", dl, nil),
				sess("udp5000", dl, nil, map[string]any{"protocol": "udp", "destinationPorts": "5000"}),
				// Remote, cut to 64 bytes: bytes are counted before truncation.
				sess("remote-udp", dr, 64, map[string]any{"protocol": "udp"}),
			}}}, &out)
	pm := out.CreatePortMirror.UUID
	w.WaitStatus(t, pm, "ENABLED", "ACTIVE")

	// Learn a's neighbour first, so that the rounds below send only the datagrams (and whatever a's kernel adds,
	// which the capture at ml sees too).
	a.Ping(t, bn.IP, 1)
	capL := StartCapture(t, dl)
	before := readAfter(t, w, pm, time.Now(), 10*time.Second)

	const n, payload = 25, 500
	const whole = 14 + 20 + 8 + payload
	// paced: the capture must see every copy
	a.SendUDPRounds(t, bn.IP, []string{"53", "5000"}, n, payload, 5*time.Millisecond)
	want := map[string][2]int64{"udp5000": {n, n * whole}, "remote-udp": {2 * n, 2 * n * whole}}
	// Counters lag the traffic (OVS refreshes flow statistics about every 0.5 s, the controller reads every 200 ms):
	// poll with a deadline until they hold what was sent, then check a later read adds nothing.
	var after counterView
	deadline := time.Now().Add(15 * time.Second)
	for {
		after = readAfter(t, w, pm, time.Now(), 10*time.Second)
		done := true
		for name, wv := range want {
			if got := after.sessions[name].Packets - before.sessions[name].Packets; got < wv[0] {
				done = false
			}
		}
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second) // a frame counted twice would show in a later read
	after = readAfter(t, w, pm, time.Now(), 10*time.Second)
	for name, wv := range want {
		gp := after.sessions[name].Packets - before.sessions[name].Packets
		gb := after.sessions[name].Bytes - before.sessions[name].Bytes
		if gp != wv[0] || gb != wv[1] {
			t.Errorf("session %s counted +%d packets +%d bytes, want +%d +%d", name, gp, gb, wv[0], wv[1])
		}
	}
	// "all" counts every frame a sent: what ml received from a (each frame once: "udp5000" shares the copy).
	var fromA int64
	for _, f := range capL.Stop(t) {
		if strings.EqualFold(f.Src.String(), an.MAC) {
			fromA++
		}
	}
	if gp := after.sessions["all"].Packets - before.sessions["all"].Packets; gp != fromA || gp < 2*n {
		t.Errorf("session all counted +%d packets; ml received %d frames from a (at least %d sent)", gp, fromA, 2*n)
	}
	var sum int64
	for _, c := range after.sessions {
		sum += c.Packets
	}
	if after.total.Packets != sum {
		t.Errorf("port mirror counts %d packets, the sum of its sessions %d", after.total.Packets, sum)
	}
	metric := fmt.Sprintf("portmirror_port_mirror_copied_packets_total{port_mirror=%q}", pm)
	if got, ok := d.Metrics(t)[metric]; !ok || got < float64(after.total.Packets) {
		t.Errorf("/metrics: %s = %v (present %v), want at least %d", metric, got, ok, after.total.Packets)
	}
}

// TestMirrorBandwidthLimit on real OVS: a capped session's copies beyond its rate are dropped (and counted as
// droppedByLimit), while every business frame reaches b and an uncapped session to the same destination delivers
// every frame it selects, once, though the capped one selects them too.
func TestMirrorBandwidthLimit(t *testing.T) {
	tp := NewTopology(t, TopologyOptions{Secure: true})
	a := tp.AddVM(t, tp.HV1, "a")
	b := tp.AddVM(t, tp.HV2, "b")
	ml := tp.AddMonitorVM(t, tp.HV1, "ml")
	d := StartDaemon(t, tp, DaemonOptions{ExtraArgs: []string{"--counter-period", "200ms"}})
	w := &World{TP: tp, D: d, GC: d.Client()}
	w.Inv = RegisterInventory(t, w.GC, tp, InventoryOptions{Encapsulation: "GRE"})
	w.WaitConnected(t)
	an, bn, dl := a.DefaultNIC(), b.DefaultNIC(), ml.NICs[1]
	waitNICBound(t, w, an, tp.HV1)
	waitNICBound(t, w, bn, tp.HV2)

	const kbps = 200
	var out struct{ CreatePortMirror struct{ UUID string } }
	w.GC.Must(t, `mutation($in: PortMirrorInput!) { createPortMirror(input: $in) { uuid } }`,
		map[string]any{"in": map[string]any{"name": "capped", "flowNetworkUuid": w.Inv.FlowNetworkUUID, "enable": true,
			"sessions": []map[string]any{
				{"name": "udp-capped", "type": "EGRESS", "sourceNicUuid": an.UUID, "destinationNicUuid": dl.UUID,
					"bandwidthLimitKbps": kbps, "filters": []map[string]any{{"protocol": "udp"}}},
				{"name": "udp5000", "type": "EGRESS", "sourceNicUuid": an.UUID, "destinationNicUuid": dl.UUID,
					"filters": []map[string]any{{"protocol": "udp", "destinationPorts": "5000"}}},
			}}}, &out)
	pm := out.CreatePortMirror.UUID
	w.WaitStatus(t, pm, "ENABLED", "ACTIVE")
	var lim struct {
		PortMirror struct {
			Sessions []struct {
				Name               string
				BandwidthLimitKbps *int
			}
		}
	}
	w.GC.Must(t, `query($u: ID!) { portMirror(uuid: $u) { sessions { name bandwidthLimitKbps } } }`, map[string]any{"u": pm}, &lim)
	for _, s := range lim.PortMirror.Sessions {
		if got := s.BandwidthLimitKbps; (s.Name == "udp-capped") != (got != nil && *got == kbps) {
			t.Errorf("session %s: bandwidthLimitKbps %v", s.Name, got)
		}
	}

	a.Ping(t, bn.IP, 1)
	capL, capB := StartCapture(t, dl), StartCapture(t, bn)
	before := readAfter(t, w, pm, time.Now(), 10*time.Second)
	// About 4 Mbit/s of UDP, twenty times the cap, for about a second.
	const n, payload = 150, 1000
	const whole = 14 + 20 + 8 + payload
	a.SendUDPRounds(t, bn.IP, []string{"53", "5000"}, n, payload, 2*time.Millisecond)
	count := func(fs []Frame) map[uint16]int {
		out := map[uint16]int{}
		for _, f := range fs {
			if f.Proto == 17 && f.SrcIP.String() == an.IP && f.DstIP.String() == bn.IP {
				out[f.DstPort]++
			}
		}
		return out
	}
	capB.WaitFor(t, 10*time.Second, "every business frame at b", func(fs []Frame) bool { c := count(fs); return c[53] >= n && c[5000] >= n })
	capL.WaitFor(t, 10*time.Second, "every udp5000 copy at ml", func(fs []Frame) bool { return count(fs)[5000] >= n })
	time.Sleep(quietWindow)
	atB, atL := count(capB.Stop(t)), count(capL.Stop(t))
	if atB[53] != n || atB[5000] != n {
		t.Errorf("b received %v, want %d of each port: the cap must never drop a business frame", atB, n)
	}
	if atL[5000] != n {
		t.Errorf("ml received %d copies to port 5000, want %d: the uncapped session's copies are never metered", atL[5000], n)
	}
	if atL[53] == 0 || atL[53] > n/2 {
		t.Errorf("ml received %d of %d capped copies to port 53 at %d kbps: want some, and far fewer than sent", atL[53], n, kbps)
	}

	// Counters: the capped session selected every datagram; its meter dropped exactly the copies ml did not get.
	deadline := time.Now().Add(15 * time.Second)
	var after counterView
	for {
		after = readAfter(t, w, pm, time.Now(), 10*time.Second)
		c := after.sessions["udp-capped"]
		if c.Packets-before.sessions["udp-capped"].Packets >= 2*n && c.DroppedByLimit-before.sessions["udp-capped"].DroppedByLimit >= int64(n-atL[53]) ||
			time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	c, c0 := after.sessions["udp-capped"], before.sessions["udp-capped"]
	t.Logf("e2e: at %d kbps, ml got %d of %d capped copies; the meter dropped %d; counters %+v", kbps, atL[53], n,
		c.DroppedByLimit-c0.DroppedByLimit, c)
	if gp, gb := c.Packets-c0.Packets, c.Bytes-c0.Bytes; gp != 2*n || gb != 2*n*whole {
		t.Errorf("udp-capped counted +%d packets +%d bytes, want +%d +%d", gp, gb, 2*n, 2*n*whole)
	}
	if dropped := c.DroppedByLimit - c0.DroppedByLimit; dropped != int64(n-atL[53]) {
		t.Errorf("udp-capped droppedByLimit +%d, want %d (the %d copies to port 53 that ml did not receive)", dropped, n-atL[53], n-atL[53])
	}
	if u := after.sessions["udp5000"]; u.Packets-before.sessions["udp5000"].Packets != n || u.DroppedByLimit != 0 {
		t.Errorf("udp5000 counters %+v (before %+v), want +%d packets, nothing dropped", u, before.sessions["udp5000"], n)
	}
	if after.total.DroppedByLimit != c.DroppedByLimit {
		t.Errorf("the port mirror's droppedByLimit %d, its sessions' %d", after.total.DroppedByLimit, c.DroppedByLimit)
	}

	// Meters are reconciled: a new cap changes the meter's rate in place, clearing it deletes the meter; the
	// session's counters are never reset by updatePortMirrorSession.
	var ids struct {
		PortMirror struct{ Sessions []struct{ UUID, Name string } }
	}
	w.GC.Must(t, `query($u: ID!) { portMirror(uuid: $u) { sessions { uuid name } } }`, map[string]any{"u": pm}, &ids)
	var capped string
	for _, s := range ids.PortMirror.Sessions {
		if s.Name == "udp-capped" {
			capped = s.UUID
		}
	}
	const upd = `mutation($u: ID!, $in: SessionUpdateInput!) { updatePortMirrorSession(uuid: $u, input: $in) { uuid } }`
	meters := func() string {
		out, err := tp.HV1.Ofctl(t.Context(), "dump-meters", tp.HV1.Bridge)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	waitMeters := func(what string, cond func(string) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for m := meters(); !cond(m); m = meters() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: dump-meters shows\n%s", what, m)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	w.GC.Must(t, upd, map[string]any{"u": capped, "in": map[string]any{"bandwidthLimitKbps": 1000}}, nil)
	w.WaitStatus(t, pm, "ENABLED", "ACTIVE")
	waitMeters("cap raised to 1000 kbps", func(m string) bool {
		return strings.Count(m, "meter=") == 1 && strings.Contains(m, "rate=1000")
	})
	w.GC.Must(t, upd, map[string]any{"u": capped, "in": map[string]any{"bandwidthLimitKbps": nil}}, nil)
	w.WaitStatus(t, pm, "ENABLED", "ACTIVE")
	waitMeters("cap cleared", func(m string) bool { return !strings.Contains(m, "meter=") })
	if flows := strings.Join(Flows(t, tp.HV1), "\n"); strings.Contains(flows, "meter:") || strings.Contains(flows, "clone(") {
		t.Errorf("the cap is cleared but flows still meter:\n%s", flows)
	}
	final := readAfter(t, w, pm, time.Now(), 10*time.Second)
	if f := final.sessions["udp-capped"]; f.Packets < c.Packets || f.DroppedByLimit < c.DroppedByLimit {
		t.Errorf("counters went back after updates: %+v, were %+v", f, c)
	}
}
