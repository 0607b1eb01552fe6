package service

import (
	"fmt"
	"net/netip"
	"slices"

	"portmirror/model"
	"portmirror/store"
)

// endpointAlloc hands out a flow network's endpoint IPs within one transaction: the lowest free host address of
// the CIDR, never the network or broadcast address, never one in use in that flow network.
type endpointAlloc struct {
	fn     model.FlowNetwork
	prefix netip.Prefix
	used   map[netip.Addr]bool
	next   netip.Addr
	last   netip.Addr // broadcast
}

func newEndpointAlloc(tx *store.Txn, fn model.FlowNetwork) (*endpointAlloc, error) {
	p, err := netip.ParsePrefix(fn.CIDR)
	if err != nil {
		return nil, fmt.Errorf("stored cidr %q of %s: %w", fn.CIDR, descFN(fn), err)
	}
	a := &endpointAlloc{fn: fn, prefix: p, used: map[netip.Addr]bool{}, next: p.Addr().Next(), last: lastAddr(p)}
	for _, ep := range store.Lookup[model.FlowEndpoint](tx, store.IdxFlowNetwork, fn.UUID) {
		if ip, err := netip.ParseAddr(ep.IP); err == nil {
			a.used[ip] = true
		}
	}
	return a, nil
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// ensure gives the host an endpoint IP unless it has one, and writes it.
func (a *endpointAlloc) ensure(tx *store.Txn, h model.Host) error {
	if _, ok := store.Get[model.FlowEndpoint](tx, store.EndpointID(a.fn.UUID, h.UUID)); ok {
		return nil
	}
	for ; a.next.Less(a.last); a.next = a.next.Next() {
		if !a.used[a.next] {
			ip := a.next
			a.used[ip] = true
			a.next = a.next.Next()
			tx.Put(model.FlowEndpoint{FlowNetworkUUID: a.fn.UUID, HostUUID: h.UUID, IP: ip.String()})
			return nil
		}
	}
	return invalid("%s: cidr %s has no free endpoint IP left for %s; widen the cidr or free endpoints", descFN(a.fn), a.fn.CIDR, descHost(h))
}

// ensureEndpointsOfCluster gives every host of the cluster an endpoint on the flow network.
func ensureEndpointsOfCluster(tx *store.Txn, a *endpointAlloc, clusterUUID string) error {
	for _, h := range store.Lookup[model.Host](tx, store.IdxCluster, clusterUUID) {
		if err := a.ensure(tx, h); err != nil {
			return err
		}
	}
	return nil
}

// keyAlloc hands out a flow network's tunnel keys within one transaction: one per destination NIC, reused by
// every session to that destination, otherwise the smallest free key from 1. It reads the port mirror's sessions
// once, for two fields each, copying none of them: adding one session to a port mirror of thousands costs a pass
// over them, not copies and maps of them.
type keyAlloc struct {
	dests  []string          // the port mirror's sessions' destination NICs, when the transaction began
	keyOf  []uint32          // and their keys, by the same index
	keys   []uint32          // their keys, sorted, each once
	handed map[string]uint32 // destination NIC -> the key handed out to it by this allocator
	next   uint32            // no key below it is free
	at     int               // keys[at] is the first key not below next
	max    uint32
}

func newKeyAlloc(tx *store.Txn, fn model.FlowNetwork, pmUUID string) *keyAlloc {
	k := &keyAlloc{next: 1, max: min(fn.Encapsulation.MaxTunnelKey(), maxTunnelKey)}
	store.Each(tx, store.IdxPortMirror, pmUUID, func(s model.Session) bool {
		k.dests = append(k.dests, s.DestinationNicUUID)
		k.keyOf = append(k.keyOf, s.TunnelKey)
		return true
	})
	k.keys = slices.Clone(k.keyOf)
	slices.Sort(k.keys)
	k.keys = slices.Compact(k.keys)
	return k
}

// existing returns the key of the port mirror's sessions to destNicUUID, if any: a scan, as a transaction asks
// once (adding a session) or of a port mirror that has none yet (creating it with its sessions).
func (k *keyAlloc) existing(destNicUUID string) (uint32, bool) {
	for i := len(k.dests) - 1; i >= 0; i-- { // the latest, should two differ
		if k.dests[i] == destNicUUID {
			return k.keyOf[i], true
		}
	}
	return 0, false
}

func (k *keyAlloc) key(destNicUUID string) (uint32, bool) {
	if v, ok := k.existing(destNicUUID); ok {
		return v, true
	}
	if v, ok := k.handed[destNicUUID]; ok {
		return v, true
	}
	for ; k.next <= k.max && k.next != 0; k.next++ {
		for k.at < len(k.keys) && k.keys[k.at] < k.next {
			k.at++
		}
		if k.at < len(k.keys) && k.keys[k.at] == k.next {
			continue // in use
		}
		v := k.next
		if k.handed == nil {
			k.handed = map[string]uint32{}
		}
		k.handed[destNicUUID] = v
		k.next++
		return v, true
	}
	return 0, false
}
