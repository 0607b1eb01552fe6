package store

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"portmirror/model"
)

// maxConflictRetries bounds the retries of a Badger commit that failed with ErrConflict.
const maxConflictRetries = 5

// pending is a write of a Txn not yet committed.
type pending struct {
	kind, id string
	rec      *record // nil: deleted
}

// encode is the stored value of a pending write: the object with its creation sequence.
func (p *pending) encode() ([]byte, error) {
	obj, err := json.Marshal(p.rec.obj)
	if err == nil {
		var val []byte
		if val, err = json.Marshal(envelope{Seq: p.rec.seq, Obj: obj}); err == nil {
			return val, nil
		}
	}
	return nil, fmt.Errorf("encode %s %s: %w", p.kind, p.id, err)
}

// Txn is one atomic write: puts, deletes and audit events. Its reads see the committed view with its own pending
// writes applied. A Txn is only valid inside the function given to Update.
type Txn struct {
	s       *Store
	writes  map[string]map[string]*pending       // kind → id → last write
	pindex  map[pendingIndex]map[string]struct{} // secondary index of the pending objects (last writes)
	order   []*pending                           // every write, in order
	audits  []model.AuditEvent
	changes []Change
}

// pendingIndex is one secondary index value of a kind.
type pendingIndex struct {
	kind string
	e    indexEntry
}

func newTxn(s *Store) *Txn {
	return &Txn{s: s, writes: map[string]map[string]*pending{}, pindex: map[pendingIndex]map[string]struct{}{}}
}

// Update runs fn in a new Txn under the writer lock and, when fn returns nil, commits what it wrote: to Badger
// first (durably), then to the in-memory view, then to the change feed. When fn returns an error nothing is
// written and the error is returned as it is.
func (s *Store) Update(ctx context.Context, fn func(tx *Txn) error) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	tx := newTxn(s)
	if err := fn(tx); err != nil {
		return err
	}
	return s.commit(ctx, tx)
}

// Put writes an object (a model value of one of the Object types), creating or replacing it. A new object goes
// to the end of its kind's creation order; a replaced one keeps its place.
func (tx *Txn) Put(v any) {
	kind, id := kindOf(v), idOf(v)
	r := &record{obj: clone(v)}
	if _, ok := tx.get(kind, id); ok {
		r.seq = tx.seqOf(kind, id)
	} else {
		tx.s.seq++
		r.seq = tx.s.seq
	}
	tx.write(&pending{kind: kind, id: id, rec: r})
}

// Delete removes the object of the kind with the id; deleting a missing object does nothing.
func (tx *Txn) Delete(kind, id string) {
	if _, ok := tx.get(kind, id); !ok {
		return
	}
	tx.write(&pending{kind: kind, id: id})
}

// Audit adds an audit event to the transaction, assigns its id (and its time when zero) and returns it.
func (tx *Txn) Audit(ev model.AuditEvent) model.AuditEvent {
	tx.s.auditSeq++
	ev.ID = formatAuditID(tx.s.auditSeq)
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	ev.Related = slices.Clone(ev.Related)
	tx.audits = append(tx.audits, ev)
	return ev
}

func (tx *Txn) write(p *pending) {
	m := tx.writes[p.kind]
	if m == nil {
		m = map[string]*pending{}
		tx.writes[p.kind] = m
	}
	if old, ok := m[p.id]; ok && old.rec != nil {
		for _, e := range indexesOf(old.rec.obj) {
			delete(tx.pindex[pendingIndex{p.kind, e}], p.id)
		}
	}
	if p.rec != nil {
		for _, e := range indexesOf(p.rec.obj) {
			k := pendingIndex{p.kind, e}
			ids := tx.pindex[k]
			if ids == nil {
				ids = map[string]struct{}{}
				tx.pindex[k] = ids
			}
			ids[p.id] = struct{}{}
		}
	}
	m[p.id] = p
	tx.order = append(tx.order, p)
}

func (tx *Txn) seqOf(kind, id string) uint64 {
	if p, ok := tx.writes[kind][id]; ok && p.rec != nil {
		return p.rec.seq
	}
	return tx.s.tables[kind].byID[id].seq
}

// The committed view cannot change while a Txn runs (only the holder of wmu changes it), so a Txn reads it
// without taking mu.

func (tx *Txn) get(kind, id string) (any, bool) {
	if p, ok := tx.writes[kind][id]; ok {
		if p.rec == nil {
			return nil, false
		}
		return p.rec.obj, true
	}
	return tx.s.getLocked(kind, id)
}

// list is the committed objects with the pending writes applied, in creation order.
func (tx *Txn) list(kind string) []*record {
	committed := tx.s.tables[kind].order
	w := tx.writes[kind]
	if len(w) == 0 {
		return slices.Clone(committed)
	}
	out := make([]*record, 0, len(committed)+len(w))
	for _, r := range committed {
		if _, ok := w[idOf(r.obj)]; !ok {
			out = append(out, r)
		}
	}
	for _, p := range w {
		if p.rec != nil {
			out = append(out, p.rec)
		}
	}
	sortRecords(out)
	return out
}

// lookup is the committed objects that match and have no pending write, and the pending objects that match
// (through the pending index: a transaction writing thousands of objects looks each one up in constant time).
func (tx *Txn) lookup(kind, idx, value string) []*record {
	committed := tx.s.lookupLocked(kind, idx, value)
	w := tx.writes[kind]
	if len(w) == 0 {
		return committed
	}
	out := committed[:0]
	for _, r := range committed {
		if _, ok := w[idOf(r.obj)]; !ok {
			out = append(out, r)
		}
	}
	for id := range tx.pindex[pendingIndex{kind, indexEntry{idx, value}}] {
		out = append(out, w[id].rec)
	}
	sortRecords(out)
	return out
}

func sortRecords(rs []*record) {
	slices.SortFunc(rs, func(a, b *record) int { return cmp.Compare(a.seq, b.seq) })
}

// commit writes tx to Badger, retrying on conflicts, then applies it to the in-memory view and the feed.
func (s *Store) commit(ctx context.Context, tx *Txn) error {
	if len(tx.order) == 0 && len(tx.audits) == 0 {
		return nil
	}
	type kv struct {
		key, val []byte // val nil: delete
	}
	var kvs []kv
	writes := tx.lastWrites()
	for _, p := range writes {
		key := objectKey(p.kind, p.id)
		if p.rec == nil {
			kvs = append(kvs, kv{key: key})
			tx.changes = append(tx.changes, Change{Kind: p.kind, UUID: p.id, Deleted: true})
			continue
		}
		val, err := p.encode()
		if err != nil {
			return err
		}
		kvs = append(kvs, kv{key: key, val: val})
		tx.changes = append(tx.changes, Change{Kind: p.kind, UUID: p.id})
	}
	for _, ev := range tx.audits {
		val, err := json.Marshal(ev)
		if err != nil {
			return fmt.Errorf("encode audit event: %w", err)
		}
		kvs = append(kvs, kv{key: []byte(prefixAudit + ev.ID), val: val})
		for _, u := range auditSubjects(ev) {
			kvs = append(kvs, kv{key: []byte(prefixAuditIdx + u + "/" + ev.ID), val: []byte{}})
		}
	}
	if err := s.fits(len(kvs), func(i int) (int, int) { return len(kvs[i].key), len(kvs[i].val) }); err != nil {
		return err
	}
	var err error
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
		return fmt.Errorf("commit %d writes and %d audit events: %w", len(kvs)-len(tx.audits), len(tx.audits), err)
	}
	s.apply(writes)
	s.feed.publish(tx.changes)
	return nil
}

// lastWrites is the last write of each object the transaction wrote (only that one is stored), in write order.
func (tx *Txn) lastWrites() []*pending {
	out := make([]*pending, 0, len(tx.order))
	for _, p := range tx.order {
		if tx.writes[p.kind][p.id] == p {
			out = append(out, p)
		}
	}
	return out
}

// apply makes committed writes visible in the in-memory view.
func (s *Store) apply(writes []*pending) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range writes {
		if p.rec == nil {
			s.tables[p.kind].remove(p.id)
		} else {
			s.tables[p.kind].put(p.id, p.rec)
		}
	}
}

// auditSubjects are the uuids an audit event is indexed under: its resource and each related uuid, once each.
func auditSubjects(ev model.AuditEvent) []string {
	var out []string
	for _, u := range append([]string{ev.ResourceUUID}, ev.Related...) {
		if u != "" && !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out
}

// BulkPut writes many objects at once (a restore, a benchmark's inventory) with a Badger WriteBatch, which
// splits them into as many transactions as it needs: unlike Update, it is not atomic as a whole. Subscribers get
// one Change{Kind: KindAll}.
func (s *Store) BulkPut(ctx context.Context, objs []any) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return ErrClosed
	}
	tx := newTxn(s)
	for _, o := range objs {
		tx.Put(o)
	}
	writes := tx.lastWrites()
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for i, p := range writes {
		if i%1024 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		val, err := p.encode()
		if err != nil {
			return err
		}
		if err := wb.Set(objectKey(p.kind, p.id), val); err != nil {
			return fmt.Errorf("bulk write %s %s: %w", p.kind, p.id, err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("bulk write of %d objects: %w", len(objs), err)
	}
	s.apply(writes)
	s.feed.publish([]Change{{Kind: KindAll}})
	return nil
}

// TooLargeError is a transaction that writes more than one Badger transaction holds (a share of the memtable),
// or a value larger than the store keeps in one piece. Nothing was written.
type TooLargeError struct {
	Writes   int   // keys written (objects, audit events and their index entries)
	Bytes    int64 // estimated size; -1 when Badger refused it without the estimate saying so
	MaxBytes int64 // what one transaction holds
	Value    int   // when a single value is too large, its size
	MaxValue int64 // and the largest value the store takes
}

func (e *TooLargeError) Error() string {
	if e.Value > 0 {
		return fmt.Sprintf("store: a value of %d bytes is larger than the %d bytes one value may have", e.Value, e.MaxValue)
	}
	return fmt.Sprintf("store: the transaction writes %d keys (about %d bytes), more than one transaction holds (%d bytes)",
		e.Writes, e.Bytes, e.MaxBytes)
}

// fits checks a write set of n keys (the sizes of key and value of each, given by at) against Badger's limits before committing it: the size of one transaction (its estimate
// of each entry: key, value kept in the LSM tree or a pointer to the value log, metadata and the version) and,
// in memory where there is no value log, the size of a value.
func (s *Store) fits(n int, at func(i int) (key, val int)) error {
	const versionAndMeta = 10 + 2
	threshold := min(int64(1<<20), s.db.MaxBatchSize()) // badger's ValueThreshold, capped by the batch size
	var size int64
	for i := range n {
		k, v := at(i)
		size += int64(k) + versionAndMeta
		switch {
		case int64(v) < threshold:
			size += int64(v)
		case s.inMemory:
			return &TooLargeError{Writes: n, Value: v, MaxValue: threshold}
		default:
			size += 12 // a value pointer
		}
	}
	if size >= s.db.MaxBatchSize() || int64(n) >= s.db.MaxBatchCount() {
		return &TooLargeError{Writes: n, Bytes: size, MaxBytes: s.db.MaxBatchSize()}
	}
	return nil
}
