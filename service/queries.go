package service

import (
	"context"
	"fmt"
	"time"

	"portmirror/model"
	"portmirror/store"
)

// Default and largest page size of Audits.
const (
	defaultAuditPage = 100
	maxAuditPage     = 1000
)

// Clusters lists every cluster in creation order.
func (s *Service) Clusters(ctx context.Context) ([]model.Cluster, error) {
	return store.List[model.Cluster](s.st), nil
}

// Cluster returns one cluster.
func (s *Service) Cluster(ctx context.Context, uuid string) (model.Cluster, error) {
	return getCluster(s.st, ref(uuid))
}

// Hosts lists every host in creation order.
func (s *Service) Hosts(ctx context.Context) ([]model.Host, error) {
	return s.fillHosts(store.List[model.Host](s.st)), nil
}

// Host returns one host.
func (s *Service) Host(ctx context.Context, uuid string) (model.Host, error) {
	h, err := getHost(s.st, ref(uuid))
	if err != nil {
		return h, err
	}
	return s.fillHosts([]model.Host{h})[0], nil
}

// HostsInCluster lists the hosts of a cluster.
func (s *Service) HostsInCluster(ctx context.Context, clusterUUID string) ([]model.Host, error) {
	return s.fillHosts(store.Lookup[model.Host](s.st, store.IdxCluster, ref(clusterUUID))), nil
}

// fillHosts gives hosts without a registered datapath id the one the controller learned.
func (s *Service) fillHosts(hs []model.Host) []model.Host {
	live := s.getLive()
	if live == nil {
		return hs
	}
	for i := range hs {
		if hs[i].DatapathID == "" {
			hs[i].DatapathID = live.HostDatapathID(hs[i].UUID)
		}
	}
	return hs
}

// VmInstances lists every VM in creation order.
func (s *Service) VmInstances(ctx context.Context) ([]model.VmInstance, error) {
	return store.List[model.VmInstance](s.st), nil
}

// VmInstance returns one VM.
func (s *Service) VmInstance(ctx context.Context, uuid string) (model.VmInstance, error) {
	return getVM(s.st, ref(uuid))
}

// VmInstancesOnHost lists the VMs of a host.
func (s *Service) VmInstancesOnHost(ctx context.Context, hostUUID string) ([]model.VmInstance, error) {
	return store.Lookup[model.VmInstance](s.st, store.IdxHost, ref(hostUUID)), nil
}

// VmNics lists a VM's NICs in Index order.
func (s *Service) VmNics(ctx context.Context, vmUUID string) ([]model.VmNic, error) {
	return store.Lookup[model.VmNic](s.st, store.IdxVm, ref(vmUUID)), nil
}

// VmNic returns one NIC.
func (s *Service) VmNic(ctx context.Context, uuid string) (model.VmNic, error) {
	return getNic(s.st, ref(uuid))
}

// FlowNetworks lists every flow network in creation order.
func (s *Service) FlowNetworks(ctx context.Context) ([]model.FlowNetwork, error) {
	return store.List[model.FlowNetwork](s.st), nil
}

// FlowNetwork returns one flow network.
func (s *Service) FlowNetwork(ctx context.Context, uuid string) (model.FlowNetwork, error) {
	return getFN(s.st, ref(uuid))
}

// FlowNetworksOfCluster lists the flow networks attached to a cluster.
func (s *Service) FlowNetworksOfCluster(ctx context.Context, clusterUUID string) ([]model.FlowNetwork, error) {
	return flowNetworksOfCluster(s.st, ref(clusterUUID)), nil
}

// FlowEndpoints lists a flow network's endpoints.
func (s *Service) FlowEndpoints(ctx context.Context, flowNetworkUUID string) ([]model.FlowEndpoint, error) {
	return store.Lookup[model.FlowEndpoint](s.st, store.IdxFlowNetwork, ref(flowNetworkUUID)), nil
}

// FlowEndpointsOfHost lists a host's endpoints.
func (s *Service) FlowEndpointsOfHost(ctx context.Context, hostUUID string) ([]model.FlowEndpoint, error) {
	return store.Lookup[model.FlowEndpoint](s.st, store.IdxHost, ref(hostUUID)), nil
}

// PortMirrors lists every port mirror in creation order.
func (s *Service) PortMirrors(ctx context.Context) ([]model.PortMirror, error) {
	return store.List[model.PortMirror](s.st), nil
}

// PortMirror returns one port mirror.
func (s *Service) PortMirror(ctx context.Context, uuid string) (model.PortMirror, error) {
	return getPM(s.st, ref(uuid))
}

// PortMirrorOfFlowNetwork returns the port mirror occupying a flow network, nil when it is free.
func (s *Service) PortMirrorOfFlowNetwork(ctx context.Context, flowNetworkUUID string) (*model.PortMirror, error) {
	pm, ok := pmOfFN(s.st, ref(flowNetworkUUID))
	if !ok {
		return nil, nil
	}
	return &pm, nil
}

// Sessions lists a port mirror's sessions in creation order.
func (s *Service) Sessions(ctx context.Context, portMirrorUUID string) ([]model.Session, error) {
	return store.Lookup[model.Session](s.st, store.IdxPortMirror, ref(portMirrorUUID)), nil
}

// SessionPage lists at most first of a port mirror's sessions (every one when first is negative) in creation
// order, following the session whose uuid is after (from its first session when after is empty), copying only
// those. An after that is not the uuid of one of its sessions is refused VALIDATION / INVALID_ARGUMENT.
func (s *Service) SessionPage(ctx context.Context, portMirrorUUID string, first int, after string) ([]model.Session, error) {
	pm := ref(portMirrorUUID)
	page, ok := store.LookupPage[model.Session](s.st, store.IdxPortMirror, pm, ref(after), first)
	if !ok {
		name := ""
		if m, found := store.Get[model.PortMirror](s.st, pm); found {
			name = fmt.Sprintf(" (%q)", m.Name)
		}
		return nil, invalid("sessions of port mirror %s%s: after %q is not the uuid of one of its sessions (deleted, "+
			"or of another port mirror): start again without after", pm, name, after)
	}
	return page, nil
}

// SessionCount is how many sessions a port mirror has, none of them copied.
func (s *Service) SessionCount(ctx context.Context, portMirrorUUID string) int {
	return store.LookupCount[model.Session](s.st, store.IdxPortMirror, ref(portMirrorUUID))
}

// Session returns one session.
func (s *Service) Session(ctx context.Context, uuid string) (model.Session, error) {
	return getSession(s.st, ref(uuid))
}

// AllSessions lists every session in creation order.
func (s *Service) AllSessions(ctx context.Context) ([]model.Session, error) {
	return store.List[model.Session](s.st), nil
}

// Audits returns audit events newest first. With ResourceUUID, the events about it and about what it holds (the
// sessions of a port mirror are audited under it; a session's uuid finds the events that name it).
func (s *Service) Audits(ctx context.Context, q AuditQuery) ([]model.AuditEvent, error) {
	first := q.First
	if first <= 0 {
		first = defaultAuditPage
	}
	first = min(first, maxAuditPage)
	if q.After != "" && !store.ValidAuditID(q.After) {
		return nil, invalid("audits: after %q is not an audit event id", q.After)
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && q.Until.Before(q.Since) {
		return nil, invalid("audits: until %s is before since %s", q.Until.Format(time.RFC3339), q.Since.Format(time.RFC3339))
	}
	evs, err := s.st.Audits(ctx, store.AuditQuery{ResourceUUID: ref(q.ResourceUUID), Operation: q.Operation,
		Actor: q.Actor, ResourceType: q.ResourceType, Since: q.Since, Until: q.Until, First: first, After: q.After})
	if err != nil {
		return nil, &Error{Code: CodeInternal, Message: "reading the audit log failed; check the data directory and the log", Err: fmt.Errorf("audits: %w", err)}
	}
	return evs, nil
}

// SessionStatus is INACTIVE for a session of a disabled port mirror, otherwise what the controller reports.
func (s *Service) SessionStatus(ctx context.Context, ses model.Session) (model.SessionStatus, string) {
	pm, ok := store.Get[model.PortMirror](s.st, ses.PortMirrorUUID)
	if !ok {
		return model.StatusInactive, "port mirror deleted"
	}
	if pm.State != model.Enabled {
		return model.StatusInactive, ""
	}
	live := s.getLive()
	if live == nil {
		return model.StatusPending, "controller not running"
	}
	if rev, ok := live.SessionRevision(ses.UUID); ok && rev != ses.Revision {
		return model.StatusPending, "the session's new definition is not yet programmed on its switches"
	}
	return live.SessionStatus(ses.UUID)
}

// Switches lists the bridges the controller knows.
func (s *Service) Switches(ctx context.Context) []model.Switch {
	if live := s.getLive(); live != nil {
		return live.Switches()
	}
	return nil
}

// NicPort is where a NIC is attached now, nil while unbound or with no controller.
func (s *Service) NicPort(ctx context.Context, nicUUID string) *model.SwitchPort {
	if live := s.getLive(); live != nil {
		return live.NicPort(ref(nicUUID))
	}
	return nil
}

// HostConnected reports whether the host's bridge has an OpenFlow connection up.
func (s *Service) HostConnected(ctx context.Context, hostUUID string) bool {
	if live := s.getLive(); live != nil {
		return live.HostConnected(ref(hostUUID))
	}
	return false
}
