package service

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	"portmirror/model"
	"portmirror/store"
)

// CreateFlowNetwork creates a flow network, attaches it to the given clusters and allocates an endpoint IP for
// every host of them.
func (s *Service) CreateFlowNetwork(ctx context.Context, in FlowNetworkInput) (model.FlowNetwork, error) {
	var out model.FlowNetwork
	err := s.mutate(ctx, "createFlowNetwork", "FlowNetwork", createRef(in.UUID), in, func(tx *store.Txn, a *audit) error {
		what := fmt.Sprintf("flow network %q", in.Name)
		if err := checkName(what, in.Name); err != nil {
			return err
		}
		if err := checkDescription(what, in.Description); err != nil {
			return err
		}
		uuid, err := newOrGivenUUID(what, in.UUID)
		if err != nil {
			return err
		}
		p, err := normCIDR(what, in.CIDR)
		if err != nil {
			return err
		}
		enc := in.Encapsulation
		if enc == "" {
			enc = model.GRE
		}
		if !enc.Valid() {
			return invalid("%s: encapsulation %q is not GRE, VXLAN, ERSPAN_V1 or ERSPAN_V2", what, in.Encapsulation)
		}
		if old, ok := store.Get[model.FlowNetwork](tx, uuid); ok {
			return refuse(CodeConflict, RuleAlreadyExists, "%s: uuid %s is already %s", what, uuid, descFN(old))
		}
		if nics := store.Lookup[model.VmNic](tx, store.IdxL3, uuid); len(nics) > 0 {
			return refuse(CodeValidation, RuleFlowNetworkDedicated, "%s: uuid %s is the l3NetworkUuid of %s; a flow network cannot serve as any other network",
				what, uuid, descNic(tx, nics[0]))
		}
		fn := model.FlowNetwork{UUID: uuid, Name: in.Name, Description: in.Description, CIDR: p.String(),
			Encapsulation: enc, ClusterUUIDs: []string{}, CreatedAt: s.now().UTC()}
		for _, c := range in.ClusterUUIDs {
			c = ref(c)
			if _, err := getCluster(tx, c); err != nil {
				return err
			}
			if err := checkEncapsulation(tx, what, fn, c); err != nil {
				return err
			}
			if !slices.Contains(fn.ClusterUUIDs, c) {
				fn.ClusterUUIDs = append(fn.ClusterUUIDs, c)
			}
		}
		tx.Put(fn)
		al, err := newEndpointAlloc(tx, fn)
		if err != nil {
			return err
		}
		for _, c := range fn.ClusterUUIDs {
			if err := ensureEndpointsOfCluster(tx, al, c); err != nil {
				return err
			}
		}
		a.resourceUUID = uuid
		a.set("flowNetwork", fn)
		a.set("endpoints", len(store.Lookup[model.FlowEndpoint](tx, store.IdxFlowNetwork, uuid)))
		out = fn
		return nil
	})
	return out, err
}

// AttachFlowNetworkToCluster attaches a flow network to a cluster (idempotent) and gives its hosts endpoints.
func (s *Service) AttachFlowNetworkToCluster(ctx context.Context, flowNetworkUUID, clusterUUID string) (model.FlowNetwork, error) {
	flowNetworkUUID, clusterUUID = ref(flowNetworkUUID), ref(clusterUUID)
	var out model.FlowNetwork
	err := s.mutate(ctx, "attachFlowNetworkToCluster", "FlowNetwork", flowNetworkUUID,
		map[string]string{"flowNetworkUuid": flowNetworkUUID, "clusterUuid": clusterUUID}, func(tx *store.Txn, a *audit) error {
			fn, err := getFN(tx, flowNetworkUUID)
			if err != nil {
				return err
			}
			if _, err := getCluster(tx, clusterUUID); err != nil {
				return err
			}
			a.relate(clusterUUID)
			out = fn
			if fn.AttachedTo(clusterUUID) {
				a.set("changed", false)
				return nil
			}
			if err := checkEncapsulation(tx, "attaching to a cluster", fn, clusterUUID); err != nil {
				return err
			}
			fn.ClusterUUIDs = append(fn.ClusterUUIDs, clusterUUID)
			tx.Put(fn)
			al, err := newEndpointAlloc(tx, fn)
			if err != nil {
				return err
			}
			if err := ensureEndpointsOfCluster(tx, al, clusterUUID); err != nil {
				return err
			}
			a.set("changed", true)
			out = fn
			return nil
		})
	return out, err
}

// DetachFlowNetworkFromCluster detaches a flow network from a cluster (idempotent) and frees the endpoints of its
// hosts; refused while a session of the flow network's port mirror has a VM in the cluster.
func (s *Service) DetachFlowNetworkFromCluster(ctx context.Context, flowNetworkUUID, clusterUUID string) (model.FlowNetwork, error) {
	flowNetworkUUID, clusterUUID = ref(flowNetworkUUID), ref(clusterUUID)
	var out model.FlowNetwork
	err := s.mutate(ctx, "detachFlowNetworkFromCluster", "FlowNetwork", flowNetworkUUID,
		map[string]string{"flowNetworkUuid": flowNetworkUUID, "clusterUuid": clusterUUID}, func(tx *store.Txn, a *audit) error {
			fn, err := getFN(tx, flowNetworkUUID)
			if err != nil {
				return err
			}
			c, err := getCluster(tx, clusterUUID)
			if err != nil {
				return err
			}
			a.relate(clusterUUID)
			out = fn
			if !fn.AttachedTo(clusterUUID) {
				a.set("changed", false)
				return nil
			}
			if pm, ok := pmOfFN(tx, fn.UUID); ok {
				for _, ss := range store.Lookup[model.Session](tx, store.IdxPortMirror, pm.UUID) {
					for _, nicUUID := range []string{ss.SourceNicUUID, ss.DestinationNicUUID} {
						n, err := getNic(tx, nicUUID)
						if err != nil {
							return err
						}
						h, _, err := nicHost(tx, n)
						if err != nil {
							return err
						}
						if h.ClusterUUID == clusterUUID {
							return refuse(CodeConflict, RuleClusterNotAttached,
								"detaching %s from %s: %s of %s uses %s on %s in that cluster; delete the session first",
								descFN(fn), descCluster(c), descSession(ss), descPM(pm), descNic(tx, n), descHost(h))
						}
					}
				}
			}
			fn.ClusterUUIDs = slices.DeleteFunc(fn.ClusterUUIDs, func(x string) bool { return x == clusterUUID })
			tx.Put(fn)
			freed := 0
			for _, h := range store.Lookup[model.Host](tx, store.IdxCluster, clusterUUID) {
				id := store.EndpointID(fn.UUID, h.UUID)
				if _, ok := store.Get[model.FlowEndpoint](tx, id); ok {
					tx.Delete(store.KindFlowEndpoint, id)
					freed++
				}
			}
			a.set("changed", true)
			a.set("endpointsFreed", freed)
			out = fn
			return nil
		})
	return out, err
}

// SetFlowEndpoint sets a host's endpoint IP on a flow network by hand.
func (s *Service) SetFlowEndpoint(ctx context.Context, flowNetworkUUID, hostUUID, ip string) (model.FlowEndpoint, error) {
	flowNetworkUUID, hostUUID = ref(flowNetworkUUID), ref(hostUUID)
	var out model.FlowEndpoint
	err := s.mutate(ctx, "setFlowEndpoint", "FlowNetwork", flowNetworkUUID,
		map[string]string{"flowNetworkUuid": flowNetworkUUID, "hostUuid": hostUUID, "ip": ip}, func(tx *store.Txn, a *audit) error {
			fn, err := getFN(tx, flowNetworkUUID)
			if err != nil {
				return err
			}
			h, err := getHost(tx, hostUUID)
			if err != nil {
				return err
			}
			a.relate(hostUUID)
			what := fmt.Sprintf("endpoint of %s on %s", descHost(h), descFN(fn))
			addr, err := netip.ParseAddr(ip)
			if err != nil || !addr.Is4() {
				return invalid("%s: ip %q is not an IPv4 address", what, ip)
			}
			p, err := netip.ParsePrefix(fn.CIDR)
			if err != nil {
				return fmt.Errorf("stored cidr of %s: %w", descFN(fn), err)
			}
			if !p.Contains(addr) {
				return invalid("%s: ip %s is outside the flow network's cidr %s", what, addr, fn.CIDR)
			}
			if addr == p.Addr() || addr == lastAddr(p) {
				return invalid("%s: ip %s is the network or broadcast address of %s", what, addr, fn.CIDR)
			}
			if !fn.AttachedTo(h.ClusterUUID) {
				c, _ := store.Get[model.Cluster](tx, h.ClusterUUID)
				return refuse(CodeValidation, RuleClusterNotAttached, "%s: the host's %s is not attached to the flow network", what, descCluster(c))
			}
			for _, ep := range store.Lookup[model.FlowEndpoint](tx, store.IdxFlowNetwork, fn.UUID) {
				if ep.IP == addr.String() && ep.HostUUID != h.UUID {
					other, _ := store.Get[model.Host](tx, ep.HostUUID)
					return refuse(CodeConflict, RuleAlreadyExists, "%s: ip %s is already the endpoint of %s", what, addr, descHost(other))
				}
			}
			old, _ := store.Get[model.FlowEndpoint](tx, store.EndpointID(fn.UUID, h.UUID))
			out = model.FlowEndpoint{FlowNetworkUUID: fn.UUID, HostUUID: h.UUID, IP: addr.String(), Manual: true}
			tx.Put(out)
			a.set("before", old.IP)
			a.set("after", out.IP)
			return nil
		})
	return out, err
}

// DeleteFlowNetwork removes a free flow network and its endpoints.
func (s *Service) DeleteFlowNetwork(ctx context.Context, uuid string) error {
	uuid = ref(uuid)
	return s.mutate(ctx, "deleteFlowNetwork", "FlowNetwork", uuid, map[string]string{"uuid": uuid}, func(tx *store.Txn, a *audit) error {
		fn, err := getFN(tx, uuid)
		if err != nil {
			return err
		}
		if pm, ok := pmOfFN(tx, uuid); ok {
			return refuse(CodeConflict, RuleFlowNetworkInUse, "deleting %s: it is occupied by %s; delete the port mirror first", descFN(fn), descPM(pm))
		}
		n := 0
		for _, ep := range store.Lookup[model.FlowEndpoint](tx, store.IdxFlowNetwork, uuid) {
			tx.Delete(store.KindFlowEndpoint, store.EndpointID(ep.FlowNetworkUUID, ep.HostUUID))
			n++
		}
		tx.Delete(store.KindFlowNetwork, uuid)
		a.set("deleted", map[string]any{"flowNetwork": fn, "endpoints": n})
		return nil
	})
}
