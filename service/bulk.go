package service

import (
	"context"
	"errors"
	"fmt"
	"reflect"

	"portmirror/model"
	"portmirror/store"
)

// MaxBulk bounds the entries of one bulk inventory call (registerHosts, createVmInstances): one call is one store
// transaction, and 2,000 hosts or VMs with their NICs and endpoints stay well inside what one transaction holds.
const MaxBulk = 2000

// BulkResult says what one bulk inventory call did: UUIDs in the order of the input (generated ones included),
// and how many entries it created, updated, or found already as given.
type BulkResult struct {
	UUIDs     []string `json:"uuids"`
	Created   int      `json:"created"`
	Updated   int      `json:"updated"`
	Unchanged int      `json:"unchanged"`
}

// bulkAt names the entry of a bulk call an error is about, keeping its code and rule.
func bulkAt(op string, i int, err error) error {
	var e *Error
	if !errors.As(err, &e) {
		return err
	}
	c := *e
	c.Message = fmt.Sprintf("%s input[%d]: %s", op, i, e.Message)
	return &c
}

func checkBulkSize(op, what string, n int) error {
	switch {
	case n == 0:
		return invalid("%s: no %s given", op, what)
	case n > MaxBulk:
		return invalid("%s: %d %s given, more than the %d one call takes; split them over several calls", op, n, what, MaxBulk)
	}
	return nil
}

// RegisterHosts registers or updates many hosts in one atomic call (upsert by uuid): an entry without uuid, or
// whose uuid is not registered, registers a host (with an endpoint on every flow network attached to its
// cluster, as registerHost); an entry naming a registered host updates its name, managementIp, ovsdbAddress,
// bridge and datapathId (its cluster cannot change: delete and register it). Any refused entry refuses the whole
// call, naming the entry; one audit event records the call with its counts.
func (s *Service) RegisterHosts(ctx context.Context, in []HostInput) (BulkResult, error) {
	const op = "registerHosts"
	var out BulkResult
	err := s.mutate(ctx, op, "Host", "", map[string]any{"count": len(in), "hosts": in}, func(tx *store.Txn, a *audit) error {
		out = BulkResult{UUIDs: make([]string, 0, len(in))}
		if err := checkBulkSize(op, "hosts", len(in)); err != nil {
			return err
		}
		seen := make(map[string]int, len(in))
		dps := make(map[string]string, len(in)) // datapath id -> host uuid, as this call leaves them
		allocs := map[string]*endpointAlloc{}   // by flow network: one allocator for the whole call
		fnsOf := map[string][]model.FlowNetwork{}
		clusters := map[string]bool{}
		var created, updated []string
		for i, hi := range in {
			what := fmt.Sprintf("host %q", hi.Name)
			h, err := s.hostFromInput(what, hi)
			if err != nil {
				return bulkAt(op, i, err)
			}
			if j, dup := seen[h.UUID]; dup {
				return bulkAt(op, i, invalid("%s: uuid %s is also given by input[%d]", what, h.UUID, j))
			}
			seen[h.UUID] = i
			if h.ClusterUUID == "" {
				return bulkAt(op, i, invalid("%s: clusterUuid is empty", what))
			}
			if !clusters[h.ClusterUUID] {
				if _, err := getCluster(tx, h.ClusterUUID); err != nil {
					return bulkAt(op, i, err)
				}
				clusters[h.ClusterUUID] = true
			}
			old, exists := store.Get[model.Host](tx, h.UUID)
			if exists {
				if old.ClusterUUID != h.ClusterUUID {
					return bulkAt(op, i, invalid("%s: %s is in cluster %s; a host's cluster cannot change (delete the host and register it again)",
						what, descHost(old), old.ClusterUUID))
				}
				h.CreatedAt = old.CreatedAt
			}
			if h.DatapathID != "" {
				if other, ok := dps[h.DatapathID]; ok && other != h.UUID {
					return bulkAt(op, i, refuse(CodeConflict, RuleAlreadyExists, "%s: datapath id %s is also given to host %s in this call", what, h.DatapathID, other))
				}
				for _, o := range store.Lookup[model.Host](tx, store.IdxDatapath, h.DatapathID) {
					// another host holding it must have been given another datapath id earlier in this call
					if _, moved := seen[o.UUID]; o.UUID != h.UUID && !moved {
						return bulkAt(op, i, refuse(CodeConflict, RuleAlreadyExists, "%s: datapath id %s is already registered to %s", what, h.DatapathID, descHost(o)))
					}
				}
				dps[h.DatapathID] = h.UUID
			}
			out.UUIDs = append(out.UUIDs, h.UUID)
			if exists && reflect.DeepEqual(old, h) {
				out.Unchanged++
				continue
			}
			tx.Put(h)
			if exists {
				out.Updated++
				updated = append(updated, h.UUID)
				continue
			}
			out.Created++
			created = append(created, h.UUID)
			fns, ok := fnsOf[h.ClusterUUID]
			if !ok {
				fns = flowNetworksOfCluster(tx, h.ClusterUUID)
				fnsOf[h.ClusterUUID] = fns
			}
			for _, fn := range fns {
				al := allocs[fn.UUID]
				if al == nil {
					if al, err = newEndpointAlloc(tx, fn); err != nil {
						return bulkAt(op, i, err)
					}
					allocs[fn.UUID] = al
				}
				if err := al.ensure(tx, h); err != nil {
					return bulkAt(op, i, err)
				}
			}
		}
		a.set("count", len(in))
		a.set("created", created)
		a.set("updated", updated)
		a.set("unchanged", out.Unchanged)
		return nil
	})
	if err != nil {
		return BulkResult{}, err
	}
	return out, nil
}

// CreateVmInstances creates or updates many VMs with their NICs in one atomic call (upsert by uuid): an entry
// without uuid, or whose uuid is unknown, creates a VM as createVmInstance; an entry naming an existing VM updates
// its name and moves it to hostUuid (refused as migrateVmInstance refuses), and its NICs: a listed NIC that does
// not exist is added; a listed NIC that exists must be the VM's, with the same MAC, isDefault, QoS and
// l3NetworkUuid (change QoS with setVmNicQos), and takes the given ip and portName; NICs of the VM that are not
// listed stay. Any refused entry refuses the whole call, naming the entry; one audit event records the call.
func (s *Service) CreateVmInstances(ctx context.Context, in []VmInstanceInput) (BulkResult, error) {
	const op = "createVmInstances"
	var out BulkResult
	err := s.mutate(ctx, op, "VmInstance", "", map[string]any{"count": len(in), "vmInstances": in}, func(tx *store.Txn, a *audit) error {
		out = BulkResult{UUIDs: make([]string, 0, len(in))}
		if err := checkBulkSize(op, "VM instances", len(in)); err != nil {
			return err
		}
		seenVM := make(map[string]int, len(in))
		seenNic := map[string]int{}
		hosts := map[string]model.Host{}
		var created, updated []string
		for i, vi := range in {
			what := fmt.Sprintf("VM %q", vi.Name)
			if err := checkName(what, vi.Name); err != nil {
				return bulkAt(op, i, err)
			}
			uuid, err := newOrGivenUUID(what, vi.UUID)
			if err != nil {
				return bulkAt(op, i, err)
			}
			if j, dup := seenVM[uuid]; dup {
				return bulkAt(op, i, invalid("%s: uuid %s is also given by input[%d]", what, uuid, j))
			}
			seenVM[uuid] = i
			hostUUID := ref(vi.HostUUID)
			if hostUUID == "" {
				return bulkAt(op, i, invalid("%s: hostUuid is empty", what))
			}
			h, ok := hosts[hostUUID]
			if !ok {
				if h, err = getHost(tx, hostUUID); err != nil {
					return bulkAt(op, i, err)
				}
				hosts[hostUUID] = h
			}
			old, exists := store.Get[model.VmInstance](tx, uuid)
			vm := model.VmInstance{UUID: uuid, Name: vi.Name, HostUUID: hostUUID, CreatedAt: s.now().UTC()}
			var have map[string]model.VmNic
			if exists {
				vm.CreatedAt = old.CreatedAt
				if old.HostUUID != hostUUID {
					if err := checkMigration(tx, old, h); err != nil {
						return bulkAt(op, i, err)
					}
				}
				have = map[string]model.VmNic{}
				for _, n := range store.Lookup[model.VmNic](tx, store.IdxVm, uuid) {
					have[n.UUID] = n
				}
			}
			changed := !exists || old.Name != vm.Name || old.HostUUID != vm.HostUUID
			defaults := 0
			macs := map[string]string{}
			next := len(have)
			for _, n := range have {
				macs[n.MAC] = n.UUID
				if n.IsDefault {
					defaults++
				}
			}
			for k, ni := range vi.Nics {
				n, err := nicFromInput(tx, what, uuid, k, ni)
				if err != nil {
					return bulkAt(op, i, err)
				}
				nwhat := fmt.Sprintf("%s NIC %s", what, n.MAC)
				if j, dup := seenNic[n.UUID]; dup {
					return bulkAt(op, i, invalid("%s: NIC uuid %s is also given by input[%d]", what, n.UUID, j))
				}
				seenNic[n.UUID] = i
				if cur, mine := have[n.UUID]; mine {
					if cur.MAC != n.MAC || cur.IsDefault != n.IsDefault || cur.L3NetworkUUID != n.L3NetworkUUID ||
						!reflect.DeepEqual(cur.QoS, n.QoS) {
						return bulkAt(op, i, invalid("%s: the MAC, isDefault, qos and l3NetworkUuid of an existing NIC cannot change in a bulk call (it is %s)",
							nwhat, descNic(tx, cur)))
					}
					if cur.IP != n.IP || cur.PortName != n.PortName {
						cur.IP, cur.PortName = n.IP, n.PortName
						tx.Put(cur)
						changed = true
					}
					continue
				}
				if other, ok := store.Get[model.VmNic](tx, n.UUID); ok {
					return bulkAt(op, i, refuse(CodeConflict, RuleAlreadyExists, "%s: uuid %s is already %s", nwhat, n.UUID, descNic(tx, other)))
				}
				if _, dup := macs[n.MAC]; dup {
					return bulkAt(op, i, invalid("%s: MAC %s is given twice", what, n.MAC))
				}
				macs[n.MAC] = n.UUID
				if n.IsDefault {
					if defaults++; defaults > 1 {
						return bulkAt(op, i, invalid("%s: more than one NIC is the default NIC", what))
					}
				}
				n.Index = next
				next++
				tx.Put(n)
				changed = true
			}
			out.UUIDs = append(out.UUIDs, uuid)
			switch {
			case !changed:
				out.Unchanged++
				continue
			case exists:
				out.Updated++
				updated = append(updated, uuid)
			default:
				out.Created++
				created = append(created, uuid)
			}
			tx.Put(vm)
		}
		a.set("count", len(in))
		a.set("created", created)
		a.set("updated", updated)
		a.set("unchanged", out.Unchanged)
		return nil
	})
	if err != nil {
		return BulkResult{}, err
	}
	return out, nil
}
