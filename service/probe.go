package service

import (
	"context"
	"fmt"

	"portmirror/model"
	"portmirror/store"
)

// Prober is the part of the live view that probes sessions end to end (the controller implements it).
type Prober interface {
	// ProbeSession injects a marked frame at the session's source port and waits for it at its destination's
	// bridge. An error means the probe could not run; an undelivered probe is a result with a reason.
	ProbeSession(ctx context.Context, sessionUUID string) (model.ProbeResult, error)
}

// ProbePortMirrorSession probes one session of an enabled port mirror, audited as probePortMirrorSession on the
// port mirror: success when the probe ran (delivered or not), a refusal when it could not (the session is
// unknown, its port mirror is disabled, no controller can probe).
func (s *Service) ProbePortMirrorSession(ctx context.Context, uuid string) (model.ProbeResult, error) {
	uuid = ref(uuid)
	input := map[string]string{"uuid": uuid}
	// check: the session exists and its port mirror is enabled; a refusal is audited by mutate.
	check := func(r store.Reader, a *audit) (model.Session, error) {
		a.relate(uuid)
		ses, err := getSession(r, uuid)
		if err != nil {
			return ses, err
		}
		a.resourceUUID = ses.PortMirrorUUID
		pm, err := getPM(r, ses.PortMirrorUUID)
		if err != nil {
			return ses, err
		}
		if pm.State != model.Enabled {
			return ses, &Error{Code: CodeConflict, Message: fmt.Sprintf("%s of %s cannot be probed: the port mirror is disabled; enable it first",
				descSession(ses), descPM(pm))}
		}
		return ses, nil
	}
	refuse := func(err error) error {
		return s.mutate(ctx, "probePortMirrorSession", "PortMirror", "", input, func(tx *store.Txn, a *audit) error {
			if _, cerr := check(tx, a); cerr != nil {
				return cerr
			}
			return err
		})
	}
	if _, err := check(s.st, &audit{detail: map[string]any{}}); err != nil {
		return model.ProbeResult{}, refuse(err)
	}
	prober, ok := s.getLive().(Prober)
	if !ok {
		return model.ProbeResult{}, refuse(&Error{Code: CodeUnavailable, Message: "no controller runs here to probe sessions"})
	}
	res, err := prober.ProbeSession(ctx, uuid)
	if err != nil {
		return model.ProbeResult{}, refuse(&Error{Code: CodeUnavailable, Message: fmt.Sprintf("probe of session %s could not run: %v", uuid, err)})
	}
	err = s.mutate(ctx, "probePortMirrorSession", "PortMirror", "", input, func(tx *store.Txn, a *audit) error {
		if _, err := check(tx, a); err != nil {
			return err
		}
		a.set("result", res)
		return nil
	})
	return res, err
}
