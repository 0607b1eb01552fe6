package service

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"portmirror/model"
	"portmirror/store"
)

// Membership is the controllers' cluster as the service sees it; nil for a single controller.
type Membership interface {
	// Members lists the members; self names the controller the request reached first.
	Members(ctx context.Context, self string) ([]model.ControllerNode, error)
	AddVoter(ctx context.Context, id, raftAddress string) error
	RemoveServer(ctx context.Context, id string) error
}

// SetMembership sets the cluster the controller-node operations act on.
func (s *Service) SetMembership(m Membership) {
	s.liveMu.Lock()
	defer s.liveMu.Unlock()
	s.members = m
}

func (s *Service) membership() Membership {
	s.liveMu.RLock()
	defer s.liveMu.RUnlock()
	return s.members
}

type viaKey struct{}

// WithVia returns ctx carrying the id of the controller a forwarded request reached first.
func WithVia(ctx context.Context, nodeID string) context.Context {
	return context.WithValue(ctx, viaKey{}, nodeID)
}

// ViaFrom is the id WithVia set, or "".
func ViaFrom(ctx context.Context) string {
	v, _ := ctx.Value(viaKey{}).(string)
	return v
}

// ControllerNodes lists the cluster's controllers; a single controller has none.
func (s *Service) ControllerNodes(ctx context.Context) ([]model.ControllerNode, error) {
	m := s.membership()
	if m == nil {
		return []model.ControllerNode{}, nil
	}
	return m.Members(ctx, ViaFrom(ctx))
}

var errAlone = &Error{Code: CodeValidation, Rule: RuleInvalidArgument,
	Message: "this controller runs alone (started without --node-id): start every controller with --node-id, --raft-listen and --peers to form a cluster"}

// AddControllerNode adds a controller to the cluster as a voter. Audited.
func (s *Service) AddControllerNode(ctx context.Context, id, raftAddress string) (model.ControllerNode, error) {
	input := map[string]any{"id": id, "raftAddress": raftAddress}
	err := s.memberChange(ctx, "addControllerNode", id, input, func(m Membership) error {
		if strings.TrimSpace(id) == "" || strings.TrimSpace(raftAddress) == "" {
			return &Error{Code: CodeValidation, Rule: RuleInvalidArgument, Message: "addControllerNode: id and raftAddress are required"}
		}
		return m.AddVoter(ctx, id, raftAddress)
	})
	if err != nil {
		return model.ControllerNode{}, err
	}
	nodes, _ := s.ControllerNodes(ctx)
	for _, n := range nodes {
		if n.ID == id {
			return n, nil
		}
	}
	return model.ControllerNode{ID: id, RaftAddress: raftAddress, Role: "FOLLOWER"}, nil
}

// RemoveControllerNode removes a controller from the cluster. Audited.
func (s *Service) RemoveControllerNode(ctx context.Context, id string) error {
	return s.memberChange(ctx, "removeControllerNode", id, map[string]any{"id": id}, func(m Membership) error {
		return m.RemoveServer(ctx, id)
	})
}

// memberChange runs a membership change and audits it, refused or not.
func (s *Service) memberChange(ctx context.Context, op, id string, input map[string]any, fn func(Membership) error) error {
	m := s.membership()
	var err error
	if m == nil {
		err = errAlone
	} else {
		err = fn(m)
	}
	var e *Error
	var unavailable *store.UnavailableError
	switch {
	case err == nil:
	case errors.As(err, &e):
	case errors.As(err, &unavailable):
		e = &Error{Code: CodeUnavailable, Message: fmt.Sprintf("%s refused: %s", op, unavailable.Error())}
	default:
		e = &Error{Code: CodeValidation, Rule: RuleInvalidArgument, Message: fmt.Sprintf("%s %s: %v", op, id, err)}
	}
	ev := model.AuditEvent{Time: s.now().UTC(), Actor: ActorFrom(ctx), Operation: op, ResourceType: "ControllerNode",
		ResourceUUID: id, Success: e == nil, Detail: detailJSON(map[string]any{"input": input})}
	if e != nil {
		ev.Error = e.Message
	}
	if _, aerr := s.st.AppendAudit(context.WithoutCancel(ctx), ev); aerr != nil {
		s.log.Warn("audit of a membership change not written", "operation", op, "node", id, "err", aerr)
	}
	if e != nil {
		return e
	}
	return nil
}
