package service

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"portmirror/model"
	"portmirror/store"
)

func TestDurableAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	svc, st := openService(t, dir)
	ctx := WithActor(context.Background(), "tester")
	c, _ := svc.CreateCluster(ctx, ClusterInput{Name: "alpha"})
	h1, _ := svc.RegisterHost(ctx, HostInput{Name: "hv1", ClusterUUID: c.UUID})
	h2, _ := svc.RegisterHost(ctx, HostInput{Name: "hv2", ClusterUUID: c.UUID})
	vm1, _ := svc.CreateVmInstance(ctx, VmInstanceInput{Name: "web", HostUUID: h1.UUID, Nics: []VmNicInput{{MAC: "02:00:00:00:00:01"}}})
	vm2, _ := svc.CreateVmInstance(ctx, VmInstanceInput{Name: "mon", HostUUID: h2.UUID, Nics: []VmNicInput{{MAC: "02:00:00:00:00:02"}}})
	n1, _ := svc.VmNics(ctx, vm1.UUID)
	n2, _ := svc.VmNics(ctx, vm2.UUID)
	fn, _ := svc.CreateFlowNetwork(ctx, FlowNetworkInput{Name: "fn", CIDR: "198.18.0.0/24", ClusterUUIDs: []string{c.UUID}})
	pm, err := svc.CreatePortMirror(ctx, PortMirrorInput{Name: "pm", FlowNetworkUUID: fn.UUID, Enable: true,
		Sessions: []SessionInput{{Name: "s", Type: model.Egress, SourceNicUUID: n1[0].UUID, DestinationNicUUID: n2[0].UUID}}})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = svc.CreatePortMirror(ctx, PortMirrorInput{Name: "", FlowNetworkUUID: fn.UUID}) // refused, audited
	before := dump(t, st)
	evBefore := audits(t, svc, AuditQuery{First: 1000})
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	svc, st = openService(t, dir)
	defer st.Close()
	if after := dump(t, st); after != before {
		t.Fatalf("store differs after reopen:\n%s\n%s", before, after)
	}
	evAfter := audits(t, svc, AuditQuery{First: 1000})
	if fmt.Sprint(evAfter) != fmt.Sprint(evBefore) {
		t.Fatalf("audit differs after reopen")
	}
	// Keys continue, the port mirror still occupies its flow network.
	if _, err := svc.CreatePortMirror(ctx, PortMirrorInput{Name: "pm2", FlowNetworkUUID: fn.UUID}); AsError(err).Rule != RuleFlowNetworkInUse {
		t.Fatalf("after reopen: %v", err)
	}
	if e := audits(t, svc, AuditQuery{First: 1}); e[0].ID <= evBefore[0].ID {
		t.Fatalf("audit id went back: %s after %s", e[0].ID, evBefore[0].ID)
	}
	_ = pm
}

// TestSurvivesSIGKILL runs a child process that creates clusters and prints each uuid once acknowledged, kills it
// with SIGKILL mid-stream, and checks that every acknowledged cluster (and its audit event) is in the store.
func TestSurvivesSIGKILL(t *testing.T) {
	if dir := os.Getenv("PORTMIRROR_KILL_CHILD_DIR"); dir != "" {
		svc, _ := openService(t, dir)
		for i := 0; ; i++ {
			c, err := svc.CreateCluster(context.Background(), ClusterInput{Name: fmt.Sprint("c", i)})
			if err != nil {
				fmt.Println("ERR", err)
				os.Exit(1)
			}
			fmt.Println(c.UUID)
		}
	}
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSurvivesSIGKILL$")
	cmd.Env = append(os.Environ(), "PORTMIRROR_KILL_CHILD_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked []string
	sc := bufio.NewScanner(out)
	for sc.Scan() && len(acked) < 40 {
		line := sc.Text()
		if strings.HasPrefix(line, "ERR") {
			t.Fatal(line)
		}
		if _, ok := canonicalUUID(line); ok {
			acked = append(acked, line)
		}
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if len(acked) < 40 {
		t.Fatalf("child acknowledged only %d writes", len(acked))
	}
	svc, st := openService(t, dir)
	defer st.Close()
	for _, u := range acked {
		if _, err := svc.Cluster(context.Background(), u); err != nil {
			t.Fatalf("acknowledged cluster %s lost: %v", u, err)
		}
		if evs := audits(t, svc, AuditQuery{ResourceUUID: u}); len(evs) != 1 {
			t.Fatalf("audit event of %s: %d", u, len(evs))
		}
	}
}

func TestChangeFeed(t *testing.T) {
	f := newFixture(t)
	ch, cancel := f.svc.Subscribe(64)
	defer cancel()
	pm, err := f.svc.CreatePortMirror(f.ctx, PortMirrorInput{Name: "pm-b", FlowNetworkUUID: f.fn2,
		Sessions: []SessionInput{{Name: "x", Type: model.Egress, SourceNicUUID: f.n1b, DestinationNicUUID: f.n2c}}})
	if err != nil {
		t.Fatal(err)
	}
	ss, _ := f.svc.Sessions(f.ctx, pm.UUID)
	_, _ = f.svc.EnablePortMirror(f.ctx, uH1) // refused: no change
	if err := f.svc.DeletePortMirror(f.ctx, pm.UUID); err != nil {
		t.Fatal(err)
	}
	want := []store.Change{
		{Kind: store.KindPortMirror, UUID: pm.UUID}, {Kind: store.KindSession, UUID: ss[0].UUID},
		{Kind: store.KindSession, UUID: ss[0].UUID, Deleted: true}, {Kind: store.KindPortMirror, UUID: pm.UUID, Deleted: true},
	}
	for i, w := range want {
		select {
		case c := <-ch:
			if c != w {
				t.Fatalf("change %d = %+v, want %+v", i, c, w)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("change %d did not arrive", i)
		}
	}
	select {
	case c := <-ch:
		t.Fatalf("unexpected change %+v", c)
	default:
	}
}

// TestConcurrentMutations runs many writers at once (under -race) and checks the invariants afterwards: one audit
// event per call, unique session keys per destination, every add either stored or refused as a duplicate.
func TestConcurrentMutations(t *testing.T) {
	l := newMirrorLab(t, 8, 8, "198.18.5.0/24")
	nAudit := len(audits(t, l.svc, AuditQuery{First: 1000}))
	var wg sync.WaitGroup
	var mu sync.Mutex
	calls, kept := 0, 0
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				ctx := WithActor(context.Background(), fmt.Sprint("w", w))
				s, err := l.svc.AddPortMirrorSession(ctx, l.pm, SessionInput{Name: "c", Type: model.Egress,
					SourceNicUUID: l.srcs[(w+i)%8], DestinationNicUUID: l.dsts[i%8]})
				n, stays := 1, err == nil
				if err != nil && AsError(err).Rule != RuleDuplicateSession {
					t.Errorf("add %d of w%d refused with %v, want only %s", i, w, err, RuleDuplicateSession)
				}
				if err == nil && i%3 == 0 {
					if err := l.svc.DeletePortMirrorSession(ctx, s.UUID); err != nil {
						t.Errorf("deleting session %s: %v", s.UUID, err)
					}
					n, stays = n+1, false
				}
				_, _ = l.svc.Sessions(ctx, l.pm)
				_, _ = l.svc.CreateCluster(ctx, ClusterInput{Name: fmt.Sprint("c", w, i)})
				n++
				mu.Lock()
				calls += n
				if stays {
					kept++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if got := len(audits(t, l.svc, AuditQuery{First: 1000})); got != nAudit+calls {
		t.Fatalf("audit events %d, want %d", got, nAudit+calls)
	}
	ss, _ := l.svc.Sessions(context.Background(), l.pm)
	if len(ss) != kept {
		t.Fatalf("%d sessions stored, want the %d added and not deleted", len(ss), kept)
	}
	keyOf := map[string]uint32{}
	owner := map[uint32]string{}
	seen := map[string]bool{}
	for _, s := range ss {
		if k, ok := keyOf[s.DestinationNicUUID]; ok && k != s.TunnelKey {
			t.Fatalf("destination %s has keys %d and %d", s.DestinationNicUUID, k, s.TunnelKey)
		}
		if d, ok := owner[s.TunnelKey]; ok && d != s.DestinationNicUUID {
			t.Fatalf("key %d shared by %s and %s", s.TunnelKey, d, s.DestinationNicUUID)
		}
		keyOf[s.DestinationNicUUID], owner[s.TunnelKey] = s.TunnelKey, s.DestinationNicUUID
		id := s.SourceNicUUID + s.DestinationNicUUID + string(s.Type)
		if seen[id] {
			t.Fatalf("duplicate session stored: %+v", s)
		}
		seen[id] = true
	}
}
