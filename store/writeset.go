package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"portmirror/model"
)

// A write set is everything one transaction writes, computed by the service on the node that runs the mutation
// (the leader, in a cluster) and applied the same way on every node: it is the one path by which the store
// changes, whether the set is applied at once (one node) or carried through the cluster's log.

// WriteSet is a transaction's writes, as carried in a log entry.
type WriteSet struct {
	// Base is the log index of the last write set applied when this one was computed: its precondition. A node
	// applies the set only while that is still its last write; otherwise the set is stale (computed on a state
	// that another write has since changed) and every node refuses it alike.
	Base    uint64             `json:"base,omitempty"`
	Puts    []PutOp            `json:"puts,omitempty"`
	Deletes []DeleteOp         `json:"deletes,omitempty"`
	Audits  []model.AuditEvent `json:"audits,omitempty"`
	Meta    map[string]string  `json:"meta,omitempty"` // "" deletes the key
}

// PutOp creates or replaces an object.
type PutOp struct {
	Kind string          `json:"kind"`
	ID   string          `json:"id"`
	Seq  uint64          `json:"seq"` // creation order
	Obj  json.RawMessage `json:"obj"`
}

// DeleteOp removes an object.
type DeleteOp struct {
	Kind string `json:"kind"`
	ID   string `json:"id"`
}

// ErrStale is the outcome of a write set whose base is no longer the store's last write: nothing was written.
var ErrStale = errors.New("store: the write set was computed on a state that has changed since")

// Replicator carries write sets through a replicated log. Replicate proposes an encoded WriteSet and returns
// once this node has applied it (with ApplyEntry), with the outcome of that apply; or an error saying why it
// was not committed, or that its outcome is unknown.
type Replicator interface {
	Replicate(ctx context.Context, data []byte) error
}

// SetReplicator makes every later write go through r. Call it before the store is used.
func (s *Store) SetReplicator(r Replicator) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.replicator = r
}

// AppliedIndex is the last log index this store applied (0 without a replicator).
func (s *Store) AppliedIndex() uint64 { return s.applied.Load() }

// writeSet encodes the transaction's last writes, its audit events and its metadata. recs are the records of
// the puts, in the same order, so that a local apply need not decode them again.
func (tx *Txn) writeSet() (*WriteSet, []*record, error) {
	ws := &WriteSet{Base: tx.base, Audits: tx.audits, Meta: tx.meta}
	var recs []*record
	for _, p := range tx.lastWrites() {
		if p.rec == nil {
			ws.Deletes = append(ws.Deletes, DeleteOp{Kind: p.kind, ID: p.id})
			continue
		}
		obj, err := json.Marshal(p.rec.obj)
		if err != nil {
			return nil, nil, fmt.Errorf("encode %s %s: %w", p.kind, p.id, err)
		}
		ws.Puts = append(ws.Puts, PutOp{Kind: p.kind, ID: p.id, Seq: p.rec.seq, Obj: obj})
		recs = append(recs, p.rec)
	}
	return ws, recs, nil
}

// kv is one Badger write; val nil deletes.
type kv struct{ key, val []byte }

// kvs is what the write set writes to Badger: objects, audit events and their index entries, metadata.
func (ws *WriteSet) kvs() ([]kv, error) {
	out := make([]kv, 0, len(ws.Puts)+len(ws.Deletes)+2*len(ws.Audits)+len(ws.Meta))
	for _, d := range ws.Deletes {
		out = append(out, kv{key: objectKey(d.Kind, d.ID)})
	}
	for _, p := range ws.Puts {
		val, err := json.Marshal(envelope{Seq: p.Seq, Obj: p.Obj})
		if err != nil {
			return nil, fmt.Errorf("encode %s %s: %w", p.Kind, p.ID, err)
		}
		out = append(out, kv{key: objectKey(p.Kind, p.ID), val: val})
	}
	for _, ev := range ws.Audits {
		val, err := json.Marshal(ev)
		if err != nil {
			return nil, fmt.Errorf("encode audit event: %w", err)
		}
		out = append(out, kv{key: []byte(prefixAudit + ev.ID), val: val})
		for _, u := range auditSubjects(ev) {
			out = append(out, kv{key: []byte(prefixAuditIdx + u + "/" + ev.ID), val: []byte{}})
		}
	}
	for k, v := range ws.Meta {
		e := kv{key: []byte(prefixMeta + k)}
		if v != "" {
			e.val = []byte(v)
		}
		out = append(out, e)
	}
	return out, nil
}

// fitsSet checks the write set (whose Badger writes are kvs) against Badger's limits of one transaction.
func (s *Store) fitsSet(kvs []kv) error {
	extra := 0
	if s.replicator != nil {
		extra = 2 // the log indexes
	}
	return s.fits(len(kvs)+extra, func(i int) (int, int) {
		if i >= len(kvs) {
			return len(keyLastWrite), 8
		}
		return len(kvs[i].key), len(kvs[i].val)
	})
}

// ApplyEntry applies the write set of the log entry at index (data as Replicate was given it), on every node in
// log order. An entry at or below the applied index was applied before (a replay after a restart) and is skipped.
// The applied index is written in the same Badger transaction as the entry's writes, so an entry is applied
// exactly once. A stale entry (see WriteSet.Base) writes nothing and returns ErrStale; every node decides alike.
func (s *Store) ApplyEntry(ctx context.Context, index uint64, data []byte) error {
	if index <= s.applied.Load() {
		return nil
	}
	var ws WriteSet
	if err := json.Unmarshal(data, &ws); err != nil {
		s.markApplied(index)
		return fmt.Errorf("store: log entry %d is not a write set: %w", index, err)
	}
	if ws.Base != s.lastWrite.Load() {
		s.markApplied(index)
		return ErrStale
	}
	return s.applySet(ctx, index, &ws, nil, nil)
}

// markApplied records an entry that wrote nothing as applied.
func (s *Store) markApplied(index uint64) {
	if err := s.db.Update(func(btx *badger.Txn) error {
		return btx.Set([]byte(keyApplied), binary.BigEndian.AppendUint64(nil, index))
	}); err != nil {
		s.log.Warn("recording an applied log index failed (it will be checked again after a restart)", "index", index, "err", err)
	}
	s.applied.Store(index)
}

// applySet writes a write set to Badger (with the log index, when there is one), then to the in-memory view,
// then to the change feed. recs and kvs, when given, are the decoded objects of ws.Puts and ws.kvs().
func (s *Store) applySet(ctx context.Context, index uint64, ws *WriteSet, recs []*record, kvs []kv) error {
	var err error
	if kvs == nil {
		if kvs, err = ws.kvs(); err != nil {
			return err
		}
	}
	if index > 0 {
		v := binary.BigEndian.AppendUint64(nil, index)
		kvs = append(kvs, kv{key: []byte(keyApplied), val: v}, kv{key: []byte(keyLastWrite), val: v})
	}
	if recs == nil {
		recs = make([]*record, len(ws.Puts))
		for i, p := range ws.Puts {
			obj, err := decodeObject(p.Kind, p.Obj)
			if err != nil {
				return fmt.Errorf("store: decode %s %s of log entry %d: %w", p.Kind, p.ID, index, err)
			}
			recs[i] = &record{seq: p.Seq, obj: obj}
		}
	}
	for attempt := 0; ; attempt++ {
		err = s.db.Update(func(btx *badger.Txn) error {
			for _, e := range kvs {
				if e.val == nil {
					if err := btx.Delete(e.key); err != nil {
						return err
					}
					continue
				}
				if err := btx.Set(e.key, e.val); err != nil {
					return err
				}
			}
			return nil
		})
		if !errors.Is(err, badger.ErrConflict) || attempt >= maxConflictRetries {
			break
		}
		s.log.Debug("store commit conflict, retrying", "attempt", attempt+1)
		select {
		case <-ctx.Done():
			return fmt.Errorf("commit: %w (after conflict)", ctx.Err())
		case <-time.After(time.Duration(attempt+1) * time.Millisecond):
		}
	}
	if errors.Is(err, badger.ErrTxnTooBig) {
		// fits estimates as Badger does; should it ever fall short, the refusal is the same
		return &TooLargeError{Writes: len(kvs), Bytes: -1, MaxBytes: s.db.MaxBatchSize()}
	}
	if err != nil {
		return fmt.Errorf("commit %d writes and %d audit events: %w", len(kvs)-len(ws.Audits), len(ws.Audits), err)
	}

	changes := make([]Change, 0, len(ws.Puts)+len(ws.Deletes))
	s.mu.Lock()
	for _, d := range ws.Deletes {
		if t := s.tables[d.Kind]; t != nil {
			t.remove(d.ID)
		}
		changes = append(changes, Change{Kind: d.Kind, UUID: d.ID, Deleted: true})
	}
	var seq uint64
	for i, p := range ws.Puts {
		if t := s.tables[p.Kind]; t != nil {
			t.put(p.ID, recs[i])
		}
		seq = max(seq, p.Seq)
		changes = append(changes, Change{Kind: p.Kind, UUID: p.ID})
	}
	for k, v := range ws.Meta {
		if v == "" {
			delete(s.meta, k)
		} else {
			s.meta[k] = v
		}
	}
	s.mu.Unlock()
	raise(&s.seq, seq)
	for _, ev := range ws.Audits {
		if id, err := parseAuditID(ev.ID); err == nil {
			raise(&s.auditSeq, id)
		}
	}
	if index > 0 {
		s.applied.Store(index)
		s.lastWrite.Store(index)
	}
	if len(ws.Meta) > 0 {
		changes = append(changes, Change{Kind: KindMeta})
	}
	s.feed.publish(changes)
	return nil
}

// raise sets a to v when v is larger.
func raise(a interface {
	Load() uint64
	CompareAndSwap(old, new uint64) bool
}, v uint64) {
	for {
		cur := a.Load()
		if v <= cur || a.CompareAndSwap(cur, v) {
			return
		}
	}
}

// Meta returns a cluster metadata value and whether it is set.
func (s *Store) Meta(key string) (string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.meta[key]
	return v, ok
}

// MetaWithPrefix returns every cluster metadata value whose key starts with prefix, by key.
func (s *Store) MetaWithPrefix(prefix string) map[string]string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := map[string]string{}
	for k, v := range s.meta {
		if len(k) >= len(prefix) && k[:len(prefix)] == prefix {
			out[k] = v
		}
	}
	return out
}

// UnavailableError is a write the cluster could not commit: no majority of the controllers is reachable, or this
// node stopped leading. Unknown says the write was proposed and may still be committed by a later majority (the
// audit trail then shows it); otherwise nothing was written.
type UnavailableError struct {
	Reason  string
	Unknown bool
}

func (e *UnavailableError) Error() string {
	if e.Unknown {
		return "the change's outcome is unknown: " + e.Reason
	}
	return "nothing was changed: " + e.Reason
}
