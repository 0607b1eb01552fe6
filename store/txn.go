package store

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

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
	s      *Store
	writes map[string]map[string]*pending       // kind → id → last write
	pindex map[pendingIndex]map[string]struct{} // secondary index of the pending objects (last writes)
	order  []*pending                           // every write, in order
	audits []model.AuditEvent
	meta   map[string]string // cluster metadata written ("" deletes)
	base   uint64            // the store's last write when the Txn began: the write set's precondition
}

// pendingIndex is one secondary index value of a kind.
type pendingIndex struct {
	kind string
	e    indexEntry
}

func newTxn(s *Store) *Txn {
	return &Txn{s: s, writes: map[string]map[string]*pending{}, pindex: map[pendingIndex]map[string]struct{}{},
		base: s.lastWrite.Load()}
}

// Update runs fn in a new Txn under the writer lock and, when fn returns nil, commits what it wrote: to Badger
// first (durably), then to the in-memory view, then to the change feed; with a replicator, through the cluster's
// log, which applies it on every node. When fn returns an error nothing is written and the error is returned as
// it is. A write set that the log refuses as stale (another write was applied after fn read the state, which only
// happens around a change of leader) runs fn again on the new state, a few times at most: fn must not keep what
// it did in a refused attempt.
func (s *Store) Update(ctx context.Context, fn func(tx *Txn) error) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	for attempt := 0; ; attempt++ {
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
		err := s.commit(ctx, tx)
		if !errors.Is(err, ErrStale) || attempt >= maxStaleRetries {
			return err
		}
		s.log.Info("write set refused as stale by the log; computing it again", "attempt", attempt+1)
	}
}

// maxStaleRetries bounds how often Update recomputes a write set refused as stale.
const maxStaleRetries = 5

// Put writes an object (a model value of one of the Object types), creating or replacing it. A new object goes
// to the end of its kind's creation order; a replaced one keeps its place.
func (tx *Txn) Put(v any) {
	kind, id := kindOf(v), idOf(v)
	r := &record{obj: clone(v)}
	if _, ok := tx.get(kind, id); ok {
		r.seq = tx.seqOf(kind, id)
	} else {
		r.seq = tx.s.seq.Add(1)
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
	ev.ID = formatAuditID(tx.s.auditSeq.Add(1))
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	ev.Related = slices.Clone(ev.Related)
	tx.audits = append(tx.audits, ev)
	return ev
}

// SetMeta writes a cluster metadata value (replicated like objects; "" deletes the key).
func (tx *Txn) SetMeta(key, value string) {
	if tx.meta == nil {
		tx.meta = map[string]string{}
	}
	tx.meta[key] = value
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
	tx.s.mu.RLock()
	defer tx.s.mu.RUnlock()
	return tx.s.tables[kind].byID[id].seq
}

// A Txn reads the committed view under mu: on a cluster node the log may apply entries while a Txn runs (only
// around a change of leader: the write set's base then refuses it as stale).

func (tx *Txn) get(kind, id string) (any, bool) {
	if p, ok := tx.writes[kind][id]; ok {
		if p.rec == nil {
			return nil, false
		}
		return p.rec.obj, true
	}
	return tx.s.get(kind, id)
}

// list is the committed objects with the pending writes applied, in creation order.
func (tx *Txn) list(kind string) []*record {
	committed := tx.s.list(kind)
	w := tx.writes[kind]
	if len(w) == 0 {
		return committed
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
	committed := tx.s.lookup(kind, idx, value)
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

// sortRecords sorts records by seq. A long list is sorted by its keys copied beside the pointers: comparing
// through the pointers reads a record (a cache miss) per comparison, and a port mirror's thousand sessions are
// sorted on every read.
func sortRecords(rs []*record) {
	if len(rs) < 64 {
		slices.SortFunc(rs, func(a, b *record) int { return cmp.Compare(a.seq, b.seq) })
		return
	}
	type keyed struct {
		seq uint64
		r   *record
	}
	ks := make([]keyed, len(rs))
	for i, r := range rs {
		ks[i] = keyed{r.seq, r}
	}
	slices.SortFunc(ks, func(a, b keyed) int { return cmp.Compare(a.seq, b.seq) })
	for i := range ks {
		rs[i] = ks[i].r
	}
}

// commit turns tx into its write set and applies it here, or hands it to the replicator.
func (s *Store) commit(ctx context.Context, tx *Txn) error {
	if len(tx.order) == 0 && len(tx.audits) == 0 && len(tx.meta) == 0 {
		return nil
	}
	ws, recs, err := tx.writeSet()
	if err != nil {
		return err
	}
	kvs, err := ws.kvs()
	if err != nil {
		return err
	}
	if err := s.fitsSet(kvs); err != nil {
		return err
	}
	if s.replicator == nil {
		return s.applySet(ctx, 0, ws, recs, kvs)
	}
	data, err := json.Marshal(ws)
	if err != nil {
		return fmt.Errorf("encode write set: %w", err)
	}
	return s.replicator.Replicate(ctx, data)
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
	if s.replicator != nil {
		return errors.New("store: BulkPut writes one node's store only, and this one is replicated")
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
	s.mu.Lock()
	for _, p := range writes {
		s.tables[p.kind].put(p.id, p.rec)
	}
	s.mu.Unlock()
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
