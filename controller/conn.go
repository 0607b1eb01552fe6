package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"portmirror/flows"
	"portmirror/ofwire"
)

// request is one outstanding request waiting for its reply.
type request struct {
	what   string
	mpType uint16                                  // for multipart requests
	onPart func(body []byte) error                 // for multipart requests, called from the reader
	done   chan struct{}                           // closed when msg/err are set
	msg    ofwire.Message                          // the reply
	err    error                                   // an OFPT_ERROR reply, a decode error, or disconnection
	finish func(sw *Switch, r *request, err error) // optional hook, run by the reader under sw.mu before done closes
}

// batch collects the errors of a run of pipelined flow_mods, whose xids are first .. first+len(cmds)-1.
type batch struct {
	first uint32
	cmds  []ofwire.FlowModCommand
	flows []flows.Flow
	errs  []FlowError
}

// FlowError is a flow_mod the switch refused.
type FlowError struct {
	DatapathID string
	Command    ofwire.FlowModCommand
	Flow       flows.Flow
	Err        ofwire.ErrorMsg // the switch's OFPT_ERROR: Type and Code
}

func (e FlowError) Error() string {
	return fmt.Sprintf("switch %s refused %s of flow %q: %v", e.DatapathID, e.Command, e.Flow.String(), e.Err)
}

// allocXids reserves n consecutive transaction ids and returns the first.
func (sw *Switch) allocXids(n int) uint32 {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	x := sw.nextXid
	sw.nextXid += uint32(n)
	return x
}

// writeMsg appends messages built by build to the buffered writer and flushes.
func (sw *Switch) writeMsg(build func(b []byte) []byte) error {
	sw.wmu.Lock()
	defer sw.wmu.Unlock()
	if err := sw.conn.SetWriteDeadline(time.Now().Add(sw.srv.cfg.WriteTimeout)); err != nil {
		return err
	}
	sw.scratch = build(sw.scratch[:0])
	bw := sw.writer()
	if _, err := bw.Write(sw.scratch); err != nil {
		return sw.writeFailed(err)
	}
	if err := bw.Flush(); err != nil {
		return sw.writeFailed(err)
	}
	sw.releaseWriter()
	return nil
}

func (sw *Switch) writeFailed(err error) error {
	err = fmt.Errorf("writing to switch %s at %s: %w", sw.dpid, sw.remote, err)
	sw.close(err)
	return err
}

// register adds r under xid; it fails when the connection is closed.
func (sw *Switch) register(xid uint32, r *request) error {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if sw.err != nil {
		return fmt.Errorf("%w: %w", ErrDisconnected, sw.err)
	}
	sw.pending[xid] = r
	return nil
}

// complete removes the request of xid and finishes it; the caller holds sw.mu.
func (sw *Switch) completeLocked(xid uint32, m ofwire.Message, err error) {
	r := sw.pending[xid]
	if r == nil {
		return
	}
	delete(sw.pending, xid)
	r.msg, r.err = m, err
	if r.finish != nil {
		r.finish(sw, r, err)
	}
	close(r.done)
}

func (sw *Switch) deliver(xid uint32, m ofwire.Message, err error) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	sw.completeLocked(xid, m, err)
}

// deliverError routes an OFPT_ERROR to the request or flow_mod batch whose xid it carries.
func (sw *Switch) deliverError(xid uint32, e ofwire.ErrorMsg) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if r := sw.pending[xid]; r != nil {
		sw.completeLocked(xid, ofwire.Message{}, fmt.Errorf("switch %s refused %s: %w", sw.dpid, r.what, e))
		return
	}
	for _, b := range sw.batches {
		if i := xid - b.first; i < uint32(len(b.cmds)) {
			b.errs = append(b.errs, FlowError{DatapathID: sw.dpid, Command: b.cmds[i], Flow: b.flows[i], Err: e})
			return
		}
	}
	sw.log.Warn("openflow error for no outstanding request", "dpid", sw.dpid, "remote", sw.remote, "xid", xid, "err", e)
}

// deliverPart hands one multipart reply part to its request; the last part completes it.
func (sw *Switch) deliverPart(xid uint32, mp ofwire.MultipartReply) error {
	sw.mu.Lock()
	r := sw.pending[xid]
	sw.mu.Unlock()
	if r == nil || r.onPart == nil {
		sw.log.Debug("ignoring unsolicited multipart reply", "dpid", sw.dpid, "xid", xid, "type", mp.Type)
		return nil
	}
	if mp.Type != r.mpType {
		return fmt.Errorf("%w: multipart reply of type %d to a request of type %d", ofwire.ErrMalformed, mp.Type, r.mpType)
	}
	if err := r.onPart(mp.Body); err != nil {
		// A reply we cannot decode is a fault of the switch: the request fails and the connection closes.
		sw.deliver(xid, ofwire.Message{}, err)
		return err
	}
	if !mp.More() {
		sw.deliver(xid, ofwire.Message{}, nil)
	}
	return nil
}

// failAll fails every outstanding request after the connection closed.
func (sw *Switch) failAll(err error) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	for xid := range sw.pending {
		sw.completeLocked(xid, ofwire.Message{}, err)
	}
	sw.batches = nil
}

// wait waits for r, the context, the request timeout or the connection, whichever ends first.
func (sw *Switch) wait(ctx context.Context, xid uint32, r *request) error {
	t := time.NewTimer(sw.srv.cfg.RequestTimeout)
	defer t.Stop()
	var err error
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		err = fmt.Errorf("switch %s: %s: %w", sw.dpid, r.what, ctx.Err())
	case <-t.C:
		err = fmt.Errorf("switch %s: %s: no reply within %s", sw.dpid, r.what, sw.srv.cfg.RequestTimeout)
	case <-sw.done:
		// The reader fails every pending request as it exits.
		<-r.done
		return r.err
	}
	sw.deliver(xid, ofwire.Message{}, err)
	<-r.done
	return r.err
}

// Barrier sends a barrier request and waits for its reply.
func (sw *Switch) Barrier(ctx context.Context) error {
	xid := sw.allocXids(1)
	r := &request{what: "barrier", done: make(chan struct{})}
	if err := sw.register(xid, r); err != nil {
		return err
	}
	if err := sw.writeMsg(func(b []byte) []byte { return ofwire.AppendEmpty(b, ofwire.TypeBarrierRequest, xid) }); err != nil {
		sw.deliver(xid, ofwire.Message{}, err)
	}
	return sw.wait(ctx, xid, r)
}

// maxDumpBytes bounds the flow-stats a switch may send in reply to one request.
const maxDumpBytes = 512 << 20

// DumpFlowStats reads every flow whose cookie matches cookie under mask, in every table.
func (sw *Switch) DumpFlowStats(ctx context.Context, cookie, mask uint64) ([]ofwire.FlowStat, error) {
	var out []ofwire.FlowStat
	total := 0
	xid := sw.allocXids(1)
	r := &request{what: "flow-stats request", mpType: ofwire.MultipartFlow, done: make(chan struct{})}
	r.onPart = func(body []byte) error {
		total += len(body)
		if total > maxDumpBytes {
			return fmt.Errorf("flow-stats reply exceeds %d bytes", maxDumpBytes)
		}
		st, err := ofwire.DecodeFlowStats(body)
		if err != nil {
			return err
		}
		out = append(out, st...)
		return nil
	}
	if err := sw.register(xid, r); err != nil {
		return nil, err
	}
	if err := sw.writeMsg(func(b []byte) []byte { return ofwire.AppendFlowStatsRequest(b, xid, cookie, mask) }); err != nil {
		sw.deliver(xid, ofwire.Message{}, err)
	}
	if err := sw.wait(ctx, xid, r); err != nil {
		return nil, err
	}
	return out, nil
}

// DumpFlows reads the flows whose cookie matches cookie under mask, as flows.Flow. A flow holding actions or
// instructions flows.Action cannot express comes back with an ofwire.ActUnknown action, so it differs from any
// desired flow. A flow whose match flows.Match cannot express is deleted here (strictly, by its exact wire match,
// then confirmed with a barrier) and not returned: no desired flow can ever be equal to it.
func (sw *Switch) DumpFlows(ctx context.Context, cookie, mask uint64) ([]flows.Flow, error) {
	st, err := sw.DumpFlowStats(ctx, cookie, mask)
	if err != nil {
		return nil, err
	}
	out := make([]flows.Flow, 0, len(st))
	var foreign []ofwire.FlowStat
	for _, s := range st {
		if s.Foreign != "" {
			foreign = append(foreign, s)
			continue
		}
		out = append(out, s.Flow)
	}
	if len(foreign) > 0 {
		if err := sw.deleteForeign(ctx, foreign); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (sw *Switch) deleteForeign(ctx context.Context, foreign []ofwire.FlowStat) error {
	first := sw.allocXids(len(foreign))
	var encErr error
	err := sw.writeMsg(func(b []byte) []byte {
		for i, s := range foreign {
			sw.log.Warn("deleting a flow under the controller's cookie with a match it cannot express", "dpid", sw.dpid,
				"table", s.Flow.Table, "priority", s.Flow.Priority, "cookie", fmt.Sprintf("%#x", s.Flow.Cookie), "fields", s.Foreign)
			var e error
			if b, e = ofwire.AppendDeleteStrictRaw(b, first+uint32(i), s.Flow.Table, s.Flow.Priority, s.Flow.Cookie, s.RawMatch); e != nil {
				encErr = e
			}
		}
		return b
	})
	if err == nil {
		err = encErr
	}
	if err != nil {
		return fmt.Errorf("deleting foreign flows on switch %s: %w", sw.dpid, err)
	}
	return sw.Barrier(ctx)
}

// flowsPerLock is how many flow_mods Apply encodes while holding the write lock, so that echo replies and other
// requests interleave with a long batch.
const flowsPerLock = 256

// Apply sends deletes (DELETE_STRICT), then modifies (MODIFY_STRICT), then adds (ADD) as one pipelined run of
// flow_mods followed by one barrier, and waits for the barrier reply. refused lists the flow_mods the switch
// answered with an OFPT_ERROR (the switch sends those before the barrier reply). err is set when the run could
// not be confirmed (connection lost, timeout, cancelled) or when a flow cannot be encoded, in which case nothing
// is sent.
func (sw *Switch) Apply(ctx context.Context, adds, modifies, deletes []flows.Flow) (refused []FlowError, err error) {
	n := len(adds) + len(modifies) + len(deletes)
	b := &batch{cmds: make([]ofwire.FlowModCommand, 0, n), flows: make([]flows.Flow, 0, n)}
	for _, part := range []struct {
		cmd ofwire.FlowModCommand
		fl  []flows.Flow
	}{{ofwire.FlowDeleteStrict, deletes}, {ofwire.FlowModifyStrict, modifies}, {ofwire.FlowAdd, adds}} {
		for _, f := range part.fl {
			b.cmds = append(b.cmds, part.cmd)
			b.flows = append(b.flows, f)
		}
	}
	// Validate everything before sending anything.
	var scratch []byte
	for i, f := range b.flows {
		if scratch, err = ofwire.AppendFlowMod(scratch[:0], 0, b.cmds[i], f); err != nil {
			return nil, fmt.Errorf("switch %s: %s flow %d: %w", sw.dpid, b.cmds[i], i, err)
		}
	}
	if n == 0 {
		return nil, nil
	}
	b.first = sw.allocXids(n + 1)
	barrierXid := b.first + uint32(n)
	r := &request{what: "barrier", done: make(chan struct{}), finish: func(sw *Switch, _ *request, _ error) {
		sw.batches = slices.DeleteFunc(sw.batches, func(x *batch) bool { return x == b })
	}}
	sw.mu.Lock()
	if sw.err != nil {
		err := sw.err
		sw.mu.Unlock()
		return nil, fmt.Errorf("%w: %w", ErrDisconnected, err)
	}
	sw.batches = append(sw.batches, b)
	sw.pending[barrierXid] = r
	sw.mu.Unlock()
	if err := sw.writeFlowMods(ctx, b); err != nil {
		sw.deliver(barrierXid, ofwire.Message{}, err)
	} else if err := sw.writeMsg(func(buf []byte) []byte { return ofwire.AppendEmpty(buf, ofwire.TypeBarrierRequest, barrierXid) }); err != nil {
		sw.deliver(barrierXid, ofwire.Message{}, err)
	}
	err = sw.wait(ctx, barrierXid, r)
	sw.mu.Lock()
	refused = b.errs
	sw.mu.Unlock()
	return refused, err
}

// writeFlowMods writes a batch's flow_mods straight into the buffered writer, flushing only when the buffer fills
// (bufio) and at the end, so that many flow_mods share one syscall.
func (sw *Switch) writeFlowMods(ctx context.Context, b *batch) error {
	for start := 0; start < len(b.cmds); start += flowsPerLock {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("switch %s: flow_mods cancelled after %d of %d: %w", sw.dpid, start, len(b.cmds), err)
		}
		end := min(start+flowsPerLock, len(b.cmds))
		if err := sw.writeChunk(b, start, end, end == len(b.cmds)); err != nil {
			return err
		}
	}
	return nil
}

func (sw *Switch) writeChunk(b *batch, start, end int, flush bool) error {
	sw.wmu.Lock()
	defer sw.wmu.Unlock()
	if err := sw.conn.SetWriteDeadline(time.Now().Add(sw.srv.cfg.WriteTimeout)); err != nil {
		return err
	}
	bw := sw.writer()
	for i := start; i < end; i++ {
		buf := bw.AvailableBuffer()
		buf, err := ofwire.AppendFlowMod(buf, b.first+uint32(i), b.cmds[i], b.flows[i])
		if err != nil {
			return err // validated before; cannot happen
		}
		if _, err := bw.Write(buf); err != nil {
			return sw.writeFailed(err)
		}
	}
	if flush {
		if err := bw.Flush(); err != nil {
			return sw.writeFailed(err)
		}
		sw.releaseWriter()
	}
	return nil
}

// DeleteByCookie deletes every flow, in every table, whose cookie matches cookie under mask, and confirms with a
// barrier.
func (sw *Switch) DeleteByCookie(ctx context.Context, cookie, mask uint64) error {
	xid := sw.allocXids(1)
	r := &request{what: fmt.Sprintf("delete of cookie %#x/%#x", cookie, mask), done: make(chan struct{})}
	// The delete has no reply of its own: register it so an error reaches us, and complete it at the barrier.
	if err := sw.register(xid, r); err != nil {
		return err
	}
	if err := sw.writeMsg(func(b []byte) []byte { return ofwire.AppendDeleteByCookie(b, xid, cookie, mask) }); err != nil {
		sw.deliver(xid, ofwire.Message{}, err)
		return err
	}
	berr := sw.Barrier(ctx)
	// The barrier reply came after any error for the delete; no error means success.
	sw.deliver(xid, ofwire.Message{}, nil)
	<-r.done
	return errors.Join(r.err, berr)
}
