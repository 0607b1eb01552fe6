package controller_test

import (
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"portmirror/model"
	"portmirror/service"
	"portmirror/simulator/fleet"
)

// TestSimScale: many simulated bridges against one controller in one process. Every bridge connects and gets its
// baseline (asserted); then, measured and logged: the messages the controller sends for one change of N sessions
// (a port mirror created with N sessions, each spanning two hosts), the time until they are all ACTIVE, and the
// latency from creation to ACTIVE of sessions created one by one (polling the service's SessionStatus). The default
// run uses 100 bridges; PORTMIRROR_SIM_SCALE=1 runs 1,000 bridges and 1,000 sessions (PORTMIRROR_SIM_BRIDGES and
// PORTMIRROR_SIM_LATENCY_SESSIONS override the sizes).
func TestSimScale(t *testing.T) {
	bridges, latencyN := 100, 50
	if envInt("PORTMIRROR_SIM_SCALE", 0) > 0 {
		bridges, latencyN = 1000, 1000
	}
	bridges = envInt("PORTMIRROR_SIM_BRIDGES", bridges)
	latencyN = envInt("PORTMIRROR_SIM_LATENCY_SESSIONS", latencyN)
	if testing.Short() {
		bridges, latencyN = 20, 10
	}

	topo := fleet.Uniform(42, bridges, 1, 1)
	topo.FlowNetworks = 2
	var ms0 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)

	regStart := time.Now()
	e := newSimEnv(t, topo, envOptions{noStart: true, fleet: fleet.Options{ProbeInterval: 30 * time.Second, MaxBackoff: 2 * time.Second}})
	f := e.fleet
	regTime := time.Since(regStart)
	start := time.Now()
	if err := f.Start(e.ctx, e.meter.Addr()); err != nil {
		t.Fatal(err)
	}
	e.waitBaseline(120 * time.Second)
	connectTime := time.Since(start)
	var ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms1)
	t.Logf("%d bridges: registered in %v (service, in-memory store); all connected and holding their baseline %v after start; heap %.1f MiB (%.1f KiB per bridge, controller and simulator together), %d goroutines",
		bridges, regTime.Round(time.Millisecond), connectTime.Round(time.Millisecond), float64(ms1.HeapInuse)/(1<<20),
		float64(int64(ms1.HeapInuse)-int64(ms0.HeapInuse))/1024/float64(bridges), runtime.NumGoroutine())
	for _, h := range f.Hosts {
		if h.Bridge.FlowCount() == 0 {
			t.Fatalf("%s holds no flow", h.Name)
		}
	}

	// One change of N sessions: host i's VM NIC to the capture NIC of host i+1, directions in turn.
	vmNIC := func(h *fleet.Host) *fleet.NIC {
		for _, n := range f.Senders() {
			if f.HostOf(n.VM) == h && !n.VM.Monitor {
				return n
			}
		}
		t.Fatalf("no VM on %s", h.Name)
		return nil
	}
	capture := func(h *fleet.Host) *fleet.NIC {
		for _, n := range f.Monitors() {
			if f.HostOf(n.VM) == h {
				return n
			}
		}
		t.Fatalf("no monitor on %s", h.Name)
		return nil
	}
	dirs := []model.Direction{model.Bidirection, model.Egress, model.Ingress}
	in := service.PortMirrorInput{Name: "bulk", FlowNetworkUUID: f.FlowNetworks[0].UUID, Enable: true}
	for i, h := range f.Hosts {
		in.Sessions = append(in.Sessions, service.SessionInput{Name: fmt.Sprintf("bulk%d", i), Type: dirs[i%3],
			SourceNicUUID: vmNIC(h).UUID, DestinationNicUUID: capture(f.Hosts[(i+1)%len(f.Hosts)]).UUID})
	}
	before := e.meter.Total()
	start = time.Now()
	pm, err := e.svc.CreatePortMirror(e.ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := e.svc.Sessions(e.ctx, pm.UUID)
	if err != nil {
		t.Fatal(err)
	}
	var bulk []fleet.Session
	for _, s := range stored {
		bulk = append(bulk, fleet.Session{UUID: s.UUID, Name: s.Name, Enabled: true})
	}
	e.waitSettled(bulk, 120*time.Second)
	took := time.Since(start)
	d := e.meter.Total().Sub(before)
	t.Logf("one change of %d sessions over %d bridges: all ACTIVE %v after createPortMirror; the controller sent %d messages: %d flow_mods (%d add, %d modify, %d delete; %d in bundles), %d bundle commits (and as many opens), %d barriers, %d flow-stats requests",
		len(bulk), bridges, took.Round(time.Millisecond), d.Messages, d.FlowMods, d.ByCommand[0], d.ByCommand[1]+d.ByCommand[2],
		d.ByCommand[3]+d.ByCommand[4], d.Bundled, d.Commits, d.Barriers, d.FlowStats)

	// Sessions created one by one on the second flow network, each spanning two hosts (host i's VM NIC to the
	// capture NIC of host i+2): latency from the call to ACTIVE.
	pm2, err := e.svc.CreatePortMirror(e.ctx, service.PortMirrorInput{Name: "one-by-one", FlowNetworkUUID: f.FlowNetworks[1].UUID, Enable: true})
	if err != nil {
		t.Fatal(err)
	}
	lat := make([]time.Duration, 0, latencyN)
	before = e.meter.Total()
	for i := range latencyN {
		h := f.Hosts[i%len(f.Hosts)]
		dst := capture(f.Hosts[(i+2)%len(f.Hosts)])
		start := time.Now()
		s, err := e.svc.AddPortMirrorSession(e.ctx, pm2.UUID, service.SessionInput{Name: fmt.Sprintf("one%d", i), Type: dirs[i%3],
			SourceNicUUID: vmNIC(h).UUID, DestinationNicUUID: dst.UUID})
		if err != nil {
			t.Fatal(err)
		}
		deadline := start.Add(30 * time.Second)
		for {
			st, why := e.svc.SessionStatus(e.ctx, s)
			if st == model.StatusActive {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("session %d not ACTIVE after 30s: %s %s", i, st, why)
			}
			runtime.Gosched()
		}
		lat = append(lat, time.Since(start))
	}
	d = e.meter.Total().Sub(before)
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	t.Logf("%d sessions created one by one (each spanning two hosts, %d bridges connected): creation to ACTIVE p50 %v, p99 %v, max %v; %d messages (%d flow_mods, %d bundle commits, %d barriers), %.1f messages per session",
		len(lat), bridges, pct(0.50).Round(time.Microsecond), pct(0.99).Round(time.Microsecond), lat[len(lat)-1].Round(time.Microsecond),
		d.Messages, d.FlowMods, d.Commits, d.Barriers, float64(d.Messages)/float64(len(lat)))
	if e.fleet.Connected() != bridges {
		t.Errorf("%d of %d bridges connected at the end", e.fleet.Connected(), bridges)
	}
}
