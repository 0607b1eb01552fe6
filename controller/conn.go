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
	borrow bool                                    // onPart keeps nothing of a body: the reader reads it into a buffer it reuses
	done   chan struct{}                           // closed when msg/err are set
	msg    ofwire.Message                          // the reply
	err    error                                   // an OFPT_ERROR reply, a decode error, or disconnection
	finish func(sw *Switch, r *request, err error) // optional hook, run by the reader under sw.mu before done closes
}

// batch collects the errors of a run of pipelined flow_mods, whose xids are first .. first+len(cmds)-1.
type batch struct {
	first   uint32
	cmds    []ofwire.FlowModCommand
	flows   []flows.Flow
	entries [][]byte // instead of flows: the flows as packed entries (ofwire.PackFlows), encoded without a decode
	errs    []FlowError
	idx     []int // the index in cmds of each of errs
}

// flow returns the flow of b's flow_mod i (decoding it when b holds packed entries).
func (b *batch) flow(i int) flows.Flow {
	if b.entries == nil {
		return b.flows[i]
	}
	fs, err := ofwire.UnpackFlows(b.entries[i])
	if err != nil || len(fs) != 1 {
		return flows.Flow{}
	}
	return fs[0]
}

// decoded returns b with its flows decoded, in CompareFlows order (as Diff gives adds), when it holds packed
// entries of adds (the plain path, whose order is seen by the switch's tables as it goes).
func (b *batch) decoded() (*batch, error) {
	if b.entries == nil {
		return b, nil
	}
	fs, err := unpackEntries(b.entries)
	if err != nil {
		return nil, err
	}
	return &batch{cmds: b.cmds, flows: fs}, nil
}

// without returns a batch of b's flow_mods, in order, less those at the indexes drop.
func (b *batch) without(drop []int) *batch {
	out := &batch{cmds: make([]ofwire.FlowModCommand, 0, len(b.cmds))}
	for i := range b.cmds {
		if !slices.Contains(drop, i) {
			out.cmds = append(out.cmds, b.cmds[i])
			if b.entries != nil {
				out.entries = append(out.entries, b.entries[i])
			} else {
				out.flows = append(out.flows, b.flows[i])
			}
		}
	}
	return out
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
			b.errs = append(b.errs, FlowError{DatapathID: sw.dpid, Command: b.cmds[i], Flow: b.flow(int(i)), Err: e})
			b.idx = append(b.idx, int(i))
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
	sw.srv.stats.BarriersSent.Add(1)
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
	err := sw.dumpFlowParts(ctx, cookie, mask, false, func(body []byte) error {
		st, err := ofwire.DecodeFlowStats(body)
		out = append(out, st...)
		return err
	})
	return out, err
}

// dumpFlowParts sends a flow-stats request for the flows whose cookie matches cookie under mask and hands each
// reply part's body (its flow-stats entries) to onPart, as they come, until the last.
//
// With borrow, onPart keeps nothing of a body (it is read into a buffer the reader reuses): a restart digests
// every bridge's flows, 300 MB at 10,000 bridges, without allocating them.
func (sw *Switch) dumpFlowParts(ctx context.Context, cookie, mask uint64, borrow bool, onPart func([]byte) error) error {
	total := 0
	xid := sw.allocXids(1)
	r := &request{what: "flow-stats request", mpType: ofwire.MultipartFlow, done: make(chan struct{}), borrow: borrow}
	r.onPart = func(body []byte) error {
		total += len(body)
		if total > maxDumpBytes {
			return fmt.Errorf("flow-stats reply exceeds %d bytes", maxDumpBytes)
		}
		return onPart(body)
	}
	if err := sw.register(xid, r); err != nil {
		return err
	}
	if err := sw.writeMsg(func(b []byte) []byte { return ofwire.AppendFlowStatsRequest(b, xid, cookie, mask) }); err != nil {
		sw.deliver(xid, ofwire.Message{}, err)
	}
	return sw.wait(ctx, xid, r)
}

// ReadBack reads the flows whose cookie matches cookie under mask as the switch holds them: its flow-stats
// entries, one after the other, undecoded. ofwire.SameFlowEntries compares them with the packed flows a bridge
// should hold (a storm reads back every bridge); FlowsOf decodes them when they differ.
func (sw *Switch) ReadBack(ctx context.Context, cookie, mask uint64) ([]byte, error) {
	var out []byte
	err := sw.dumpFlowParts(ctx, cookie, mask, false, func(body []byte) error {
		if out == nil {
			out = body // each message's body is its own allocation (ofwire.ReadMessage)
		} else {
			out = append(out, body...)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DumpFlows reads the flows whose cookie matches cookie under mask, as flows.Flow (FlowsOf).
func (sw *Switch) DumpFlows(ctx context.Context, cookie, mask uint64) ([]flows.Flow, error) {
	entries, err := sw.ReadBack(ctx, cookie, mask)
	if err != nil {
		return nil, err
	}
	return sw.FlowsOf(ctx, entries)
}

// FlowsOf decodes flow-stats entries read back from the switch as flows.Flow. A flow holding actions or
// instructions flows.Action cannot express comes back with an ofwire.ActUnknown action, so it differs from any
// desired flow. A flow whose match flows.Match cannot express is deleted here (strictly, by its exact wire match,
// then confirmed with a barrier) and not returned: no desired flow can ever be equal to it.
func (sw *Switch) FlowsOf(ctx context.Context, entries []byte) ([]flows.Flow, error) {
	st, err := ofwire.DecodeFlowStats(entries)
	if err != nil {
		return nil, fmt.Errorf("flow-stats reply: %w", err)
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

// Apply sends deletes (DELETE_STRICT), then modifies (MODIFY_STRICT), then adds (ADD), pipelined, and waits until
// the switch confirms them. Where the switch supports bundles (OVS's ONF extension to OpenFlow 1.3) they go in one
// atomic, ordered bundle: the switch applies all of them at once, so a frame never meets half of a change (no
// copy missed or doubled while sessions change). When the switch refuses the commit because of one flow_mod it
// names (OVS sends that flow_mod's error, then BUNDLE_MSG_FAILED for the commit), that flow_mod is left out and
// the rest sent again as a new atomic bundle, up to maxBundleRetries times. Without bundles, and when the switch
// refuses a commit without naming a flow_mod (or names too many), they go as plain flow_mods followed by one
// barrier, which applies every flow_mod the switch accepts.
// refused lists the flow_mods the switch answered with an OFPT_ERROR; the others are applied. err is set when the
// change could not be confirmed (connection lost, timeout, cancelled) or when a flow cannot be encoded, in which
// case nothing is sent.
func (sw *Switch) Apply(ctx context.Context, adds, modifies, deletes []flows.Flow) (refused []FlowError, err error) {
	n := len(adds) + len(modifies) + len(deletes)
	cmds := make([]ofwire.FlowModCommand, 0, n)
	var fl []flows.Flow
	for _, part := range []struct {
		cmd ofwire.FlowModCommand
		fl  []flows.Flow
	}{{ofwire.FlowDeleteStrict, deletes}, {ofwire.FlowModifyStrict, modifies}, {ofwire.FlowAdd, adds}} {
		for range part.fl {
			cmds = append(cmds, part.cmd)
		}
		switch {
		case len(part.fl) == n:
			fl = part.fl // one kind of change (a bulk enable: 100k adds): no copy of the flows, which are only read
		case len(part.fl) > 0:
			if fl == nil {
				fl = make([]flows.Flow, 0, n)
			}
			fl = append(fl, part.fl...)
		}
	}
	// Validate everything before sending anything.
	var scratch []byte
	for i, f := range fl {
		if scratch, err = ofwire.AppendFlowMod(scratch[:0], 0, cmds[i], f); err != nil {
			return nil, fmt.Errorf("switch %s: %s flow %d: %w", sw.dpid, cmds[i], i, err)
		}
	}
	if n == 0 {
		return nil, nil
	}
	return sw.applyBatch(ctx, &batch{cmds: cmds, flows: fl})
}

// ApplyAdds is Apply with adds alone, given as packed entries (ofwire.PackedEntries of flows PackFlows packed):
// sent as a bundle, each flow_mod is built from its entry's bytes, with no decode and no encode of the flows (a
// bridge programmed from nothing: a bulk enable adds a hundred thousand). A switch that takes no bundle gets them
// decoded, plain, in Diff's order.
func (sw *Switch) ApplyAdds(ctx context.Context, entries [][]byte) ([]FlowError, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	cmds := make([]ofwire.FlowModCommand, len(entries)) // all FlowAdd (0)
	return sw.applyBatch(ctx, &batch{cmds: cmds, entries: entries})
}

// applyBatch sends b as bundles, or plain when the switch takes none or refuses them.
func (sw *Switch) applyBatch(ctx context.Context, b *batch) (refused []FlowError, err error) {
	if !sw.noBundles.Load() {
		var done bool
		if b, refused, done, err = sw.applyBundles(ctx, b); done || err != nil {
			return refused, err
		}
	}
	st := &sw.srv.stats
	st.PlainRuns.Add(1)
	sw.countSent(b)
	plain, err := b.decoded()
	if err != nil {
		return refused, fmt.Errorf("switch %s: %w", sw.dpid, err)
	}
	more, err := sw.applyPlain(ctx, &batch{cmds: plain.cmds, flows: plain.flows})
	return append(refused, more...), err
}

// maxBundleRetries bounds how many times one change is sent again as a bundle, each time without the flow_mods
// the switch refused in the previous one; a switch that refuses more of them gets them plain, one by one.
const maxBundleRetries = 4

// applyBundles sends b as atomic bundles until one is committed (done), leaving out, after each commit the switch
// refuses, the flow_mods it named. When bundles cannot do it (the switch does not know them, or refused a commit
// without naming a flow_mod, or too many times), it returns done false, the flow_mods still to apply, and those
// refused so far; the caller sends them plain.
func (sw *Switch) applyBundles(ctx context.Context, b *batch) (rest *batch, refused []FlowError, done bool, err error) {
	st := &sw.srv.stats
	for attempt := 0; ; attempt++ {
		sw.countSent(b)
		more, outcome, cerr, err := sw.applyBundle(ctx, b)
		if err != nil {
			return nil, refused, false, err
		}
		switch outcome {
		case bundleCommitted:
			st.BundlesCommitted.Add(1)
			return nil, append(refused, more...), true, nil
		case bundleUnsupported:
			sw.noBundles.Store(true)
			sw.log.Info("switch does not support bundles: its flow changes are sent as plain flow_mods, not atomically",
				"dpid", sw.dpid, "remote", sw.remote)
			return b, refused, false, nil
		}
		st.BundlesRefused.Add(1)
		// Nothing was applied. A switch that names the flow_mod its commit failed on (OVS: that flow_mod's error,
		// then BUNDLE_MSG_FAILED) gets the others again, atomically; any flow_mod refused when it was added goes too,
		// as it would be refused again.
		var e ofwire.ErrorMsg
		named := errors.As(cerr, &e) && e.Type == ofwire.ErrTypeExperimenter && e.Code == ofwire.BundleErrMsgFailed && len(more) > 0
		if !named || attempt == maxBundleRetries {
			st.BundleFallbacks.Add(1)
			// Apply what the switch accepts, so that a refused flow holds back only the sessions it concerns, and
			// learn which flows it refuses.
			sw.log.Info("switch refused a bundle: sending its flow_mods one by one", "dpid", sw.dpid, "flow_mods", len(b.cmds),
				"commit_error", cerr, "named", len(more), "attempt", attempt+1, "first_refusal", firstRefusal(more))
			return b, refused, false, nil
		}
		refused = append(refused, more...)
		b = b.without(b.idx)
		sw.log.Info("switch refused a bundle at commit: sending it again without the flow_mods it named", "dpid", sw.dpid,
			"flow_mods", len(b.cmds), "left_out", len(more), "attempt", attempt+1, "first_refusal", firstRefusal(more))
		if len(b.cmds) == 0 {
			return nil, refused, true, nil
		}
		st.BundleRetries.Add(1)
	}
}

// countSent counts b's flow_mods as sent.
func (sw *Switch) countSent(b *batch) {
	var by [ofwire.FlowDeleteStrict + 1]uint64
	for _, c := range b.cmds {
		by[c]++
	}
	for c, k := range by {
		if k > 0 {
			sw.srv.stats.FlowMods[c].Add(k)
		}
	}
}

func firstRefusal(refused []FlowError) string {
	if len(refused) == 0 {
		return ""
	}
	return refused[0].Error()
}

// bundleOutcome is how a bundle ended when its commit was answered.
type bundleOutcome int

const (
	bundleCommitted   bundleOutcome = iota // applied, except any flow_mod the switch refused on adding it
	bundleRefused                          // the commit failed: nothing was applied
	bundleUnsupported                      // the switch does not know the extension: nothing was applied
)

// applyBundle sends b as one atomic, ordered bundle (open, one add per flow_mod, commit) in one pipelined run and
// waits for the commit's answer. The first bundles of a connection are followed by a barrier in the same run,
// and it is the barrier's reply that is waited for: the switch answers in order, so by then it has answered the
// open and the commit too, unless it ignores experimenter messages altogether, which counts as not supporting
// bundles. Once a commit has been answered with its reply, in order, before the barrier's, the switch has proved
// that it honours bundles: a later bundle is confirmed by its commit reply alone (OVS applies every message of
// the bundle before it answers the commit, and answers the adds before the commit), and needs no barrier.
// Like OVS, a flow_mod refused when it is added is left out and the rest committed; a commit that fails applies
// nothing, and cerr is the switch's answer to it. err is set only when the answers could not be had.
func (sw *Switch) applyBundle(ctx context.Context, b *batch) (refused []FlowError, outcome bundleOutcome, cerr, err error) {
	n := len(b.cmds)
	fenced := !sw.bundlesProven.Load()
	open := sw.allocXids(n + 3)
	b.first, b.errs, b.idx = open+1, nil, nil
	commit := open + uint32(n) + 1
	last := commit
	bundleID := open
	const flags = ofwire.BundleAtomic | ofwire.BundleOrdered
	ro := &request{what: "bundle open", done: make(chan struct{})}
	rc := &request{what: "bundle commit", done: make(chan struct{})}
	reqs := map[uint32]*request{open: ro, commit: rc}
	enc := flowModEncoder{
		flow: func(dst []byte, xid uint32, cmd ofwire.FlowModCommand, f flows.Flow) ([]byte, error) {
			return ofwire.AppendBundleFlowMod(dst, xid, bundleID, flags, cmd, f)
		},
		entry: func(dst []byte, xid uint32, cmd ofwire.FlowModCommand, e []byte) ([]byte, error) {
			return ofwire.AppendBundleFlowModEntry(dst, xid, bundleID, flags, cmd, e)
		},
	}
	after := ofwire.AppendBundleControl(nil, commit, bundleID, ofwire.BundleCommitRequest, flags)
	if fenced {
		last = commit + 1
		reqs[last] = &request{what: "barrier", done: make(chan struct{})}
		after = ofwire.AppendEmpty(after, ofwire.TypeBarrierRequest, last)
		sw.srv.stats.BarriersSent.Add(1)
	}
	refused, berr := sw.runBatch(ctx, b, reqs, last, enc, ofwire.AppendBundleControl(nil, open, bundleID, ofwire.BundleOpenRequest, flags), after)
	var answer ofwire.ErrorMsg
	if !fenced && errors.As(berr, &answer) {
		berr = nil // the switch answered the commit, with an error
	}
	// Whatever the open and the commit have not been answered with by now, they never will be.
	unanswered := berr
	if unanswered == nil {
		unanswered = errors.New("no answer before the barrier reply: the switch ignores experimenter messages")
	}
	sw.deliver(commit, ofwire.Message{}, unanswered)
	sw.deliver(open, ofwire.Message{}, unanswered)
	if berr != nil {
		return nil, 0, nil, berr
	}
	oerr, cerr := ro.err, rc.err
	switch {
	case fenced && (oerr == unanswered || bundlesRefused(oerr)):
		return nil, bundleUnsupported, nil, nil
	case cerr != nil:
		return refused, bundleRefused, cerr, nil
	}
	exp, err := ofwire.DecodeExperimenter(rc.msg.Body)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("switch %s: bundle commit reply: %w", sw.dpid, err)
	}
	ctl, err := ofwire.DecodeBundleControl(exp.Data)
	if err != nil || exp.Experimenter != ofwire.ONFExperimenter || exp.ExpType != ofwire.ONFBundleControl ||
		ctl.Type != ofwire.BundleCommitReply || ctl.BundleID != bundleID {
		return nil, 0, nil, fmt.Errorf("switch %s: bundle %d: the commit was answered with %+v %+v (%v)", sw.dpid, bundleID, exp, ctl, err)
	}
	if fenced {
		sw.bundlesProven.Store(true)
	} else {
		sw.srv.stats.BarriersSkipped.Add(1)
	}
	return refused, bundleCommitted, nil, nil
}

// bundlesRefused reports whether err is a switch's answer that it does not know the bundle extension.
func bundlesRefused(err error) bool {
	var e ofwire.ErrorMsg
	return errors.As(err, &e) && e.Type == ofwire.ErrTypeBadRequest &&
		(e.Code == ofwire.BadRequestBadType || e.Code == ofwire.BadRequestBadExperimenter || e.Code == ofwire.BadRequestBadExpType)
}

// probeBundles prepares to ask the switch, without waiting for the answer, whether it takes bundles: it registers
// the requests of an empty bundle opened and discarded, and returns what appends them to a write. The switch
// answers in order, so the answer is in before that of any later request (the read-back of flows that precedes
// the first change); a refusal turns bundles off for the connection, and a switch that ignores the probe is found
// out by the first change.
func (sw *Switch) probeBundles() (func([]byte) []byte, error) {
	open := sw.allocXids(2)
	ro := &request{what: "bundle probe", done: make(chan struct{}), finish: func(sw *Switch, _ *request, err error) {
		if bundlesRefused(err) {
			sw.noBundles.Store(true)
			sw.log.Info("switch does not support bundles: its flow changes are sent as plain flow_mods, not atomically",
				"dpid", sw.dpid, "remote", sw.remote)
		}
	}}
	rd := &request{what: "bundle probe discard", done: make(chan struct{})}
	if err := sw.register(open, ro); err != nil {
		return nil, err
	}
	if err := sw.register(open+1, rd); err != nil {
		return nil, err
	}
	return func(b []byte) []byte {
		b = ofwire.AppendBundleControl(b, open, open, ofwire.BundleOpenRequest, ofwire.BundleAtomic|ofwire.BundleOrdered)
		return ofwire.AppendBundleControl(b, open+1, open, ofwire.BundleDiscardRequest, ofwire.BundleAtomic|ofwire.BundleOrdered)
	}, nil
}

// applyPlain sends b as plain flow_mods followed by one barrier and waits for the barrier reply; the switch
// answers any refused flow_mod with an error before it.
func (sw *Switch) applyPlain(ctx context.Context, b *batch) ([]FlowError, error) {
	n := len(b.cmds)
	b.first = sw.allocXids(n + 1)
	barrier := b.first + uint32(n)
	sw.srv.stats.BarriersSent.Add(1)
	return sw.runBatch(ctx, b, map[uint32]*request{barrier: {what: "barrier", done: make(chan struct{})}}, barrier,
		flowModEncoder{flow: ofwire.AppendFlowMod, entry: ofwire.AppendFlowModEntry}, nil, ofwire.AppendEmpty(nil, ofwire.TypeBarrierRequest, barrier))
}

// runBatch registers b (its flow_mods' xids from b.first) and the requests reqs by xid, writes before, the
// flow_mods encoded by enc and after in one pipelined run, and waits for the answer to reqs[last], the last
// message of after (a barrier, or a bundle's commit): the switch answers everything before it first. It returns
// the flow_mods the switch refused and the error of that last request.
func (sw *Switch) runBatch(ctx context.Context, b *batch, reqs map[uint32]*request, last uint32, enc flowModEncoder, before, after []byte) ([]FlowError, error) {
	rl := reqs[last]
	rl.finish = func(sw *Switch, _ *request, _ error) {
		sw.batches = slices.DeleteFunc(sw.batches, func(x *batch) bool { return x == b })
	}
	sw.mu.Lock()
	if sw.err != nil {
		err := sw.err
		sw.mu.Unlock()
		return nil, fmt.Errorf("%w: %w", ErrDisconnected, err)
	}
	sw.batches = append(sw.batches, b)
	for xid, r := range reqs {
		sw.pending[xid] = r
	}
	sw.mu.Unlock()
	if err := sw.writeFlowMods(ctx, b, enc, before, after); err != nil {
		sw.deliver(last, ofwire.Message{}, err)
	}
	err := sw.wait(ctx, last, rl)
	sw.mu.Lock()
	refused := b.errs
	sw.mu.Unlock()
	return refused, err
}

// flowModEncoder encodes one flow_mod of a batch, plain or inside a bundle, from a flow or from a packed entry.
type flowModEncoder struct {
	flow  func(dst []byte, xid uint32, cmd ofwire.FlowModCommand, f flows.Flow) ([]byte, error)
	entry func(dst []byte, xid uint32, cmd ofwire.FlowModCommand, e []byte) ([]byte, error)
}

// encode appends b's flow_mod i.
func (enc flowModEncoder) encode(dst []byte, b *batch, i int) ([]byte, error) {
	if b.entries != nil {
		return enc.entry(dst, b.first+uint32(i), b.cmds[i], b.entries[i])
	}
	return enc.flow(dst, b.first+uint32(i), b.cmds[i], b.flows[i])
}

// writeFlowMods writes before, a batch's flow_mods and after straight into the buffered writer, flushing only when
// the buffer fills (bufio) and at the end, so that many flow_mods share one syscall.
func (sw *Switch) writeFlowMods(ctx context.Context, b *batch, enc flowModEncoder, before, after []byte) error {
	for start := 0; start < len(b.cmds); start += flowsPerLock {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("switch %s: flow_mods cancelled after %d of %d: %w", sw.dpid, start, len(b.cmds), err)
		}
		end := min(start+flowsPerLock, len(b.cmds))
		pre, post := []byte(nil), []byte(nil)
		if start == 0 {
			pre = before
		}
		if end == len(b.cmds) {
			post = after
		}
		if err := sw.writeChunk(b, start, end, enc, pre, post); err != nil {
			return err
		}
	}
	return nil
}

// writeChunk writes pre, the flow_mods start..end-1 of b, and post; a non-nil post ends the run and flushes.
func (sw *Switch) writeChunk(b *batch, start, end int, enc flowModEncoder, pre, post []byte) error {
	sw.wmu.Lock()
	defer sw.wmu.Unlock()
	if err := sw.conn.SetWriteDeadline(time.Now().Add(sw.srv.cfg.WriteTimeout)); err != nil {
		return err
	}
	bw := sw.writer()
	if _, err := bw.Write(pre); err != nil {
		return sw.writeFailed(err)
	}
	for i := start; i < end; i++ {
		buf := bw.AvailableBuffer()
		buf, err := enc.encode(buf, b, i)
		if err != nil {
			return err // validated before; cannot happen
		}
		if _, err := bw.Write(buf); err != nil {
			return sw.writeFailed(err)
		}
	}
	if post != nil {
		if _, err := bw.Write(post); err != nil {
			return sw.writeFailed(err)
		}
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

// RequestRole asks the switch for a role (MASTER, SLAVE, EQUAL) with a generation id and waits for its answer. A
// switch refuses a MASTER or SLAVE request whose generation id is older than one it has seen (STALE): another
// controller leads in a later term.
func (sw *Switch) RequestRole(ctx context.Context, role ofwire.Role, generationID uint64) error {
	reply, err := sw.roleRequest(ctx, role, generationID)
	if err != nil {
		return err
	}
	if reply.Role != role {
		return fmt.Errorf("switch %s: asked for %s, granted %s", sw.dpid, role, reply.Role)
	}
	return nil
}

// ElectionID asks the switch for its master election id (a NOCHANGE role request, which changes nothing): the
// highest generation id it has accepted; all ones while it has none.
func (sw *Switch) ElectionID(ctx context.Context) (uint64, error) {
	reply, err := sw.roleRequest(ctx, ofwire.RoleNoChange, 0)
	if err != nil {
		return 0, err
	}
	return reply.GenerationID, nil
}

func (sw *Switch) roleRequest(ctx context.Context, role ofwire.Role, generationID uint64) (ofwire.RoleMsg, error) {
	xid := sw.allocXids(1)
	r := &request{what: "role request " + role.String(), done: make(chan struct{})}
	if err := sw.register(xid, r); err != nil {
		return ofwire.RoleMsg{}, err
	}
	if err := sw.writeMsg(func(b []byte) []byte {
		return ofwire.AppendRole(b, ofwire.TypeRoleRequest, xid, role, generationID)
	}); err != nil {
		sw.deliver(xid, ofwire.Message{}, err)
	}
	if err := sw.wait(ctx, xid, r); err != nil {
		return ofwire.RoleMsg{}, fmt.Errorf("switch %s: %s with generation %d: %w", sw.dpid, role, generationID, err)
	}
	reply, err := ofwire.DecodeRole(r.msg.Body)
	if err != nil {
		return reply, err
	}
	if role != ofwire.RoleNoChange {
		sw.mu.Lock()
		sw.role, sw.roleGen = reply.Role, generationID
		sw.mu.Unlock()
	}
	return reply, nil
}
