package controller

import (
	"context"
	"net/netip"
	"slices"

	"portmirror/flows"
	"portmirror/model"
)

// patchFabric returns the fabric for a pass. When only the live view changed since the fabric was built (a store
// change drops it), and on the datapaths the view marked dirty, it updates those datapaths' bridges and flow
// endpoints in place, so that a bridge (re)connecting costs its own entries, not every bridge's and endpoint's;
// otherwise it builds the fabric anew (currentFabric). The fabric is only read by passes, on the loop's goroutine.
func (c *Controller) patchFabric(ctx context.Context, gen uint64, dps map[string]struct{}) (*fabric, error) {
	c.mu.Lock()
	f := c.fabric
	c.mu.Unlock()
	if f != nil && f.gen >= gen {
		return f, nil
	}
	// Patched for any number of dirty datapaths: a storm that reconnects the whole fleet patches every bridge
	// (a bridge and its endpoints each), which costs a fraction of building it from the store anew (every flow
	// network's endpoints read and copied: about a second of a 10,000-bridge storm).
	if f == nil || f.hostEPs == nil || len(dps) == 0 {
		return c.currentFabric(ctx)
	}
	for dp := range dps {
		if b, ok := c.view.BridgeOf(dp, model.TunnelPortPrefix); ok {
			f.bridges[dp] = flows.Bridge{Ports: b.Numbers}
		} else {
			delete(f.bridges, dp)
		}
		f.dropEndpoints(dp)
	}
	// The endpoints of the hosts on those datapaths now (a host whose datapath changed marked the old and the new
	// one dirty).
	for dp := range dps {
		host := c.view.HostOfDatapath(dp)
		if host == "" {
			continue
		}
		b, _ := c.view.BridgeOf(dp, model.TunnelPortPrefix)
		for _, ep := range f.hostEPs[host] {
			if _, ok := f.networks[ep.FlowNetworkUUID]; !ok {
				continue
			}
			e := flows.Endpoint{TunnelPort: b.ByName[model.TunnelPortName(ep.FlowNetworkUUID)]}
			if ip, err := netip.ParseAddr(ep.IP); err == nil {
				e.IP = ip
			}
			f.setEndpoint(ep.FlowNetworkUUID, dp, e)
		}
	}
	f.gen = gen
	// Their tunnel ports, for the tunnel-drop flows (tunnelTargets looks at a fabric it has not seen only).
	c.mu.Lock()
	for dp := range dps {
		var t []uint32
		for _, fn := range f.dpFNs[dp] {
			if _, ok := f.networks[fn]; !ok {
				continue
			}
			if ep := f.endpoints[flows.EndpointKey{FlowNetwork: fn, DatapathID: dp}]; ep.TunnelPort != 0 {
				t = append(t, ep.TunnelPort)
			}
		}
		slices.Sort(t)
		if _, known := f.bridges[dp]; known {
			c.tunnels[dp] = t
		} else {
			delete(c.tunnels, dp)
		}
	}
	c.mu.Unlock()
	return f, nil
}
