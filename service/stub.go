package service

// TEMPORARY: stubs so that callers compile while the service is being written. The store/service work replaces
// this file with the real implementation and deletes it.

import (
	"context"
	"errors"

	"portmirror/model"
)

var errUnimplemented = errors.New("unimplemented")

// Service implements Operations.

func (s *Service) CreateCluster(ctx context.Context, in ClusterInput) (model.Cluster, error) {
	return model.Cluster{}, errUnimplemented
}
func (s *Service) RegisterHost(ctx context.Context, in HostInput) (model.Host, error) {
	return model.Host{}, errUnimplemented
}
func (s *Service) DeleteHost(ctx context.Context, uuid string) error { return errUnimplemented }
func (s *Service) CreateVmInstance(ctx context.Context, in VmInstanceInput) (model.VmInstance, error) {
	return model.VmInstance{}, errUnimplemented
}
func (s *Service) MigrateVmInstance(ctx context.Context, uuid, hostUUID string) (model.VmInstance, error) {
	return model.VmInstance{}, errUnimplemented
}
func (s *Service) DeleteVmInstance(ctx context.Context, uuid string) error { return errUnimplemented }
func (s *Service) SetVmNicQos(ctx context.Context, nicUUID string, qos *model.NicQoS) (model.VmNic, error) {
	return model.VmNic{}, errUnimplemented
}
func (s *Service) CreateFlowNetwork(ctx context.Context, in FlowNetworkInput) (model.FlowNetwork, error) {
	return model.FlowNetwork{}, errUnimplemented
}
func (s *Service) AttachFlowNetworkToCluster(ctx context.Context, f, c string) (model.FlowNetwork, error) {
	return model.FlowNetwork{}, errUnimplemented
}
func (s *Service) DetachFlowNetworkFromCluster(ctx context.Context, f, c string) (model.FlowNetwork, error) {
	return model.FlowNetwork{}, errUnimplemented
}
func (s *Service) SetFlowEndpoint(ctx context.Context, f, h, ip string) (model.FlowEndpoint, error) {
	return model.FlowEndpoint{}, errUnimplemented
}
func (s *Service) DeleteFlowNetwork(ctx context.Context, uuid string) error { return errUnimplemented }
func (s *Service) CreatePortMirror(ctx context.Context, in PortMirrorInput) (model.PortMirror, error) {
	return model.PortMirror{}, errUnimplemented
}
func (s *Service) UpdatePortMirror(ctx context.Context, uuid string, name, description *string) (model.PortMirror, error) {
	return model.PortMirror{}, errUnimplemented
}
func (s *Service) EnablePortMirror(ctx context.Context, uuid string) (model.PortMirror, error) {
	return model.PortMirror{}, errUnimplemented
}
func (s *Service) DisablePortMirror(ctx context.Context, uuid string) (model.PortMirror, error) {
	return model.PortMirror{}, errUnimplemented
}
func (s *Service) DeletePortMirror(ctx context.Context, uuid string) error { return errUnimplemented }
func (s *Service) AddPortMirrorSession(ctx context.Context, pm string, in SessionInput) (model.Session, error) {
	return model.Session{}, errUnimplemented
}
func (s *Service) DeletePortMirrorSession(ctx context.Context, uuid string) error {
	return errUnimplemented
}
func (s *Service) Clusters(ctx context.Context) ([]model.Cluster, error) {
	return nil, errUnimplemented
}
func (s *Service) Cluster(ctx context.Context, uuid string) (model.Cluster, error) {
	return model.Cluster{}, errUnimplemented
}
func (s *Service) Hosts(ctx context.Context) ([]model.Host, error) { return nil, errUnimplemented }
func (s *Service) Host(ctx context.Context, uuid string) (model.Host, error) {
	return model.Host{}, errUnimplemented
}
func (s *Service) HostsInCluster(ctx context.Context, c string) ([]model.Host, error) {
	return nil, errUnimplemented
}
func (s *Service) VmInstances(ctx context.Context) ([]model.VmInstance, error) {
	return nil, errUnimplemented
}
func (s *Service) VmInstance(ctx context.Context, uuid string) (model.VmInstance, error) {
	return model.VmInstance{}, errUnimplemented
}
func (s *Service) VmInstancesOnHost(ctx context.Context, h string) ([]model.VmInstance, error) {
	return nil, errUnimplemented
}
func (s *Service) VmNics(ctx context.Context, vm string) ([]model.VmNic, error) {
	return nil, errUnimplemented
}
func (s *Service) VmNic(ctx context.Context, uuid string) (model.VmNic, error) {
	return model.VmNic{}, errUnimplemented
}
func (s *Service) FlowNetworks(ctx context.Context) ([]model.FlowNetwork, error) {
	return nil, errUnimplemented
}
func (s *Service) FlowNetwork(ctx context.Context, uuid string) (model.FlowNetwork, error) {
	return model.FlowNetwork{}, errUnimplemented
}
func (s *Service) FlowNetworksOfCluster(ctx context.Context, c string) ([]model.FlowNetwork, error) {
	return nil, errUnimplemented
}
func (s *Service) FlowEndpoints(ctx context.Context, f string) ([]model.FlowEndpoint, error) {
	return nil, errUnimplemented
}
func (s *Service) FlowEndpointsOfHost(ctx context.Context, h string) ([]model.FlowEndpoint, error) {
	return nil, errUnimplemented
}
func (s *Service) PortMirrors(ctx context.Context) ([]model.PortMirror, error) {
	return nil, errUnimplemented
}
func (s *Service) PortMirror(ctx context.Context, uuid string) (model.PortMirror, error) {
	return model.PortMirror{}, errUnimplemented
}
func (s *Service) PortMirrorOfFlowNetwork(ctx context.Context, f string) (*model.PortMirror, error) {
	return nil, errUnimplemented
}
func (s *Service) Sessions(ctx context.Context, pm string) ([]model.Session, error) {
	return nil, errUnimplemented
}
func (s *Service) Session(ctx context.Context, uuid string) (model.Session, error) {
	return model.Session{}, errUnimplemented
}
func (s *Service) AllSessions(ctx context.Context) ([]model.Session, error) {
	return nil, errUnimplemented
}
func (s *Service) Audits(ctx context.Context, q AuditQuery) ([]model.AuditEvent, error) {
	return nil, errUnimplemented
}
func (s *Service) SessionStatus(ctx context.Context, x model.Session) (model.SessionStatus, string) {
	return model.StatusPending, "unimplemented"
}
func (s *Service) Switches(ctx context.Context) []model.Switch               { return nil }
func (s *Service) NicPort(ctx context.Context, nic string) *model.SwitchPort { return nil }
func (s *Service) HostConnected(ctx context.Context, h string) bool          { return false }
