package bench

import (
	"context"
	"fmt"
	"os"
	simfleet "portmirror/simulator/fleet"
	"slices"
	"time"

	"portmirror/controller"
	"portmirror/model"
	"portmirror/service"
	"portmirror/store"
)

// simRig is an in-process service and controller with simulated bridges, one per host of one cluster.
type simRig struct {
	st      *store.Store
	svc     *service.Service
	ctrl    *controller.Controller
	bridges *simBridges
	proxy   *simfleet.Meter // counts what the controller sends to the bridges
	fn      string
	pm      string
	stop    func()
}

// startRig stores hosts hosts with their NICs, one flow network and one enabled port mirror holding perHost
// sessions per host (NIC j of host h to NIC 5+j of host h+1), runs a controller, and connects one simulated bridge
// per host, through a counting proxy when counted is set. dir "" keeps the store in memory.
func (b *bencher) startRig(ctx context.Context, dir string, hosts, perHost int, counted, local bool) (*simRig, error) {
	return b.startRigWith(ctx, dir, hosts, perHost, counted, local, rigOptions{})
}

// rigOptions change what startRigWith builds.
type rigOptions struct {
	controller controller.Options          // its service, logger and listen address are set by startRigWith
	session    func(*service.SessionInput) // when set, changes every session's input
	disabled   bool                        // the port mirror is stored disabled
}

// startRigWith is startRig with options.
func (b *bencher) startRigWith(ctx context.Context, dir string, hosts, perHost int, counted, local bool, ro rigOptions) (*simRig, error) {
	r := &simRig{}
	var err error
	if r.st, err = store.Open(ctx, store.Options{Dir: dir, InMemory: dir == "", Logger: b.quiet}); err != nil {
		return nil, err
	}
	cleanup := []func(){func() { r.st.Close() }}
	r.stop = func() {
		for i := len(cleanup) - 1; i >= 0; i-- {
			cleanup[i]()
		}
	}
	fail := func(err error) (*simRig, error) { r.stop(); return nil, err }
	r.svc = service.New(r.st, service.Options{Logger: b.quiet})
	sctx := service.WithActor(ctx, "bench")
	if err := putInventory(sctx, r.st, hosts, 1); err != nil {
		return fail(err)
	}
	cidr := "198.18.0.0/21" // 2,046 endpoints
	if hosts > 2000 {
		cidr = "198.18.0.0/17"
	}
	fn, err := r.svc.CreateFlowNetwork(sctx, service.FlowNetworkInput{UUID: uuidN(0x30, 0), Name: "mirror-net", CIDR: cidr,
		ClusterUUIDs: []string{uuidN(0x10, 0)}})
	if err != nil {
		return fail(err)
	}
	r.fn = fn.UUID
	in := service.PortMirrorInput{Name: "sim", FlowNetworkUUID: fn.UUID, Enable: !ro.disabled}
	for h := range hosts {
		dst := (h + 1) % hosts
		if local {
			dst = h
		}
		for j := range perHost {
			in.Sessions = append(in.Sessions, service.SessionInput{Name: fmt.Sprintf("hv%d-%d", h, j), Type: model.Bidirection,
				SourceNicUUID: fleetNICUUID(h, j), DestinationNicUUID: fleetNICUUID(dst, 5+j)})
			if ro.session != nil {
				ro.session(&in.Sessions[len(in.Sessions)-1])
			}
		}
	}
	// One call's audit event records its input, and Badger caps a value at 1 MiB: create with the first 500
	// sessions, add the rest one by one (before the controller runs, so no pass per addition).
	rest := in.Sessions[min(500, len(in.Sessions)):]
	in.Sessions = in.Sessions[:min(500, len(in.Sessions))]
	pm, err := r.svc.CreatePortMirror(sctx, in)
	if err != nil {
		return fail(err)
	}
	r.pm = pm.UUID
	for _, si := range rest {
		if _, err := r.svc.AddPortMirrorSession(sctx, pm.UUID, si); err != nil {
			return fail(err)
		}
	}
	opts := ro.controller
	opts.Service, opts.Logger, opts.Listen = r.svc, b.quiet, "127.0.0.1:0"
	r.ctrl, err = controller.New(opts)
	if err != nil {
		return fail(err)
	}
	r.svc.SetLive(r.ctrl)
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = r.ctrl.Run(cctx); close(done) }()
	cleanup = append(cleanup, func() { cancel(); <-done })
	target := r.ctrl.Addr().String()
	if counted {
		if r.proxy, err = simfleet.NewMeter(target); err != nil {
			return fail(err)
		}
		cleanup = append(cleanup, func() { _ = r.proxy.Close() })
		target = r.proxy.Addr()
	}
	if r.bridges, err = startSimBridges(ctx, target, hosts, func(int) string { return fn.UUID }); err != nil {
		return fail(err)
	}
	cleanup = append(cleanup, r.bridges.stop)
	// Every bridge connected and programmed (at least its baseline flow confirmed).
	if err := waitUntil(ctx, 2*time.Minute, "every simulated bridge to connect and be programmed", func() bool {
		n := 0
		for _, sw := range r.ctrl.Switches() {
			if sw.Connected && sw.FlowCount > 0 {
				n++
			}
		}
		return n == hosts
	}); err != nil {
		return fail(err)
	}
	return r, nil
}

func (r *simRig) sessions(ctx context.Context) ([]model.Session, error) {
	return r.svc.Sessions(ctx, r.pm)
}

// partStatus is part 3: session → ACTIVE latency on simulated bridges.
func (b *bencher) partStatus(ctx context.Context) {
	s := section{title: "3. Session → ACTIVE latency", command: b.command("status")}
	if err := b.status(ctx, &s); err != nil {
		b.fail("status", err)
	}
	b.res.sections = append(b.res.sections, s)
}

func (b *bencher) status(ctx context.Context, s *section) error {
	hosts := b.scaled(1000)
	dir, err := os.MkdirTemp("", "pmbench-status")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	r, err := b.startRig(ctx, dir, hosts, 0, false, false)
	if err != nil {
		return err
	}
	defer r.stop()
	sctx := service.WithActor(ctx, "bench")
	var total, mut []time.Duration
	for h := range hosts {
		t0 := time.Now()
		sess, err := r.svc.AddPortMirrorSession(sctx, r.pm, service.SessionInput{Name: fmt.Sprintf("s%d", h), Type: model.Bidirection,
			SourceNicUUID: fleetNICUUID(h, 0), DestinationNicUUID: fleetNICUUID((h+1)%hosts, 5)})
		if err != nil {
			return fmt.Errorf("session %d: %w", h, err)
		}
		t1 := time.Now()
		if err := waitActive(ctx, r.ctrl, []model.Session{sess}, 100*time.Microsecond, 30*time.Second); err != nil {
			return err
		}
		total = append(total, time.Since(t0))
		mut = append(mut, t1.Sub(t0))
	}
	slices.Sort(total)
	slices.Sort(mut)
	q := func(l []time.Duration, p float64) time.Duration { return l[min(len(l)-1, int(p*float64(len(l))))] }
	p99 := q(total, 0.99)
	b.res.add(Figure{Name: "status.active_p50_ms", Value: ms(q(total, 0.5)), Unit: "ms", Command: s.command})
	b.res.add(Figure{Name: "status.active_p99_ms", Value: ms(p99), Unit: "ms", Goal: "≤ 10", Met: met(ms(p99) <= 10), Command: s.command})
	b.res.add(Figure{Name: "status.active_max_ms", Value: ms(total[len(total)-1]), Unit: "ms", Command: s.command})
	b.res.add(Figure{Name: "status.mutation_p50_ms", Value: ms(q(mut, 0.5)), Unit: "ms", Command: s.command})
	b.res.add(Figure{Name: "status.mutation_p99_ms", Value: ms(q(mut, 0.99)), Unit: "ms", Command: s.command})
	s.how = fmt.Sprintf("%d simulated bridges (`simulator/ofsim`, real TCP on loopback) connected to a controller in the "+
		"benchmark's process, with the service on an **on-disk** Badger store (synchronous writes, as the daemon runs). "+
		"%d BIDIRECTION sessions are added one at a time with `AddPortMirrorSession` to an enabled port mirror, each from "+
		"NIC 0 of host h to NIC 5 of host h+1 (two bridges, over the flow network's tunnel ports). The time is from the "+
		"call to the session's status turning ACTIVE, which the controller reports once both bridges acknowledged the "+
		"flows with a barrier; the status is polled every 100 µs through `Controller.SessionStatus` (the controller "+
		"offers no status-change notification). The mutation column is the call alone (durable commit and audit).", hosts, hosts)
	s.header = []string{"", "p50", "p99", "max"}
	s.rows = [][]string{
		{"create → ACTIVE", fmt.Sprintf("%.2f ms", ms(q(total, 0.5))), fmt.Sprintf("%.2f ms", ms(p99)), fmt.Sprintf("%.2f ms", ms(total[len(total)-1]))},
		{"the mutation alone", fmt.Sprintf("%.2f ms", ms(q(mut, 0.5))), fmt.Sprintf("%.2f ms", ms(q(mut, 0.99))), fmt.Sprintf("%.2f ms", ms(mut[len(mut)-1]))},
	}
	return nil
}

// partStorm is part 4: every bridge reconnects at once.
func (b *bencher) partStorm(ctx context.Context) {
	s := section{title: "4. Reconnect storm", command: b.command("storm")}
	if err := b.storm(ctx, &s); err != nil {
		b.fail("storm", err)
	}
	b.res.sections = append(b.res.sections, s)
}

func (b *bencher) storm(ctx context.Context, s *section) error {
	hosts := b.scaled(1000)
	const perHost = 5
	s.header = []string{"sessions", "bridges", "flows held", "reconnected", "time to reconciled", "flow_mods sent (ADD / DELETE_STRICT)", "flow-stats requests", "barriers"}
	for _, sc := range []struct {
		name  string
		local bool
	}{{"local", true}, {"remote", false}} {
		row, err := b.stormOnce(ctx, hosts, perHost, sc.local, sc.name)
		if err != nil {
			return fmt.Errorf("%s sessions: %w", sc.name, err)
		}
		s.rows = append(s.rows, row)
	}
	s.how = fmt.Sprintf("%d simulated bridges connected to an in-process controller through a proxy that counts every "+
		"message the controller sends. Each bridge holds the flows of %d BIDIRECTION sessions whose sources are on it and "+
		"of %d whose destinations are on it: in the *local* run a session's source and destination are on the same bridge; "+
		"in the *remote* run the destination is on the next bridge (copies over the flow network). All bridges go offline; "+
		"once the controller has seen every one disconnect (their sessions PENDING), all come back at once. The time is "+
		"from the reconnect to every session being ACTIVE again (each bridge re-handshaken, read back with one flow-stats "+
		"request, diffed, confirmed with a barrier). The goal (≤ 2 s, no flow_mod when nothing changed) is judged on both.",
		hosts, perHost, perHost)
	s.notes = append(s.notes, "A bridge that is away keeps its bindings in the controller's view (its fail_mode=secure "+
		"data plane still forwards and delivers), and a destination whose bridge has not reconnected yet still receives "+
		"remote copies, so no source bridge loses its copy flows while the others come back in arbitrary order; every "+
		"bridge is read back and diffed, and nothing that was already right is resent.")
	return nil
}

func (b *bencher) stormOnce(ctx context.Context, hosts, perHost int, local bool, name string) ([]string, error) {
	r, err := b.startRig(ctx, "", hosts, perHost, true, local)
	if err != nil {
		return nil, err
	}
	defer r.stop()
	sessions, err := r.sessions(ctx)
	if err != nil {
		return nil, err
	}
	if err := waitActive(ctx, r.ctrl, sessions, time.Millisecond, 2*time.Minute); err != nil {
		return nil, err
	}
	flowsHeld := 0
	for _, sw := range r.bridges.sw {
		flowsHeld += sw.Bridge().FlowCount()
	}
	// Everyone offline; once the controller has seen every bridge go, everyone back at once.
	for _, sw := range r.bridges.sw {
		sw.SetOffline(true)
	}
	if err := waitUntil(ctx, time.Minute, "the controller to see every bridge disconnect", func() bool {
		for _, sw := range r.ctrl.Switches() {
			if sw.Connected {
				return false
			}
		}
		return true
	}); err != nil {
		return nil, err
	}
	before := r.proxy.Total()
	t0 := time.Now()
	for _, sw := range r.bridges.sw {
		sw.SetOffline(false)
	}
	if err := waitActive(ctx, r.ctrl, sessions, time.Millisecond, 2*time.Minute); err != nil {
		return nil, err
	}
	d := time.Since(t0)
	connected := r.bridges.connected()
	sent := r.proxy.Total().Sub(before)
	fm, st, ba := sent.FlowMods, sent.FlowStats, sent.Barriers
	adds, dels := sent.ByCommand[0], sent.ByCommand[4]
	cmd := b.command("storm")
	b.res.add(Figure{Name: "storm." + name + ".reconcile_seconds", Value: d.Seconds(), Unit: "s", Goal: "≤ 2", Met: met(d <= 2*time.Second), Command: cmd})
	b.res.add(Figure{Name: "storm." + name + ".flow_mods_sent", Value: float64(fm), Unit: "flow_mods", Goal: "= 0", Met: met(fm == 0), Command: cmd})
	b.res.add(Figure{Name: "storm." + name + ".flow_stats_requests", Value: float64(st), Unit: "requests", Command: cmd})
	b.res.add(Figure{Name: "storm." + name + ".flows_held", Value: float64(flowsHeld), Unit: "flows", Command: cmd})
	return []string{name, fmt.Sprint(hosts), fmt.Sprintf("%d (%.0f per bridge)", flowsHeld, float64(flowsHeld)/float64(hosts)),
		fmt.Sprint(connected), fmt.Sprintf("%.0f ms", ms(d)), fmt.Sprintf("%d (%d / %d)", fm, adds, dels), fmt.Sprint(st), fmt.Sprint(ba)}, nil
}
