package e2e

import (
	"fmt"
	"net"
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
	err := a.Do(func() error {
		for range n {
			for _, port := range []string{"53", "5000"} {
				c, err := net.Dial("udp", net.JoinHostPort(bn.IP, port))
				if err != nil {
					return err
				}
				_, err = c.Write(make([]byte, payload))
				c.Close()
				if err != nil {
					return err
				}
				time.Sleep(5 * time.Millisecond) // paced: the capture must see every copy
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
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
