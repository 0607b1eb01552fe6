package controller

import (
	"context"
	"slices"
	"strings"
	"sync"

	"portmirror/flows"
	"portmirror/model"
	"portmirror/topology/ovsdbhost"
)

// hostManager is one OVSDB-managed host: its manager, the goroutine that runs it, and what was last asked of it.
type hostManager struct {
	host   model.Host
	m      *ovsdbhost.Manager
	cancel context.CancelFunc
	done   chan struct{}

	sent     bool // tunnels and isolated have been handed to the manager
	tunnels  []ovsdbhost.TunnelSpec
	isolated []string
}

// syncHosts starts a manager for every host registered with an OVSDB address and stops those no longer wanted
// (host deleted, address or bridge changed).
func (c *Controller) syncHosts(ctx context.Context, hosts []model.Host) {
	wanted := map[string]model.Host{}
	for _, h := range hosts {
		if h.OVSDBAddress != "" {
			wanted[h.UUID] = h
		}
	}
	c.mu.Lock()
	var stopped []*hostManager
	for id, hm := range c.hosts {
		h, ok := wanted[id]
		if ok && h.OVSDBAddress == hm.host.OVSDBAddress && h.Bridge == hm.host.Bridge {
			continue
		}
		hm.cancel()
		stopped = append(stopped, hm)
		delete(c.hosts, id)
	}
	c.mu.Unlock()
	// Wait outside the lock (status queries and switch events must not stall behind a stopping manager), and
	// before starting any new one: a stopped manager clears its host from the view after its last push, which
	// must not land after a new manager's first push for the same host.
	for _, hm := range stopped {
		<-hm.done
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	for id, h := range wanted {
		if _, ok := c.hosts[id]; ok {
			continue
		}
		m, err := ovsdbhost.NewManager(ovsdbhost.HostConfig{
			HostUUID: h.UUID, Address: h.OVSDBAddress, TLS: c.opts.OVSDBTLS, Bridge: h.Bridge, ControllerTargets: c.wantedTargets(),
		}, c.log.With("host", h.Name, "host_uuid", h.UUID))
		if err != nil {
			c.log.Error("cannot manage host through OVSDB", "host", h.Name, "host_uuid", h.UUID, "err", err)
			continue
		}
		// only the leader writes OVSDB; the others read it, to take over without rediscovery
		m.SetWritable(c.opts.Cluster == nil || c.leadCtx != nil)
		hctx, cancel := context.WithCancel(ctx)
		hm := &hostManager{host: h, m: m, cancel: cancel, done: make(chan struct{})}
		c.hosts[id] = hm
		var both sync.WaitGroup
		both.Add(2)
		go func() {
			defer both.Done()
			if err := m.Run(hctx); err != nil {
				c.log.Error("OVSDB manager stopped", "host", h.Name, "err", err)
			}
		}()
		// Feed pushes what the manager reads into the view, and clears it from the view after its last push.
		go func() {
			defer both.Done()
			m.Feed(hctx, c.view)
		}()
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			both.Wait()
			close(hm.done)
		}()
	}
}

// updateHostDesired tells every OVSDB manager which tunnel ports its bridge needs (one per flow network the host
// has an endpoint on) and which ports to isolate from NORMAL (the destination NICs bound there). It reads each flow
// network's endpoints once and walks the destination NICs, so a pass costs little per host; a manager is told only
// when its host's desired state changed. When the store cannot be read, nothing is changed (an empty list would
// remove the host's tunnel ports).
func (c *Controller) updateHostDesired(ctx context.Context, in *flows.Input) {
	c.mu.Lock()
	hms := make(map[string]*hostManager, len(c.hosts))
	for id, hm := range c.hosts {
		hms[id] = hm
	}
	c.mu.Unlock()
	if len(hms) == 0 {
		return
	}
	networks, err := c.svc.FlowNetworks(ctx)
	if err != nil {
		c.log.Warn("OVSDB hosts not updated this pass", "err", err)
		return
	}
	tunnels := map[string][]ovsdbhost.TunnelSpec{} // by host uuid
	for _, fn := range networks {
		eps, err := c.svc.FlowEndpoints(ctx, fn.UUID)
		if err != nil {
			c.log.Warn("OVSDB hosts not updated this pass", "flow_network", fn.UUID, "err", err)
			return
		}
		for _, ep := range eps {
			if _, managed := hms[ep.HostUUID]; managed {
				tunnels[ep.HostUUID] = append(tunnels[ep.HostUUID], ovsdbhost.TunnelSpec{
					FlowNetworkUUID: fn.UUID, Encapsulation: fn.Encapsulation, LocalIP: ep.IP,
				})
			}
		}
	}
	isolated := map[string][]string{} // by host uuid: the ports of the destination NICs bound there
	seen := map[string]bool{}
	for _, s := range in.Sessions {
		if seen[s.DestinationNIC] {
			continue
		}
		seen[s.DestinationNIC] = true
		if b, ok := c.view.Binding(s.DestinationNIC); ok && b.Bound && b.PortName != "" {
			isolated[b.HostUUID] = append(isolated[b.HostUUID], b.PortName)
		}
	}
	for id, hm := range hms {
		t, iso := tunnels[id], isolated[id]
		slices.SortFunc(t, func(a, b ovsdbhost.TunnelSpec) int { return strings.Compare(a.FlowNetworkUUID, b.FlowNetworkUUID) })
		slices.Sort(iso)
		iso = slices.Compact(iso)
		if hm.sent && slices.Equal(t, hm.tunnels) && slices.Equal(iso, hm.isolated) {
			continue
		}
		if _, err := hm.m.SetDesired(t, iso); err != nil {
			c.log.Error("OVSDB desired state refused", "host", hm.host.Name, "err", err)
			continue
		}
		hm.sent, hm.tunnels, hm.isolated = true, t, iso
	}
}

// refreshHostOf asks the OVSDB manager of the host owning a datapath to re-read its interfaces.
func (c *Controller) refreshHostOf(dpid string) {
	host := c.view.HostOfDatapath(dpid)
	if host == "" {
		return
	}
	c.mu.Lock()
	hm := c.hosts[host]
	c.mu.Unlock()
	if hm != nil {
		hm.m.Refresh()
	}
}
