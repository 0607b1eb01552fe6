package controller_test

// Tests of the controller against the simulator: a real controller on 127.0.0.1:0, a service on an in-memory
// store, and a fleet of simulated bridges (fleet → ofsim → dataplane, joined by the fabric) reaching it over TCP
// through a meter that counts what each bridge receives.

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"portmirror/controller"
	"portmirror/model"
	"portmirror/service"
	"portmirror/simulator/fleet"
	"portmirror/store"
)

func quietLogger() *slog.Logger {
	if os.Getenv("PORTMIRROR_SIM_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// simEnv is a controller, its service and store, and a fleet connected to it through a meter.
type simEnv struct {
	t     testing.TB
	ctx   context.Context
	st    *store.Store
	svc   *service.Service
	ctrl  *controller.Controller
	stop  func() // stops the current controller and waits for it
	fleet *fleet.Fleet
	meter *fleet.Meter
	ctrlO controller.Options
}

type envOptions struct {
	fleet      fleet.Options
	controller controller.Options // Service, Logger and Listen are set by the harness
	noRegister bool               // the test registers the fleet itself
	noStart    bool               // the test starts the fleet itself (f.Start(e.ctx, e.meter.Addr()))
}

func newSimEnv(t testing.TB, topo fleet.Topology, o envOptions) *simEnv {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ctx = service.WithActor(ctx, "sim-test")
	st, err := store.Open(ctx, store.Options{InMemory: true, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	e := &simEnv{t: t, ctx: ctx, st: st, svc: service.New(st, service.Options{Logger: quietLogger()}), ctrlO: o.controller}
	e.startController()
	f, err := fleet.Build(topo, o.fleet)
	if err != nil {
		t.Fatal(err)
	}
	e.fleet = f
	m, err := fleet.NewMeter(e.ctrl.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	e.meter = m
	t.Cleanup(func() {
		f.Stop()
		e.stop()
		m.Close()
		st.Close()
	})
	if !o.noRegister {
		if err := f.Register(ctx, e.svc); err != nil {
			t.Fatal(err)
		}
	}
	if !o.noStart {
		if err := f.Start(ctx, m.Addr()); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// startController starts a controller on the env's service (a new one after a restart) and points the meter at it.
func (e *simEnv) startController() {
	e.t.Helper()
	o := e.ctrlO
	o.Service, o.Logger, o.Listen = e.svc, quietLogger(), "127.0.0.1:0"
	ctrl, err := controller.New(o)
	if err != nil {
		e.t.Fatal(err)
	}
	e.svc.SetLive(ctrl)
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- ctrl.Run(ctx) }()
	e.ctrl = ctrl
	e.stop = func() {
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("controller: %v", err)
		}
	}
	if e.meter != nil {
		e.meter.SetUpstream(ctrl.Addr().String())
	}
}

// restartController stops the controller and starts a new one on the same store.
func (e *simEnv) restartController() {
	e.t.Helper()
	e.stop()
	e.startController()
}

// statuses returns the status of every session of the fleet's port mirrors as the service reports it.
func (e *simEnv) statuses() (map[string]model.SessionStatus, map[string]string) {
	all, err := e.svc.AllSessions(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	st, why := map[string]model.SessionStatus{}, map[string]string{}
	for _, s := range all {
		st[s.UUID], why[s.UUID] = e.svc.SessionStatus(e.ctx, s)
	}
	return st, why
}

// waitSettled polls until every session of an enabled port mirror is ACTIVE and every other one INACTIVE.
func (e *simEnv) waitSettled(sessions []fleet.Session, within time.Duration) time.Duration {
	e.t.Helper()
	start := time.Now()
	deadline := start.Add(within)
	for {
		st, why := e.statuses()
		var bad []string
		for _, s := range sessions {
			want := model.StatusActive
			if !s.Enabled {
				want = model.StatusInactive
			}
			if st[s.UUID] != want {
				bad = append(bad, fmt.Sprintf("%s is %s (%s), want %s", s.Name, st[s.UUID], why[s.UUID], want))
			}
		}
		if len(bad) == 0 {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("sessions not settled after %v:\n%s", within, strings.Join(bad, "\n"))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitBaseline polls until every bridge is connected and holds at least the controller's baseline flow, so that
// business traffic flows (fail_mode secure: an empty table drops everything).
func (e *simEnv) waitBaseline(within time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for {
		missing := 0
		for _, h := range e.fleet.Hosts {
			if sw := e.fleet.SwitchOf(h); sw == nil || !sw.Connected() || h.Bridge.FlowCount() == 0 {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%d of %d bridges not connected with a baseline after %v", missing, len(e.fleet.Hosts), within)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// announceAll has every sending NIC send a gratuitous ARP, so that every bridge has learned every MAC.
func (e *simEnv) announceAll() {
	e.t.Helper()
	for _, n := range e.fleet.Senders() {
		if _, err := e.fleet.Send(e.fleet.Announce(n)); err != nil {
			e.t.Fatal(err)
		}
	}
}

// trafficReport is what one round of traffic showed.
type trafficReport struct {
	frames, expected, delivered int
	problems                    []string
}

// checkTraffic sends every sender's frames (unicast to every other sender, a broadcast, a multicast) and compares
// what every capture NIC received with fleet.Expect; it also checks that business delivery is intact (a unicast
// reaches its NIC once, a broadcast or multicast every other sending NIC once), that no capture NIC receives
// anything but copies, and that no frame comes back to the NIC that sent it.
func (e *simEnv) checkTraffic(sessions []fleet.Session) trafficReport {
	var r trafficReport
	f := e.fleet
	senders := f.Senders()
	for _, from := range senders {
		for _, fr := range f.Frames(from) {
			d, err := f.Send(fr)
			if err != nil {
				e.t.Fatal(err)
			}
			r.frames++
			want := f.Expect(fr, sessions)
			got := d.Captured()
			for _, c := range f.Monitors() {
				r.expected += want[c]
				r.delivered += got[c]
				if got[c] != want[c] {
					r.problems = append(r.problems, fmt.Sprintf("%s %s from %s (on %s): %d copies at %s (on %s), want %d",
						fr.Kind, fr.Describe(), from, f.HostOf(from.VM).Name, got[c], c, f.HostOf(c.VM).Name, want[c]))
				}
			}
			business := map[*fleet.NIC]int{}
			for _, a := range d.Arrivals {
				if !a.NIC.Capture {
					business[a.NIC]++
				} else if !bytes.Equal(a.Raw, fr.Raw) {
					r.problems = append(r.problems, fmt.Sprintf("%s from %s: the copy at %s differs from the frame sent", fr.Kind, from, a.NIC))
				}
			}
			for _, n := range senders {
				want := 0
				switch {
				case n == from:
				case fr.Kind == fleet.Unicast:
					if n == fr.To {
						want = 1
					}
				default:
					want = 1
				}
				if business[n] != want {
					r.problems = append(r.problems, fmt.Sprintf("%s %s from %s: %d arrived at %s, want %d (business traffic)",
						fr.Kind, fr.Describe(), from, business[n], n, want))
				}
			}
		}
	}
	return r
}

// eventuallyExact repeats checkTraffic until it finds nothing wrong (the bridges converge asynchronously after a
// change; a session being ACTIVE does not say that a deleted one's flows are gone yet) or the deadline passes.
func (e *simEnv) eventuallyExact(what string, sessions []fleet.Session, within time.Duration) trafficReport {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for {
		r := e.checkTraffic(sessions)
		if len(r.problems) == 0 {
			return r
		}
		if time.Now().After(deadline) {
			n := len(r.problems)
			if n > 20 {
				r.problems = r.problems[:20]
			}
			e.t.Fatalf("%s: %d wrong deliveries (first %d):\n%s\nsessions:\n%s", what, n, len(r.problems),
				strings.Join(r.problems, "\n"), describeSessions(e.fleet, sessions))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func describeSessions(f *fleet.Fleet, sessions []fleet.Session) string {
	var b strings.Builder
	for _, s := range sessions {
		fmt.Fprintf(&b, "  %s %s %s (on %s) -> %s (on %s) enabled=%v\n", s.Name, s.Direction, s.Source, f.HostOf(s.Source.VM).Name,
			s.Destination, f.HostOf(s.Destination.VM).Name, s.Enabled)
	}
	return b.String()
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// randomTopology is 2 to 5 hosts in one or two clusters, each with 0 to 3 VMs of 1 or 2 NICs and at most two
// monitors (at least one monitor and three senders in all), one or two flow networks, of any encapsulation (GRE, VXLAN, ERSPAN_V1, ERSPAN_V2).
func randomTopology(rng *rand.Rand, seed uint64) fleet.Topology {
	for {
		t := fleet.Topology{Seed: seed, FlowNetworks: 1 + rng.IntN(2), Encapsulation: model.Encapsulations()[rng.IntN(len(model.Encapsulations()))]}
		hosts := 2 + rng.IntN(4)
		t.Clusters = make([]fleet.ClusterSpec, 1+rng.IntN(2))
		monitors, senders := 0, 0
		for h := range hosts {
			hs := fleet.HostSpec{VMs: rng.IntN(4), NICsPerVM: 1 + rng.IntN(2), Monitors: rng.IntN(3) / 2 * (1 + rng.IntN(2))}
			monitors += hs.Monitors
			senders += hs.VMs*hs.NICsPerVM + hs.Monitors
			c := h % len(t.Clusters)
			t.Clusters[c].Hosts = append(t.Clusters[c].Hosts, hs)
		}
		if monitors > 0 && senders >= 3 {
			return t
		}
	}
}

// randomSession picks a source among the sending NICs, a destination among the capture NICs and a direction.
func randomSession(rng *rand.Rand, f *fleet.Fleet, n int) fleet.Session {
	senders, monitors := f.Senders(), f.Monitors()
	s := fleet.Session{Name: fmt.Sprintf("s%d", n), Source: senders[rng.IntN(len(senders))],
		Destination: monitors[rng.IntN(len(monitors))],
		Direction:   []model.Direction{model.Ingress, model.Egress, model.Bidirection}[rng.IntN(3)]}
	s.Filters = randomFilter(rng, senders)
	return s
}

// randomFilter returns no filter half of the time, else a few rules over what the fleet sends (ICMP unicast,
// ARP broadcast, UDP multicast to port 5353) and the senders' addresses, in canonical form.
func randomFilter(rng *rand.Rand, senders []*fleet.NIC) []model.FilterRule {
	if rng.IntN(2) == 0 {
		return nil
	}
	var out []model.FilterRule
	for range 1 + rng.IntN(3) {
		r := model.FilterRule{Action: model.FilterAccept}
		if rng.IntN(3) == 0 {
			r.Action = model.FilterReject
		}
		r.Protocol = []string{"", "icmp", "arp", "udp", "udp", "1"}[rng.IntN(6)]
		if r.Protocol != "arp" && rng.IntN(2) == 0 {
			ip := senders[rng.IntN(len(senders))].IP
			r.SourceCIDR = netip.PrefixFrom(ip, []int{32, 24, 16}[rng.IntN(3)]).Masked().String()
		}
		if r.Protocol == "udp" && rng.IntN(2) == 0 {
			r.DestinationPorts = []string{"5353", "5000-5352", "5300-6000", "1-1024"}[rng.IntN(4)]
		}
		c, err := r.Canonical()
		if err != nil {
			panic(err)
		}
		out = append(out, c)
	}
	return out
}

// TestSimRandomExact: random fleets and sessions of every direction, local and remote, overlapping sources and
// destinations, over one or two flow networks; once every session is ACTIVE, every sender's unicast, broadcast
// and multicast frames reach each capture NIC exactly as API.md's rule says (fleet.Expect). Then random mutations
// (disable, enable, delete and add sessions, migrate VMs) and the same check after each.
// PORTMIRROR_SIM_SEEDS sets the number of seeds (default 30); PORTMIRROR_SIM_SEED=N starts at seed N (and runs one
// seed unless PORTMIRROR_SIM_SEEDS says more).
func TestSimRandomExact(t *testing.T) {
	first, seeds := uint64(1), envInt("PORTMIRROR_SIM_SEEDS", 30)
	if s := envInt("PORTMIRROR_SIM_SEED", 0); s > 0 {
		first, seeds = uint64(s), envInt("PORTMIRROR_SIM_SEEDS", 1)
	}
	var total trafficReport
	var nSessions, nMutations int
	for seed := first; seed < first+uint64(seeds); seed++ {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			r, ns, nm := runRandomExact(t, seed)
			total.frames += r.frames
			total.expected += r.expected
			total.delivered += r.delivered
			nSessions += ns
			nMutations += nm
		})
	}
	t.Logf("%d seeds: %d sessions, %d mutations, %d frames sent, %d copies expected and delivered",
		seeds, nSessions, nMutations, total.frames, total.delivered)
}

func runRandomExact(t *testing.T, seed uint64) (trafficReport, int, int) {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	topo := randomTopology(rng, seed)
	// Every third seed's switches refuse bundles: the plain flow_mod path must be as exact.
	noBundles := seed%3 == 0
	e := newSimEnv(t, topo, envOptions{fleet: fleet.Options{NoBundles: noBundles}, controller: controllerOptionsWithCounters()})
	f := e.fleet
	e.waitBaseline(10 * time.Second)
	e.announceAll()

	type pmState struct {
		uuid    string
		enabled bool
	}
	pms := map[*fleet.FlowNetwork]*pmState{}
	type sess struct {
		fleet.Session
		fn *fleet.FlowNetwork
	}
	var all []sess
	current := func() []fleet.Session {
		out := make([]fleet.Session, len(all))
		for i, s := range all {
			out[i] = s.Session
			out[i].Enabled = pms[s.fn].enabled
		}
		return out
	}
	n := 0
	addSession := func(fn *fleet.FlowNetwork) {
	pick:
		for range 20 {
			s := randomSession(rng, f, n)
			for _, o := range all {
				if o.fn == fn && o.Source == s.Source && o.Destination == s.Destination && o.Direction == s.Direction &&
					model.FilterKey(o.Filters) == model.FilterKey(s.Filters) {
					continue pick
				}
			}
			in := service.SessionInput{Name: s.Name, Type: s.Direction,
				SourceNicUUID: s.Source.UUID, DestinationNicUUID: s.Destination.UUID, Filters: s.Filters}
			if rng.IntN(4) == 0 { // capped far above what the test sends: copies go through a clone and a meter
				huge := 10_000_000 + rng.IntN(1000)
				in.BandwidthLimitKbps = &huge
			}
			got, err := e.svc.AddPortMirrorSession(e.ctx, pms[fn].uuid, in)
			if err != nil {
				t.Fatalf("adding %s %s -> %s: %v", s.Direction, s.Source, s.Destination, err)
			}
			n++
			s.UUID = got.UUID
			all = append(all, sess{s, fn})
			return
		}
	}
	for _, fn := range f.FlowNetworks {
		enabled := rng.IntN(5) > 0
		pm, err := e.svc.CreatePortMirror(e.ctx, service.PortMirrorInput{Name: "pm-" + fn.Name, FlowNetworkUUID: fn.UUID, Enable: enabled})
		if err != nil {
			t.Fatal(err)
		}
		pms[fn] = &pmState{uuid: pm.UUID, enabled: enabled}
		for range 1 + rng.IntN(10) {
			addSession(fn)
		}
	}

	e.waitSettled(current(), 15*time.Second)
	total := e.eventuallyExact("initial", current(), 10*time.Second)
	e.checkCounters(current(), 10*time.Second)

	var emptied *fleet.Host // the bridge the last mutation restarted empty
	mutate := func() (what string, flushed bool) {
		emptied = nil
		switch op := rng.IntN(9); {
		case op == 0: // disable or enable a port mirror
			fn := f.FlowNetworks[rng.IntN(len(f.FlowNetworks))]
			on := !pms[fn].enabled
			var err error
			if on {
				_, err = e.svc.EnablePortMirror(e.ctx, pms[fn].uuid)
			} else {
				_, err = e.svc.DisablePortMirror(e.ctx, pms[fn].uuid)
			}
			if err != nil {
				t.Fatal(err)
			}
			pms[fn].enabled = on
			return fmt.Sprintf("%s enabled=%v", fn.Name, on), false
		case op == 1 && len(all) > 0: // delete a session
			i := rng.IntN(len(all))
			s := all[i]
			if err := e.svc.DeletePortMirrorSession(e.ctx, s.UUID); err != nil {
				t.Fatal(err)
			}
			all = slices.Delete(all, i, i+1)
			return "delete " + s.Name, false
		case op <= 3: // add a session
			fn := f.FlowNetworks[rng.IntN(len(f.FlowNetworks))]
			addSession(fn)
			return "add a session to " + fn.Name, false
		case op == 4: // a bridge restarts empty (ovs-vswitchd restart)
			h := f.Hosts[rng.IntN(len(f.Hosts))]
			f.SwitchOf(h).Restart()
			emptied = h
			return "restart the bridge of " + h.Name, true
		case op == 5: // the controller restarts
			e.restartController()
			return "restart the controller", false
		case op == 6: // a bridge drops its connection
			h := f.Hosts[rng.IntN(len(f.Hosts))]
			f.SwitchOf(h).Disconnect()
			return "disconnect the bridge of " + h.Name, false
		default: // migrate a VM
			vm := f.VMs[rng.IntN(len(f.VMs))]
			from := f.HostOf(vm)
			to := f.Hosts[rng.IntN(len(f.Hosts))]
			if to == from {
				to = f.Hosts[(to.Index+1)%len(f.Hosts)]
			}
			if err := f.Migrate(e.ctx, e.svc, vm, to); err != nil {
				t.Fatal(err)
			}
			return fmt.Sprintf("migrate %s %s -> %s", vm.Name, from.Name, to.Name), true
		}
	}
	mutations := 0
	steps := 4 + rng.IntN(5)
	for step := range steps {
		// a burst of one to three changes, sometimes made while one bridge is offline
		var whats []string
		flushed := false
		// The controller has taken in every earlier change, those of NICs no enabled session uses included (a VM
		// migrated while its port mirror was disabled moved in the controller's view during the next step's enable,
		// which then programmed a state before the final one: one flow added and then modified)
		e.waitBindings(10 * time.Second)
		held := map[*fleet.Host]map[string]string{}
		for _, h := range f.Hosts {
			held[h] = ourFlows(h)
		}
		before := e.snapshot()
		ops := 1 + rng.IntN(3)
		var offline *fleet.Host
		if rng.IntN(4) == 0 {
			offline = f.Hosts[rng.IntN(len(f.Hosts))]
			e.takeOffline(offline)
			whats = append(whats, offline.Name+" offline")
		}
		migrated := false
		for range ops {
			w, fl := mutate()
			migrated = migrated || strings.HasPrefix(w, "migrate")
			if emptied != nil {
				held[emptied] = nil
			}
			whats = append(whats, w)
			flushed = flushed || fl
			mutations++
		}
		if offline != nil {
			f.SwitchOf(offline).SetOffline(false)
		}
		what := fmt.Sprintf("after step %d (%s)", step+1, strings.Join(whats, ", "))
		e.waitSettled(current(), 15*time.Second)
		if flushed {
			// a restarted bridge forgot its MACs, a migrated VM announced itself before its new port had flows:
			// the VMs announce themselves again once every bridge holds its baseline
			e.waitBaseline(10 * time.Second)
			e.announceAll()
		}
		r := e.eventuallyExact(what, current(), 10*time.Second)
		if ops == 1 && !migrated {
			// one change (a migration is two: the ports move, then the store): every bridge receives exactly the
			// flow_mods that turn what it held into what it holds
			e.waitMinimal(what, held, before, 5*time.Second)
		}
		total.frames += r.frames
		total.expected += r.expected
		total.delivered += r.delivered
	}
	// The way the flows went: in bundles only, or, to switches without bundles (found out by the probe after the
	// handshake), as plain flow_mods only.
	if c := e.meter.Total(); c.FlowMods == 0 || noBundles && (c.Commits != 0 || c.Bundled != 0) || !noBundles && (c.Commits == 0 || c.Bundled != c.FlowMods) {
		t.Errorf("switches without bundles: %v; the controller sent %d flow_mods, %d of them in bundles, and %d commits",
			noBundles, c.FlowMods, c.Bundled, c.Commits)
	}
	return total, n, mutations
}

// sessionPM is the port mirror of a stored session.
func sessionPM(e *simEnv, uuid string) string {
	s, err := e.svc.Session(e.ctx, uuid)
	if err != nil {
		e.t.Fatal(err)
	}
	return s.PortMirrorUUID
}

// waitMinimal polls until every bridge has received, since the snapshot, exactly as many flow_mods as the
// difference between what it held then (nil: it was emptied) and what it holds now; more is a failure once the
// deadline passes (fewer means it is still converging).
func (e *simEnv) waitMinimal(what string, held map[*fleet.Host]map[string]string, before map[uint64]fleet.Counts, within time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for {
		var bad []string
		for _, h := range e.fleet.Hosts {
			add, mod, del := flowDiff(held[h], ourFlows(h))
			got := e.meter.Of(h.DatapathID).Sub(before[h.DatapathID])
			if got.FlowMods != int64(add+mod+del) {
				bad = append(bad, fmt.Sprintf("%s received %d flow_mods (by command %v) for a difference of %d adds, %d modifies, %d deletes",
					h.Name, got.FlowMods, got.ByCommand, add, mod, del))
			}
		}
		if len(bad) == 0 {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: not minimal:\n%s", what, strings.Join(bad, "\n"))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// takeOffline keeps h's bridge disconnected and waits until the controller has noticed: a change made before that
// may be sent on the dying connection and lost, then sent again after the reconnect (correctly, but it would
// count twice here).
func (e *simEnv) takeOffline(h *fleet.Host) {
	e.t.Helper()
	e.fleet.SwitchOf(h).SetOffline(true)
	deadline := time.Now().Add(10 * time.Second)
	for e.fleet.SwitchOf(h).Connected() || e.svc.HostConnected(e.ctx, h.UUID) {
		if time.Now().After(deadline) {
			e.t.Fatalf("the controller still sees %s connected 10s after it went offline", h.Name)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitBindings polls until the controller's view binds every NIC of the fleet where the fleet has it: its VM's
// host's bridge, at the port named for it.
func (e *simEnv) waitBindings(within time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for {
		var off []string
		for _, n := range e.fleet.NICs {
			h := e.fleet.HostOf(n.VM)
			var port uint32
			for _, p := range h.Bridge.Ports() {
				if p.Name == n.PortName {
					port = p.No
				}
			}
			if b, ok := e.ctrl.View().Binding(n.UUID); !ok || b.DatapathID != h.DatapathIDString() || b.PortNo != port {
				off = append(off, fmt.Sprintf("%s (view: %s port %d; fleet: %s port %d)", n, b.DatapathID, b.PortNo, h.DatapathIDString(), port))
			}
		}
		if len(off) == 0 {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("the controller's view does not bind these NICs where the fleet has them after %v: %v", within, off)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
