package controller

import (
	"context"
	"errors"
	"fmt"

	"portmirror/service"
	"portmirror/topology"
)

// updateInventory brings the view's inventory up to date before a pass: the whole of it after a change the feed
// could not name (the first pass, an overflow), otherwise only the hosts, VMs and NICs that changed, so that one
// VM's change recomputes only its NICs' bindings.
func (c *Controller) updateInventory(ctx context.Context) error {
	c.mu.Lock()
	reload := c.reloadInventory
	c.reloadInventory = false
	c.mu.Unlock()
	inc := c.inc
	if reload {
		inv, err := topology.LoadInventory(ctx, c.svc)
		if err != nil {
			c.mu.Lock()
			c.reloadInventory = true
			c.mu.Unlock()
			return fmt.Errorf("load inventory: %w", err)
		}
		c.view.SetInventory(inv)
		clear(inc.pendHosts)
		clear(inc.pendVMs)
		clear(inc.pendNics)
		c.syncHosts(ctx, inv.Hosts)
		c.forgetUnclaimed()
		return nil
	}
	if len(inc.pendHosts)+len(inc.pendVMs)+len(inc.pendNics) == 0 {
		return nil
	}
	d, err := c.inventoryDelta(ctx)
	if err != nil {
		return err // the pending changes stay noted: the next pass tries again
	}
	c.view.ApplyInventory(d)
	clear(inc.pendHosts)
	clear(inc.pendVMs)
	clear(inc.pendNics)
	if len(d.Hosts)+len(d.GoneHosts) > 0 {
		c.syncHosts(ctx, c.view.Hosts())
		c.forgetUnclaimed()
	}
	return nil
}

// inventoryDelta reads the hosts, VMs and NICs the store's changes named.
func (c *Controller) inventoryDelta(ctx context.Context) (topology.InventoryDelta, error) {
	inc := c.inc
	var d topology.InventoryDelta
	gone := func(err error) bool {
		var se *service.Error
		return errors.As(err, &se) && se.Code == service.CodeNotFound
	}
	for id := range inc.pendHosts {
		h, err := c.svc.Host(ctx, id)
		switch {
		case gone(err):
			d.GoneHosts = append(d.GoneHosts, id)
		case err != nil:
			return d, fmt.Errorf("host %s: %w", id, err)
		default:
			d.Hosts = append(d.Hosts, h)
		}
	}
	for id := range inc.pendVMs {
		vm, err := c.svc.VmInstance(ctx, id)
		switch {
		case gone(err):
			d.GoneVMs = append(d.GoneVMs, id)
		case err != nil:
			return d, fmt.Errorf("VM %s: %w", id, err)
		default:
			d.VMs = append(d.VMs, vm)
		}
	}
	for id := range inc.pendNics {
		n, err := c.svc.VmNic(ctx, id)
		switch {
		case gone(err):
			d.GoneNics = append(d.GoneNics, id)
		case err != nil:
			return d, fmt.Errorf("NIC %s: %w", id, err)
		default:
			d.Nics = append(d.Nics, n)
		}
	}
	return d, nil
}
