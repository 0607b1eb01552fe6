package controller_test

import (
	"context"
	"testing"
	"time"

	"portmirror/controller"
	"portmirror/ofwire"
	"portmirror/service"
	"portmirror/simulator/fleet"
	"portmirror/store"
)

// fixedLeadership is a cluster whose leadership never changes: leading or not, in one term.
type fixedLeadership struct {
	lead bool
	term uint64
}

func (l fixedLeadership) Leading() (bool, uint64)              { return l.lead, l.term }
func (l fixedLeadership) Subscribe() (<-chan struct{}, func()) { return make(chan struct{}), func() {} }
func (l fixedLeadership) OpenFlowTargets() []string            { return nil }

// TestFollowerBehindTheTermBecomesSlave: a member restarted after a failover knows an older term than the one the
// new leader gave the switches until it hears from the leader. A bridge that connects to it meanwhile refuses its
// SLAVE request as STALE; the connection must not stay EQUAL (an EQUAL controller may change flows and receives
// packet-ins), it must end up SLAVE.
func TestFollowerBehindTheTermBecomesSlave(t *testing.T) {
	ctx, cancel := context.WithCancel(service.WithActor(context.Background(), "sim-test"))
	defer cancel()
	start := func(lead bool, term uint64, register func(*service.Service)) *controller.Controller {
		st, err := store.Open(ctx, store.Options{InMemory: true, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		svc := service.New(st, service.Options{Logger: quietLogger()})
		if register != nil {
			register(svc)
		}
		c, err := controller.New(controller.Options{Service: svc, Logger: quietLogger(), Listen: "127.0.0.1:0",
			Cluster: fixedLeadership{lead: lead, term: term}})
		if err != nil {
			t.Fatal(err)
		}
		svc.SetLive(c)
		cctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { _ = c.Run(cctx); close(done) }()
		t.Cleanup(func() { stop(); <-done; st.Close() })
		return c
	}
	f, err := fleet.Build(fleet.Uniform(3, 1, 1, 0), fleet.Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	leader := start(true, 5, func(svc *service.Service) {
		if err := f.Register(ctx, svc); err != nil {
			t.Fatal(err)
		}
	})
	follower := start(false, 2, nil)
	la, fa := leader.Addr().String(), follower.Addr().String()
	f, err = fleet.Build(fleet.Uniform(3, 1, 1, 0), fleet.Options{Logger: quietLogger(), Controllers: []string{la, fa}})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Start(ctx, ""); err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	sw := f.SwitchOf(f.Hosts[0])
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: roles %v", what, sw.Roles())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor("the leader MASTER in term 5", func() bool {
		gen, set := sw.GenerationID()
		return sw.Master() == la && set && gen == 5
	})
	// The follower's connection starts anew: its SLAVE request in term 2 is stale now.
	sw.DisconnectFrom(fa)
	waitFor("the follower SLAVE after reconnecting", func() bool {
		r, ok := sw.Roles()[fa]
		return ok && r == ofwire.RoleSlave && sw.Master() == la
	})
	if gen, _ := sw.GenerationID(); gen != 5 {
		t.Errorf("the switch's election id is %d after the follower's requests, want the leader's 5", gen)
	}
}
