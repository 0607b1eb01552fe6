package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"portmirror/model"
)

// auditIDWidth is the number of digits of an audit id: zero padded so that byte order is numeric order.
const auditIDWidth = 20

func formatAuditID(n uint64) string {
	s := strconv.FormatUint(n, 10)
	return strings.Repeat("0", auditIDWidth-len(s)) + s
}

func parseAuditID(s string) (uint64, error) {
	if len(s) != auditIDWidth {
		return 0, fmt.Errorf("malformed audit id %q", s)
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("malformed audit id %q: %w", s, err)
	}
	return n, nil
}

// ValidAuditID reports whether s has the form of an audit event id.
func ValidAuditID(s string) bool {
	_, err := parseAuditID(s)
	return err == nil
}

// AppendAudit writes one audit event on its own (a refused mutation's) and returns it with its id.
func (s *Store) AppendAudit(ctx context.Context, ev model.AuditEvent) (model.AuditEvent, error) {
	var out model.AuditEvent
	err := s.Update(ctx, func(tx *Txn) error {
		out = tx.Audit(ev)
		return nil
	})
	return out, err
}

// AuditQuery selects audit events; see Audits.
type AuditQuery struct {
	ResourceUUID string    // events whose resource or related uuids include it; "" for all
	Operation    string    // "" for all
	Actor        string    // "" for all
	ResourceType string    // "" for all
	Since, Until time.Time // inclusive bounds; zero for unbounded
	First        int       // at most this many; must be > 0
	After        string    // an event id: start with the next older event; "" for the newest
}

// Audits returns the events that match q, newest first.
func (s *Store) Audits(ctx context.Context, q AuditQuery) ([]model.AuditEvent, error) {
	if q.First <= 0 {
		return nil, nil
	}
	prefix := prefixAudit
	if q.ResourceUUID != "" {
		prefix = prefixAuditIdx + q.ResourceUUID + "/"
	}
	var out []model.AuditEvent
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefix), Reverse: true,
			PrefetchValues: q.ResourceUUID == "", PrefetchSize: min(q.First, 100)})
		defer it.Close()
		start := []byte(prefix + "\xff")
		if q.After != "" {
			start = []byte(prefix + q.After)
		}
		n := 0
		for it.Seek(start); it.Valid(); it.Next() {
			if n++; n%256 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			id := strings.TrimPrefix(string(it.Item().Key()), prefix)
			if id == q.After {
				continue
			}
			var ev model.AuditEvent
			var err error
			if q.ResourceUUID == "" {
				err = it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &ev) })
			} else {
				ev, err = readAudit(txn, id)
			}
			if err != nil {
				return fmt.Errorf("read audit event %s: %w", id, err)
			}
			if q.Operation != "" && ev.Operation != q.Operation ||
				q.Actor != "" && ev.Actor != q.Actor ||
				q.ResourceType != "" && ev.ResourceType != q.ResourceType {
				continue
			}
			if !q.Since.IsZero() && ev.Time.Before(q.Since) {
				continue
			}
			if !q.Until.IsZero() && ev.Time.After(q.Until) {
				continue
			}
			out = append(out, ev)
			if len(out) >= q.First {
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("query audit log: %w", err)
	}
	return out, nil
}

func readAudit(txn *badger.Txn, id string) (model.AuditEvent, error) {
	var ev model.AuditEvent
	item, err := txn.Get([]byte(prefixAudit + id))
	if err != nil {
		return ev, err
	}
	err = item.Value(func(v []byte) error { return json.Unmarshal(v, &ev) })
	return ev, err
}
