package controller

import (
	"context"
	"errors"
	"fmt"

	"portmirror/flows"
	"portmirror/ofwire"
)

// Meters are reconciled like flows: read back (METER_CONFIG) after every (re)connect, diffed against the bridge's
// desired meters (flows.Plan.Meters), then created and changed before the flow changes (a flow naming a missing
// meter is refused) and deleted after them (OVS deletes the flows that use a meter it deletes). Meters carry no
// cookie: the controller treats as its own every meter shaped as it makes them (kbps, burst and stats flags, one
// drop band) and leaves any other alone. The flush trap (OVS drops every flow and meter when a bridge gets its
// first controller) needs nothing more: the read-back after the connection sees the bridge as it is.

// meterMultipart reads a METER or METER_CONFIG multipart reply for every meter.
func (sw *Switch) meterMultipart(ctx context.Context, mpType uint16, what string, onPart func([]byte) error) error {
	xid := sw.allocXids(1)
	total := 0
	r := &request{what: what, mpType: mpType, done: make(chan struct{}), onPart: func(body []byte) error {
		total += len(body)
		if total > maxDumpBytes {
			return fmt.Errorf("%s reply exceeds %d bytes", what, maxDumpBytes)
		}
		return onPart(body)
	}}
	if err := sw.register(xid, r); err != nil {
		return err
	}
	if err := sw.writeMsg(func(b []byte) []byte { return ofwire.AppendMeterRequest(b, xid, mpType, ofwire.MeterAll) }); err != nil {
		sw.deliver(xid, ofwire.Message{}, err)
	}
	return sw.wait(ctx, xid, r)
}

// DumpMeters reads every meter's configuration.
func (sw *Switch) DumpMeters(ctx context.Context) ([]ofwire.MeterConfig, error) {
	var out []ofwire.MeterConfig
	err := sw.meterMultipart(ctx, ofwire.MultipartMeterConfig, "meter-config request", func(body []byte) error {
		cs, err := ofwire.DecodeMeterConfigs(body)
		out = append(out, cs...)
		return err
	})
	return out, err
}

// MeterStats reads every meter's statistics.
func (sw *Switch) MeterStats(ctx context.Context) ([]ofwire.MeterStats, error) {
	var out []ofwire.MeterStats
	err := sw.meterMultipart(ctx, ofwire.MultipartMeter, "meter-stats request", func(body []byte) error {
		st, err := ofwire.DecodeMeterStats(body)
		out = append(out, st...)
		return err
	})
	return out, err
}

// OurMeters reads the meters shaped as the controller makes them. A switch that refuses the request (it has no
// meters) holds none.
func (sw *Switch) OurMeters(ctx context.Context) ([]flows.Meter, error) {
	cs, err := sw.DumpMeters(ctx)
	if err != nil {
		var e ofwire.ErrorMsg
		if errors.As(err, &e) {
			return nil, nil
		}
		return nil, err
	}
	var out []flows.Meter
	for _, c := range cs {
		if m, ok := c.Meter(); ok {
			out = append(out, m)
		}
	}
	return out, nil
}

// MeterError is a meter_mod the switch refused.
type MeterError struct {
	DatapathID string
	Command    ofwire.MeterModCommand
	Meter      flows.Meter
	Err        ofwire.ErrorMsg
}

func (e MeterError) Error() string {
	return fmt.Sprintf("switch %s refused meter %s of meter %d (%d kbps): %v", e.DatapathID, e.Command, e.Meter.ID, e.Meter.Kbps, e.Err)
}

// ApplyMeters sends meter_mods (command cmd for each meter) and a barrier, and returns those the switch refused.
func (sw *Switch) ApplyMeters(ctx context.Context, cmd ofwire.MeterModCommand, ms []flows.Meter) ([]MeterError, error) {
	if len(ms) == 0 {
		return nil, nil
	}
	var scratch []byte
	for _, m := range ms {
		var err error
		if scratch, err = ofwire.AppendMeterMod(scratch[:0], 0, cmd, m); err != nil {
			return nil, fmt.Errorf("switch %s: meter %s %d: %w", sw.dpid, cmd, m.ID, err)
		}
	}
	first := sw.allocXids(len(ms))
	reqs := make([]*request, len(ms))
	for i := range ms {
		reqs[i] = &request{what: fmt.Sprintf("meter %s of meter %d", cmd, ms[i].ID), done: make(chan struct{})}
		if err := sw.register(first+uint32(i), reqs[i]); err != nil {
			for j := range i {
				sw.deliver(first+uint32(j), ofwire.Message{}, err)
			}
			return nil, err
		}
	}
	err := sw.writeMsg(func(b []byte) []byte {
		for i, m := range ms {
			b, _ = ofwire.AppendMeterMod(b, first+uint32(i), cmd, m)
		}
		return b
	})
	if err == nil {
		// The switch answers in order: every refusal comes before the barrier's reply.
		err = sw.Barrier(ctx)
	}
	var refused []MeterError
	for i, r := range reqs {
		select {
		case <-r.done:
		default:
			sw.deliver(first+uint32(i), ofwire.Message{}, nil) // accepted (no reply), or no answer if err is set
		}
		var e ofwire.ErrorMsg
		if errors.As(r.err, &e) {
			refused = append(refused, MeterError{DatapathID: sw.dpid, Command: cmd, Meter: ms[i], Err: e})
		}
	}
	if err != nil {
		return refused, fmt.Errorf("switch %s: meter changes not confirmed: %w", sw.dpid, err)
	}
	return refused, nil
}
