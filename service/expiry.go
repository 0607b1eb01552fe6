package service

import (
	"context"
	"errors"
	"time"

	"portmirror/model"
	"portmirror/store"
)

// ActorSystem is the actor of what the controller does by itself, such as deleting an expired session.
const ActorSystem = "system"

// errNothingToDo ends a mutation the service started by itself (not a caller) that found nothing to change: it
// is neither committed nor audited.
var errNothingToDo = errors.New("nothing to do")

// checkExpiresAt checks an expiry given (nil: never) and returns it in UTC: it must be in the future.
func (s *Service) checkExpiresAt(what string, t *time.Time) (*time.Time, error) {
	if t == nil {
		return nil, nil
	}
	now := s.now()
	if !t.After(now) {
		return nil, invalid("%s: expiresAt %s is not in the future (now %s); give a later time, or leave it out for a session that does not expire",
			what, t.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	u := t.UTC()
	return &u, nil
}

// sameTime reports whether two optional times are the same instant (or both absent).
func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

// Expiry is one session's expiry, as the controller schedules it.
type Expiry struct {
	SessionUUID string
	At          time.Time
}

// Expiries lists the sessions that have an expiry.
func (s *Service) Expiries(ctx context.Context) []Expiry {
	var out []Expiry
	for _, ss := range store.List[model.Session](s.st) {
		if ss.ExpiresAt != nil {
			out = append(out, Expiry{SessionUUID: ss.UUID, At: *ss.ExpiresAt})
		}
	}
	return out
}

// SessionExpiry returns a session's expiry; ok is false when the session does not exist or does not expire.
func (s *Service) SessionExpiry(ctx context.Context, uuid string) (at time.Time, ok bool) {
	ss, found := store.Get[model.Session](s.st, uuid)
	if !found || ss.ExpiresAt == nil {
		return time.Time{}, false
	}
	return *ss.ExpiresAt, true
}

// ExpirePortMirrorSession deletes a session whose expiry has come, as any deleted session (its flows go), and
// audits it as expirePortMirrorSession by the actor "system", on its port mirror with the session in the
// detail. A session that is gone, or whose expiry was cleared or moved later in the meantime, is left alone and
// nothing is audited: deleted is then false.
func (s *Service) ExpirePortMirrorSession(ctx context.Context, uuid string) (deleted bool, err error) {
	ctx = WithActor(ctx, ActorSystem)
	err = s.mutate(ctx, "expirePortMirrorSession", "PortMirror", "", map[string]string{"uuid": uuid}, func(tx *store.Txn, a *audit) error {
		a.relate(uuid)
		ses, ok := store.Get[model.Session](tx, uuid)
		now := s.now()
		if !ok || ses.ExpiresAt == nil || ses.ExpiresAt.After(now) {
			return errNothingToDo
		}
		a.resourceUUID = ses.PortMirrorUUID
		tx.Delete(store.KindSession, uuid)
		if pm, ok := store.Get[model.PortMirror](tx, ses.PortMirrorUUID); ok {
			pm.UpdatedAt = now.UTC()
			tx.Put(pm)
		}
		a.set("session", ses)
		a.set("expiresAt", ses.ExpiresAt)
		return nil
	})
	if errors.Is(err, errNothingToDo) {
		return false, nil
	}
	return err == nil, err
}
