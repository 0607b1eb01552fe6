package e2e

import (
	"context"
	"fmt"
	"maps"
	mrand "math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// createClusterQ creates an inventory cluster with a uuid of the caller's: a small
// mutation whose effect a query can find.
const createClusterQ = `mutation($u: ID!, $n: String!) { createCluster(input: {uuid: $u, name: $n}) { uuid } }`

// clusterUUIDs reads every inventory cluster's uuid through gc, and the response's extensions.
func clusterUUIDs(t testing.TB, gc *GraphQLClient) (map[string]bool, map[string]any) {
	t.Helper()
	var out struct{ Clusters []struct{ UUID string } }
	ext, err := gc.DoExt(t.Context(), `{ clusters { uuid } }`, nil, &out)
	if err != nil {
		t.Fatalf("clusters through %s: %v", gc.URL, err)
	}
	got := map[string]bool{}
	for _, c := range out.Clusters {
		got[c.UUID] = true
	}
	return got, ext
}

type controllerNode struct {
	ID, RaftAddress, Role string
	APIAddress            *string
	OpenflowAddress       *string
	Self                  bool
}

const controllerNodesQ = `{ controllerNodes { id raftAddress apiAddress openflowAddress role self } }`

// checkControllerNodes asks every running member for controllerNodes until every
// answer lists every member with its addresses, exactly one LEADER (the leader the
// members agree on), and self on the member asked alone. It returns the leader.
func checkControllerNodes(t *testing.T, cs *Controllers) *Daemon {
	t.Helper()
	var problems []string
	var leader *Daemon
	err := poll(t.Context(), 15*time.Second, 50*time.Millisecond, func() (bool, error) {
		problems = nil
		why := ""
		if leader, why = cs.agreedLeader(t.Context()); leader == nil {
			problems = append(problems, why)
			return false, nil
		}
		for _, d := range cs.Running() {
			var out struct{ ControllerNodes []controllerNode }
			if err := d.Client().Do(t.Context(), controllerNodesQ, nil, &out); err != nil {
				problems = append(problems, fmt.Sprintf("asked %s: %v", d.NodeID, err))
				continue
			}
			var leaders, selves []string
			for _, n := range out.ControllerNodes {
				m := cs.Node(n.ID)
				if m == nil {
					problems = append(problems, fmt.Sprintf("asked %s: controllerNodes lists %q, not a member", d.NodeID, n.ID))
					continue
				}
				if n.RaftAddress != m.RaftListen || n.APIAddress == nil || *n.APIAddress != m.APIAdvertise ||
					n.OpenflowAddress == nil || *n.OpenflowAddress != m.OpenFlowTarget {
					problems = append(problems, fmt.Sprintf("asked %s: %s has raft %s api %v openflow %v, want %s %s %s", d.NodeID, n.ID,
						n.RaftAddress, deref(n.APIAddress), deref(n.OpenflowAddress), m.RaftListen, m.APIAdvertise, m.OpenFlowTarget))
				}
				if n.Role == "LEADER" {
					leaders = append(leaders, n.ID)
				}
				if n.Self {
					selves = append(selves, n.ID)
				}
			}
			if len(out.ControllerNodes) != len(cs.Nodes) || !slices.Equal(leaders, []string{leader.NodeID}) || !slices.Equal(selves, []string{d.NodeID}) {
				problems = append(problems, fmt.Sprintf("asked %s: controllerNodes %+v: want %d members, LEADER %s alone, self %s alone",
					d.NodeID, out.ControllerNodes, len(cs.Nodes), leader.NodeID, d.NodeID))
			}
		}
		if l, _ := cs.agreedLeader(t.Context()); l != leader {
			problems = append(problems, "the leader changed while asking")
		}
		return len(problems) == 0, nil
	})
	if err != nil {
		t.Errorf("controllerNodes: %v:\n%s", err, strings.Join(problems, "\n"))
	}
	return leader
}

// refusedUnchanged reports whether err is an UNAVAILABLE refusal that changed nothing.
func refusedUnchanged(err error) bool {
	msg := fmt.Sprint(err)
	return ErrorCode(err) == "UNAVAILABLE" && strings.Contains(msg, "nothing was changed") && !strings.Contains(msg, "unknown")
}

// mustCreateCluster creates cluster u through d, again while d refuses it
// UNAVAILABLE with nothing changed (a leader stepping down on a loaded machine).
func mustCreateCluster(t *testing.T, d *Daemon, u, name string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := d.Client().Do(t.Context(), createClusterQ, map[string]any{"u": u, "n": name}, nil)
		if err == nil {
			return
		}
		if !refusedUnchanged(err) || time.Now().After(deadline) {
			t.Fatalf("createCluster %s through %s: %v", u, d.NodeID, err)
		}
		t.Logf("e2e: createCluster through %s refused, retrying: %v", d.NodeID, err)
		time.Sleep(50 * time.Millisecond) // pacing the retries
	}
}

// freshUUIDs reads the inventory clusters through d, again while the answer is
// marked stale (no leader for a moment); an answer not marked stale must reflect
// every write acknowledged before it.
func freshUUIDs(t *testing.T, d *Daemon) map[string]bool {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got, ext := clusterUUIDs(t, d.Client())
		if ext["stale"] != true {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("clusters through %s: still stale after 15s: %v", d.NodeID, ext)
		}
		time.Sleep(50 * time.Millisecond) // pacing the retries
	}
}

func deref(s *string) string {
	if s == nil {
		return "<null>"
	}
	return *s
}

// waitTargets polls until h's br-int lists exactly the controller targets want.
func waitTargets(t *testing.T, h *Hypervisor, want []string) {
	t.Helper()
	var got []string
	if err := poll(t.Context(), 20*time.Second, 50*time.Millisecond, func() (bool, error) {
		out, err := h.Vsctl(t.Context(), "get-controller", h.Bridge)
		got = strings.Fields(out)
		slices.Sort(got)
		return err == nil && slices.Equal(got, want), err
	}); err != nil {
		t.Fatalf("%s: br-int controllers %v, want %v", h.Name, got, want)
	}
}

// TestClusterFailover: three controllers on loopback, two hypervisors whose br-int
// the leader manages through OVSDB (every member's target set by the leader). Writes
// through every member are read back through every member; one MASTER per bridge,
// the leader; copies arrive once. The leader is SIGKILLed under traffic: a new leader
// and MASTER take over within seconds, sending no flow_mod, the flows byte for byte
// what they were, every copy still arriving exactly once. Two survivors take writes;
// one alone refuses them (UNAVAILABLE, nothing changed) and answers queries marked
// stale; the killed members come back, catch up, and the ex-leader is never MASTER
// while another leads.
func TestClusterFailover(t *testing.T) {
	t.Parallel()
	tp := NewTopology(t, TopologyOptions{Secure: true})
	a := tp.AddVM(t, tp.HV1, "a")
	b := tp.AddVM(t, tp.HV2, "b")
	m := tp.AddVM(t, tp.HV2, "m", NICSpec{}, NICSpec{Capture: true, Isolate: true})
	cs := StartControllers(t, tp, 3)
	an, bn, dst := a.DefaultNIC(), b.DefaultNIC(), m.NICs[1]

	// The inventory through one member, the port mirror through another, its status through the third.
	w := &World{TP: tp, D: cs.Nodes[0], GC: cs.Nodes[0].Client()}
	w.Inv = RegisterInventory(t, w.GC, tp, InventoryOptions{Encapsulation: "GRE"})
	w.WaitConnected(t)
	for _, h := range tp.Hypervisors() {
		waitTargets(t, h, cs.Targets())
	}
	w.GC = cs.Nodes[1].Client()
	pm, _ := w.CreatePortMirror(t, "ha", true, SessionSpec{"s", "BIDIRECTION", an, dst})
	w.GC = cs.Nodes[2].Client()
	w.WaitStatus(t, pm, "ENABLED", "ACTIVE")

	// Round robin: a write through each member is read at once through every member.
	var written []string
	for i, d := range cs.Nodes {
		u := newUUID()
		mustCreateCluster(t, d, u, fmt.Sprintf("rr-%d", i))
		written = append(written, u)
		for _, r := range cs.Nodes {
			got := freshUUIDs(t, r)
			for _, u := range written {
				if !got[u] {
					t.Errorf("cluster %s written through %s: not read through %s right after", u, d.NodeID, r.NodeID)
				}
			}
		}
	}
	checkControllerNodes(t, cs)
	var leader *Daemon
	for _, h := range tp.Hypervisors() {
		start := time.Now()
		leader = cs.WaitMasterIsLeader(t, h, cs.Targets())
		t.Logf("e2e: %s: %s MASTER, the others SLAVE (OVSDB showed it %v after asking)", h.Name, leader.NodeID, time.Since(start).Round(time.Millisecond))
	}
	if l := cs.WaitLeader(t, 10*time.Second); l != leader {
		t.Fatalf("the leader moved from %s to %s (a loaded machine?): cannot start the failover from a known MASTER", leader.NodeID, l.NodeID)
	}
	const n = 5
	ExpectCopies(t, "cluster/before", a, bn.IP, n, Want{dst, PingCount{Requests: n, Replies: n}})

	// SIGKILL of the leader, under traffic.
	before := map[string][]string{}
	for _, h := range tp.Hypervisors() {
		before[h.Name] = Flows(t, h)
	}
	survivors := cs.Others(leader)
	sentBefore := map[string]float64{}
	for _, d := range survivors {
		sentBefore[d.NodeID] = d.FlowModsSent(t)
	}
	capt := StartCapture(t, dst)
	traffic := StartTraffic(t, a, bn.IP, 20*time.Millisecond)
	// Some copies under the old leader first.
	capt.WaitFor(t, 5*time.Second, "copies before the kill", func(fs []Frame) bool {
		c := 0
		for _, f := range fs {
			if f.IsEcho(ICMPEchoRequest, an.IP, bn.IP) {
				c++
			}
		}
		return c >= 5
	})
	killed := time.Now()
	leader.Kill(t)

	// Mutations are accepted again: the first one through a survivor that succeeds.
	var accepted time.Duration
	for attempt := 0; ; attempt++ {
		u := newUUID()
		err := survivors[attempt%2].Client().Do(t.Context(), createClusterQ, map[string]any{"u": u, "n": "after-kill"}, nil)
		if err == nil {
			accepted = time.Since(killed)
			written = append(written, u)
			break
		}
		if ErrorCode(err) != "UNAVAILABLE" || time.Since(killed) > 15*time.Second {
			t.Fatalf("mutation %v after the leader's kill: %v", time.Since(killed).Round(time.Millisecond), err)
		}
		t.Logf("e2e: mutation %v after the leader's kill: %v", time.Since(killed).Round(time.Millisecond), err)
		time.Sleep(20 * time.Millisecond) // pacing the retries
	}
	next := cs.WaitLeader(t, 10*time.Second)
	elected := next.LogTimes(t, "elected leader: catching up before taking over", true)
	mastered := map[string]time.Duration{}
	for _, h := range tp.Hypervisors() {
		if ts := next.LogTimes(t, "MASTER of switch", true, "datapath="+h.DPID); len(ts) > 0 {
			mastered[h.Name] = ts[len(ts)-1].Sub(killed)
		}
	}
	connected := []string{}
	for _, d := range survivors {
		connected = append(connected, d.OpenFlowTarget)
	}
	var ovsMaster time.Duration
	for _, h := range tp.Hypervisors() {
		cs.WaitMasterIsLeader(t, h, connected)
		ovsMaster = time.Since(killed)
	}
	electedAfter := time.Duration(-1)
	if len(elected) > 0 {
		electedAfter = elected[len(elected)-1].Sub(killed)
	}
	t.Logf("FAILOVER cluster/leader-kill: %s elected %v after the kill, MASTER (its ROLE_REPLY) %v, mutations accepted again %v, OVSDB showing the new MASTER on both bridges %v",
		next.NodeID, electedAfter.Round(time.Millisecond), mastered, accepted.Round(time.Millisecond), ovsMaster.Round(time.Millisecond))
	if len(mastered) != 2 {
		t.Errorf("%s's log says MASTER of %d of 2 switches", next.NodeID, len(mastered))
	}
	// "Within seconds" (API.md), with room for a loaded machine: the goal is 3 s at p99.
	for h, d := range mastered {
		if d > 10*time.Second {
			t.Errorf("%s became MASTER of %s %v after the kill, want within 10s", next.NodeID, h, d)
		}
	}
	if accepted > 10*time.Second {
		t.Errorf("mutations accepted again %v after the kill, want within 10s", accepted)
	}
	w.GC = next.Client()
	w.WaitStatus(t, pm, "ENABLED", "ACTIVE")
	for _, h := range tp.Hypervisors() {
		if got := Flows(t, h); !slices.Equal(got, before[h.Name]) {
			t.Errorf("%s: flows after the failover differ:\n%s\nbefore:\n%s", h.Name, strings.Join(got, "\n"), strings.Join(before[h.Name], "\n"))
		}
		waitTargets(t, h, cs.Targets())
	}
	runs := traffic.Stop(t)
	ExpectEachCopied(t, capt, runs, PingCount{Requests: 1, Replies: 1})
	t.Logf("e2e: %d pings across the kill (%s to %s): each request and reply copied exactly once",
		len(runs), runs[0].SentAt[0].Format("15:04:05.000"), runs[len(runs)-1].SentAt[0].Format("15:04:05.000"))
	for _, d := range survivors {
		if got := d.FlowModsSent(t); got != sentBefore[d.NodeID] {
			t.Errorf("%s sent %v flow_mods across the failover, want 0", d.NodeID, got-sentBefore[d.NodeID])
		}
	}
	t.Logf("FAILOVER cluster/leader-kill flow_mods sent by %s: %v", next.NodeID, next.FlowModsSent(t)-sentBefore[next.NodeID])

	// Two survivors take writes, each read through the other.
	for i, d := range survivors {
		u := newUUID()
		mustCreateCluster(t, d, u, "two")
		written = append(written, u)
		if got := freshUUIDs(t, survivors[1-i]); !got[u] {
			t.Errorf("written through %s, not read through %s", d.NodeID, survivors[1-i].NodeID)
		}
	}
	next = checkControllerNodes(t, cs)

	// One survivor alone (the leader's follower killed): mutations refused within
	// 10 s, nothing changed; queries answered from its copy, marked stale; the flows
	// stay and copies go on.
	lone := next
	follower := survivors[0]
	if follower == next {
		follower = survivors[1]
	}
	follower.Kill(t)
	u := newUUID()
	t0 := time.Now()
	err := lone.Client().Do(t.Context(), createClusterQ, map[string]any{"u": u, "n": "lone"}, nil)
	refused := time.Since(t0)
	if ErrorCode(err) != "UNAVAILABLE" || !strings.Contains(err.Error(), "nothing was changed") {
		t.Errorf("a mutation to the lone survivor: %v, want UNAVAILABLE saying nothing was changed", err)
	}
	if refused > 10*time.Second {
		t.Errorf("the lone survivor refused the mutation after %v, want within 10s", refused)
	}
	got, ext := clusterUUIDs(t, lone.Client())
	if ext["stale"] != true {
		t.Errorf("a query to the lone survivor: extensions %v, want stale: true", ext)
	}
	for _, x := range written {
		if !got[x] {
			t.Errorf("the lone survivor's copy lacks acknowledged cluster %s", x)
		}
	}
	if got[u] {
		t.Errorf("the refused cluster %s is in the lone survivor's copy", u)
	}
	t.Logf("MAJORITY-LOSS cluster/lone: mutation refused after %v: %v; query stale: %v", refused.Round(time.Millisecond), err, ext["staleReason"])
	for _, h := range tp.Hypervisors() {
		if got := Flows(t, h); !slices.Equal(got, before[h.Name]) {
			t.Errorf("%s: flows changed without a majority:\n%s", h.Name, strings.Join(got, "\n"))
		}
	}
	ExpectCopies(t, "cluster/no-majority", a, bn.IP, n, Want{dst, PingCount{Requests: n, Replies: n}})

	// The killed members come back: they rejoin, catch up, and the ex-leader is not
	// MASTER while another leads.
	leader.start(t, false)
	follower.start(t, false)
	cs.WaitCaughtUp(t, 15*time.Second)
	for _, d := range cs.Nodes {
		if h, err := d.Health(t.Context()); err != nil || h.Code != 200 || h.Leader == "" {
			t.Errorf("%s /healthz: %+v %v, want 200 naming a leader", d.NodeID, h, err)
		}
		got := freshUUIDs(t, d)
		for _, x := range written {
			if !got[x] {
				t.Errorf("asked %s after the restarts: acknowledged cluster %s missing", d.NodeID, x)
			}
		}
		if got[u] {
			t.Errorf("asked %s after the restarts: the refused cluster %s exists", d.NodeID, u)
		}
	}
	checkControllerNodes(t, cs)
	var now *Daemon
	for _, h := range tp.Hypervisors() {
		now = cs.WaitMasterIsLeader(t, h, cs.Targets())
	}
	for _, d := range cs.Nodes {
		d.CheckMasterOnlyWhenLeading(t)
	}
	t.Logf("e2e: after the restarts %s leads (the ex-leader was %s; it took %d switches since its restart, each in a term it led)",
		now.NodeID, leader.NodeID, len(leader.LogEntries(t, "MASTER of switch", true)))
	w.GC = now.Client()
	w.WaitStatus(t, pm, "ENABLED", "ACTIVE")
	for _, h := range tp.Hypervisors() {
		if got := Flows(t, h); !slices.Equal(got, before[h.Name]) {
			t.Errorf("%s: flows after the restarts differ:\n%s\nbefore:\n%s", h.Name, strings.Join(got, "\n"), strings.Join(before[h.Name], "\n"))
		}
	}
	ExpectCopies(t, "cluster/restarted", a, bn.IP, n, Want{dst, PingCount{Requests: n, Replies: n}})
}

// mutationOutcome is what a client learnt of one mutation.
type mutationOutcome int

const (
	outcomeAcked   mutationOutcome = iota // answered with data: durable on a majority
	outcomeRefused                        // UNAVAILABLE, "nothing was changed"
	outcomeUnknown                        // UNAVAILABLE "outcome is unknown", or the answer was lost after the request was sent
	outcomeNotSent                        // every member tried refused the connection
)

func (o mutationOutcome) String() string {
	return [...]string{"acked", "refused", "unknown", "not-sent"}[o]
}

// TestClusterRandomKills: 200 mutations (createCluster with the client's uuids) go to
// random members, four at a time, while the leader is SIGKILLed and restarted three
// times, then the leader and a follower together (choices seeded;
// PORTMIRROR_E2E_SEED repeats them). At the end every
// acknowledged mutation is on every member, and none refused "nothing was changed"
// (or never sent) is on any; every member holds the same state, read from its own
// copy. The bridges list all three controllers, set with ovs-vsctl (hosts registered
// without OVSDB): the last leader is their one MASTER, and no restarted ex-leader
// became MASTER while another led.
func TestClusterRandomKills(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("PORTMIRROR_E2E_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("PORTMIRROR_E2E_SEED: %v", err)
		}
	}
	t.Logf("SEED %d (PORTMIRROR_E2E_SEED=%d repeats the random choices)", seed, seed)
	rng := mrand.New(mrand.NewPCG(seed, 0))

	tp := NewTopology(t, TopologyOptions{Secure: true})
	cs := StartControllers(t, tp, 3)
	for _, h := range tp.Hypervisors() {
		h.MustVsctl(t, "set", "Bridge", h.Bridge, "protocols=OpenFlow13")
		h.SetController(t, h.Bridge, cs.Targets()...)
	}
	w := &World{TP: tp, GC: cs.Nodes[0].Client()}
	w.Inv = RegisterInventory(t, w.GC, tp, InventoryOptions{NoOVSDB: true, DatapathIDs: true})
	w.WaitConnected(t)

	const total, workers = 200, 4
	const pace = 160 * time.Millisecond // per worker: about 25 mutations a second in all
	type result struct {
		uuid    string
		node    string
		outcome mutationOutcome
		err     error
	}
	results := make([]result, total)
	var next, done atomic.Int64
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var wg sync.WaitGroup
	for wi := range workers {
		wr := mrand.New(mrand.NewPCG(seed, uint64(wi+1)))
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= total || ctx.Err() != nil {
					return
				}
				r := result{uuid: newUUID(), outcome: outcomeNotSent}
				for attempt := 0; attempt < 20 && ctx.Err() == nil; attempt++ {
					d := cs.Nodes[wr.IntN(len(cs.Nodes))]
					r.node = d.NodeID
					r.err = d.Client().Do(ctx, createClusterQ, map[string]any{"u": r.uuid, "n": fmt.Sprintf("kill-%d", i)}, nil)
					if notSent(r.err) {
						time.Sleep(50 * time.Millisecond) // pacing the retries to another member
						continue
					}
					switch {
					case r.err == nil:
						r.outcome = outcomeAcked
					case refusedUnchanged(r.err):
						r.outcome = outcomeRefused
					default:
						r.outcome = outcomeUnknown
					}
					break
				}
				results[i] = r
				done.Add(1)
				time.Sleep(pace) // pacing: the kills land among the mutations
			}
		})
	}

	// Three kills of the leader, each after a random number of mutations, then one of
	// the leader and a follower together (no majority for a while); the killed stay
	// down for a random while, then restart.
	kills := 0
	overlapped := 0
	for k := range 4 {
		at := int64(25 + 45*k + rng.IntN(20))
		if err := poll(t.Context(), 60*time.Second, 5*time.Millisecond, func() (bool, error) { return done.Load() >= at, nil }); err != nil {
			t.Fatalf("kill %d: %d mutations done, waiting for %d: %v", k+1, done.Load(), at, err)
		}
		l := cs.WaitLeader(t, 15*time.Second)
		victims := []*Daemon{l}
		if k == 3 {
			others := cs.Others(l)
			victims = append(victims, others[rng.IntN(len(others))])
		}
		down := time.Duration(500+rng.IntN(1000)) * time.Millisecond
		if k == 3 {
			// longer than a member waits for a leader (3 s) before refusing: some mutations are refused
			down += 3 * time.Second
		}
		at = done.Load()
		for _, v := range victims {
			v.Kill(t)
		}
		killed := time.Now()
		time.Sleep(down) // the schedule: how long they stay down
		for _, v := range victims {
			v.start(t, false)
		}
		nl := cs.WaitLeader(t, 15*time.Second)
		kills++
		if done.Load() < total {
			overlapped++
		}
		var names []string
		for _, v := range victims {
			names = append(names, v.NodeID)
		}
		t.Logf("KILL %d: %v SIGKILLed (%s leading) after %d mutations, down %v; %s leads, all three agreeing, %v after the kill (%d mutations done)",
			k+1, names, l.NodeID, at, down.Round(time.Millisecond), nl.NodeID, time.Since(killed).Round(time.Millisecond), done.Load())
	}
	wg.Wait()
	if overlapped == 0 {
		t.Errorf("none of the %d kills happened while mutations were under way", kills)
	}

	count := map[mutationOutcome]int{}
	for i, r := range results {
		count[r.outcome]++
		if r.outcome != outcomeAcked {
			t.Logf("mutation %d (%s through %s): %s: %v", i, r.uuid, r.node, r.outcome, r.err)
		}
		if r.outcome == outcomeUnknown && ErrorCode(r.err) != "UNAVAILABLE" && ErrorCode(r.err) != "" {
			t.Errorf("mutation %d (%s through %s): %v, want success or UNAVAILABLE", i, r.uuid, r.node, r.err)
		}
	}
	t.Logf("RANDOMKILL %d mutations: %d acked, %d refused (nothing changed), %d outcome unknown, %d not sent",
		total, count[outcomeAcked], count[outcomeRefused], count[outcomeUnknown], count[outcomeNotSent])
	if count[outcomeAcked] < total/2 {
		t.Errorf("only %d of %d mutations acknowledged across %d leader kills", count[outcomeAcked], total, kills)
	}

	// Every member caught up; the last leader is the one MASTER; no ex-leader took a
	// switch while another led.
	cs.WaitCaughtUp(t, 15*time.Second)
	var leader *Daemon
	for _, h := range tp.Hypervisors() {
		leader = cs.WaitMasterIsLeader(t, h, cs.Targets())
	}
	for _, d := range cs.Nodes {
		d.CheckMasterOnlyWhenLeading(t)
	}
	check := func(who string, got map[string]bool) {
		t.Helper()
		for i, r := range results {
			switch {
			case r.outcome == outcomeAcked && !got[r.uuid]:
				t.Errorf("%s: mutation %d (%s through %s) was acknowledged and is missing", who, i, r.uuid, r.node)
			case (r.outcome == outcomeRefused || r.outcome == outcomeNotSent) && got[r.uuid]:
				t.Errorf("%s: mutation %d (%s through %s) was %s (%v) and is there", who, i, r.uuid, r.node, r.outcome, r.err)
			}
		}
	}
	want := freshUUIDs(t, leader)
	check("the leader "+leader.NodeID, want)

	// Each member's own copy: all stopped, each started alone answers from its copy, marked stale.
	for _, d := range cs.Nodes {
		d.Kill(t)
	}
	for _, d := range cs.Nodes {
		d.start(t, false)
		got, ext := clusterUUIDs(t, d.Client())
		if ext["stale"] != true {
			t.Errorf("%s alone: extensions %v, want stale", d.NodeID, ext)
		}
		check(d.NodeID+" alone", got)
		if !maps.Equal(got, want) {
			t.Errorf("%s alone holds %d clusters, the leader held %d", d.NodeID, len(got), len(want))
		}
		d.Kill(t)
	}
}
