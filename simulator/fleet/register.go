package fleet

import (
	"context"
	"fmt"
	"math/rand/v2"

	"portmirror/model"
	"portmirror/service"
)

// API is what the fleet calls to register itself and to manage port mirrors: a subset of service.Operations, so
// that a *service.Service (in-process) and a *Client (GraphQL over HTTP) both serve.
type API interface {
	CreateCluster(ctx context.Context, in service.ClusterInput) (model.Cluster, error)
	RegisterHost(ctx context.Context, in service.HostInput) (model.Host, error)
	CreateVmInstance(ctx context.Context, in service.VmInstanceInput) (model.VmInstance, error)
	MigrateVmInstance(ctx context.Context, uuid, hostUUID string) (model.VmInstance, error)
	CreateFlowNetwork(ctx context.Context, in service.FlowNetworkInput) (model.FlowNetwork, error)
	SetFlowEndpoint(ctx context.Context, flowNetworkUUID, hostUUID, ip string) (model.FlowEndpoint, error)
	CreatePortMirror(ctx context.Context, in service.PortMirrorInput) (model.PortMirror, error)
	EnablePortMirror(ctx context.Context, uuid string) (model.PortMirror, error)
	DisablePortMirror(ctx context.Context, uuid string) (model.PortMirror, error)
	DeletePortMirror(ctx context.Context, uuid string) error
	AddPortMirrorSession(ctx context.Context, portMirrorUUID string, in service.SessionInput) (model.Session, error)
	DeletePortMirrorSession(ctx context.Context, uuid string) error
}

var _ API = (service.Operations)(nil)

// Register creates the fleet's inventory through api: its clusters, its hosts (bridge br-int, datapath id given,
// no OVSDB), its VMs with every NIC bound by port name, and its flow networks attached to every cluster, with each
// host's endpoint IP set to the one its simulated tunnel port uses.
func (f *Fleet) Register(ctx context.Context, api API) error {
	for _, c := range f.Clusters {
		if _, err := api.CreateCluster(ctx, service.ClusterInput{UUID: c.UUID, Name: c.Name}); err != nil {
			return fmt.Errorf("fleet: createCluster %s: %w", c.Name, err)
		}
	}
	for _, h := range f.Hosts {
		if _, err := api.RegisterHost(ctx, service.HostInput{UUID: h.UUID, Name: h.Name, ClusterUUID: h.Cluster.UUID,
			Bridge: model.DefaultBridge, DatapathID: h.DatapathIDString()}); err != nil {
			return fmt.Errorf("fleet: registerHost %s: %w", h.Name, err)
		}
	}
	for _, vm := range f.VMs {
		in := service.VmInstanceInput{UUID: vm.UUID, Name: vm.Name, HostUUID: f.HostOf(vm).UUID}
		for _, n := range vm.NICs {
			in.Nics = append(in.Nics, service.VmNicInput{UUID: n.UUID, MAC: n.MAC.String(), IP: n.IP.String(),
				IsDefault: n.Default, PortName: n.PortName})
		}
		if _, err := api.CreateVmInstance(ctx, in); err != nil {
			return fmt.Errorf("fleet: createVmInstance %s: %w", vm.Name, err)
		}
	}
	var clusters []string
	for _, c := range f.Clusters {
		clusters = append(clusters, c.UUID)
	}
	for _, fn := range f.FlowNetworks {
		if _, err := api.CreateFlowNetwork(ctx, service.FlowNetworkInput{UUID: fn.UUID, Name: fn.Name, CIDR: fn.CIDR.String(),
			Encapsulation: fn.Encapsulation, ClusterUUIDs: clusters}); err != nil {
			return fmt.Errorf("fleet: createFlowNetwork %s: %w", fn.Name, err)
		}
		for _, h := range f.Hosts {
			if _, err := api.SetFlowEndpoint(ctx, fn.UUID, h.UUID, h.Endpoints[fn.Index].String()); err != nil {
				return fmt.Errorf("fleet: setFlowEndpoint %s on %s: %w", h.Name, fn.Name, err)
			}
		}
	}
	return nil
}

// Migrate moves vm to another host: its ports move between the simulated bridges (MoveVM), then the controller
// is told through migrateVmInstance.
func (f *Fleet) Migrate(ctx context.Context, api API, vm *VM, to *Host) error {
	if err := f.MoveVM(vm, to); err != nil {
		return err
	}
	if _, err := api.MigrateVmInstance(ctx, vm.UUID, to.UUID); err != nil {
		return fmt.Errorf("fleet: migrateVmInstance %s to %s: %w", vm.Name, to.Name, err)
	}
	return nil
}

// PlanSessions picks n distinct sessions deterministically from the seed: sources go round the sending NICs in a
// shuffled order, destinations round the capture NICs, directions round BIDIRECTION, EGRESS and INGRESS, so that a
// few sessions already mix local and remote copies. Every session obeys the product's rules (capture NICs are
// never sources). It returns fewer when the fleet has not enough distinct combinations.
func (f *Fleet) PlanSessions(n int) []Session {
	rng := rand.New(rand.NewPCG(f.Topology.Seed, uint64(f.ids.tag)))
	senders, monitors := f.Senders(), f.Monitors()
	if len(senders) == 0 || len(monitors) == 0 {
		return nil
	}
	rng.Shuffle(len(senders), func(i, j int) { senders[i], senders[j] = senders[j], senders[i] })
	rng.Shuffle(len(monitors), func(i, j int) { monitors[i], monitors[j] = monitors[j], monitors[i] })
	dirs := []model.Direction{model.Bidirection, model.Egress, model.Ingress}
	type key struct {
		s, d *NIC
		dir  model.Direction
	}
	seen := map[key]bool{}
	var out []Session
	for k := 0; len(out) < n && k < 3*len(senders)*len(monitors); k++ {
		s := senders[k%len(senders)]
		d := monitors[(k+k/len(senders))%len(monitors)]
		dir := dirs[(k+k/(len(senders)*len(monitors)))%len(dirs)]
		if seen[key{s, d, dir}] {
			continue
		}
		seen[key{s, d, dir}] = true
		out = append(out, Session{Name: fmt.Sprintf("s%d-%s-to-%s", len(out)+1, s.VM.Name, d.VM.Name),
			Source: s, Destination: d, Direction: dir, Enabled: true})
	}
	return out
}

// CreatePortMirror creates the port mirror of flow network fn holding sessions (enabled as asked) and returns the
// sessions with their uuids.
func (f *Fleet) CreatePortMirror(ctx context.Context, api API, fn *FlowNetwork, name string, enable bool, sessions []Session) (model.PortMirror, []Session, error) {
	pm, err := api.CreatePortMirror(ctx, service.PortMirrorInput{Name: name, FlowNetworkUUID: fn.UUID, Enable: enable})
	if err != nil {
		return pm, nil, fmt.Errorf("fleet: createPortMirror %s: %w", name, err)
	}
	out := make([]Session, 0, len(sessions))
	for _, s := range sessions {
		got, err := api.AddPortMirrorSession(ctx, pm.UUID, service.SessionInput{Name: s.Name, Type: s.Direction,
			SourceNicUUID: s.Source.UUID, DestinationNicUUID: s.Destination.UUID})
		if err != nil {
			return pm, out, fmt.Errorf("fleet: addPortMirrorSession %s: %w", s.Name, err)
		}
		s.UUID = got.UUID
		s.Enabled = enable
		out = append(out, s)
	}
	return pm, out, nil
}
