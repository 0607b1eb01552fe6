package service

import (
	"fmt"
	"net/netip"

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
// every session to that destination, otherwise the smallest free key from 1.
type keyAlloc struct {
	byDest map[string]uint32
	used   map[uint32]bool
	next   uint32
	max    uint32
}

func newKeyAlloc(tx *store.Txn, fn model.FlowNetwork, pmUUID string) *keyAlloc {
	k := &keyAlloc{byDest: map[string]uint32{}, used: map[uint32]bool{}, next: 1, max: min(fn.Encapsulation.MaxTunnelKey(), maxTunnelKey)}
	for _, s := range store.Lookup[model.Session](tx, store.IdxPortMirror, pmUUID) {
		k.byDest[s.DestinationNicUUID] = s.TunnelKey
		k.used[s.TunnelKey] = true
	}
	return k
}

func (k *keyAlloc) key(destNicUUID string) (uint32, bool) {
	if v, ok := k.byDest[destNicUUID]; ok {
		return v, true
	}
	for ; k.next <= k.max && k.next != 0; k.next++ {
		if !k.used[k.next] {
			v := k.next
			k.used[v] = true
			k.byDest[destNicUUID] = v
			k.next++
			return v, true
		}
	}
	return 0, false
}
