package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"portmirror/model"
	"portmirror/store"
)

// testNode is one member of an in-process cluster: its store and its Raft node, on loopback ports.
type testNode struct {
	id     string
	dir    string
	addr   string
	st     *store.Store
	node   *Node
	cancel context.CancelFunc
	done   chan struct{}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startNode opens the store in dir and starts the node with peers.
func startNode(t *testing.T, id, dir, addr string, peers []Peer) *testNode {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{Dir: filepath.Join(dir, "store"), Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	n, err := Open(ctx, Options{NodeID: id, RaftListen: addr, Peers: peers, Dir: filepath.Join(dir, "raft"), Store: st,
		Logger: quiet(), APIAdvertise: "http://" + id + ".invalid", OpenFlowAdvertise: "tcp:127.0.0.1:6653",
		ApplyTimeout: 3 * time.Second, SnapshotThreshold: 64})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	st.SetReplicator(n)
	rctx, cancel := context.WithCancel(ctx)
	tn := &testNode{id: id, dir: dir, addr: addr, st: st, node: n, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(tn.done)
		_ = n.Run(rctx)
	}()
	return tn
}

func (tn *testNode) stop(t *testing.T) {
	t.Helper()
	if tn.node == nil {
		return
	}
	tn.cancel()
	<-tn.done
	if err := tn.node.Close(); err != nil {
		t.Logf("close %s: %v", tn.id, err)
	}
	if err := tn.st.Close(); err != nil {
		t.Logf("close store %s: %v", tn.id, err)
	}
	tn.node = nil
}

func startCluster(t *testing.T, size int) ([]*testNode, []Peer) {
	t.Helper()
	var peers []Peer
	for i := range size {
		peers = append(peers, Peer{ID: fmt.Sprintf("n%d", i+1), Addr: freeAddr(t)})
	}
	var nodes []*testNode
	for _, p := range peers {
		nodes = append(nodes, startNode(t, p.ID, t.TempDir(), p.Addr, peers))
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			n.stop(t)
		}
	})
	return nodes, peers
}

// leader waits for exactly one live node to lead (and be caught up) and returns it.
func leader(t *testing.T, nodes []*testNode) *testNode {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var leading []*testNode
		for _, n := range nodes {
			if n.node == nil {
				continue
			}
			if ok, _ := n.node.Leading(); ok {
				leading = append(leading, n)
			}
		}
		if len(leading) == 1 {
			return leading[0]
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("no single leader within 10s")
	return nil
}

func putCluster(ctx context.Context, st *store.Store, uuid, name string) error {
	return st.Update(ctx, func(tx *store.Txn) error {
		tx.Put(model.Cluster{UUID: uuid, Name: name})
		tx.Audit(model.AuditEvent{Operation: "createCluster", ResourceType: "Cluster", ResourceUUID: uuid, Success: true})
		return nil
	})
}

// putOnLeader writes a cluster through whichever node leads, again after an UNAVAILABLE refusal (a loaded machine
// may make a leader step down) until it is acknowledged or 20 s pass. A write whose outcome was unknown may have
// been committed: writing the same object again is harmless.
func putOnLeader(t *testing.T, nodes []*testNode, uuid, name string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		l := leader(t, nodes)
		err := putCluster(context.Background(), l.st, uuid, name)
		var un *store.UnavailableError
		switch {
		case err == nil:
			return
		case !errors.As(err, &un) || time.Now().After(deadline):
			t.Fatalf("write %s: %v", uuid, err)
		}
		t.Logf("write %s refused (%v); finding the leader again", uuid, err)
	}
}

// waitAll waits until every live node holds the cluster uuid.
func waitAll(t *testing.T, nodes []*testNode, uuid string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, n := range nodes {
		if n.node == nil {
			continue
		}
		for {
			if _, ok := store.Get[model.Cluster](n.st, uuid); ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %s does not hold cluster %s", n.id, uuid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func TestReplicationAndFailover(t *testing.T) {
	nodes, _ := startCluster(t, 3)
	ctx := context.Background()
	l := leader(t, nodes)

	// A follower refuses to write, naming the leader; nothing changes.
	for _, n := range nodes {
		if n == l {
			continue
		}
		err := putCluster(ctx, n.st, "00000000-0000-4000-8000-00000000f001", "on-follower")
		var un *store.UnavailableError
		if !errors.As(err, &un) || un.Unknown {
			t.Fatalf("write on follower %s: got %v, want a refusal that changed nothing", n.id, err)
		}
	}
	for i := range 100 {
		putOnLeader(t, nodes, fmt.Sprintf("00000000-0000-4000-8000-%012d", i), fmt.Sprint("c", i))
	}
	waitAll(t, nodes, "00000000-0000-4000-8000-000000000099")
	for _, n := range nodes {
		if got := store.Count[model.Cluster](n.st); got != 100 {
			t.Fatalf("node %s holds %d clusters, want 100", n.id, got)
		}
		evs, err := n.st.Audits(ctx, store.AuditQuery{First: 1000})
		if err != nil || len(evs) != 100 {
			t.Fatalf("node %s: %d audit events (%v), want 100", n.id, len(evs), err)
		}
	}
	// The same audit ids everywhere.
	first, _ := nodes[0].st.Audits(ctx, store.AuditQuery{First: 1})
	for _, n := range nodes[1:] {
		evs, _ := n.st.Audits(ctx, store.AuditQuery{First: 1})
		if evs[0].ID != first[0].ID || evs[0].ResourceUUID != first[0].ResourceUUID {
			t.Fatalf("node %s's newest audit event is %+v, node n1's %+v", n.id, evs[0], first[0])
		}
	}

	// Kill the leader: another takes over, with every acknowledged write, and accepts writes.
	l = leader(t, nodes)
	_, oldTerm := l.node.Leading()
	l.stop(t)
	l2 := leader(t, nodes)
	if _, term := l2.node.Leading(); term <= oldTerm {
		t.Fatalf("new leader's term %d is not above the old one's %d", term, oldTerm)
	}
	if got := store.Count[model.Cluster](l2.st); got != 100 {
		t.Fatalf("new leader holds %d clusters, want 100", got)
	}
	putOnLeader(t, nodes, "00000000-0000-4000-8000-00000000a001", "after")
	waitAll(t, nodes, "00000000-0000-4000-8000-00000000a001")

	// The old leader restarts on its data: it catches up and does not lead at once.
	for i, n := range nodes {
		if n == l {
			nodes[i] = startNode(t, n.id, n.dir, n.addr, nil)
			waitAll(t, nodes, "00000000-0000-4000-8000-00000000a001")
			if got := store.Count[model.Cluster](nodes[i].st); got != 101 {
				t.Fatalf("restarted node holds %d clusters, want 101", got)
			}
		}
	}
}

func TestMajorityLoss(t *testing.T) {
	nodes, _ := startCluster(t, 3)
	ctx := context.Background()
	l := leader(t, nodes)
	if err := putCluster(ctx, l.st, "00000000-0000-4000-8000-000000000001", "a"); err != nil {
		t.Fatal(err)
	}
	waitAll(t, nodes, "00000000-0000-4000-8000-000000000001")
	var survivor *testNode
	for _, n := range nodes {
		if n != l && survivor == nil {
			survivor = n
			continue
		}
		n.stop(t)
	}
	// The lone survivor never leads and refuses writes within the apply timeout, acknowledging nothing.
	start := time.Now()
	err := putCluster(ctx, survivor.st, "00000000-0000-4000-8000-000000000002", "b")
	var un *store.UnavailableError
	if !errors.As(err, &un) {
		t.Fatalf("write without a majority: got %v, want UnavailableError", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("refusal took %s", d)
	}
	if _, ok := store.Get[model.Cluster](survivor.st, "00000000-0000-4000-8000-000000000002"); ok {
		t.Fatal("the refused write is in the store")
	}
	if _, ok := store.Get[model.Cluster](survivor.st, "00000000-0000-4000-8000-000000000001"); !ok {
		t.Fatal("the survivor lost an acknowledged write")
	}
}

func TestSnapshotCatchUp(t *testing.T) {
	nodes, _ := startCluster(t, 3)
	l := leader(t, nodes)
	var lagging *testNode
	for _, n := range nodes {
		if n != l {
			lagging = n
			break
		}
	}
	lagging.stop(t)
	// Enough writes for several snapshots (threshold 64) and a truncated log.
	for i := range 400 {
		putOnLeader(t, nodes, fmt.Sprintf("00000000-0000-4000-8000-%012d", i), "c")
	}
	l = leader(t, nodes)
	if err := l.node.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	for i, n := range nodes {
		if n == lagging {
			nodes[i] = startNode(t, n.id, n.dir, n.addr, nil)
		}
	}
	waitAll(t, nodes, "00000000-0000-4000-8000-000000000399")
	for _, n := range nodes {
		if got := store.Count[model.Cluster](n.st); got != 400 {
			t.Fatalf("node %s holds %d clusters, want 400", n.id, got)
		}
	}
}
