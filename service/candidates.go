package service

import (
	"context"
	"fmt"

	"portmirror/model"
	"portmirror/store"
)

// NicRole is the end of a session a NIC would be.
type NicRole string

const (
	RoleSource      NicRole = "SOURCE"
	RoleDestination NicRole = "DESTINATION"
)

// Valid reports whether r is a known role.
func (r NicRole) Valid() bool { return r == RoleSource || r == RoleDestination }

func (r NicRole) word() string {
	if r == RoleSource {
		return "source"
	}
	return "destination"
}

// endRule is one rule a session's source or destination NIC must keep on its own, whatever the other end is.
// newSession and CandidateNics run the same list, so that a picker offers exactly what a session accepts.
type endRule func(r store.Reader, what string, role NicRole, nic model.VmNic, fn model.FlowNetwork) error

// endRules are the end rules in the order newSession checks them (each for the source, then the destination).
func endRules() [4]endRule {
	return [...]endRule{ruleNotDefault, ruleNoQoS, ruleClusterAttached, ruleNoLoop}
}

func ruleNotDefault(r store.Reader, what string, role NicRole, nic model.VmNic, _ model.FlowNetwork) error {
	if role == RoleDestination && nic.IsDefault {
		return refuse(CodeValidation, RuleDestinationIsDefault, "%s: destination %s is its VM's default NIC; use a dedicated capture NIC", what, descNic(r, nic))
	}
	return nil
}

func ruleNoQoS(r store.Reader, what string, role NicRole, nic model.VmNic, _ model.FlowNetwork) error {
	if nic.QoS.IsSet() {
		return refuse(CodeValidation, RuleNicHasQoS, "%s: %s %s has QoS set; clear it first", what, role.word(), descNic(r, nic))
	}
	return nil
}

func ruleClusterAttached(r store.Reader, what string, role NicRole, nic model.VmNic, fn model.FlowNetwork) error {
	h, _, err := nicHost(r, nic)
	if err != nil {
		return err
	}
	if !fn.AttachedTo(h.ClusterUUID) {
		c, _ := store.Get[model.Cluster](r, h.ClusterUUID)
		return refuse(CodeValidation, RuleClusterNotAttached, "%s: %s %s is on %s of %s, which is not attached to %s",
			what, role.word(), descNic(r, nic), descHost(h), descCluster(c), descFN(fn))
	}
	return nil
}

func ruleNoLoop(r store.Reader, what string, role NicRole, nic model.VmNic, _ model.FlowNetwork) error {
	if role == RoleDestination {
		if ss := store.Lookup[model.Session](r, store.IdxSource, nic.UUID); len(ss) > 0 {
			return refuse(CodeValidation, RuleMirrorLoop, "%s: destination %s is the source of %s; a NIC cannot be both",
				what, descNic(r, nic), sessionWhere(r, ss[0]))
		}
		return nil
	}
	if ss := store.Lookup[model.Session](r, store.IdxDestination, nic.UUID); len(ss) > 0 {
		return refuse(CodeValidation, RuleMirrorLoop, "%s: source %s is the destination of %s; a NIC cannot be both",
			what, descNic(r, nic), sessionWhere(r, ss[0]))
	}
	return nil
}

// checkSessionEnds runs every end rule on a session's source and destination.
func checkSessionEnds(r store.Reader, what string, fn model.FlowNetwork, src, dst model.VmNic) error {
	for _, rule := range endRules() {
		if err := rule(r, what, RoleSource, src, fn); err != nil {
			return err
		}
		if err := rule(r, what, RoleDestination, dst, fn); err != nil {
			return err
		}
	}
	return nil
}

// checkSessionEnd runs every end rule on one NIC in one role.
func checkSessionEnd(r store.Reader, what string, role NicRole, nic model.VmNic, fn model.FlowNetwork) error {
	for _, rule := range endRules() {
		if err := rule(r, what, role, nic, fn); err != nil {
			return err
		}
	}
	return nil
}

// CandidateQuery selects the NICs CandidateNics judges.
type CandidateQuery struct {
	FlowNetworkUUID string  // required: the flow network of the port mirror (or of the one being created)
	Role            NicRole // required
	PortMirrorUUID  string  // optional: the port mirror the session would join; it must be on the flow network
	VmInstanceUUID  string  // optional: only this VM's NICs
}

// CandidateNic is one NIC and whether a session may use it in the role asked.
type CandidateNic struct {
	Nic      model.VmNic
	Eligible bool
	Rule     Rule   // when not eligible: the rule that refuses it
	Reason   string // and the message addSessionPortMirror would give
}

// CandidateNics lists every VM NIC (of one VM when VmInstanceUUID is set) with whether a session of the port
// mirror (or of a new one on the flow network) may have it as its source or destination. The rules are those
// that newSession checks on each end; the rules that need both ends (SAME_NIC, DUPLICATE_SESSION) are left to
// the mutation.
func (s *Service) CandidateNics(ctx context.Context, q CandidateQuery) ([]CandidateNic, error) {
	if !q.Role.Valid() {
		return nil, invalid("candidateNics: role %q is not SOURCE or DESTINATION", q.Role)
	}
	fn, err := getFN(s.st, ref(q.FlowNetworkUUID))
	if err != nil {
		return nil, err
	}
	what := fmt.Sprintf("a session of a new port mirror on %s", descFN(fn))
	if q.PortMirrorUUID != "" {
		pm, err := getPM(s.st, ref(q.PortMirrorUUID))
		if err != nil {
			return nil, err
		}
		if pm.FlowNetworkUUID != fn.UUID {
			return nil, invalid("candidateNics: %s is on another flow network than %s", descPM(pm), descFN(fn))
		}
		what = "a session of " + descPM(pm)
	}
	var nics []model.VmNic
	if q.VmInstanceUUID != "" {
		vm, err := getVM(s.st, ref(q.VmInstanceUUID))
		if err != nil {
			return nil, err
		}
		nics = store.Lookup[model.VmNic](s.st, store.IdxVm, vm.UUID)
	} else {
		nics = store.List[model.VmNic](s.st)
	}
	out := make([]CandidateNic, 0, len(nics))
	for i, n := range nics {
		if i%1024 == 1023 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		c := CandidateNic{Nic: n, Eligible: true}
		if err := checkSessionEnd(s.st, what, q.Role, n, fn); err != nil {
			e := AsError(err)
			c.Eligible, c.Rule, c.Reason = false, e.Rule, e.Message
		}
		out = append(out, c)
	}
	return out, nil
}
