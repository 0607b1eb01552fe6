package controller

import (
	"context"

	"portmirror/flows"
)

// probeRoute analyses every session for a probe, from the store and the live view as they are now, as a full pass
// does (the passes keep per-session verdicts, not a plan of every session, and their fabric and cache belong to
// the loop's goroutine): a probe is rare, and its route must match what the passes compiled. It reports false when
// the session is not one the controller compiles (unknown, or its port mirror disabled).
func (c *Controller) probeRoute(ctx context.Context, sessionUUID string) (flows.ProbeRoute, bool) {
	fab, err := c.buildFabric(ctx, c.view.Gen())
	if err != nil {
		return flows.ProbeRoute{}, false
	}
	in, _, err := c.buildInputFrom(ctx, fab)
	if err != nil {
		return flows.ProbeRoute{}, false
	}
	return flows.Analyze(in).ProbeRoute(sessionUUID)
}
