package controller

import (
	"context"
	"net/netip"

	"portmirror/flows"
	"portmirror/model"
)

// probeRoute analyses one session for a probe, from the store and the live view as they are now: the passes keep
// per-session verdicts, not a plan of every session (their fabric and cache belong to the loop's goroutine). It
// reports false when the session is not one the controller compiles (unknown, or its port mirror disabled).
func (c *Controller) probeRoute(ctx context.Context, sessionUUID string) (flows.ProbeRoute, bool) {
	s, err := c.svc.Session(ctx, sessionUUID)
	if err != nil {
		return flows.ProbeRoute{}, false
	}
	pm, err := c.svc.PortMirror(ctx, s.PortMirrorUUID)
	if err != nil || pm.State != model.Enabled {
		return flows.ProbeRoute{}, false
	}
	fn, err := c.svc.FlowNetwork(ctx, pm.FlowNetworkUUID)
	if err != nil {
		return flows.ProbeRoute{}, false
	}
	in := &flows.Input{NICs: map[string]flows.NIC{}, Endpoints: map[flows.EndpointKey]flows.Endpoint{}, Bridges: map[string]flows.Bridge{}}
	in.Sessions = []flows.Session{flowSession(s, fn)}
	eps, _ := c.svc.FlowEndpoints(ctx, fn.UUID)
	for _, nic := range []string{s.SourceNicUUID, s.DestinationNicUUID} {
		b, ok := c.view.Binding(nic)
		if !ok {
			if n, err := c.svc.VmNic(ctx, nic); err == nil {
				in.NICs[nic] = flows.NIC{MAC: n.MAC}
			}
			continue
		}
		n := flows.NIC{MAC: b.MAC, DatapathID: b.DatapathID}
		br, known := c.view.BridgeOf(b.DatapathID, model.TunnelPortPrefix)
		if known {
			in.Bridges[b.DatapathID] = flows.Bridge{Ports: br.Numbers}
			if b.Bound {
				n.Port = b.PortNo
			}
			host := c.view.HostOfDatapath(b.DatapathID)
			for _, ep := range eps {
				if ep.HostUUID != host {
					continue
				}
				e := flows.Endpoint{TunnelPort: br.ByName[model.TunnelPortName(fn.UUID)]}
				if ip, err := netip.ParseAddr(ep.IP); err == nil {
					e.IP = ip
				}
				in.Endpoints[flows.EndpointKey{FlowNetwork: fn.UUID, DatapathID: b.DatapathID}] = e
			}
		}
		in.NICs[nic] = n
	}
	return flows.Analyze(in).ProbeRoute(sessionUUID)
}
