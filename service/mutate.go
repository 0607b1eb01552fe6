package service

import (
	"context"
	"errors"
	"fmt"

	"portmirror/model"
	"portmirror/store"
)

// audit is the audit event a mutation builds while it runs.
type audit struct {
	operation    string
	resourceType string
	resourceUUID string
	related      []string
	detail       map[string]any
}

func (a *audit) set(k string, v any) { a.detail[k] = v }

func (a *audit) relate(uuids ...string) {
	for _, u := range uuids {
		if u != "" && u != a.resourceUUID {
			a.related = append(a.related, u)
		}
	}
}

// mutate runs one mutation: fn checks the rules and writes through tx. On success the audit event is committed
// in the same transaction; on refusal (or failure) nothing fn wrote is kept and one event with success=false is
// written on its own. The returned error is always an *Error, except errNothingToDo: fn found nothing to do in an
// operation the service starts by itself (expiry), and nothing is written or audited.
func (s *Service) mutate(ctx context.Context, operation, resourceType, resourceUUID string, input any,
	fn func(tx *store.Txn, a *audit) error) error {
	a := &audit{operation: operation, resourceType: resourceType, resourceUUID: resourceUUID,
		detail: map[string]any{"input": input}}
	var refusal error
	err := s.st.Update(ctx, func(tx *store.Txn) error {
		// an attempt the store refused as stale starts again from the input
		a.related, a.detail, refusal = nil, map[string]any{"input": input}, nil
		if err := fn(tx, a); err != nil {
			refusal = err
			return err
		}
		tx.Audit(s.event(ctx, a, nil))
		return nil
	})
	if err == nil {
		return nil
	}
	if refusal != nil && errors.Is(refusal, errNothingToDo) {
		return errNothingToDo // nothing was asked of the service by a person: no event
	}
	var e *Error
	var tooLarge *store.TooLargeError
	var unavailable *store.UnavailableError
	switch {
	case refusal == nil && errors.As(err, &unavailable):
		e = &Error{Code: CodeUnavailable, Message: fmt.Sprintf("%s refused: %s", operation, unavailable.Error())}
		s.log.Warn("mutation not committed", "operation", operation, "resourceUuid", a.resourceUUID, "unknown_outcome", unavailable.Unknown, "reason", unavailable.Reason)
		// the refusal's audit event could not be committed either
		return e
	case refusal == nil && errors.As(err, &tooLarge):
		e = &Error{Code: CodeValidation, Rule: RuleInvalidArgument, Message: tooLargeMessage(operation, a, tooLarge)}
	case refusal == nil || !errors.As(refusal, &e):
		// The store failed (or fn had a fault): report it as INTERNAL.
		e = &Error{Code: CodeInternal, Message: fmt.Sprintf("%s failed to write the store; check the data directory and the log", operation), Err: err}
		s.log.Error("mutation failed", "operation", operation, "resourceUuid", a.resourceUUID, "err", err)
	}
	a.detail["refused"] = e.Message
	if len(a.related) > maxDetailList {
		// what a refused change would have created or touched: enough to find the event, bounded so that it fits
		a.related = a.related[:maxDetailList]
	}
	if _, aerr := s.st.AppendAudit(context.WithoutCancel(ctx), s.event(ctx, a, e)); aerr != nil {
		s.log.Error("audit of refused mutation not written", "operation", operation, "err", aerr)
	}
	return e
}

// tooLargeMessage explains a change refused because it does not fit in one store transaction.
func tooLargeMessage(operation string, a *audit, e *store.TooLargeError) string {
	what := a.resourceType
	if a.resourceUUID != "" {
		what += " " + a.resourceUUID
	}
	if e.Value > 0 {
		return fmt.Sprintf("%s on %s: one record of the change is %d bytes, more than the store keeps in one value (%d bytes); nothing was changed: make the change in smaller steps",
			operation, what, e.Value, e.MaxValue)
	}
	return fmt.Sprintf("%s on %s: the change writes %d records, more than the store commits atomically (about %d KiB at once, see docs/api.md \"Limits\"); nothing was changed: make the change in smaller steps",
		operation, what, e.Writes, e.MaxBytes>>10)
}

func (s *Service) event(ctx context.Context, a *audit, refusal *Error) model.AuditEvent {
	ev := model.AuditEvent{
		Time:         s.now().UTC(),
		Actor:        ActorFrom(ctx),
		Operation:    a.operation,
		ResourceType: a.resourceType,
		ResourceUUID: a.resourceUUID,
		Success:      refusal == nil,
		Detail:       detailJSON(a.detail),
		Related:      a.related,
	}
	if refusal != nil {
		ev.Error = refusal.Message
	}
	return ev
}

// Typed reads that turn a missing object into NOT_FOUND, naming it as noun.

func getAs[T store.Object](r store.Reader, noun, uuid string) (T, error) {
	v, ok := store.Get[T](r, uuid)
	if !ok {
		return v, notFound(noun, uuid)
	}
	return v, nil
}

func getCluster(r store.Reader, uuid string) (model.Cluster, error) {
	return getAs[model.Cluster](r, "cluster", uuid)
}

func getHost(r store.Reader, uuid string) (model.Host, error) {
	return getAs[model.Host](r, "host", uuid)
}

func getVM(r store.Reader, uuid string) (model.VmInstance, error) {
	return getAs[model.VmInstance](r, "VM instance", uuid)
}

func getNic(r store.Reader, uuid string) (model.VmNic, error) {
	return getAs[model.VmNic](r, "VM NIC", uuid)
}

func getFN(r store.Reader, uuid string) (model.FlowNetwork, error) {
	return getAs[model.FlowNetwork](r, "flow network", uuid)
}

func getPM(r store.Reader, uuid string) (model.PortMirror, error) {
	return getAs[model.PortMirror](r, "port mirror", uuid)
}

func getSession(r store.Reader, uuid string) (model.Session, error) {
	return getAs[model.Session](r, "port mirror session", uuid)
}

// descNic names a NIC by its MAC, uuid and VM.
func descNic(r store.Reader, n model.VmNic) string {
	vm, _ := store.Get[model.VmInstance](r, n.VmUUID)
	return fmt.Sprintf("NIC %s (%s) of VM %q", n.MAC, n.UUID, vm.Name)
}

// sessionsOfNic lists the sessions (of any port mirror) whose source or destination is the NIC.
func sessionsOfNic(r store.Reader, nicUUID string) []model.Session {
	out := store.Lookup[model.Session](r, store.IdxSource, nicUUID)
	for _, s := range store.Lookup[model.Session](r, store.IdxDestination, nicUUID) {
		if s.SourceNicUUID != nicUUID {
			out = append(out, s)
		}
	}
	return out
}

// nicHost returns the host a NIC's VM runs on.
func nicHost(r store.Reader, n model.VmNic) (model.Host, model.VmInstance, error) {
	vm, err := getVM(r, n.VmUUID)
	if err != nil {
		return model.Host{}, vm, err
	}
	h, err := getHost(r, vm.HostUUID)
	return h, vm, err
}

// pmOfFN returns the port mirror occupying a flow network.
func pmOfFN(r store.Reader, fnUUID string) (model.PortMirror, bool) {
	pms := store.Lookup[model.PortMirror](r, store.IdxFlowNetwork, fnUUID)
	if len(pms) == 0 {
		return model.PortMirror{}, false
	}
	return pms[0], true
}
