package service

import (
	"context"
	"fmt"
	"time"

	"portmirror/model"
	"portmirror/store"
)

// sessionIn is a session input as the audit detail records it.
type sessionIn struct {
	Name               string             `json:"name"`
	Type               model.Direction    `json:"type"`
	SourceNicUUID      string             `json:"sourceNicUuid"`
	DestinationNicUUID string             `json:"destinationNicUuid"`
	Filters            []model.FilterRule `json:"filters,omitempty"`
	SnapLength         *int               `json:"snapLength,omitempty"`
	ExpiresAt          *time.Time         `json:"expiresAt,omitempty"`
}

func sessionInputs(in []SessionInput) []sessionIn {
	out := make([]sessionIn, len(in))
	for i, s := range in {
		out[i] = sessionIn(s)
	}
	return out
}

// newSession checks every rule for a new session of pm (on fn) and writes it with its tunnel key. pmWhat names
// the port mirror in messages. Sessions written earlier in the same transaction count for every rule.
func (s *Service) newSession(tx *store.Txn, pm model.PortMirror, pmWhat string, fn model.FlowNetwork, keys *keyAlloc, in SessionInput) (model.Session, error) {
	what := fmt.Sprintf("session %q of %s", in.Name, pmWhat)
	if err := checkName(what, in.Name); err != nil {
		return model.Session{}, err
	}
	if !in.Type.Valid() {
		return model.Session{}, invalid("%s: type %q is not INGRESS, EGRESS or BIDIRECTION", what, in.Type)
	}
	filters, err := checkFilters(what, in.Filters)
	if err != nil {
		return model.Session{}, err
	}
	snap, err := checkSnapLength(what, in.SnapLength)
	if err != nil {
		return model.Session{}, err
	}
	expires, err := s.checkExpiresAt(what, in.ExpiresAt)
	if err != nil {
		return model.Session{}, err
	}
	src, err := getNic(tx, ref(in.SourceNicUUID))
	if err != nil {
		return model.Session{}, err
	}
	dst, err := getNic(tx, ref(in.DestinationNicUUID))
	if err != nil {
		return model.Session{}, err
	}
	if src.UUID == dst.UUID {
		return model.Session{}, refuse(CodeValidation, RuleSameNic, "%s: source and destination are the same %s", what, descNic(tx, src))
	}
	if err := checkSessionEnds(tx, what, fn, src, dst); err != nil {
		return model.Session{}, err
	}
	if err := checkDuplicate(tx, what, "", pm.UUID, src, dst, in.Type, filters); err != nil {
		return model.Session{}, err
	}
	key, ok := keys.key(dst.UUID)
	if !ok {
		return model.Session{}, keysExhausted(what, fn)
	}
	ses := model.Session{UUID: newUUID(), Name: in.Name, Type: in.Type, PortMirrorUUID: pm.UUID,
		SourceNicUUID: src.UUID, DestinationNicUUID: dst.UUID, TunnelKey: key, CreatedAt: s.now().UTC(), Filters: filters, SnapLength: snap,
		ExpiresAt: expires}
	tx.Put(ses)
	return ses, nil
}

// checkDuplicate refuses a session (other than self) of the port mirror with the same source, destination,
// direction and filter.
func checkDuplicate(tx *store.Txn, what, self, pmUUID string, src, dst model.VmNic, typ model.Direction, filters []model.FilterRule) error {
	key := model.FilterKey(filters)
	for _, o := range store.Lookup[model.Session](tx, store.IdxSource, src.UUID) {
		if o.UUID != self && o.PortMirrorUUID == pmUUID && o.DestinationNicUUID == dst.UUID && o.Type == typ &&
			model.FilterKey(o.Filters) == key {
			how := "every frame"
			if key != "" {
				how = "the same filter"
			}
			return refuse(CodeConflict, RuleDuplicateSession, "%s: %s already copies %s traffic of %s to %s, with %s",
				what, descSession(o), typ, descNic(tx, src), descNic(tx, dst), how)
		}
	}
	return nil
}

// Snap length bounds of API.md.
const (
	minSnapLength = 64
	maxSnapLength = 65535
)

// checkSnapLength checks a snap length given (nil: whole frames, 0).
func checkSnapLength(what string, n *int) (int, error) {
	if n == nil {
		return 0, nil
	}
	if *n < minSnapLength || *n > maxSnapLength {
		return 0, invalid("%s: snapLength %d is outside %d..%d", what, *n, minSnapLength, maxSnapLength)
	}
	return *n, nil
}

// checkFilters checks a filter's rules and returns them in canonical form (nil for none).
func checkFilters(what string, rules []model.FilterRule) ([]model.FilterRule, error) {
	if len(rules) == 0 {
		return nil, nil
	}
	if len(rules) > model.MaxFilterRules {
		return nil, invalid("%s: the filter has %d rules, more than %d", what, len(rules), model.MaxFilterRules)
	}
	out := make([]model.FilterRule, len(rules))
	for i, r := range rules {
		c, err := r.Canonical()
		if err != nil {
			return nil, invalid("%s: filter rule %d: %v", what, i+1, err)
		}
		out[i] = c
	}
	return out, nil
}

// UpdatePortMirrorSession changes a session in place: a nil field of in stays as it is. The session keeps its
// uuid, tunnel key and counters; its status is PENDING until the switches confirm the new definition.
func (s *Service) UpdatePortMirrorSession(ctx context.Context, uuid string, in SessionUpdate) (model.Session, error) {
	uuid = ref(uuid)
	input := map[string]any{"uuid": uuid}
	if in.Name != nil || in.NameCleared {
		input["name"] = in.Name
	}
	if in.Filters != nil {
		input["filters"] = *in.Filters
	}
	if in.SnapLengthSet {
		input["snapLength"] = in.SnapLength
	}
	if in.ExpiresAtSet {
		input["expiresAt"] = in.ExpiresAt
	}
	var out model.Session
	err := s.mutate(ctx, "updatePortMirrorSession", "PortMirror", "", input, func(tx *store.Txn, a *audit) error {
		a.relate(uuid)
		ses, err := getSession(tx, uuid)
		if err != nil {
			return err
		}
		a.resourceUUID = ses.PortMirrorUUID
		pm, err := getPM(tx, ses.PortMirrorUUID)
		if err != nil {
			return err
		}
		what := descSession(ses) + " of " + descPM(pm)
		before := ses
		changed := false
		if in.NameCleared {
			return invalid("%s: name cannot be cleared; give a new name or leave it out", what)
		}
		if in.Name != nil {
			if err := checkName(what, *in.Name); err != nil {
				return err
			}
			ses.Name = *in.Name
		}
		if in.Filters != nil {
			filters, err := checkFilters(what, *in.Filters)
			if err != nil {
				return err
			}
			if model.FilterKey(filters) != model.FilterKey(ses.Filters) {
				src, err := getNic(tx, ses.SourceNicUUID)
				if err != nil {
					return err
				}
				dst, err := getNic(tx, ses.DestinationNicUUID)
				if err != nil {
					return err
				}
				if err := checkDuplicate(tx, what, ses.UUID, pm.UUID, src, dst, ses.Type, filters); err != nil {
					return err
				}
				ses.Filters = filters
				changed = true
			}
		}
		if in.SnapLengthSet {
			snap, err := checkSnapLength(what, in.SnapLength)
			if err != nil {
				return err
			}
			if snap != ses.SnapLength {
				ses.SnapLength = snap
				changed = true
			}
		}
		// The expiry is no part of the flows: changing it needs no switch to confirm anything (no new revision).
		expiryChanged := false
		if in.ExpiresAtSet {
			expires, err := s.checkExpiresAt(what, in.ExpiresAt)
			if err != nil {
				return err
			}
			if !sameTime(expires, ses.ExpiresAt) {
				ses.ExpiresAt = expires
				expiryChanged = true
			}
		}
		if changed {
			ses.Revision++
		}
		if changed || expiryChanged || ses.Name != before.Name {
			tx.Put(ses)
			pm.UpdatedAt = s.now().UTC()
			tx.Put(pm)
		}
		a.set("before", before)
		a.set("after", ses)
		out = ses
		return nil
	})
	return out, err
}

// sessionWhere names a session and its port mirror.
func sessionWhere(r store.Reader, ss model.Session) string {
	pm, _ := store.Get[model.PortMirror](r, ss.PortMirrorUUID)
	return descSession(ss) + " of " + descPM(pm)
}

// MaxSessionsPerCall is how many sessions one createPortMirror may bring: they are written in one store
// transaction with the port mirror and the audit event. More sessions are added with addPortMirrorSession.
const MaxSessionsPerCall = 5000

// CreatePortMirror creates a port mirror on a free flow network, enabled when asked, with its sessions: all or
// nothing.
func (s *Service) CreatePortMirror(ctx context.Context, in PortMirrorInput) (model.PortMirror, error) {
	input := map[string]any{"name": in.Name, "description": in.Description, "flowNetworkUuid": in.FlowNetworkUUID,
		"enable": in.Enable, "sessions": sessionInputs(in.Sessions)}
	var out model.PortMirror
	err := s.mutate(ctx, "createPortMirror", "PortMirror", "", input, func(tx *store.Txn, a *audit) error {
		what := fmt.Sprintf("port mirror %q", in.Name)
		if err := checkName(what, in.Name); err != nil {
			return err
		}
		if err := checkDescription(what, in.Description); err != nil {
			return err
		}
		if len(in.Sessions) > MaxSessionsPerCall {
			return invalid("%s: %d sessions in one createPortMirror call; at most %d: create it with the first %d and add the others with addPortMirrorSession",
				what, len(in.Sessions), MaxSessionsPerCall, MaxSessionsPerCall)
		}
		fn, err := getFN(tx, ref(in.FlowNetworkUUID))
		if err != nil {
			return err
		}
		a.relate(fn.UUID)
		if other, ok := pmOfFN(tx, fn.UUID); ok {
			return refuse(CodeConflict, RuleFlowNetworkInUse, "%s: %s is already occupied by %s; one port mirror per flow network",
				what, descFN(fn), descPM(other))
		}
		now := s.now().UTC()
		pm := model.PortMirror{UUID: newUUID(), Name: in.Name, Description: in.Description, FlowNetworkUUID: fn.UUID,
			State: model.Disabled, CreatedAt: now, UpdatedAt: now}
		if in.Enable {
			pm.State = model.Enabled
		}
		tx.Put(pm)
		keys := newKeyAlloc(tx, fn, pm.UUID)
		var sessions []model.Session
		for _, si := range in.Sessions {
			ses, err := s.newSession(tx, pm, what, fn, keys, si)
			if err != nil {
				return err
			}
			sessions = append(sessions, ses)
			a.related = append(a.related, ses.UUID)
		}
		a.resourceUUID = pm.UUID
		a.set("portMirror", pm)
		a.set("sessions", sessions)
		out = pm
		return nil
	})
	return out, err
}

// UpdatePortMirror changes a port mirror's name and/or description (nil: unchanged; description "" clears it).
func (s *Service) UpdatePortMirror(ctx context.Context, uuid string, name, description *string) (model.PortMirror, error) {
	uuid = ref(uuid)
	var out model.PortMirror
	err := s.mutate(ctx, "updatePortMirror", "PortMirror", uuid, map[string]any{"uuid": uuid, "name": name, "description": description},
		func(tx *store.Txn, a *audit) error {
			pm, err := getPM(tx, uuid)
			if err != nil {
				return err
			}
			before := pm
			if name != nil {
				if err := checkName(descPM(pm), *name); err != nil {
					return err
				}
				pm.Name = *name
			}
			if description != nil {
				if err := checkDescription(descPM(pm), *description); err != nil {
					return err
				}
				pm.Description = *description
			}
			if pm != before {
				pm.UpdatedAt = s.now().UTC()
				tx.Put(pm)
			}
			a.set("before", map[string]string{"name": before.Name, "description": before.Description})
			a.set("after", map[string]string{"name": pm.Name, "description": pm.Description})
			out = pm
			return nil
		})
	return out, err
}

// EnablePortMirror enables a port mirror (idempotent).
func (s *Service) EnablePortMirror(ctx context.Context, uuid string) (model.PortMirror, error) {
	return s.setState(ctx, "enablePortMirror", uuid, model.Enabled)
}

// DisablePortMirror disables a port mirror (idempotent): its flows are removed, its sessions kept.
func (s *Service) DisablePortMirror(ctx context.Context, uuid string) (model.PortMirror, error) {
	return s.setState(ctx, "disablePortMirror", uuid, model.Disabled)
}

func (s *Service) setState(ctx context.Context, operation, uuid string, state model.PortMirrorState) (model.PortMirror, error) {
	uuid = ref(uuid)
	var out model.PortMirror
	err := s.mutate(ctx, operation, "PortMirror", uuid, map[string]string{"uuid": uuid}, func(tx *store.Txn, a *audit) error {
		pm, err := getPM(tx, uuid)
		if err != nil {
			return err
		}
		a.set("before", pm.State)
		a.set("after", state)
		if pm.State != state {
			pm.State = state
			pm.UpdatedAt = s.now().UTC()
			tx.Put(pm)
		}
		out = pm
		return nil
	})
	return out, err
}

// DeletePortMirror removes a port mirror and its sessions, freeing its flow network.
func (s *Service) DeletePortMirror(ctx context.Context, uuid string) error {
	uuid = ref(uuid)
	return s.mutate(ctx, "deletePortMirror", "PortMirror", uuid, map[string]string{"uuid": uuid}, func(tx *store.Txn, a *audit) error {
		pm, err := getPM(tx, uuid)
		if err != nil {
			return err
		}
		sessions := store.Lookup[model.Session](tx, store.IdxPortMirror, uuid)
		for _, ss := range sessions {
			tx.Delete(store.KindSession, ss.UUID)
			a.related = append(a.related, ss.UUID)
		}
		tx.Delete(store.KindPortMirror, uuid)
		a.relate(pm.FlowNetworkUUID)
		a.set("deleted", map[string]any{"portMirror": pm, "sessions": sessions})
		return nil
	})
}

// AddPortMirrorSession adds one session to a port mirror.
func (s *Service) AddPortMirrorSession(ctx context.Context, portMirrorUUID string, in SessionInput) (model.Session, error) {
	portMirrorUUID = ref(portMirrorUUID)
	var out model.Session
	err := s.mutate(ctx, "addPortMirrorSession", "PortMirror", portMirrorUUID,
		map[string]any{"portMirrorUuid": portMirrorUUID, "session": sessionIn(in)}, func(tx *store.Txn, a *audit) error {
			pm, err := getPM(tx, portMirrorUUID)
			if err != nil {
				return err
			}
			fn, err := getFN(tx, pm.FlowNetworkUUID)
			if err != nil {
				return err
			}
			ses, err := s.newSession(tx, pm, descPM(pm), fn, newKeyAlloc(tx, fn, pm.UUID), in)
			if err != nil {
				return err
			}
			pm.UpdatedAt = s.now().UTC()
			tx.Put(pm)
			a.relate(ses.UUID)
			a.set("session", ses)
			out = ses
			return nil
		})
	return out, err
}

// DeletePortMirrorSession removes one session.
func (s *Service) DeletePortMirrorSession(ctx context.Context, uuid string) error {
	uuid = ref(uuid)
	return s.mutate(ctx, "deletePortMirrorSession", "PortMirror", "", map[string]string{"uuid": uuid}, func(tx *store.Txn, a *audit) error {
		a.relate(uuid)
		ses, err := getSession(tx, uuid)
		if err != nil {
			return err
		}
		a.resourceUUID = ses.PortMirrorUUID
		tx.Delete(store.KindSession, uuid)
		if pm, ok := store.Get[model.PortMirror](tx, ses.PortMirrorUUID); ok {
			pm.UpdatedAt = s.now().UTC()
			tx.Put(pm)
		}
		a.set("deleted", ses)
		return nil
	})
}
