package e2e

import (
	"testing"
)

// Inventory is what RegisterInventory pushed to the API, with the uuids it got.
// VM and NIC uuids are the harness's own (VM.UUID, NIC.UUID), given to the API.
type Inventory struct {
	ClusterUUID     string
	HostUUIDs       map[string]string // hypervisor name ("hv1") -> host uuid
	FlowNetworkUUID string
	opts            InventoryOptions
}

// InventoryOptions tunes RegisterInventory.
type InventoryOptions struct {
	Encapsulation string // "GRE" (default) or "VXLAN"
	// NoOVSDB registers the hosts without ovsdbAddress (the controller then leaves
	// the bridges' OVSDB alone: set their controller with Hypervisor.SetController).
	NoOVSDB bool
	// DatapathIDs gives each host's br-int datapath id at registration.
	DatapathIDs bool
	// PortNames gives each NIC's portName (its br-int port name) at registration,
	// besides the iface-id binding the harness always sets in OVSDB.
	PortNames bool
}

// HostUUID returns the host uuid of a hypervisor.
func (inv *Inventory) HostUUID(h *Hypervisor) string { return inv.HostUUIDs[h.Name] }

// RegisterInventory pushes the topology to the API the way the cloud's tooling
// would: one cluster, both hypervisors as hosts (ovsdbAddress unix:<db.sock>,
// bridge br-int), every VM added so far with its NICs, and a flow network on
// 198.18.100.0/24 attached to the cluster with each host's endpoint set to its
// EndpointIP.
func RegisterInventory(t testing.TB, c *GraphQLClient, tp *Topology, opts InventoryOptions) *Inventory {
	t.Helper()
	if opts.Encapsulation == "" {
		opts.Encapsulation = "GRE"
	}
	inv := &Inventory{HostUUIDs: map[string]string{}, opts: opts}
	var cl struct{ CreateCluster struct{ UUID string } }
	c.Must(t, `mutation($in: ClusterInput!) { createCluster(input: $in) { uuid } }`,
		map[string]any{"in": map[string]any{"name": "e2e-" + tp.Suffix}}, &cl)
	inv.ClusterUUID = cl.CreateCluster.UUID
	for _, h := range tp.Hypervisors() {
		in := map[string]any{"name": h.Name + "-" + tp.Suffix, "clusterUuid": inv.ClusterUUID,
			"managementIp": h.ControlIP, "bridge": h.Bridge}
		if !opts.NoOVSDB {
			in["ovsdbAddress"] = h.OVSDBAddress
		}
		if opts.DatapathIDs {
			in["datapathId"] = h.DatapathID(t, h.Bridge)
		}
		var hr struct{ RegisterHost struct{ UUID string } }
		c.Must(t, `mutation($in: HostInput!) { registerHost(input: $in) { uuid } }`, map[string]any{"in": in}, &hr)
		inv.HostUUIDs[h.Name] = hr.RegisterHost.UUID
	}
	tp.mu.Lock()
	vms := append([]*VM(nil), tp.vms...)
	tp.mu.Unlock()
	for _, vm := range vms {
		inv.RegisterVM(t, c, vm)
	}
	var fn struct{ CreateFlowNetwork struct{ UUID string } }
	c.Must(t, `mutation($in: FlowNetworkInput!) { createFlowNetwork(input: $in) { uuid } }`,
		map[string]any{"in": map[string]any{"name": "flow-" + tp.Suffix, "cidr": flowNetCIDR,
			"encapsulation": opts.Encapsulation, "clusterUuids": []string{inv.ClusterUUID}}}, &fn)
	inv.FlowNetworkUUID = fn.CreateFlowNetwork.UUID
	for _, h := range tp.Hypervisors() {
		c.Must(t, `mutation($f: ID!, $h: ID!, $ip: String!) { setFlowEndpoint(flowNetworkUuid: $f, hostUuid: $h, ip: $ip) { ip } }`,
			map[string]any{"f": inv.FlowNetworkUUID, "h": inv.HostUUID(h), "ip": h.EndpointIP}, nil)
	}
	return inv
}

// RegisterVM pushes one VM (uuid, name, host, NICs with uuid, MAC, IP, default flag)
// to the API.
func (inv *Inventory) RegisterVM(t testing.TB, c *GraphQLClient, vm *VM) {
	t.Helper()
	var nics []map[string]any
	for _, n := range vm.NICs {
		nic := map[string]any{"uuid": n.UUID, "mac": n.MAC, "isDefault": n.IsDefault}
		if n.IP != "" {
			nic["ip"] = n.IP
		}
		if inv.opts.PortNames {
			nic["portName"] = n.HostPort
		}
		nics = append(nics, nic)
	}
	c.Must(t, `mutation($in: VmInstanceInput!) { createVmInstance(input: $in) { uuid } }`,
		map[string]any{"in": map[string]any{"uuid": vm.UUID, "name": vm.Name, "hostUuid": inv.HostUUID(vm.Hypervisor()), "nics": nics}}, nil)
}

// MigrateVM moves the VM to another hypervisor (VM.Migrate) and then tells the API
// (migrateVmInstance), in the order a cloud does it.
func (inv *Inventory) MigrateVM(t testing.TB, c *GraphQLClient, vm *VM, to *Hypervisor) {
	t.Helper()
	vm.Migrate(t, to)
	c.Must(t, `mutation($vm: ID!, $h: ID!) { migrateVmInstance(uuid: $vm, hostUuid: $h) { uuid } }`,
		map[string]any{"vm": vm.UUID, "h": inv.HostUUID(to)}, nil)
}
