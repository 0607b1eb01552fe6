package topology

import (
	"slices"
	"strings"

	"portmirror/model"
)

// InventoryDelta is a change of the inventory: objects created or updated (as stored now), and uuids of objects
// deleted.
type InventoryDelta struct {
	Hosts     []model.Host
	GoneHosts []string
	VMs       []model.VmInstance
	GoneVMs   []string
	Nics      []model.VmNic
	GoneNics  []string
}

// Empty reports whether the delta changes nothing.
func (d InventoryDelta) Empty() bool {
	return len(d.Hosts)+len(d.GoneHosts)+len(d.VMs)+len(d.GoneVMs)+len(d.Nics)+len(d.GoneNics) == 0
}

// ApplyInventory applies a change of the inventory and recomputes only the bindings it touches: the NICs of the
// hosts and VMs it names, and the NICs it names. The result equals SetInventory with the whole new inventory.
func (v *View) ApplyInventory(d InventoryDelta) {
	v.mu.Lock()
	defer v.mu.Unlock()

	rebind := map[string]bool{} // NIC uuids
	hostsChanged := false
	for _, h := range d.Hosts {
		if hs, ok := v.hosts[h.UUID]; ok {
			if hs.host != h {
				hostsChanged = hostsChanged || hs.host.DatapathID != h.DatapathID
				hs.host = h
			}
		} else {
			v.hosts[h.UUID] = &hostState{host: h}
			hostsChanged = true
		}
		for _, id := range v.nicsOf[h.UUID] {
			rebind[id] = true
		}
	}
	for _, id := range d.GoneHosts {
		if _, ok := v.hosts[id]; ok {
			delete(v.hosts, id)
			hostsChanged = true
		}
		for _, nic := range v.nicsOf[id] {
			rebind[nic] = true
		}
	}
	if hostsChanged {
		// datapath ownership: when a host's datapath id changed, every host claiming one may be concerned
		before := v.hostDP
		v.reindexHosts()
		for h, dp := range v.hostDP {
			if before[h] != dp {
				for _, id := range v.nicsOf[h] {
					rebind[id] = true
				}
			}
		}
		for h := range before {
			if _, ok := v.hostDP[h]; !ok {
				for _, id := range v.nicsOf[h] {
					rebind[id] = true
				}
			}
		}
	}

	move := func(nicUUID, host string) {
		ns := v.nics[nicUUID]
		if ns.hostUUID == host {
			return
		}
		v.nicsOf[ns.hostUUID] = slices.DeleteFunc(v.nicsOf[ns.hostUUID], func(s string) bool { return s == nicUUID })
		if len(v.nicsOf[ns.hostUUID]) == 0 {
			delete(v.nicsOf, ns.hostUUID)
		}
		ns.hostUUID = host
		v.nics[nicUUID] = ns
		v.nicsOf[host] = append(v.nicsOf[host], nicUUID)
		rebind[nicUUID] = true
	}
	nicsOfVM := func(vm, host string) []string {
		var out []string
		for _, id := range v.nicsOf[host] {
			if v.nics[id].nic.VmUUID == vm {
				out = append(out, id)
			}
		}
		return out
	}
	for _, vm := range d.VMs {
		old, had := v.vmHost[vm.UUID]
		v.vmHost[vm.UUID] = vm.HostUUID
		if had && old != vm.HostUUID {
			for _, id := range nicsOfVM(vm.UUID, old) {
				move(id, vm.HostUUID)
			}
		}
		if !had {
			// NICs that arrived before their VM
			for _, id := range nicsOfVM(vm.UUID, "") {
				move(id, vm.HostUUID)
			}
		}
	}
	for _, id := range d.GoneVMs {
		if host, had := v.vmHost[id]; had {
			delete(v.vmHost, id)
			for _, nic := range nicsOfVM(id, host) {
				move(nic, "")
			}
		}
	}
	for _, n := range d.Nics {
		ns, had := v.nics[n.UUID]
		host := v.vmHost[n.VmUUID]
		if !had {
			v.nics[n.UUID] = nicState{nic: n}
			v.nicsOf[""] = append(v.nicsOf[""], n.UUID)
		} else {
			ns.nic = n
			v.nics[n.UUID] = ns
		}
		move(n.UUID, host)
		rebind[n.UUID] = true
	}
	for _, id := range d.GoneNics {
		ns, had := v.nics[id]
		if !had {
			continue
		}
		v.nicsOf[ns.hostUUID] = slices.DeleteFunc(v.nicsOf[ns.hostUUID], func(s string) bool { return s == id })
		if len(v.nicsOf[ns.hostUUID]) == 0 {
			delete(v.nicsOf, ns.hostUUID)
		}
		delete(v.nics, id)
		delete(rebind, id)
		v.setBinding(id, Binding{NicUUID: id, Reason: "gone"}, true)
	}
	for id := range rebind {
		if ns, ok := v.nics[id]; ok {
			v.setBinding(id, v.compute(ns), false)
		}
	}
	v.signal()
}

// Hosts returns the hosts of the inventory the view holds.
func (v *View) Hosts() []model.Host {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := make([]model.Host, 0, len(v.hosts))
	for _, hs := range v.hosts {
		if hs.host.Name != "" || hs.host.ClusterUUID != "" {
			out = append(out, hs.host)
		}
	}
	return out
}

// BridgeOf is Bridges for one datapath: its ports, and whether the view knows the switch.
func (v *View) BridgeOf(datapathID, namePrefix string) (BridgePorts, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	sw, ok := v.switches[datapathID]
	if !ok {
		return BridgePorts{}, false
	}
	return sw.bridgePorts(namePrefix), true
}

// bridgePorts is the switch's port numbers, sorted, and those of its ports named with namePrefix, by name.
func (sw *switchState) bridgePorts(namePrefix string) BridgePorts {
	b := BridgePorts{Connected: sw.connected, Numbers: make([]uint32, 0, len(sw.ports))}
	for no, p := range sw.ports {
		b.Numbers = append(b.Numbers, no)
		if strings.HasPrefix(p.Name, namePrefix) {
			if b.ByName == nil {
				b.ByName = map[string]uint32{}
			}
			b.ByName[p.Name] = no
		}
	}
	slices.Sort(b.Numbers)
	return b
}
