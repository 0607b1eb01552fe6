package store

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	badger "github.com/dgraph-io/badger/v4"
)

// A snapshot is every key of the store at one instant (objects, audit events and their index, metadata, the
// applied log index), streamed from a Badger read transaction so that writes can go on while it is written out.
// The cluster's log takes one to truncate itself and sends one to a node too far behind to catch up from the log.

// snapshotMagic opens a snapshot stream.
const snapshotMagic = "portmirror-snapshot-1\n"

// Snapshot is a consistent view of the store, pinned until Close.
type Snapshot struct {
	txn   *badger.Txn
	Index uint64 // the last log index it holds
}

// Snapshot pins the store's current state. Call it where no write set is being applied (the log's FSM does).
func (s *Store) Snapshot() *Snapshot {
	return &Snapshot{txn: s.db.NewTransaction(false), Index: s.applied.Load()}
}

// WriteTo streams the snapshot: the magic line, the applied log index (8 bytes), then each key and value as
// uvarint-prefixed bytes, then an empty key.
func (sn *Snapshot) WriteTo(w io.Writer) (int64, error) {
	bw := bufio.NewWriterSize(w, 256<<10)
	cw := &countingWriter{w: bw}
	if _, err := io.WriteString(cw, snapshotMagic); err != nil {
		return cw.n, err
	}
	if _, err := cw.Write(binary.BigEndian.AppendUint64(nil, sn.Index)); err != nil {
		return cw.n, err
	}
	it := sn.txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 100})
	defer it.Close()
	var lenBuf [binary.MaxVarintLen64]byte
	put := func(b []byte) error {
		n := binary.PutUvarint(lenBuf[:], uint64(len(b)))
		if _, err := cw.Write(lenBuf[:n]); err != nil {
			return err
		}
		_, err := cw.Write(b)
		return err
	}
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		if err := put(item.Key()); err != nil {
			return cw.n, err
		}
		if err := item.Value(put); err != nil {
			return cw.n, err
		}
	}
	if err := put(nil); err != nil {
		return cw.n, err
	}
	return cw.n, bw.Flush()
}

// Close releases the snapshot.
func (sn *Snapshot) Close() { sn.txn.Discard() }

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// maxSnapshotKey and maxSnapshotValue bound what Restore reads of one entry.
const (
	maxSnapshotKey   = 64 << 10
	maxSnapshotValue = 256 << 20
)

// SnapshotIndex reads the applied log index from the head of a snapshot stream.
func SnapshotIndex(r io.Reader) (uint64, error) {
	head := make([]byte, len(snapshotMagic)+8)
	if _, err := io.ReadFull(r, head); err != nil || string(head[:len(snapshotMagic)]) != snapshotMagic {
		return 0, fmt.Errorf("store: not a portmirror snapshot (%v)", err)
	}
	return binary.BigEndian.Uint64(head[len(snapshotMagic):]), nil
}

// Restore replaces the whole store with a snapshot written by Snapshot.WriteTo, then reloads the in-memory view
// and tells every subscriber to re-read everything. A malformed stream leaves the store empty but consistent
// (the log then sends the snapshot again).
func (s *Store) Restore(ctx context.Context, r io.Reader) error {
	br := bufio.NewReaderSize(r, 256<<10)
	index, err := SnapshotIndex(br)
	if err != nil {
		return fmt.Errorf("store: restore: %w", err)
	}
	if err := s.db.DropAll(); err != nil {
		return fmt.Errorf("store: restore: drop the old state: %w", err)
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	read := func(limit uint64) ([]byte, error) {
		n, err := binary.ReadUvarint(br)
		if err != nil {
			return nil, err
		}
		if n > limit {
			return nil, fmt.Errorf("an entry of %d bytes, more than %d", n, limit)
		}
		b := make([]byte, n)
		_, err = io.ReadFull(br, b)
		return b, err
	}
	n := 0
	for {
		if n%1024 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		key, err := read(maxSnapshotKey)
		if err != nil {
			return fmt.Errorf("store: restore: key %d: %w", n, noEOF(err))
		}
		if len(key) == 0 {
			break
		}
		val, err := read(maxSnapshotValue)
		if err != nil {
			return fmt.Errorf("store: restore: value of %q: %w", key, noEOF(err))
		}
		if err := wb.Set(key, val); err != nil {
			return fmt.Errorf("store: restore: write %q: %w", key, err)
		}
		n++
	}
	if err := wb.Set([]byte(keyApplied), binary.BigEndian.AppendUint64(nil, index)); err != nil {
		return fmt.Errorf("store: restore: %w", err)
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("store: restore: write %d keys: %w", n, err)
	}
	if err := s.load(ctx); err != nil {
		return fmt.Errorf("store: restore: %w", err)
	}
	s.feed.publish([]Change{{Kind: KindAll}, {Kind: KindMeta}})
	return nil
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
