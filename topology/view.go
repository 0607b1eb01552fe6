// Package topology is the controller's live view of where every VM NIC is: which bridge (datapath id) each host
// has, which switches are connected and with which ports, what OVSDB says about each host's interfaces, and from
// all that the binding of every NIC to a (datapath id, port number). It does no I/O: the controller feeds it
// (inventory snapshots, OpenFlow connection and port events, OVSDB interface reads) and the reconciler reads it.
// Every change that moves a binding, or changes a switch's presence or ports, marks the datapath ids concerned
// dirty; the reconciler takes the dirty set after a notification on Changed().
package topology

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"portmirror/model"
)

// Interface is one OVSDB Interface row of a host's bridge, as the OVSDB manager reads it.
type Interface struct {
	Name        string
	OFPort      int    // -1 while OVS has not assigned one (or failed to)
	IfaceID     string // external_ids:iface-id, "" when absent
	AttachedMAC string // external_ids:attached-mac, lower-case, "" when absent
	AdminState  string // "up", "down" or "" when unknown
	LinkState   string // "up", "down" or "" when unknown
	Type        string // "" (system), "internal", "gre", ...
}

// Inventory is the part of the stored state the view needs: every host, VM and NIC.
type Inventory struct {
	Hosts []model.Host
	VMs   []model.VmInstance
	Nics  []model.VmNic
}

// Source is what LoadInventory reads. *service.Service has these methods.
type Source interface {
	Hosts(ctx context.Context) ([]model.Host, error)
	VmInstances(ctx context.Context) ([]model.VmInstance, error)
	VmNics(ctx context.Context, vmUUID string) ([]model.VmNic, error)
}

// LoadInventory reads a full inventory from src.
func LoadInventory(ctx context.Context, src Source) (Inventory, error) {
	var inv Inventory
	var err error
	if inv.Hosts, err = src.Hosts(ctx); err != nil {
		return Inventory{}, fmt.Errorf("load inventory: hosts: %w", err)
	}
	if inv.VMs, err = src.VmInstances(ctx); err != nil {
		return Inventory{}, fmt.Errorf("load inventory: vm instances: %w", err)
	}
	// most VMs have a NIC or two: one allocation for a fleet's, not a doubling copy of them every so often
	inv.Nics = make([]model.VmNic, 0, 2*len(inv.VMs))
	for _, vm := range inv.VMs {
		nics, err := src.VmNics(ctx, vm.UUID)
		if err != nil {
			return Inventory{}, fmt.Errorf("load inventory: nics of vm %s: %w", vm.UUID, err)
		}
		inv.Nics = append(inv.Nics, nics...)
	}
	return inv, nil
}

// Binding is where a NIC is attached now. When Bound is false, Reason says which NIC and what is missing, and
// DatapathID may still name the bridge the NIC should be on (when its host's datapath id is known).
type Binding struct {
	NicUUID    string
	MAC        string // the NIC's MAC, as the inventory has it
	HostUUID   string // the host of the NIC's VM, "" when the VM is unknown
	DatapathID string
	PortNo     uint32
	PortName   string
	Bound      bool
	Reason     string
}

// Port returns the binding as a switch port, nil when unbound.
func (b Binding) Port() *model.SwitchPort {
	if !b.Bound {
		return nil
	}
	return &model.SwitchPort{DatapathID: b.DatapathID, PortNo: b.PortNo, Name: b.PortName, Up: true}
}

// Dirty is what changed since the last TakeDirty: the datapath ids whose desired flows may differ, and the NICs
// whose binding changed (a NIC's move also changes flows on the bridges of the sessions' other ends, which only
// the reconciler knows).
type Dirty struct {
	Datapaths map[string]struct{}
	Nics      map[string]struct{}
}

// Empty reports whether nothing is dirty.
func (d Dirty) Empty() bool { return len(d.Datapaths) == 0 && len(d.Nics) == 0 }

type hostState struct {
	host      model.Host
	ovsdbDPID string // learned through OVSDB, "" while unknown
	ifaces    map[string]Interface
	managed   bool // OVSDB interfaces have been given for it
}

type switchState struct {
	dpid        string
	connected   bool
	remote      string
	connectedAt time.Time
	ports       map[uint32]model.SwitchPort
	byName      map[string]uint32
}

type nicState struct {
	nic      model.VmNic
	hostUUID string // of its VM; "" when the VM is unknown
}

// View is the live topology. It is safe for concurrent use. The zero value is not usable: use NewView.
type View struct {
	mu       sync.RWMutex
	gen      atomic.Uint64                // bumped under mu by every change that may touch a switch
	bridges  atomic.Pointer[bridgesCache] // the last answer of Bridges
	hosts    map[string]*hostState
	switches map[string]*switchState
	nics     map[string]nicState
	nicsOf   map[string][]string // host uuid -> nic uuids of its VMs
	vmHost   map[string]string   // vm uuid -> its host uuid
	dpHost   map[string]string   // datapath id -> host uuid
	hostDP   map[string]string   // host uuid -> effective datapath id
	dpHosts  map[string][]string // datapath id -> every host uuid whose effective datapath id it is
	bindings map[string]Binding

	dirty  Dirty
	notify chan struct{}
}

// NewView returns an empty view.
func NewView() *View {
	return &View{
		hosts:    map[string]*hostState{},
		switches: map[string]*switchState{},
		nics:     map[string]nicState{},
		nicsOf:   map[string][]string{},
		vmHost:   map[string]string{},
		dpHost:   map[string]string{},
		hostDP:   map[string]string{},
		dpHosts:  map[string][]string{},
		bindings: map[string]Binding{},
		dirty:    Dirty{Datapaths: map[string]struct{}{}, Nics: map[string]struct{}{}},
		notify:   make(chan struct{}, 1),
	}
}

// Changed receives a value (coalesced: the channel holds at most one) whenever something became dirty.
func (v *View) Changed() <-chan struct{} { return v.notify }

// TakeDirty returns what became dirty since the last call and clears it.
func (v *View) TakeDirty() Dirty {
	v.mu.Lock()
	defer v.mu.Unlock()
	d := v.dirty
	v.dirty = Dirty{Datapaths: map[string]struct{}{}, Nics: map[string]struct{}{}}
	return d
}

// MarkDirty marks datapath ids dirty by hand (e.g. after a switch refused a flow and should be retried).
func (v *View) MarkDirty(dpids ...string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, d := range dpids {
		v.markDP(d)
	}
	v.signal()
}

func (v *View) markDP(dpid string) {
	v.gen.Add(1) // anything that marks a bridge may have changed its switch: Bridges recomputes
	if dpid != "" {
		v.dirty.Datapaths[dpid] = struct{}{}
	}
}

func (v *View) signal() {
	if v.dirty.Empty() {
		return
	}
	select {
	case v.notify <- struct{}{}:
	default:
	}
}

// SetInventory replaces the hosts, VMs and NICs the view knows and recomputes every binding. Call it with a
// fresh snapshot after any inventory change (registration, VM creation, migration, deletion).
func (v *View) SetInventory(inv Inventory) {
	v.mu.Lock()
	defer v.mu.Unlock()

	seen := make(map[string]bool, len(inv.Hosts))
	for _, h := range inv.Hosts {
		seen[h.UUID] = true
		if hs, ok := v.hosts[h.UUID]; ok {
			hs.host = h
		} else {
			v.hosts[h.UUID] = &hostState{host: h}
		}
	}
	for id := range v.hosts {
		if !seen[id] {
			delete(v.hosts, id)
		}
	}

	vmHost := make(map[string]string, len(inv.VMs))
	for _, vm := range inv.VMs {
		vmHost[vm.UUID] = vm.HostUUID
	}
	nics := make(map[string]nicState, len(inv.Nics))
	nicsOf := make(map[string][]string, len(inv.Hosts))
	for _, n := range inv.Nics {
		h := vmHost[n.VmUUID]
		nics[n.UUID] = nicState{nic: n, hostUUID: h}
		nicsOf[h] = append(nicsOf[h], n.UUID)
	}
	v.nics = nics
	v.nicsOf = nicsOf
	v.vmHost = vmHost
	v.reindexHosts()
	v.rebindAll()
	v.signal()
}

// SetHostOVSDB records what the host's OVSDB manager read: the bridge's datapath id ("" while unknown) and every
// interface of the bridge. It recomputes the bindings of the host's NICs.
func (v *View) SetHostOVSDB(hostUUID, datapathID string, ifaces []Interface) {
	v.mu.Lock()
	defer v.mu.Unlock()
	hs, ok := v.hosts[hostUUID]
	if !ok {
		// Not (yet) in the inventory: keep what OVSDB said so a later SetInventory finds it.
		hs = &hostState{host: model.Host{UUID: hostUUID}}
		v.hosts[hostUUID] = hs
	}
	if d, ok := model.NormalizeDatapathID(datapathID); ok {
		datapathID = d
	} else {
		datapathID = ""
	}
	hs.ovsdbDPID = datapathID
	hs.managed = true
	hs.ifaces = make(map[string]Interface, len(ifaces))
	for _, i := range ifaces {
		i.AttachedMAC = strings.ToLower(i.AttachedMAC)
		if i.IfaceID != "" {
			// Two interfaces claiming one iface-id: keep the first by name, deterministically.
			if old, dup := hs.ifaces[i.IfaceID]; dup && old.Name < i.Name {
				continue
			}
			hs.ifaces[i.IfaceID] = i
		}
	}
	if v.reindexHosts() {
		v.rebindAll()
	} else {
		v.rebindHost(hostUUID)
	}
	v.signal()
}

// ClearHostOVSDB forgets what OVSDB said about a host (its manager stopped).
func (v *View) ClearHostOVSDB(hostUUID string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	hs, ok := v.hosts[hostUUID]
	if !ok || !hs.managed {
		return
	}
	hs.ovsdbDPID, hs.ifaces, hs.managed = "", nil, false
	if v.reindexHosts() {
		v.rebindAll()
	} else {
		v.rebindHost(hostUUID)
	}
	v.signal()
}

// SwitchConnected records an OpenFlow connection of a bridge, with the ports of its port-desc reply (nil when not
// known yet: call SetPorts later).
func (v *View) SwitchConnected(datapathID, remoteAddress string, at time.Time, ports []model.SwitchPort) {
	v.mu.Lock()
	defer v.mu.Unlock()
	sw := v.switchOf(datapathID)
	sw.connected, sw.remote, sw.connectedAt = true, remoteAddress, at
	sw.setPorts(ports)
	v.markDP(sw.dpid)
	v.rebindDatapath(sw.dpid)
	v.signal()
}

// SwitchDisconnected records that a bridge's connection is gone. Its ports are kept for display but none binds.
func (v *View) SwitchDisconnected(datapathID string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	sw, ok := v.switches[normDP(datapathID)]
	if !ok || !sw.connected {
		return
	}
	sw.connected = false
	v.markDP(sw.dpid)
	v.rebindDatapath(sw.dpid)
	v.signal()
}

// SetPorts replaces a switch's ports (an OpenFlow port-desc reply).
func (v *View) SetPorts(datapathID string, ports []model.SwitchPort) {
	v.mu.Lock()
	defer v.mu.Unlock()
	sw := v.switchOf(datapathID)
	sw.setPorts(ports)
	v.markDP(sw.dpid)
	v.rebindDatapath(sw.dpid)
	v.signal()
}

// PortStatus applies an OpenFlow port-status message: a port added or modified, or deleted.
func (v *View) PortStatus(datapathID string, port model.SwitchPort, deleted bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	sw := v.switchOf(datapathID)
	if old, ok := sw.ports[port.PortNo]; ok {
		delete(sw.byName, old.Name)
		delete(sw.ports, port.PortNo)
	}
	if !deleted {
		port.DatapathID = sw.dpid
		sw.ports[port.PortNo] = port
		sw.byName[port.Name] = port.PortNo
	}
	v.markDP(sw.dpid)
	v.rebindDatapath(sw.dpid)
	v.signal()
}

func normDP(s string) string {
	if d, ok := model.NormalizeDatapathID(s); ok {
		return d
	}
	return s
}

func (v *View) switchOf(datapathID string) *switchState {
	v.gen.Add(1)
	dpid := normDP(datapathID)
	sw, ok := v.switches[dpid]
	if !ok {
		sw = &switchState{dpid: dpid, ports: map[uint32]model.SwitchPort{}, byName: map[string]uint32{}}
		v.switches[dpid] = sw
	}
	return sw
}

func (sw *switchState) setPorts(ports []model.SwitchPort) {
	sw.ports = make(map[uint32]model.SwitchPort, len(ports))
	sw.byName = make(map[string]uint32, len(ports))
	for _, p := range ports {
		p.DatapathID = sw.dpid
		sw.ports[p.PortNo] = p
		sw.byName[p.Name] = p.PortNo
	}
}

// effectiveDP is the datapath id of a host: learned through OVSDB when known, else given at registration.
func (hs *hostState) effectiveDP() string {
	if hs.ovsdbDPID != "" {
		return hs.ovsdbDPID
	}
	if d, ok := model.NormalizeDatapathID(hs.host.DatapathID); ok {
		return d
	}
	return ""
}

// reindexHosts recomputes host <-> datapath id and reports whether it changed; it marks the old and new datapath
// ids of every host whose datapath id changed dirty. When two hosts claim one datapath id, the host with the
// smaller uuid owns it.
func (v *View) reindexHosts() bool {
	hostDP := make(map[string]string, len(v.hosts))
	dpHost := make(map[string]string, len(v.hosts))
	dpHosts := make(map[string][]string, len(v.hosts))
	for id, hs := range v.hosts {
		d := hs.effectiveDP()
		if d == "" {
			continue
		}
		hostDP[id] = d
		dpHosts[d] = append(dpHosts[d], id)
		if cur, ok := dpHost[d]; !ok || id < cur {
			dpHost[d] = id
		}
	}
	changed := false
	for id, d := range hostDP {
		if v.hostDP[id] != d {
			changed = true
			v.markDP(d)
			v.markDP(v.hostDP[id])
		}
	}
	for id, d := range v.hostDP {
		if _, ok := hostDP[id]; !ok {
			changed = true
			v.markDP(d)
		}
	}
	if len(dpHost) != len(v.dpHost) {
		changed = true
	}
	for d, h := range dpHost {
		if v.dpHost[d] != h {
			changed = true
			v.markDP(d)
		}
	}
	v.hostDP, v.dpHost, v.dpHosts = hostDP, dpHost, dpHosts
	return changed
}

// rebindAll recomputes every binding, dropping those of NICs that are gone.
func (v *View) rebindAll() {
	if len(v.bindings) == 0 {
		v.bindings = make(map[string]Binding, len(v.nics)) // the first inventory: sized once, not grown NIC by NIC
	}
	for id := range v.bindings {
		if _, ok := v.nics[id]; !ok {
			v.setBinding(id, Binding{NicUUID: id, Reason: "gone"}, true)
		}
	}
	for id, ns := range v.nics {
		v.setBinding(id, v.compute(ns), false)
	}
}

func (v *View) rebindHost(hostUUID string) {
	for _, id := range v.nicsOf[hostUUID] {
		v.setBinding(id, v.compute(v.nics[id]), false)
	}
}

// rebindDatapath recomputes the NICs of every host whose bridge is dpid.
func (v *View) rebindDatapath(dpid string) {
	// Through the index, not a walk over every host: a storm of (re)connects stays linear in the fleet.
	for _, h := range v.dpHosts[dpid] {
		v.rebindHost(h)
	}
}

func (v *View) setBinding(id string, b Binding, remove bool) {
	old, had := v.bindings[id]
	if remove {
		delete(v.bindings, id)
	} else {
		if had && old == b {
			return
		}
		v.bindings[id] = b
	}
	moved := old.DatapathID != b.DatapathID || old.PortNo != b.PortNo
	if old.Bound && (remove || !b.Bound || moved) {
		v.markDP(old.DatapathID)
	}
	if !remove && b.Bound && (!old.Bound || moved) {
		v.markDP(b.DatapathID)
	}
	v.dirty.Nics[id] = struct{}{}
}

func (v *View) compute(ns nicState) Binding {
	n := ns.nic
	b := Binding{NicUUID: n.UUID, MAC: n.MAC, HostUUID: ns.hostUUID}
	if ns.hostUUID == "" {
		b.Reason = fmt.Sprintf("NIC %s: its VM %s is unknown", n.UUID, n.VmUUID)
		return b
	}
	hs, ok := v.hosts[ns.hostUUID]
	if !ok {
		b.Reason = fmt.Sprintf("NIC %s: its VM's host %s is not registered", n.UUID, ns.hostUUID)
		return b
	}
	bridge := hs.host.Bridge
	if bridge == "" {
		bridge = model.DefaultBridge
	}
	b.DatapathID = v.hostDP[ns.hostUUID]
	portName := ""
	if i, ok := hs.ifaces[n.UUID]; ok {
		if i.AttachedMAC != "" && !strings.EqualFold(i.AttachedMAC, n.MAC) {
			b.Reason = fmt.Sprintf("NIC %s: interface %s on bridge %s of host %s has external_ids:iface-id=%s but attached-mac %s differs from the NIC's MAC %s",
				n.UUID, i.Name, bridge, ns.hostUUID, n.UUID, i.AttachedMAC, n.MAC)
			return b
		}
		portName = i.Name
	} else if n.PortName != "" {
		portName = n.PortName
	} else {
		if hs.managed {
			b.Reason = fmt.Sprintf("NIC %s: no interface on bridge %s of host %s has external_ids:iface-id=%s, and the NIC has no portName",
				n.UUID, bridge, ns.hostUUID, n.UUID)
		} else {
			b.Reason = fmt.Sprintf("NIC %s: host %s is not managed through OVSDB and the NIC has no portName", n.UUID, ns.hostUUID)
		}
		return b
	}
	b.PortName = portName
	if b.DatapathID == "" {
		b.Reason = fmt.Sprintf("NIC %s: the datapath id of bridge %s of host %s is not known yet", n.UUID, bridge, ns.hostUUID)
		return b
	}
	// A switch that disconnected keeps its last known ports: with fail_mode=secure its flows, and so its NICs,
	// keep working while the controller is away, and the flows of other bridges that reach them must stay.
	// Whether the switch is connected now is the session status's business, not the binding's.
	sw, ok := v.switches[b.DatapathID]
	if !ok {
		b.Reason = fmt.Sprintf("NIC %s: bridge %s of host %s (datapath %s) has never connected", n.UUID, bridge, ns.hostUUID, b.DatapathID)
		return b
	}
	no, ok := sw.byName[portName]
	if !ok {
		b.Reason = fmt.Sprintf("NIC %s: port %s is absent from bridge %s of host %s (datapath %s)", n.UUID, portName, bridge, ns.hostUUID, b.DatapathID)
		return b
	}
	b.PortNo = no
	if !sw.ports[no].Up {
		b.Reason = fmt.Sprintf("NIC %s: port %s (%d) on bridge %s of host %s (datapath %s) is down", n.UUID, portName, no, bridge, ns.hostUUID, b.DatapathID)
		return b
	}
	b.Bound = true
	return b
}

// Binding returns a NIC's binding; ok is false when the NIC is not in the inventory.
func (v *View) Binding(nicUUID string) (Binding, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	b, ok := v.bindings[nicUUID]
	return b, ok
}

// NicPort is where a NIC is attached now, nil while unbound (service.Live).
func (v *View) NicPort(nicUUID string) *model.SwitchPort {
	b, _ := v.Binding(nicUUID)
	return b.Port()
}

// BindingsOnDatapath returns the bound NICs on a bridge, by NIC uuid.
func (v *View) BindingsOnDatapath(datapathID string) map[string]Binding {
	dpid := normDP(datapathID)
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := map[string]Binding{}
	for _, h := range v.dpHosts[dpid] {
		for _, id := range v.nicsOf[h] {
			if b := v.bindings[id]; b.Bound {
				out[id] = b
			}
		}
	}
	return out
}

// HostDatapathID is the host's datapath id: learned through OVSDB, else given at registration; "" when unknown.
func (v *View) HostDatapathID(hostUUID string) string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.hostDP[hostUUID]
}

// HostOfDatapath is the host whose bridge has this datapath id, "" when none.
func (v *View) HostOfDatapath(datapathID string) string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.dpHost[normDP(datapathID)]
}

// HostConnected reports whether the host's bridge has an OpenFlow connection up.
func (v *View) HostConnected(hostUUID string) bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	d := v.hostDP[hostUUID]
	sw, ok := v.switches[d]
	return d != "" && ok && sw.connected
}

// Connected reports whether a bridge has an OpenFlow connection up.
func (v *View) Connected(datapathID string) bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	sw, ok := v.switches[normDP(datapathID)]
	return ok && sw.connected
}

// Port returns a port of a switch by number.
func (v *View) Port(datapathID string, portNo uint32) (model.SwitchPort, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	sw, ok := v.switches[normDP(datapathID)]
	if !ok {
		return model.SwitchPort{}, false
	}
	p, ok := sw.ports[portNo]
	return p, ok
}

// PortByName returns a port of a switch by name.
func (v *View) PortByName(datapathID, name string) (model.SwitchPort, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	sw, ok := v.switches[normDP(datapathID)]
	if !ok {
		return model.SwitchPort{}, false
	}
	no, ok := sw.byName[name]
	if !ok {
		return model.SwitchPort{}, false
	}
	return sw.ports[no], true
}

// HostInterfaces returns what OVSDB said about a host's interfaces (those with an iface-id), sorted by name, and
// whether the host is OVSDB-managed.
func (v *View) HostInterfaces(hostUUID string) ([]Interface, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	hs, ok := v.hosts[hostUUID]
	if !ok || !hs.managed {
		return nil, false
	}
	out := make([]Interface, 0, len(hs.ifaces))
	for _, i := range hs.ifaces {
		out = append(out, i)
	}
	slices.SortFunc(out, func(a, b Interface) int { return strings.Compare(a.Name, b.Name) })
	return out, true
}

// Switches lists every bridge that is or was connected, sorted by datapath id (FlowCount is left 0: the
// controller knows it).
func (v *View) Switches() []model.Switch {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := make([]model.Switch, 0, len(v.switches))
	for _, sw := range v.switches {
		s := model.Switch{
			DatapathID:    sw.dpid,
			HostUUID:      v.dpHost[sw.dpid],
			Connected:     sw.connected,
			RemoteAddress: sw.remote,
			ConnectedAt:   sw.connectedAt,
			Ports:         make([]model.SwitchPort, 0, len(sw.ports)),
		}
		for _, p := range sw.ports {
			s.Ports = append(s.Ports, p)
		}
		slices.SortFunc(s.Ports, func(a, b model.SwitchPort) int { return int(int64(a.PortNo) - int64(b.PortNo)) })
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b model.Switch) int { return strings.Compare(a.DatapathID, b.DatapathID) })
	return out
}

// BridgePorts is one switch's ports as the reconciler needs them: numbers, and the numbers of some ports by name.
type BridgePorts struct {
	Connected bool
	Numbers   []uint32          // sorted
	ByName    map[string]uint32 // the ports whose names start with the prefix given to Bridges
}

// bridgesCache is an answer of Bridges, valid while the view's generation is unchanged.
type bridgesCache struct {
	gen    uint64
	prefix string
	m      map[string]BridgePorts
}

// Gen changes whenever the switches, their ports, or which datapath a host's bridge has may have changed: what
// is derived from those alone can be kept while it stays the same.
func (v *View) Gen() uint64 { return v.gen.Load() }

// Bridges returns every switch that ever connected, by datapath id, with its last known ports, naming those whose
// names start with namePrefix (e.g. the tunnel ports' "pm"). It is the cheap form of Switches for a
// reconciliation pass: the answer is computed once per change of the switches and shared, so callers must not
// modify it.
func (v *View) Bridges(namePrefix string) map[string]BridgePorts {
	v.mu.RLock()
	defer v.mu.RUnlock()
	gen := v.gen.Load()
	if c := v.bridges.Load(); c != nil && c.gen == gen && c.prefix == namePrefix {
		return c.m
	}
	out := make(map[string]BridgePorts, len(v.switches))
	for dp, sw := range v.switches {
		out[dp] = sw.bridgePorts(namePrefix)
	}
	v.bridges.Store(&bridgesCache{gen: gen, prefix: namePrefix, m: out})
	return out
}

// ForgetUnclaimed removes every switch (of the datapaths named, or of all) that is disconnected and that no host claims (its host was deleted, or
// now has another datapath id), so that a bridge that is gone for good costs nothing. It returns the datapath
// ids it removed. A disconnected switch that a host still claims is kept: its bridge keeps working.
func (v *View) ForgetUnclaimed(only ...string) []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	var gone []string
	forget := func(dp string, sw *switchState) {
		if sw.connected || v.dpHost[dp] != "" {
			return
		}
		delete(v.switches, dp)
		gone = append(gone, dp)
	}
	if len(only) > 0 {
		// One switch's disconnect looks at that switch, not the fleet: a storm of disconnects stays linear.
		for _, dp := range only {
			if sw, ok := v.switches[dp]; ok {
				forget(dp, sw)
			}
		}
	} else {
		for dp, sw := range v.switches {
			forget(dp, sw)
		}
	}
	if len(gone) > 0 {
		v.gen.Add(1)
	}
	return gone
}
