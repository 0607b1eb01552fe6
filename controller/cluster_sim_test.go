package controller_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"portmirror/controller"
	"portmirror/model"
	"portmirror/service"
	"portmirror/simulator/fleet"
	"portmirror/store"
)

// TestSimClusterRandomKills: three controllers (in-process Raft on stores on disk), a random simulated fleet whose
// bridges connect to all three, random sessions. Then, several times (seeded): the leader is killed; while the
// others elect a new one, every copy still arrives exactly as the rule says (the flows stay on the switches); the
// new leader masters every bridge with no flow_mod and the same flows; a random change through it converges
// exactly; the killed controller restarts on its data and catches up.
// PORTMIRROR_SIM_SEED picks the seed (default 1) and PORTMIRROR_SIM_KILLS the number of kills (default 3).
func TestSimClusterRandomKills(t *testing.T) {
	seed := uint64(envInt("PORTMIRROR_SIM_SEED", 1))
	kills := envInt("PORTMIRROR_SIM_KILLS", 3)
	rng := rand.New(rand.NewPCG(seed, 0xc1a55))
	t.Logf("seed %d, %d kills", seed, kills)
	ctx := service.WithActor(context.Background(), "cluster-sim-test")

	specs, peers := memberSpecs(3, true, t)
	trs := make([]*raft.InmemTransport, len(specs))
	var addrs []string
	for i := range specs {
		_, trs[i] = raft.NewInmemTransport(specs[i].addr)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		specs[i].listen = ln.Addr().String() // fixed across restarts: the bridges keep their targets
		ln.Close()
		addrs = append(addrs, specs[i].listen)
	}
	connectAll(trs)
	ms := make([]*member, len(specs))
	for i, sp := range specs {
		ms[i] = startMember(t, sp, trs[i], peers)
	}
	defer func() {
		for _, m := range ms {
			m.stop()
		}
	}()

	f, err := fleet.Build(randomTopology(rng, seed), fleet.Options{Controllers: addrs})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Start(ctx, ""); err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	l := leaderOf(t, ms, 15*time.Second)
	if err := f.Register(ctx, l.svc); err != nil {
		t.Fatal(err)
	}
	var sessions []fleet.Session
	addSession := func(svc *service.Service, pmUUID string) {
	pick:
		for range 20 {
			s := randomSession(rng, f, len(sessions))
			for _, o := range sessions {
				if o.Source == s.Source && o.Destination == s.Destination && o.Direction == s.Direction {
					continue pick
				}
			}
			got, err := svc.AddPortMirrorSession(ctx, pmUUID, service.SessionInput{Name: s.Name, Type: s.Direction,
				SourceNicUUID: s.Source.UUID, DestinationNicUUID: s.Destination.UUID, Filters: s.Filters})
			if err != nil {
				t.Fatalf("adding %s %s -> %s: %v", s.Direction, s.Source, s.Destination, err)
			}
			s.UUID, s.Enabled = got.UUID, true
			sessions = append(sessions, s)
			return
		}
	}
	fn := f.FlowNetworks[0]
	pm, err := l.svc.CreatePortMirror(ctx, service.PortMirrorInput{Name: "pm", FlowNetworkUUID: fn.UUID, Enable: true})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 + rng.IntN(6) {
		addSession(l.svc, pm.UUID)
	}
	e := &simEnv{t: t, ctx: ctx, svc: l.svc, fleet: f}
	e.waitBaseline(15 * time.Second)
	e.announceAll()
	e.waitSettled(sessions, 20*time.Second)
	e.eventuallyExact("initial", sessions, 10*time.Second)

	for k := range kills {
		flowsBefore := map[string]map[string]string{}
		for _, h := range f.Hosts {
			flowsBefore[h.Name] = ourFlows(h)
		}
		idx := -1
		for i, m := range ms {
			if m == l {
				idx = i
			}
		}
		l.stop()
		start := time.Now()
		// While the others elect a leader, the switches keep their flows: every copy still arrives exactly once.
		if r := e.checkTraffic(sessions); len(r.problems) > 0 {
			t.Fatalf("kill %d: traffic during the failover: %v", k+1, r.problems)
		}
		rest := []*member{}
		for i, m := range ms {
			if i != idx {
				rest = append(rest, m)
			}
		}
		l2 := leaderOf(t, rest, 10*time.Second)
		sentBefore := flowModsSent(t, l2)
		waitUntil(t, "the new leader MASTER of every bridge", 10*time.Second, func() bool {
			return f.Masters()[l2.ctrl.Addr().String()] == len(f.Hosts)
		})
		e.svc = l2.svc
		e.waitSettled(sessions, 15*time.Second)
		t.Logf("kill %d: the new leader %s mastered %d bridges and confirmed %d sessions %s after the kill", k+1, l2.id,
			len(f.Hosts), len(sessions), time.Since(start).Round(time.Millisecond))
		if d := flowModsSent(t, l2) - sentBefore; d != 0 {
			t.Fatalf("kill %d: the new leader sent %v flow_mods where nothing changed", k+1, d)
		}
		// Probes run at the new leader (the bridges' MASTER, the only one packet-ins reach); a follower refuses.
		for _, s := range sessions {
			if r, err := l2.svc.ProbePortMirrorSession(ctx, s.UUID); err != nil || !r.Delivered {
				t.Errorf("kill %d: probe of %s at the new leader: %+v, %v", k+1, s.Name, r, err)
			}
			for _, m := range rest {
				if _, err := m.ctrl.ProbeSession(ctx, s.UUID); m != l2 && !errors.Is(err, controller.ErrProbeNotLeading) {
					t.Errorf("kill %d: probe at follower %s: %v, want ErrProbeNotLeading", k+1, m.id, err)
				}
			}
		}
		for _, h := range f.Hosts {
			if got := ourFlows(h); !maps.Equal(got, flowsBefore[h.Name]) {
				t.Fatalf("kill %d: the flows of %s changed across the failover", k+1, h.Name)
			}
		}
		// A change through the new leader converges exactly.
		addSession(l2.svc, pm.UUID)
		e.waitSettled(sessions, 15*time.Second)
		e.eventuallyExact(fmt.Sprintf("kill %d: after a change through the new leader", k+1), sessions, 10*time.Second)

		// The killed controller restarts on its data, catches up, and does not master anything while l2 leads.
		_, trs[idx] = raft.NewInmemTransport(specs[idx].addr)
		connectAll(trs)
		ms[idx] = startMember(t, specs[idx], trs[idx], peers)
		waitUntil(t, "the restarted controller to catch up", 15*time.Second, func() bool {
			return store.Count[model.Session](ms[idx].st) == len(sessions)
		})
		waitUntil(t, "the restarted controller's bridges to connect", 15*time.Second, func() bool { return f.FullyConnected() == len(f.Hosts) })
		if n := f.Masters()[ms[idx].ctrl.Addr().String()]; n != 0 {
			if ok, _ := ms[idx].node.Leading(); !ok {
				t.Fatalf("kill %d: the restarted ex-leader is MASTER of %d bridges while it does not lead", k+1, n)
			}
		}
		l = leaderOf(t, ms, 10*time.Second)
		e.svc = l.svc
	}
}
