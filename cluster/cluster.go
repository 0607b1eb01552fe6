// Package cluster runs several controllers as one: the store's write sets travel through a Raft log
// (hashicorp/raft, its log and stable store in BoltDB, file snapshots, TCP transport) that every node applies to
// its own Badger store in the same order, so every node holds the same state. One node leads: it alone commits
// writes, programs switches (as their OpenFlow MASTER, with its term as generation id) and writes OVSDB. The
// others follow, forward the API's requests to the leader, and are ready to take over.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"portmirror/store"
)

// Peer is one founding member: its node id and its Raft address.
type Peer struct {
	ID   string
	Addr string
}

// ParsePeers parses --peers: "ID=ADDR,ID=ADDR,...". Ids and addresses must be unique.
func ParsePeers(s string) ([]Peer, error) {
	var out []Peer
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	ids, addrs := map[string]bool{}, map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		id, addr, ok := strings.Cut(strings.TrimSpace(part), "=")
		id, addr = strings.TrimSpace(id), strings.TrimSpace(addr)
		if !ok || id == "" || addr == "" {
			return nil, fmt.Errorf("peer %q: want ID=HOST:PORT", part)
		}
		if err := ValidateNodeID(id); err != nil {
			return nil, fmt.Errorf("peer %q: %w", part, err)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("peer %q: address: %w", part, err)
		}
		if ids[id] {
			return nil, fmt.Errorf("peer id %q is listed twice", id)
		}
		if addrs[addr] {
			return nil, fmt.Errorf("peer address %q is listed twice", addr)
		}
		ids[id], addrs[addr] = true, true
		out = append(out, Peer{ID: id, Addr: addr})
	}
	return out, nil
}

// ValidateNodeID checks a node id: 1..64 letters, digits, '-', '_' or '.'.
func ValidateNodeID(id string) error {
	if id == "" || len(id) > 64 {
		return fmt.Errorf("node id %q: must be 1 to 64 characters", id)
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("node id %q: only letters, digits, '-', '_' and '.' are allowed", id)
		}
	}
	return nil
}

// Options configure Open.
type Options struct {
	NodeID     string
	RaftListen string // where this node listens for the others, e.g. "192.0.2.1:7000"
	Peers      []Peer // the founding members (this node among them, to found the cluster)
	Dir        string // Raft's directory (log, stable store, snapshots); created when missing
	Store      *store.Store
	Logger     *slog.Logger

	APIAdvertise      string // this node's API URL for the others, e.g. "http://192.0.2.1:8080"
	OpenFlowAdvertise string // this node's OpenFlow target for the bridges, e.g. "tcp:192.0.2.1:6653"

	// Timing; zero takes the defaults below, tuned for a LAN.
	HeartbeatTimeout   time.Duration // default 750ms
	ElectionTimeout    time.Duration // default 750ms
	LeaderLeaseTimeout time.Duration // default 750ms (as long as the heartbeat timeout: a loaded leader does not step down needlessly)
	ApplyTimeout       time.Duration // how long a write waits for a majority before UNAVAILABLE; default 8s
	SnapshotThreshold  uint64        // log entries between snapshots; default 8192

	// TLS, when set, carries the replication over mutual TLS (and the members' internal requests).
	TLS *TLS

	// Transport, when set, replaces the TCP transport (tests partition nodes with raft's in-memory one); its
	// LocalAddr is this node's Raft address and the caller closes it.
	Transport raft.Transport
}

// Node is this controller's membership in the cluster.
type Node struct {
	opts      Options
	log       *slog.Logger
	raft      *raft.Raft
	transport raft.Transport
	closeTr   func() error
	boltStore *raftboltdb.BoltStore
	st        *store.Store
	advertise raft.ServerAddress

	// ready holds the term in which this node, leading, has applied everything committed before (Barrier);
	// 0 while it does not lead or has not caught up.
	ready atomic.Uint64

	mu          sync.Mutex
	subs        []chan struct{} // leadership watchers (Subscribe)
	peerContact map[string]peerHealth
	leaderSince time.Time
	stats       counters

	observations chan raft.Observation
	observer     *raft.Observer
	wg           sync.WaitGroup // barriers in flight; Close waits for them

	clientOnce sync.Once
	client     *http.Client
}

type peerHealth struct {
	failing     bool
	lastContact time.Time
}

type counters struct {
	leaderChanges uint64 // times this node saw the leader change
	lastLeader    string
}

// Open opens (or creates) the node's Raft state and starts Raft. A node whose directory is new founds the
// cluster with Peers when it is one of them; otherwise it waits to be added (addControllerNode on a member).
func Open(ctx context.Context, o Options) (*Node, error) {
	if err := ValidateNodeID(o.NodeID); err != nil {
		return nil, fmt.Errorf("--node-id: %w", err)
	}
	if o.Store == nil {
		return nil, errors.New("cluster: no store")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.HeartbeatTimeout, 750*time.Millisecond)
	def(&o.ElectionTimeout, 750*time.Millisecond)
	def(&o.LeaderLeaseTimeout, 750*time.Millisecond)
	def(&o.ApplyTimeout, 8*time.Second)
	if o.SnapshotThreshold == 0 {
		o.SnapshotThreshold = 8192
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("cluster: create %s: %w", o.Dir, err)
	}
	n := &Node{opts: o, log: o.Logger, st: o.Store, peerContact: map[string]peerHealth{},
		observations: make(chan raft.Observation, 64)}

	hlog := hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Info, Output: &slogWriter{log: o.Logger.With("subsystem", "raft")}})
	if o.Transport != nil {
		n.transport, n.closeTr = o.Transport, func() error { return nil }
		n.advertise = o.Transport.LocalAddr()
	} else {
		advertise := o.RaftListen
		for _, p := range o.Peers {
			if p.ID == o.NodeID {
				advertise = p.Addr
			}
		}
		addr, err := net.ResolveTCPAddr("tcp", advertise)
		if err != nil {
			return nil, fmt.Errorf("--raft-listen %q: %w", advertise, err)
		}
		if addr.IP == nil || addr.IP.IsUnspecified() {
			return nil, fmt.Errorf("--raft-listen %q: the others cannot reach an unspecified address; list this node in --peers with a reachable one", advertise)
		}
		n.advertise = raft.ServerAddress(addr.String())
		if o.TLS != nil {
			stream, err := newTLSStream(o.RaftListen, addr, o.TLS)
			if err != nil {
				return nil, fmt.Errorf("--raft-listen %s: %w", o.RaftListen, err)
			}
			tr := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{Stream: stream, MaxPool: 3,
				Timeout: 5 * time.Second, Logger: hlog})
			n.transport, n.closeTr = tr, tr.Close
		} else {
			tr, err := raft.NewTCPTransportWithLogger(o.RaftListen, addr, 3, 5*time.Second, hlog)
			if err != nil {
				return nil, fmt.Errorf("--raft-listen %s: %w", o.RaftListen, err)
			}
			n.transport, n.closeTr = tr, tr.Close
		}
	}
	var err error
	n.boltStore, err = raftboltdb.New(raftboltdb.Options{Path: filepath.Join(o.Dir, "raft.db")})
	if err != nil {
		_ = n.closeTr()
		return nil, fmt.Errorf("cluster: open the Raft log in %s: %w", o.Dir, err)
	}
	fail := func(err error) (*Node, error) {
		n.boltStore.Close()
		_ = n.closeTr()
		return nil, err
	}
	logs, err := raft.NewLogCache(512, n.boltStore)
	if err != nil {
		return fail(err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(o.Dir, 2, hlog)
	if err != nil {
		return fail(fmt.Errorf("cluster: snapshots in %s: %w", o.Dir, err))
	}
	// The store keeps its own applied index (written with each entry), so Raft need not restore the last
	// snapshot at start: it replays the log after it, and the store skips what it has. Only a store behind the
	// snapshot (one whose restore was cut short) is restored here.
	if err := n.catchUpFromSnapshot(ctx, snaps); err != nil {
		return fail(err)
	}

	cfg := raft.DefaultConfig()
	cfg.LocalID = raft.ServerID(o.NodeID)
	cfg.HeartbeatTimeout = o.HeartbeatTimeout
	cfg.ElectionTimeout = o.ElectionTimeout
	cfg.LeaderLeaseTimeout = o.LeaderLeaseTimeout
	cfg.CommitTimeout = 5 * time.Millisecond
	cfg.SnapshotThreshold = o.SnapshotThreshold
	cfg.TrailingLogs = 4096
	cfg.NoSnapshotRestoreOnStart = true
	cfg.Logger = hlog
	if err := raft.ValidateConfig(cfg); err != nil {
		return fail(fmt.Errorf("cluster: %w", err))
	}

	has, err := raft.HasExistingState(logs, n.boltStore, snaps)
	if err != nil {
		return fail(fmt.Errorf("cluster: read the Raft state: %w", err))
	}
	if !has {
		var servers []raft.Server
		self := false
		for _, p := range o.Peers {
			servers = append(servers, raft.Server{ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Addr), Suffrage: raft.Voter})
			self = self || p.ID == o.NodeID
		}
		if self {
			if err := raft.BootstrapCluster(cfg, logs, n.boltStore, snaps, n.transport, raft.Configuration{Servers: servers}); err != nil {
				return fail(fmt.Errorf("cluster: found the cluster with --peers: %w", err))
			}
			n.log.Info("founded the cluster from --peers", "node", o.NodeID, "peers", len(servers))
		} else {
			n.log.Warn("this node is new and not among --peers: waiting to be added with addControllerNode on a member",
				"node", o.NodeID, "raft_address", n.advertise)
		}
	}

	n.raft, err = raft.NewRaft(cfg, &fsm{st: o.Store, log: o.Logger}, logs, n.boltStore, snaps, n.transport)
	if err != nil {
		return fail(fmt.Errorf("cluster: start Raft: %w", err))
	}
	n.observer = raft.NewObserver(n.observations, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.RaftState, raft.LeaderObservation, raft.FailedHeartbeatObservation, raft.ResumedHeartbeatObservation, raft.PeerObservation:
			return true
		}
		return false
	})
	n.raft.RegisterObserver(n.observer)
	return n, nil
}

// catchUpFromSnapshot restores the latest snapshot when the store is behind it.
func (n *Node) catchUpFromSnapshot(ctx context.Context, snaps raft.SnapshotStore) error {
	list, err := snaps.List()
	if err != nil || len(list) == 0 {
		return err
	}
	latest := list[0]
	if latest.Index <= n.st.AppliedIndex() {
		return nil
	}
	// Raft's index of a snapshot may be past the store's (entries that do not reach the store: elections'
	// no-ops, membership changes); the snapshot says which store state it holds.
	_, rc, err := snaps.Open(latest.ID)
	if err != nil {
		return fmt.Errorf("cluster: open snapshot %s: %w", latest.ID, err)
	}
	held, err := store.SnapshotIndex(rc)
	rc.Close()
	if err != nil {
		return fmt.Errorf("cluster: snapshot %s: %w", latest.ID, err)
	}
	if held <= n.st.AppliedIndex() {
		return nil
	}
	n.log.Warn("the store is behind the latest snapshot: restoring it", "store_applied", n.st.AppliedIndex(), "snapshot_holds", held)
	_, rc, err = snaps.Open(latest.ID)
	if err != nil {
		return fmt.Errorf("cluster: open snapshot %s: %w", latest.ID, err)
	}
	defer rc.Close()
	return n.st.Restore(ctx, rc)
}

// ID is this node's id.
func (n *Node) ID() string { return n.opts.NodeID }

// RaftAddress is the address the others reach this node's Raft at.
func (n *Node) RaftAddress() string { return string(n.advertise) }

// Run follows leadership (catching up with a barrier when this node becomes leader, telling watchers), publishes
// this node's addresses in the replicated state, and tracks the peers' health, until ctx ends. It then leaves
// Raft running: Close stops it.
func (n *Node) Run(ctx context.Context) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	// The addresses are published on their own goroutine: a write may wait for a majority for seconds, and
	// leadership changes must be followed meanwhile.
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			n.publishSelf(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	defer func() { <-pubDone }()
	var term uint64
	state := raft.Shutdown
	var barrier chan uint64 // the term a running barrier was started in
	for {
		select {
		case <-ctx.Done():
			return nil
		case ob := <-n.observations:
			n.observe(ob)
		case t := <-barrier:
			barrier = nil
			if t != 0 && n.raft.State() == raft.Leader && n.raft.CurrentTerm() == t {
				n.ready.Store(t)
				n.mu.Lock()
				n.leaderSince = time.Now()
				n.mu.Unlock()
				n.log.Info("leading: caught up with the log; taking over the switches", "term", t, "applied_index", n.st.AppliedIndex())
				n.notify()
			}
		case <-tick.C:
		}
		newState, newTerm := n.raft.State(), n.raft.CurrentTerm()
		if newState != state || newTerm != term {
			if state == raft.Leader && (newState != raft.Leader || newTerm != term) {
				n.ready.Store(0)
				n.log.Warn("leadership lost: this node stops programming switches", "term", term, "state", newState.String(),
					"new_term", newTerm)
				n.notify()
			}
			if newState == raft.Leader {
				t := newTerm
				n.log.Info("elected leader: catching up before taking over", "term", t)
				ch := make(chan uint64, 1)
				barrier = ch
				n.wg.Add(1)
				go func() {
					defer n.wg.Done()
					// Barrier returns once every entry before it is applied here (Raft's own goroutines run it).
					if err := n.raft.Barrier(n.opts.ApplyTimeout).Error(); err != nil {
						n.log.Warn("catching up as leader failed", "term", t, "err", err)
						t = 0
					}
					ch <- t
				}()
			}
			state, term = newState, newTerm
		}
	}
}

// observe records what Raft reports of leadership and peers.
func (n *Node) observe(ob raft.Observation) {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch o := ob.Data.(type) {
	case raft.LeaderObservation:
		id := string(o.LeaderID)
		if id != n.stats.lastLeader {
			n.stats.leaderChanges++
			prev := n.stats.lastLeader
			n.stats.lastLeader = id
			if id == "" {
				n.log.Warn("no leader: the cluster lost its leader or this node lost contact with it", "previous", prev)
			} else {
				n.log.Info("leader changed", "leader", id, "previous", prev, "term", n.raft.CurrentTerm())
			}
		}
	case raft.FailedHeartbeatObservation:
		n.peerContact[string(o.PeerID)] = peerHealth{failing: true, lastContact: o.LastContact}
	case raft.ResumedHeartbeatObservation:
		n.peerContact[string(o.PeerID)] = peerHealth{lastContact: time.Now()}
	}
}

// Subscribe returns a channel that receives a value whenever this node's leadership changes (see Leading), and
// a function that ends the subscription.
func (n *Node) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	n.mu.Lock()
	n.subs = append(n.subs, ch)
	n.mu.Unlock()
	return ch, func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		n.subs = slices.DeleteFunc(n.subs, func(c chan struct{}) bool { return c == ch })
	}
}

func (n *Node) notify() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, ch := range n.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Leading reports whether this node leads and has caught up with the log, and its term (the switches' generation
// id). It turns false as soon as Raft steps down.
func (n *Node) Leading() (bool, uint64) {
	t := n.ready.Load()
	if t == 0 || n.raft.State() != raft.Leader || n.raft.CurrentTerm() != t {
		return false, n.raft.CurrentTerm()
	}
	return true, t
}

// Term is the current Raft term.
func (n *Node) Term() uint64 { return n.raft.CurrentTerm() }

// Role is this node's Raft state as the API names it: LEADER, FOLLOWER or CANDIDATE.
func (n *Node) Role() string {
	switch n.raft.State() {
	case raft.Leader:
		return "LEADER"
	case raft.Candidate:
		return "CANDIDATE"
	}
	return "FOLLOWER"
}

// Leader is the current leader's id ("" when none is known).
func (n *Node) Leader() string {
	_, id := n.raft.LeaderWithID()
	return string(id)
}

// Replicate implements store.Replicator: it proposes a write set and waits until it is applied here, at most the
// apply timeout or until ctx ends.
func (n *Node) Replicate(ctx context.Context, data []byte) error {
	if ok, _ := n.Leading(); !ok {
		return &store.UnavailableError{Reason: n.notLeadingReason()}
	}
	f := n.raft.Apply(data, n.opts.ApplyTimeout)
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	timer := time.NewTimer(n.opts.ApplyTimeout)
	defer timer.Stop()
	var err error
	select {
	case err = <-done:
	case <-timer.C:
		return &store.UnavailableError{Unknown: true, Reason: fmt.Sprintf("no majority of the controllers confirmed the change within %s", n.opts.ApplyTimeout)}
	case <-ctx.Done():
		return &store.UnavailableError{Unknown: true, Reason: "the request ended before a majority confirmed the change: " + ctx.Err().Error()}
	}
	switch {
	case err == nil:
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress), errors.Is(err, raft.ErrRaftShutdown),
		errors.Is(err, raft.ErrEnqueueTimeout):
		return &store.UnavailableError{Reason: fmt.Sprintf("this controller stopped leading before the change was proposed (%v)", err)}
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrAbortedByRestore):
		return &store.UnavailableError{Unknown: true, Reason: fmt.Sprintf("this controller lost the leadership while the change was being committed (%v)", err)}
	default:
		return fmt.Errorf("cluster: replicate: %w", err)
	}
	if rerr, ok := f.Response().(error); ok && rerr != nil {
		return rerr
	}
	return nil
}

func (n *Node) notLeadingReason() string {
	if n.raft.State() == raft.Leader {
		return "this controller was just elected and is still catching up with the log; retry in a moment"
	}
	if l := n.Leader(); l != "" {
		return fmt.Sprintf("this controller does not lead (controller %s does)", l)
	}
	return "no majority of the controllers is reachable, so none leads"
}

// VerifyLeader confirms with a majority that this node still leads (so that its state has every acknowledged
// write).
func (n *Node) VerifyLeader(ctx context.Context) error {
	f := n.raft.VerifyLeader()
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops Raft (without leaving the cluster) and closes its log.
func (n *Node) Close() error {
	n.raft.DeregisterObserver(n.observer)
	err := n.raft.Shutdown().Error()
	n.wg.Wait() // a barrier in flight ends with the shutdown
	n.ready.Store(0)
	n.notify()
	if cerr := n.boltStore.Close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	if cerr := n.closeTr(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	return err
}

// fsm applies the log's entries to the store.
type fsm struct {
	st  *store.Store
	log *slog.Logger
}

// Apply returns the store's outcome (nil or an error), which Replicate hands back to the proposer.
func (f *fsm) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	err := f.st.ApplyEntry(context.Background(), l.Index, l.Data)
	if err != nil && !errors.Is(err, store.ErrStale) {
		f.log.Error("applying a log entry failed", "index", l.Index, "err", err)
	}
	return err
}

func (f *fsm) Snapshot() (raft.FSMSnapshot, error) { return &fsmSnapshot{sn: f.st.Snapshot()}, nil }

func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	f.log.Info("restoring the store from a snapshot sent by the leader")
	return f.st.Restore(context.Background(), rc)
}

type fsmSnapshot struct{ sn *store.Snapshot }

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := s.sn.WriteTo(sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("write snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() { s.sn.Close() }

// slogWriter turns hclog's lines into slog records.
type slogWriter struct{ log *slog.Logger }

func (w *slogWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelInfo
	switch {
	case strings.Contains(line, "[ERROR]"):
		level = slog.LevelError
	case strings.Contains(line, "[WARN]"):
		level = slog.LevelWarn
	case strings.Contains(line, "[DEBUG]"), strings.Contains(line, "[TRACE]"):
		level = slog.LevelDebug
	}
	// drop hclog's own timestamp and level: slog adds them
	if i := strings.Index(line, "]"); i >= 0 && i < 48 {
		line = strings.TrimSpace(line[i+1:])
	}
	w.log.Log(context.Background(), level, line)
	return len(p), nil
}
