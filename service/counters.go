package service

import (
	"context"
	"fmt"

	"portmirror/model"
)

// CounterSource is what a Live that reads the switches' counters also offers (the controller does).
type CounterSource interface {
	// SessionCounters are the session's counters as last read from its switches.
	SessionCounters(sessionUUID string) model.SessionCounters
}

// SessionCounters are a session's counters: zero, with a zero UpdatedAt, while nothing has read them.
func (s *Service) SessionCounters(ctx context.Context, sessionUUID string) model.SessionCounters {
	if cs, ok := s.getLive().(CounterSource); ok {
		return cs.SessionCounters(sessionUUID)
	}
	return model.SessionCounters{}
}

// PortMirrorCounters is the sum of the counters of a port mirror's sessions; its UpdatedAt is the latest read.
func (s *Service) PortMirrorCounters(ctx context.Context, portMirrorUUID string) (model.SessionCounters, error) {
	sessions, err := s.Sessions(ctx, portMirrorUUID)
	if err != nil {
		return model.SessionCounters{}, fmt.Errorf("sessions of port mirror %s: %w", portMirrorUUID, err)
	}
	var sum model.SessionCounters
	for _, ses := range sessions {
		sum = sum.Add(s.SessionCounters(ctx, ses.UUID))
	}
	return sum, nil
}

// maxBandwidthLimitKbps is the highest cap: an OpenFlow meter band's rate is 32 bits of kbps.
const maxBandwidthLimitKbps = 1<<32 - 1

// checkBandwidthLimit checks a bandwidth cap given (nil: unlimited, 0).
func checkBandwidthLimit(what string, n *int) (int, error) {
	if n == nil {
		return 0, nil
	}
	if *n < 1 || int64(*n) > maxBandwidthLimitKbps {
		return 0, invalid("%s: bandwidthLimitKbps %d is outside 1..%d", what, *n, int64(maxBandwidthLimitKbps))
	}
	return *n, nil
}
