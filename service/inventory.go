package service

import (
	"context"
	"fmt"

	"portmirror/model"
	"portmirror/store"
)

// CreateCluster creates a cluster.
func (s *Service) CreateCluster(ctx context.Context, in ClusterInput) (model.Cluster, error) {
	var out model.Cluster
	err := s.mutate(ctx, "createCluster", "Cluster", createRef(in.UUID), in, func(tx *store.Txn, a *audit) error {
		what := fmt.Sprintf("cluster %q", in.Name)
		if err := checkName(what, in.Name); err != nil {
			return err
		}
		uuid, err := newOrGivenUUID(what, in.UUID)
		if err != nil {
			return err
		}
		if c, ok := store.Get[model.Cluster](tx, uuid); ok {
			return refuse(CodeConflict, RuleAlreadyExists, "%s: uuid %s is already %s", what, uuid, descCluster(c))
		}
		out = model.Cluster{UUID: uuid, Name: in.Name, CreatedAt: s.now().UTC()}
		tx.Put(out)
		a.resourceUUID = uuid
		a.set("cluster", out)
		return nil
	})
	return out, err
}

// RegisterHost registers a hypervisor in a cluster and gives it an endpoint on every flow network attached to
// the cluster.
func (s *Service) RegisterHost(ctx context.Context, in HostInput) (model.Host, error) {
	var out model.Host
	err := s.mutate(ctx, "registerHost", "Host", createRef(in.UUID), in, func(tx *store.Txn, a *audit) error {
		what := fmt.Sprintf("host %q", in.Name)
		h, err := s.hostFromInput(what, in)
		if err != nil {
			return err
		}
		uuid := h.UUID
		if old, ok := store.Get[model.Host](tx, uuid); ok {
			return refuse(CodeConflict, RuleAlreadyExists, "%s: uuid %s is already %s", what, uuid, descHost(old))
		}
		if h.DatapathID != "" {
			if others := store.Lookup[model.Host](tx, store.IdxDatapath, h.DatapathID); len(others) > 0 {
				return refuse(CodeConflict, RuleAlreadyExists, "%s: datapath id %s is already registered to %s", what, h.DatapathID, descHost(others[0]))
			}
		}
		if h.ClusterUUID == "" {
			return invalid("%s: clusterUuid is empty", what)
		}
		if _, err := getCluster(tx, h.ClusterUUID); err != nil {
			return err
		}
		tx.Put(h)
		a.resourceUUID = uuid
		a.relate(h.ClusterUUID)
		var eps []string
		for _, fn := range flowNetworksOfCluster(tx, h.ClusterUUID) {
			al, err := newEndpointAlloc(tx, fn)
			if err != nil {
				return err
			}
			if err := al.ensure(tx, h); err != nil {
				return err
			}
			ep, _ := store.Get[model.FlowEndpoint](tx, store.EndpointID(fn.UUID, h.UUID))
			eps = append(eps, fn.UUID+"="+ep.IP)
		}
		a.set("host", h)
		if len(eps) > 0 {
			a.set("endpoints", eps)
		}
		out = h
		return nil
	})
	return out, err
}

// hostFromInput checks a HostInput's fields (not the store) and returns the host it describes; a new uuid when
// none is given.
func (s *Service) hostFromInput(what string, in HostInput) (model.Host, error) {
	if err := checkName(what, in.Name); err != nil {
		return model.Host{}, err
	}
	uuid, err := newOrGivenUUID(what, in.UUID)
	if err != nil {
		return model.Host{}, err
	}
	h := model.Host{UUID: uuid, Name: in.Name, ClusterUUID: ref(in.ClusterUUID), Bridge: in.Bridge, CreatedAt: s.now().UTC()}
	if in.ManagementIP != "" {
		if h.ManagementIP, err = normIP(what, "managementIp", in.ManagementIP); err != nil {
			return model.Host{}, err
		}
	}
	if in.OVSDBAddress != "" {
		if err := checkOVSDBAddress(what, in.OVSDBAddress); err != nil {
			return model.Host{}, err
		}
		h.OVSDBAddress = in.OVSDBAddress
	}
	if h.Bridge == "" {
		h.Bridge = model.DefaultBridge
	}
	if err := checkIfaceName(what, "bridge", h.Bridge, maxBridgeLen); err != nil {
		return model.Host{}, err
	}
	if in.DatapathID != "" {
		dp, ok := model.NormalizeDatapathID(in.DatapathID)
		if !ok {
			return model.Host{}, invalid("%s: datapathId %q is not a datapath id (up to 16 hex digits)", what, in.DatapathID)
		}
		h.DatapathID = dp
	}
	return h, nil
}

func flowNetworksOfCluster(r store.Reader, clusterUUID string) []model.FlowNetwork {
	var out []model.FlowNetwork
	for _, fn := range store.List[model.FlowNetwork](r) {
		if fn.AttachedTo(clusterUUID) {
			out = append(out, fn)
		}
	}
	return out
}

// nicInUse returns an IN_USE refusal when a session uses the NIC.
func nicInUse(r store.Reader, subject string, n model.VmNic) error {
	ss := sessionsOfNic(r, n.UUID)
	if len(ss) == 0 {
		return nil
	}
	return refuse(CodeConflict, RuleInUse, "%s: its %s is used by %s; delete the session first",
		subject, descNic(r, n), sessionWhere(r, ss[0]))
}

// DeleteHost removes a host with its VMs, NICs and flow endpoints; refused while a session uses one of its NICs.
func (s *Service) DeleteHost(ctx context.Context, uuid string) error {
	uuid = ref(uuid)
	return s.mutate(ctx, "deleteHost", "Host", uuid, map[string]string{"uuid": uuid}, func(tx *store.Txn, a *audit) error {
		h, err := getHost(tx, uuid)
		if err != nil {
			return err
		}
		vms := store.Lookup[model.VmInstance](tx, store.IdxHost, uuid)
		var vmIDs, nicIDs []string
		for _, vm := range vms {
			for _, n := range store.Lookup[model.VmNic](tx, store.IdxVm, vm.UUID) {
				if err := nicInUse(tx, "deleting "+descHost(h), n); err != nil {
					return err
				}
				tx.Delete(store.KindVmNic, n.UUID)
				nicIDs = append(nicIDs, n.UUID)
			}
			tx.Delete(store.KindVmInstance, vm.UUID)
			vmIDs = append(vmIDs, vm.UUID)
		}
		var eps []string
		for _, ep := range store.Lookup[model.FlowEndpoint](tx, store.IdxHost, uuid) {
			tx.Delete(store.KindFlowEndpoint, store.EndpointID(ep.FlowNetworkUUID, ep.HostUUID))
			eps = append(eps, ep.FlowNetworkUUID+"="+ep.IP)
		}
		tx.Delete(store.KindHost, uuid)
		a.set("deleted", map[string]any{"host": h, "vmInstances": vmIDs, "nics": nicIDs, "endpoints": eps})
		return nil
	})
}

// CreateVmInstance creates a VM with its NICs on a host.
func (s *Service) CreateVmInstance(ctx context.Context, in VmInstanceInput) (model.VmInstance, error) {
	var out model.VmInstance
	err := s.mutate(ctx, "createVmInstance", "VmInstance", createRef(in.UUID), in, func(tx *store.Txn, a *audit) error {
		what := fmt.Sprintf("VM %q", in.Name)
		if err := checkName(what, in.Name); err != nil {
			return err
		}
		uuid, err := newOrGivenUUID(what, in.UUID)
		if err != nil {
			return err
		}
		if old, ok := store.Get[model.VmInstance](tx, uuid); ok {
			return refuse(CodeConflict, RuleAlreadyExists, "%s: uuid %s is already %s", what, uuid, descVM(old))
		}
		vm := model.VmInstance{UUID: uuid, Name: in.Name, HostUUID: ref(in.HostUUID), CreatedAt: s.now().UTC()}
		nics := make([]model.VmNic, 0, len(in.Nics))
		defaults := 0
		seenUUID := map[string]bool{}
		seenMAC := map[string]bool{}
		for i, ni := range in.Nics {
			n, err := nicFromInput(tx, what, uuid, i, ni)
			if err != nil {
				return err
			}
			nwhat := fmt.Sprintf("%s NIC %s", what, n.MAC)
			if seenMAC[n.MAC] {
				return invalid("%s: MAC %s is given twice", what, n.MAC)
			}
			seenMAC[n.MAC] = true
			if ni.IsDefault {
				if defaults++; defaults > 1 {
					return invalid("%s: more than one NIC is the default NIC", what)
				}
			}
			if seenUUID[n.UUID] {
				return invalid("%s: NIC uuid %s is given twice", what, n.UUID)
			}
			seenUUID[n.UUID] = true
			if old, ok := store.Get[model.VmNic](tx, n.UUID); ok {
				return refuse(CodeConflict, RuleAlreadyExists, "%s: uuid %s is already %s", nwhat, n.UUID, descNic(tx, old))
			}
			nics = append(nics, n)
		}
		if vm.HostUUID == "" {
			return invalid("%s: hostUuid is empty", what)
		}
		if _, err := getHost(tx, vm.HostUUID); err != nil {
			return err
		}
		tx.Put(vm)
		for _, n := range nics {
			tx.Put(n)
		}
		a.resourceUUID = uuid
		a.relate(vm.HostUUID)
		a.set("vmInstance", vm)
		a.set("nics", nics)
		out = vm
		return nil
	})
	return out, err
}

// nicFromInput checks one NIC of a VM's input (its fields, and that l3NetworkUuid is not a flow network) and
// returns the NIC it describes; a new uuid when none is given.
func nicFromInput(tx *store.Txn, what, vmUUID string, i int, ni VmNicInput) (model.VmNic, error) {
	var err error
	nwhat := fmt.Sprintf("%s NIC %d", what, i)
	n := model.VmNic{VmUUID: vmUUID, Index: i, IsDefault: ni.IsDefault, PortName: ni.PortName, QoS: ni.QoS}
	if n.UUID, err = newOrGivenUUID(nwhat, ni.UUID); err != nil {
		return model.VmNic{}, err
	}
	if n.MAC, err = normMAC(nwhat, ni.MAC); err != nil {
		return model.VmNic{}, err
	}
	nwhat = fmt.Sprintf("%s NIC %s", what, n.MAC)
	if ni.IP != "" {
		if n.IP, err = normIP(nwhat, "ip", ni.IP); err != nil {
			return model.VmNic{}, err
		}
	}
	if ni.PortName != "" {
		if err := checkIfaceName(nwhat, "portName", ni.PortName, maxPortNameLen); err != nil {
			return model.VmNic{}, err
		}
	}
	if err := checkQoS(nwhat, ni.QoS); err != nil {
		return model.VmNic{}, err
	}
	if !n.QoS.IsSet() {
		n.QoS = nil
	}
	if ni.L3NetworkUUID != "" {
		n.L3NetworkUUID = ref(ni.L3NetworkUUID)
		if fn, ok := store.Get[model.FlowNetwork](tx, n.L3NetworkUUID); ok {
			return model.VmNic{}, refuse(CodeValidation, RuleFlowNetworkDedicated, "%s: l3NetworkUuid names %s, which is dedicated to mirroring", nwhat, descFN(fn))
		}
	}
	return n, nil
}

// MigrateVmInstance moves a VM to another host; refused when a session of one of its NICs needs a cluster the
// session's flow network is not attached to.
func (s *Service) MigrateVmInstance(ctx context.Context, uuid, hostUUID string) (model.VmInstance, error) {
	uuid, hostUUID = ref(uuid), ref(hostUUID)
	var out model.VmInstance
	err := s.mutate(ctx, "migrateVmInstance", "VmInstance", uuid, map[string]string{"uuid": uuid, "hostUuid": hostUUID},
		func(tx *store.Txn, a *audit) error {
			vm, err := getVM(tx, uuid)
			if err != nil {
				return err
			}
			h, err := getHost(tx, hostUUID)
			if err != nil {
				return err
			}
			a.relate(vm.HostUUID, h.UUID)
			if err := checkMigration(tx, vm, h); err != nil {
				return err
			}
			a.set("from", vm.HostUUID)
			a.set("to", h.UUID)
			vm.HostUUID = h.UUID
			tx.Put(vm)
			out = vm
			return nil
		})
	return out, err
}

// checkMigration refuses moving a VM to a host whose cluster the flow network of a session of one of its NICs is
// not attached to.
func checkMigration(tx *store.Txn, vm model.VmInstance, h model.Host) error {
	for _, n := range store.Lookup[model.VmNic](tx, store.IdxVm, vm.UUID) {
		for _, ss := range sessionsOfNic(tx, n.UUID) {
			pm, err := getPM(tx, ss.PortMirrorUUID)
			if err != nil {
				return err
			}
			fn, err := getFN(tx, pm.FlowNetworkUUID)
			if err != nil {
				return err
			}
			if !fn.AttachedTo(h.ClusterUUID) {
				c, _ := store.Get[model.Cluster](tx, h.ClusterUUID)
				return refuse(CodeValidation, RuleClusterNotAttached,
					"migrating %s to %s: its %s is in %s of %s, whose %s is not attached to %s",
					descVM(vm), descHost(h), descNic(tx, n), descSession(ss), descPM(pm), descFN(fn), descCluster(c))
			}
		}
	}
	return nil
}

// DeleteVmInstance removes a VM and its NICs; refused while a session uses one of its NICs.
func (s *Service) DeleteVmInstance(ctx context.Context, uuid string) error {
	uuid = ref(uuid)
	return s.mutate(ctx, "deleteVmInstance", "VmInstance", uuid, map[string]string{"uuid": uuid}, func(tx *store.Txn, a *audit) error {
		vm, err := getVM(tx, uuid)
		if err != nil {
			return err
		}
		var nicIDs []string
		for _, n := range store.Lookup[model.VmNic](tx, store.IdxVm, uuid) {
			if err := nicInUse(tx, "deleting "+descVM(vm), n); err != nil {
				return err
			}
			tx.Delete(store.KindVmNic, n.UUID)
			nicIDs = append(nicIDs, n.UUID)
		}
		tx.Delete(store.KindVmInstance, uuid)
		a.relate(vm.HostUUID)
		a.set("deleted", map[string]any{"vmInstance": vm, "nics": nicIDs})
		return nil
	})
}

// SetVmNicQos sets or (with nil or no limits) clears a NIC's QoS; setting it is refused while a session uses the NIC.
func (s *Service) SetVmNicQos(ctx context.Context, nicUUID string, qos *model.NicQoS) (model.VmNic, error) {
	nicUUID = ref(nicUUID)
	var out model.VmNic
	err := s.mutate(ctx, "setVmNicQos", "VmNic", nicUUID, map[string]any{"nicUuid": nicUUID, "qos": qos},
		func(tx *store.Txn, a *audit) error {
			n, err := getNic(tx, nicUUID)
			if err != nil {
				return err
			}
			what := descNic(tx, n)
			if err := checkQoS(what, qos); err != nil {
				return err
			}
			if qos.IsSet() {
				if ss := sessionsOfNic(tx, n.UUID); len(ss) > 0 {
					return refuse(CodeValidation, RuleNicHasQoS, "setting QoS on %s: it is used by %s, and a mirrored NIC cannot have QoS",
						what, sessionWhere(tx, ss[0]))
				}
			} else {
				qos = nil
			}
			a.set("before", n.QoS)
			a.relate(n.VmUUID)
			n.QoS = qos
			tx.Put(n)
			out = n
			return nil
		})
	if err != nil {
		return model.VmNic{}, err
	}
	return out, nil
}
