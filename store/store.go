// Package store persists the product's objects and audit log in Badger and keeps an in-memory view of every
// object for fast reads. The service is its only writer: a write runs as a Txn under the store's writer lock,
// commits to Badger (synchronously, so that an acknowledged write survives a crash), and only then becomes visible
// in the in-memory view and on the change feed.
package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"portmirror/model"
)

// SchemaVersion is the key layout this package writes; Open refuses a store with another one.
const SchemaVersion = "1"

// Keys.
const (
	keySchema      = "meta/schema"
	keyApplied     = "meta/applied"   // the last log index applied, 8 bytes big-endian
	keyLastWrite   = "meta/lastwrite" // the last log index whose write set was applied
	prefixMeta     = "meta/c/"        // meta/c/<key> → cluster metadata (Txn.SetMeta)
	prefixObject   = "v1/obj/"        // v1/obj/<kind>/<id> → envelope
	prefixAudit    = "v1/audit/"      // v1/audit/<id> → model.AuditEvent
	prefixAuditIdx = "v1/auditby/"    // v1/auditby/<uuid>/<id> → empty
)

// ErrClosed is returned by writes after Close.
var ErrClosed = errors.New("store: closed")

// Options configure Open.
type Options struct {
	Dir      string // the Badger directory; created when missing
	InMemory bool   // keep nothing on disk (tests)
	// NoSync leaves each commit in the operating system's cache instead of waiting for the disk: for a member of a
	// cluster, whose Raft log is the durable record (a store that lost its last writes to a power failure replays
	// them from the log, or restores the latest snapshot when it is behind it).
	NoSync bool
	Logger *slog.Logger // nil: slog.Default()
}

// Store is the Badger database and its in-memory view.
type Store struct {
	db       *badger.DB
	log      *slog.Logger
	inMemory bool

	wmu      sync.Mutex    // serialises writers; held from the start of a Txn to the end of its apply
	closed   bool          // under wmu
	seq      atomic.Uint64 // last object sequence number
	auditSeq atomic.Uint64 // last audit id

	// replicator, when set, carries every write set through the cluster's log instead of applying it here
	// directly; the log applies it on every node with ApplyEntry.
	replicator Replicator
	applied    atomic.Uint64 // the last log index applied (0 without a replicator)
	lastWrite  atomic.Uint64 // the last log index whose write set was applied (the base of the next one)

	mu     sync.RWMutex // guards tables and meta
	tables map[string]*table
	meta   map[string]string // cluster metadata (Txn.SetMeta), by key

	feed feed
}

// envelope is how an object is stored: its creation sequence number (list order) and its JSON.
type envelope struct {
	Seq uint64          `json:"seq"`
	Obj json.RawMessage `json:"obj"`
}

// decodeValue reads a stored value: the object's creation sequence number and the object.
func decodeValue(kind string, raw []byte) (uint64, any, error) {
	if env, ok := splitEnvelope(raw); ok {
		if obj, err := decodeObject(kind, env.Obj); err == nil {
			return env.Seq, obj, nil
		}
		// not the shape it looked like (e.g. a field after obj): as encoding/json reads it
	}
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return 0, nil, err
	}
	obj, err := decodeObject(kind, env.Obj)
	return env.Seq, obj, err
}

// splitEnvelope splits the shape json.Marshal gives an envelope, {"seq":N,"obj":{...}}, without a scan of the
// object (decodeObject checks and decodes it next: scanning it here too was a third of a load's decoding). It
// answers false for any other shape; what it takes for the object's end may not be one (decodeValue checks).
func splitEnvelope(raw []byte) (envelope, bool) {
	const head, mid = `{"seq":`, `,"obj":{`
	rest, ok := bytes.CutPrefix(raw, []byte(head))
	if !ok {
		return envelope{}, false
	}
	n := 0
	for n < len(rest) && n < 20 && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	if n == 0 || n > 1 && rest[0] == '0' {
		return envelope{}, false
	}
	seq, err := strconv.ParseUint(string(rest[:n]), 10, 64)
	if err != nil {
		return envelope{}, false
	}
	obj, ok := bytes.CutPrefix(rest[n:], []byte(mid))
	if !ok || len(obj) < 2 || obj[len(obj)-1] != '}' {
		return envelope{}, false
	}
	return envelope{Seq: seq, Obj: raw[len(raw)-len(obj)-1 : len(raw)-1]}, true
}

// loadBatch is how many objects one decode job of a load holds.
const loadBatch = 512

// loadChunk is the size of the buffers a load copies stored values into, many values to one.
const loadChunk = 256 << 10

// loadItem is one stored object on its way through a load: its key and value, then its decoded object.
type loadItem struct {
	key, kind, id string
	raw           []byte
	seq           uint64
	obj           any
}

// loadDecoder decodes batches of a load's objects on one goroutine per CPU and gives them back in the order
// they were added. Its goroutines end with stop.
type loadDecoder struct {
	jobs    chan *loadJob
	pending []*loadJob // added, in order, not yet drained
	wg      sync.WaitGroup
	ctx     context.Context
	cancel  context.CancelFunc
}

type loadJob struct {
	items []loadItem
	err   error
	done  chan struct{}
}

func newLoadDecoder(ctx context.Context) *loadDecoder {
	ctx, cancel := context.WithCancel(ctx)
	d := &loadDecoder{jobs: make(chan *loadJob), ctx: ctx, cancel: cancel}
	for range runtime.GOMAXPROCS(0) {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case j, ok := <-d.jobs:
					if !ok {
						return
					}
					j.err = decodeItems(j.items)
					close(j.done)
				}
			}
		}()
	}
	return d
}

// decodeItems decodes each item's envelope and object.
func decodeItems(items []loadItem) error {
	for i := range items {
		it := &items[i]
		seq, obj, err := decodeValue(it.kind, it.raw)
		if err != nil {
			return fmt.Errorf("decode %q: %w", it.key, err)
		}
		it.seq, it.obj, it.raw = seq, obj, nil
	}
	return nil
}

// add hands a batch to the workers, waiting while they are all busy.
func (d *loadDecoder) add(items []loadItem) error {
	j := &loadJob{items: items, done: make(chan struct{})}
	select {
	case d.jobs <- j:
		d.pending = append(d.pending, j)
		return nil
	case <-d.ctx.Done():
		return d.ctx.Err()
	}
}

// drain gives the decoded objects of the batches that are done, oldest first, stopping at the first that is not
// (or, with all, waiting for every one).
func (d *loadDecoder) drain(all bool, put func(loadItem)) error {
	for len(d.pending) > 0 {
		j := d.pending[0]
		if !all {
			select {
			case <-j.done:
			default:
				return nil
			}
		}
		<-j.done
		if j.err != nil {
			return j.err
		}
		for _, it := range j.items {
			put(it)
		}
		d.pending = d.pending[1:]
	}
	return nil
}

// stop ends the workers.
func (d *loadDecoder) stop() {
	d.cancel()
	d.wg.Wait()
}

// Open opens (or creates) the store and loads every object into memory.
func Open(ctx context.Context, o Options) (*Store, error) {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	bo := badger.DefaultOptions(o.Dir).
		WithInMemory(o.InMemory).
		WithSyncWrites(!o.InMemory && !o.NoSync).
		WithLogger(badgerLogger{log.With("component", "badger")}).
		// A transaction may hold ~15% of a memtable: 32 MiB lets one mutation write ~10k flow endpoints (a flow
		// network attached to a cluster of 10k hosts). The arena is allocated untouched, so an idle store's RSS
		// stays ~14 MiB; it grows with the writes since the last flush.
		WithMemTableSize(32 << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		WithBaseTableSize(2 << 20).
		WithBaseLevelSize(8 << 20).
		WithBlockCacheSize(4 << 20).
		WithIndexCacheSize(2 << 20).
		WithValueLogFileSize(64 << 20).
		WithNumCompactors(2).
		WithNumGoroutines(2).
		WithCompression(options.None).
		WithMetricsEnabled(false).
		WithDetectConflicts(true).
		// Level 0 compacted when the store closes, not when it next opens: a restart (the controller's whole fleet
		// waiting for its first pass) does not pay for it; a stop takes that time instead.
		WithCompactL0OnClose(true)
	if o.InMemory {
		bo = bo.WithDir("").WithValueDir("")
	}
	db, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("open badger store in %q: %w", o.Dir, err)
	}
	s := &Store{db: db, log: log, inMemory: o.InMemory}
	s.feed.init()
	if err := s.load(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// load checks the schema and reads every object, the cluster metadata, the last audit id and the applied log
// index into a fresh in-memory view, which replaces the current one.
func (s *Store) load(ctx context.Context) error {
	err := s.db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(keySchema))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return txn.Set([]byte(keySchema), []byte(SchemaVersion))
		}
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		if string(v) != SchemaVersion {
			return fmt.Errorf("store schema version is %q, this program reads %q", v, SchemaVersion)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("check store schema: %w", err)
	}
	start := time.Now()
	tables := make(map[string]*table, len(kinds))
	for _, k := range kinds {
		tables[k] = newTable()
	}
	meta := map[string]string{}
	var seq, auditSeq, applied, lastWrite uint64
	n := 0
	err = s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixObject), PrefetchValues: true, PrefetchSize: 100})
		defer it.Close()
		// The objects are read in key order here and decoded (JSON, the most of a load's time) by one worker per
		// CPU, a batch at a time; the tables are filled here, in order, as the batches come back.
		dec := newLoadDecoder(ctx)
		defer dec.stop()
		put := func(it loadItem) {
			tables[it.kind].load(it.id, &record{seq: it.seq, obj: it.obj})
			seq = max(seq, it.seq)
			n++
		}
		var batch []loadItem
		var chunk []byte
		flush := func() error {
			if len(batch) == 0 {
				return nil
			}
			if err := dec.add(batch); err != nil {
				return err
			}
			batch = nil
			return dec.drain(false, put)
		}
		for it.Rewind(); it.Valid(); it.Next() {
			if len(batch)%1024 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			item := it.Item()
			key := string(item.Key())
			kind, id, ok := strings.Cut(strings.TrimPrefix(key, prefixObject), "/")
			if !ok {
				return fmt.Errorf("malformed key %q", key)
			}
			if tables[kind] == nil {
				return fmt.Errorf("key %q: unknown kind %q", key, kind)
			}
			// values are copied into shared chunks, not one allocation each: they live until their batch is decoded
			var v []byte
			if err := item.Value(func(val []byte) error {
				if len(chunk)+len(val) > cap(chunk) {
					chunk = make([]byte, 0, max(loadChunk, len(val)))
				}
				chunk = append(chunk, val...)
				v = chunk[len(chunk)-len(val) : len(chunk) : len(chunk)]
				return nil
			}); err != nil {
				return fmt.Errorf("read %q: %w", key, err)
			}
			batch = append(batch, loadItem{key: key, kind: kind, id: id, raw: v})
			if len(batch) == loadBatch {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if err := flush(); err != nil {
			return err
		}
		if err := dec.drain(true, put); err != nil {
			return err
		}
		// The cluster metadata.
		itm := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixMeta), PrefetchValues: true})
		defer itm.Close()
		for itm.Rewind(); itm.Valid(); itm.Next() {
			v, err := itm.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			meta[strings.TrimPrefix(string(itm.Item().Key()), prefixMeta)] = string(v)
		}
		// The log indexes.
		for key, dst := range map[string]*uint64{keyApplied: &applied, keyLastWrite: &lastWrite} {
			item, err := txn.Get([]byte(key))
			if errors.Is(err, badger.ErrKeyNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if err := item.Value(func(v []byte) error {
				if len(v) != 8 {
					return fmt.Errorf("%s holds %d bytes, want 8", key, len(v))
				}
				*dst = binary.BigEndian.Uint64(v)
				return nil
			}); err != nil {
				return err
			}
		}
		// The last audit id.
		it2 := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixAudit), Reverse: true})
		defer it2.Close()
		it2.Seek(append([]byte(prefixAudit), 0xff))
		if it2.Valid() {
			id, err := parseAuditID(strings.TrimPrefix(string(it2.Item().Key()), prefixAudit))
			if err != nil {
				return err
			}
			auditSeq = id
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("load store: %w", err)
	}
	for _, t := range tables {
		t.sortLoaded()
	}
	s.mu.Lock()
	s.tables, s.meta = tables, meta
	s.mu.Unlock()
	s.seq.Store(seq)
	s.auditSeq.Store(auditSeq)
	s.applied.Store(applied)
	s.lastWrite.Store(lastWrite)
	s.log.Info("store loaded", "objects", n, "lastAuditId", auditSeq, "appliedIndex", applied, "took", time.Since(start))
	return nil
}

func decodeObject(kind string, raw []byte) (any, error) {
	switch kind {
	case KindCluster:
		return decodeAs[model.Cluster](raw)
	case KindHost:
		return decodeAs[model.Host](raw)
	case KindVmInstance:
		return decodeAs[model.VmInstance](raw)
	case KindVmNic:
		return decodeAs[model.VmNic](raw)
	case KindFlowNetwork:
		return decodeAs[model.FlowNetwork](raw)
	case KindFlowEndpoint:
		return decodeAs[model.FlowEndpoint](raw)
	case KindPortMirror:
		return decodeAs[model.PortMirror](raw)
	case KindSession:
		return decodeAs[model.Session](raw)
	}
	return nil, fmt.Errorf("unknown kind %q", kind)
}

func decodeAs[T Object](raw []byte) (any, error) {
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, err
	}
	return v, nil
}

func objectKey(kind, id string) []byte { return []byte(prefixObject + kind + "/" + id) }

// Close stops the change feed and closes Badger. Writes after Close fail with ErrClosed.
func (s *Store) Close() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.feed.closeAll()
	if !s.inMemory {
		// every table on one level: the next open's compactors find nothing to do while the store loads and the
		// controller's first pass runs (a restart at 10,000 bridges spent a second of CPU on them); a stop takes
		// that time instead
		if err := s.db.Flatten(2); err != nil {
			s.log.Warn("compacting the store before closing it failed", "err", err)
		}
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close badger store: %w", err)
	}
	return nil
}

// Reader reads objects: *Store reads the committed view, *Txn the committed view with its own pending writes.
type Reader interface {
	get(kind, id string) (any, bool)
	list(kind string) []*record
	lookup(kind, idx, value string) []*record
}

// Get returns a copy of the object of type T with the id, and whether it exists.
func Get[T Object](r Reader, id string) (T, bool) {
	v, ok := r.get(KindOf[T](), id)
	if !ok {
		var zero T
		return zero, false
	}
	return clone(v).(T), true
}

// List returns copies of every object of type T in creation order.
func List[T Object](r Reader) []T {
	return typed[T](r.list(KindOf[T]()))
}

// Lookup returns copies of the objects of type T whose index idx (one of the Idx constants) has the value, in
// creation order.
func Lookup[T Object](r Reader, idx, value string) []T {
	return typed[T](r.lookup(KindOf[T](), idx, value))
}

// Each calls fn with each object of type T whose index idx has the value, in creation order, until fn returns
// false. fn is handed the stored object, not a copy, so that nothing is allocated per object (a port mirror's
// thousands of sessions read for one field): it must not change what the object refers to (its slices and maps),
// nor keep those past the call.
func Each[T Object](r Reader, idx, value string, fn func(T) bool) {
	for _, rec := range r.lookup(KindOf[T](), idx, value) {
		if !fn(rec.obj.(T)) {
			return
		}
	}
}

// LookupCount returns how many objects of type T have the value in index idx, copying none of them.
func LookupCount[T Object](s *Store, idx, value string) int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.tables[KindOf[T]()].index[indexEntry{idx, value}])
}

// LookupPage is Lookup cut to a page, copying only the page's objects: at most first of them (every one when first
// is negative) in creation order, following the one whose id is after (from the start when after is empty). ok is
// false when after is not the id of one of the objects Lookup returns. The index holds its records in creation
// order: a page reads and copies only its own.
func LookupPage[T Object](s *Store, idx, value, after string, first int) (page []T, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	t := s.tables[KindOf[T]()]
	recs := t.index[indexEntry{idx, value}]
	if after != "" {
		r, found := t.byID[after]
		if !found {
			return nil, false
		}
		i, found := slices.BinarySearchFunc(recs, r.seq, bySeq)
		if !found || recs[i] != r {
			return nil, false
		}
		recs = recs[i+1:]
	}
	if first >= 0 && first < len(recs) {
		recs = recs[:first]
	}
	return typed[T](recs), true
}

// Count returns how many objects of type T exist.
func Count[T Object](s *Store) int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.tables[KindOf[T]()].order)
}

func typed[T Object](recs []*record) []T {
	out := make([]T, len(recs))
	for i, r := range recs {
		out[i] = clone(r.obj).(T)
	}
	return out
}

func (s *Store) get(kind, id string) (any, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.getLocked(kind, id)
}

func (s *Store) getLocked(kind, id string) (any, bool) {
	r, ok := s.tables[kind].byID[id]
	if !ok {
		return nil, false
	}
	return r.obj, true
}

func (s *Store) list(kind string) []*record {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.tables[kind].order)
}

func (s *Store) lookup(kind, idx, value string) []*record {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.lookupLocked(kind, idx, value)
}

func (s *Store) lookupLocked(kind, idx, value string) []*record {
	t := s.tables[kind]
	return slices.Clone(t.index[indexEntry{idx, value}])
}

// badgerLogger routes Badger's log to slog: errors and warnings as such, its informational chatter as debug.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) { b.l.Error(trimMsg(f, a)) }
func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn(trimMsg(f, a))
}
func (b badgerLogger) Infof(f string, a ...any)  { b.l.Debug(trimMsg(f, a)) }
func (b badgerLogger) Debugf(f string, a ...any) { b.l.Debug(trimMsg(f, a)) }

func trimMsg(f string, a []any) string { return strings.TrimSpace(fmt.Sprintf(f, a...)) }
