// Package service implements the product's operations (service/api.go): it checks every rule of API.md, writes
// the store, and records one audit event per mutation, refused ones included. It is the only writer of the store.
package service

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"portmirror/model"
	"portmirror/store"
)

// Options configure New.
type Options struct {
	Logger *slog.Logger     // nil: slog.Default()
	Live   Live             // nil until the controller runs; see SetLive
	Now    func() time.Time // nil: time.Now
}

// Service implements Operations on a store.
type Service struct {
	st  *store.Store
	log *slog.Logger
	now func() time.Time

	liveMu  sync.RWMutex
	live    Live
	members Membership
}

// New returns a Service writing to st.
func New(st *store.Store, opts Options) *Service {
	s := &Service{st: st, log: opts.Logger, now: opts.Now, live: opts.Live}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

// SetLive sets (or, with nil, clears) the controller's live view the queries consult.
func (s *Service) SetLive(l Live) {
	s.liveMu.Lock()
	defer s.liveMu.Unlock()
	s.live = l
}

func (s *Service) getLive() Live {
	s.liveMu.RLock()
	defer s.liveMu.RUnlock()
	return s.live
}

// Subscribe passes the store's change feed through: see store.Store.Subscribe.
func (s *Service) Subscribe(buf int) (<-chan store.Change, func()) { return s.st.Subscribe(buf) }

// Store returns the store the service writes (for the daemon's health check and tests).
func (s *Service) Store() *store.Store { return s.st }

// AuditRefused records a mutation the caller refused itself (the HTTP layer's FORBIDDEN): one audit event with
// success=false, the actor of ctx and err's message.
func (s *Service) AuditRefused(ctx context.Context, operation, resourceType, resourceUUID string, err error, detail any) error {
	ev := model.AuditEvent{
		Time:         s.now().UTC(),
		Actor:        ActorFrom(ctx),
		Operation:    operation,
		ResourceType: resourceType,
		ResourceUUID: resourceUUID,
		Success:      false,
		Detail:       detailJSON(detail),
	}
	if err != nil {
		ev.Error = AsError(err).Message
	}
	if _, werr := s.st.AppendAudit(ctx, ev); werr != nil {
		return fmt.Errorf("audit refused %s: %w", operation, werr)
	}
	return nil
}

// Bounds of an audit event's detail: a list longer than maxDetailList is summarised (its length, and the uuids
// or the entries of its first maxDetailList elements), and a detail still larger than maxDetailBytes is replaced by
// a note of its size. An event must stay well under what the store keeps in one value.
const (
	maxDetailList  = 100
	maxDetailBytes = 64 << 10
)

// detailJSON encodes an audit event's detail, bounded; nil is no detail.
func detailJSON(v any) string {
	if v == nil {
		return ""
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("{\"unencodable\":%q}", err.Error())
	}
	if len(b) <= maxDetailBytes {
		return string(b)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // keep int64 values exact
	var generic any
	if err := dec.Decode(&generic); err == nil {
		if s, err := json.Marshal(summarise(generic)); err == nil && len(s) <= maxDetailBytes {
			return string(s)
		}
	}
	s, _ := json.Marshal(map[string]any{"truncated": true, "bytes": len(b)})
	return string(s)
}

// summarise replaces every list longer than maxDetailList in decoded JSON by
// {"truncated": true, "count": n, "firstUuids": [...]} (elements with a uuid) or {..., "first": [...]}.
func summarise(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = summarise(e)
		}
		return x
	case []any:
		if len(x) <= maxDetailList {
			for i := range x {
				x[i] = summarise(x[i])
			}
			return x
		}
		head := x[:maxDetailList]
		uuids := make([]any, 0, len(head))
		for _, e := range head {
			if m, ok := e.(map[string]any); ok {
				if u, ok := m["uuid"].(string); ok {
					uuids = append(uuids, u)
				}
			}
		}
		out := map[string]any{"truncated": true, "count": len(x)}
		if len(uuids) == len(head) {
			out["firstUuids"] = uuids
		} else {
			out["first"] = summarise(head)
		}
		return out
	}
	return v
}
