package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"portmirror/ofwire"
)

// With several controllers, one programs the switches: the cluster's leader, as each switch's OpenFlow MASTER
// with its Raft term as generation id. The switch keeps the highest generation id it has seen and refuses a
// MASTER request with an older one, so a deposed leader that still believes it leads cannot take a switch back.
// The others are SLAVE: the switch refuses their flow_mods, and still sends them port status, so that they keep
// a current view and a takeover needs no rediscovery.

// errNotLeading stops a bridge's programming: this controller does not lead (any more).
var errNotLeading = errors.New("this controller does not lead the cluster")

// leading reports whether this controller programs switches now, the term, and the context to do it under.
func (c *Controller) leading() (bool, uint64, context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leadCtx == nil {
		return false, c.leadTerm, nil
	}
	return true, c.leadTerm, c.leadCtx
}

// leadershipChanged follows the cluster: on taking over, every bridge is read back and reconciled (a takeover
// where nothing changed sends no flow_mod); on losing the lead, programming stops at once, every switch is asked
// to make this controller SLAVE, and OVSDB is only read.
func (c *Controller) leadershipChanged(ctx context.Context) {
	if c.opts.Cluster == nil {
		c.setHostsWritable(true)
		return
	}
	lead, term := c.opts.Cluster.Leading()
	c.mu.Lock()
	was, wasTerm := c.leadCtx != nil, c.leadTerm
	if was && (!lead || term != wasTerm) {
		c.leadCancel()
		c.leadCtx, c.leadCancel = nil, nil
	}
	c.leadTerm = term
	if lead && c.leadCtx == nil {
		c.leadCtx, c.leadCancel = context.WithCancel(ctx)
	}
	c.mu.Unlock()

	switch {
	case lead && (!was || term != wasTerm):
		c.log.Info("leading: taking every switch over as MASTER", "term", term)
		c.mu.Lock()
		for _, b := range c.bridges {
			b.mu.Lock()
			b.known = false // read back what the previous leader left
			b.confirmed = nil
			b.mu.Unlock()
		}
		c.mu.Unlock()
		for _, sw := range c.srv.Switches() {
			c.view.MarkDirty(sw.DatapathID())
			// MASTER at once, every switch concurrently: a takeover of many bridges must not wait for the pass and
			// the read-back of the bridges before it (programming them still asks again if this did not take)
			c.promote(sw, term)
		}
		c.updateTargets()
		c.setHostsWritable(true)
		c.trigger()
	case !lead && was:
		c.log.Warn("not leading any more: programming stopped, asking every switch for the SLAVE role", "term", term)
		c.setHostsWritable(false)
		for _, sw := range c.srv.Switches() {
			c.demote(sw, term)
		}
	case !lead:
		c.setHostsWritable(false)
	}
}

// demote asks a switch, in the background, to make this controller SLAVE (it stops receiving packet-ins and may
// not change the switch).
func (c *Controller) demote(sw *Switch, term uint64) {
	c.mu.Lock()
	ctx := c.runCtx
	c.mu.Unlock()
	if ctx == nil {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		err := sw.RequestRole(rctx, ofwire.RoleSlave, term)
		var e ofwire.ErrorMsg
		if errors.As(err, &e) && e.Type == ofwire.ErrTypeRoleRequestFailed && e.Code == ofwire.RoleErrStale {
			// The switch knows a later term than this controller does: a member restarted after a failover knows
			// the cluster's term only from the leader's first heartbeat, and a bridge may connect before that. The
			// refusal changed nothing, and a new connection is EQUAL (it could change flows, and it gets
			// packet-ins), so ask again with the switch's own election id, which it cannot find stale.
			var gen uint64
			if gen, err = sw.ElectionID(rctx); err == nil {
				c.log.Debug("switch knows a later term; asking for SLAVE with its election id", "datapath", sw.DatapathID(),
					"term", term, "election_id", gen)
				err = sw.RequestRole(rctx, ofwire.RoleSlave, gen)
			}
		}
		if err != nil {
			c.log.Warn("asking for the SLAVE role failed", "datapath", sw.DatapathID(), "term", term, "err", err)
		}
	}()
}

// promote asks a switch, in the background, to make this controller MASTER in term, while it still leads in it.
func (c *Controller) promote(sw *Switch, term uint64) {
	c.mu.Lock()
	ctx := c.runCtx
	c.mu.Unlock()
	if ctx == nil {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		if lead, t, _ := c.leading(); !lead || t != term {
			return
		}
		if lead, t := c.opts.Cluster.Leading(); !lead || t != term {
			return
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := c.ensureMaster(rctx, sw, term); err != nil {
			c.log.Debug("taking a switch over as MASTER failed; programming it will ask again", "datapath", sw.DatapathID(),
				"term", term, "err", err)
		}
	}()
}

// ensureMaster makes this controller the switch's MASTER for the term, unless it already is.
func (c *Controller) ensureMaster(ctx context.Context, sw *Switch, term uint64) error {
	if c.opts.Cluster == nil {
		return nil
	}
	if role, gen := sw.Role(); role == ofwire.RoleMaster && gen == term {
		return nil
	}
	if err := sw.RequestRole(ctx, ofwire.RoleMaster, term); err != nil {
		return fmt.Errorf("becoming MASTER of %s: %w", sw.DatapathID(), err)
	}
	c.log.Info("MASTER of switch", "datapath", sw.DatapathID(), "generation", term)
	return nil
}

// updateTargets gives OVSDB-managed bridges every member's OpenFlow target (or this controller's alone).
func (c *Controller) updateTargets() {
	targets := c.wantedTargets()
	c.mu.Lock()
	if slices.Equal(targets, c.targets) {
		c.mu.Unlock()
		return
	}
	c.targets = targets
	hms := make([]*hostManager, 0, len(c.hosts))
	for _, hm := range c.hosts {
		hms = append(hms, hm)
	}
	c.mu.Unlock()
	if len(targets) == 0 {
		return
	}
	for _, hm := range hms {
		if _, err := hm.m.SetControllerTargets(targets); err != nil {
			c.log.Error("OVSDB controller targets refused", "host", hm.host.Name, "err", err)
		}
	}
}

// wantedTargets is the controller targets of managed bridges: every member's, or this controller's alone.
func (c *Controller) wantedTargets() []string {
	if c.opts.Cluster != nil {
		if t := c.opts.Cluster.OpenFlowTargets(); len(t) > 0 {
			return t
		}
	}
	if c.opts.Advertise != "" {
		return []string{c.opts.Advertise}
	}
	return nil
}

// setHostsWritable lets the OVSDB managers write (the leader) or only read (the others).
func (c *Controller) setHostsWritable(w bool) {
	c.mu.Lock()
	hms := make([]*hostManager, 0, len(c.hosts))
	for _, hm := range c.hosts {
		hms = append(hms, hm)
	}
	c.mu.Unlock()
	for _, hm := range hms {
		hm.m.SetWritable(w)
	}
}
