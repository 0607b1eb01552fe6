package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"portmirror/model"
)

// logReplicator stands for a replicated log: it keeps every entry and applies it at once to the stores given,
// in order, as a log would on every node.
type logReplicator struct {
	entries [][]byte
	nodes   []*Store
}

func (l *logReplicator) Replicate(ctx context.Context, data []byte) error {
	l.entries = append(l.entries, data)
	idx := uint64(len(l.entries))
	var mine error
	for i, n := range l.nodes {
		err := n.ApplyEntry(ctx, idx, data)
		if i == 0 {
			mine = err
		}
	}
	return mine
}

func openTest(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(context.Background(), Options{Dir: dir, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func clusterUUID(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }

// TestReplicatedWriteSets: write sets applied through a log give every node the same objects, audit ids and
// applied index; replaying an applied entry changes nothing; a stale write set is refused alike everywhere and
// Update recomputes it; a snapshot restores another store to the same state.
func TestReplicatedWriteSets(t *testing.T) {
	ctx := context.Background()
	leader, follower := openTest(t, t.TempDir()), openTest(t, t.TempDir())
	defer leader.Close()
	defer follower.Close()
	log := &logReplicator{nodes: []*Store{leader, follower}}
	leader.SetReplicator(log)
	for i := range 20 {
		if err := leader.Update(ctx, func(tx *Txn) error {
			tx.Put(model.Cluster{UUID: clusterUUID(i), Name: "c"})
			tx.Audit(model.AuditEvent{Operation: "createCluster", ResourceUUID: clusterUUID(i), Success: true})
			tx.SetMeta("k", fmt.Sprint(i))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	check := func(s *Store, what string) {
		t.Helper()
		if n := Count[model.Cluster](s); n != 20 {
			t.Fatalf("%s: %d clusters, want 20", what, n)
		}
		evs, err := s.Audits(ctx, AuditQuery{First: 100})
		if err != nil || len(evs) != 20 || evs[0].ResourceUUID != clusterUUID(19) {
			t.Fatalf("%s: audit events %v (%v)", what, len(evs), err)
		}
		if v, _ := s.Meta("k"); v != "19" {
			t.Fatalf("%s: meta k = %q, want 19", what, v)
		}
		if s.AppliedIndex() != 20 {
			t.Fatalf("%s: applied index %d, want 20", what, s.AppliedIndex())
		}
	}
	check(leader, "leader")
	check(follower, "follower")

	// Replaying applied entries (a restart) changes nothing.
	for i, e := range log.entries {
		if err := follower.ApplyEntry(ctx, uint64(i+1), e); err != nil {
			t.Fatal(err)
		}
	}
	check(follower, "follower after a replay")

	// A write set computed on an older state is stale on every node; Update computes it again.
	var ws WriteSet
	if err := json.Unmarshal(log.entries[5], &ws); err != nil {
		t.Fatal(err)
	}
	ws.Puts[0].ID = clusterUUID(99)
	stale, _ := json.Marshal(ws)
	log.entries = append(log.entries, stale)
	for _, n := range log.nodes {
		if err := n.ApplyEntry(ctx, uint64(len(log.entries)), stale); !errors.Is(err, ErrStale) {
			t.Fatalf("stale entry: %v, want ErrStale", err)
		}
		if _, ok := Get[model.Cluster](n, clusterUUID(99)); ok {
			t.Fatal("a stale entry was applied")
		}
	}
	attempts := 0
	racer := &racingReplicator{log: log, before: func() {
		if attempts == 0 { // another write lands between computing and committing
			attempts++
			w := WriteSet{Base: leader.lastWrite.Load(), Puts: []PutOp{{Kind: KindCluster, ID: clusterUUID(50), Seq: 1000,
				Obj: json.RawMessage(`{"uuid":"` + clusterUUID(50) + `","name":"racer"}`)}}}
			b, _ := json.Marshal(w)
			_ = log.Replicate(ctx, b)
		}
	}}
	leader.SetReplicator(racer)
	calls := 0
	if err := leader.Update(ctx, func(tx *Txn) error {
		calls++
		tx.Put(model.Cluster{UUID: clusterUUID(60), Name: "late"})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if calls != 2 {
		t.Fatalf("Update ran its function %d times, want 2 (once more after the stale refusal)", calls)
	}
	for _, n := range log.nodes {
		for _, u := range []string{clusterUUID(50), clusterUUID(60)} {
			if _, ok := Get[model.Cluster](n, u); !ok {
				t.Fatalf("cluster %s missing", u)
			}
		}
	}

	// A snapshot of the leader restores a fresh store to the same state.
	sn := leader.Snapshot()
	var buf bytes.Buffer
	if _, err := sn.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	sn.Close()
	fresh := openTest(t, t.TempDir())
	defer fresh.Close()
	if err := fresh.Restore(ctx, bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	if fresh.AppliedIndex() != leader.AppliedIndex() || Count[model.Cluster](fresh) != Count[model.Cluster](leader) {
		t.Fatalf("restored: applied %d, %d clusters; leader: applied %d, %d clusters", fresh.AppliedIndex(),
			Count[model.Cluster](fresh), leader.AppliedIndex(), Count[model.Cluster](leader))
	}
	a1, _ := fresh.Audits(ctx, AuditQuery{First: 1})
	a2, _ := leader.Audits(ctx, AuditQuery{First: 1})
	if a1[0].ID != a2[0].ID {
		t.Fatalf("restored newest audit %s, leader %s", a1[0].ID, a2[0].ID)
	}
	if err := fresh.Restore(ctx, bytes.NewReader([]byte("not a snapshot"))); err == nil {
		t.Fatal("restoring garbage succeeded")
	}
}

// racingReplicator runs before, then replicates.
type racingReplicator struct {
	log    *logReplicator
	before func()
}

func (r *racingReplicator) Replicate(ctx context.Context, data []byte) error {
	r.before()
	return r.log.Replicate(ctx, data)
}
