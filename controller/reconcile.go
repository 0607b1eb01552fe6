package controller

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"portmirror/flows"
	"portmirror/internal/flowcache"
	"portmirror/model"
	"portmirror/ofwire"
	"portmirror/topology"
)

// errRefused is applyBridge's error when the switch refused some of the flow_mods.
var errRefused = errors.New("the switch refused flows")

// errPending is the error of flows not compiled (packedFlows.pending) asked for; errRecompile is applyBridge's
// when the switch does not hold the pending flows it was handed: the bridge is compiled by the next pass.
var (
	errPending   = errors.New("the flows are not compiled")
	errRecompile = errors.New("the switch does not hold the flows recorded for its inputs: compiling them")
)

// bridge is what the controller knows of one datapath: its connection, the flows of ours it holds, and the
// desired state its worker converges it to.
type bridge struct {
	dpid string

	mu        sync.Mutex
	sw        *Switch
	known     bool              // installed reflects the switch (read back since the connection came up)
	installed packedFlows       // our flows on the switch, when known
	meters    []flows.Meter     // our meters on the switch, when known
	counts    map[uint32]string // the latest compiled counting ids on the bridge, by id: the session's uuid
	want      *work             // the latest desired state
	last      *work             // the latest compiled state, handed again while lastKey (bridgeInputKey) holds
	lastKey   uint64
	running   bool // a worker goroutine owns the bridge
	confirmed map[string]uint64
	refused   map[string]string // by session: the switch's refusals of its flows at the last apply; nil when clean
	failures  int
}

// work is a desired state for one bridge: its flows and the fingerprints of the sessions they realise, which become
// confirmed once the switch acknowledged the flows with a barrier.
type work struct {
	flows    packedFlows
	meters   []flows.Meter // the capped sessions' meters
	sessions map[string]uint64
	marks    map[string]sessionMark // to blame a refused flow on the sessions it concerns
	term     uint64                 // the leader's term it was computed in (the switches' generation id)
}

// planState is what the passes concluded, for session status: a full pass replaces it, an incremental pass
// updates the entries of the sessions it analysed. Guarded by Controller.mu.
type planState struct {
	reports map[string]flows.SessionReport // session uuid -> the compiler's verdict
	fp      map[string]uint64              // session uuid -> fingerprint of everything its flows depend on
	rev     map[string]uint64              // session uuid -> the revision of its definition compiled
}

func (c *Controller) bridgeLocked(dpid string) *bridge {
	b := c.bridges[dpid]
	if b == nil {
		b = &bridge{dpid: dpid}
		c.bridges[dpid] = b
	}
	return b
}

// pass is one reconciliation pass: bring the view's inventory up to date, then analyse what changed
// (incrementalPass) or, as the periodic safety net and whenever the change is not one the indexes follow,
// everything (fullPass), and hand each bridge whose desired flows may have changed to its worker.
func (c *Controller) pass(ctx context.Context) error {
	if err := c.updateInventory(ctx); err != nil {
		return err
	}
	gen := c.view.Gen() // before TakeDirty: a change after it is patched by the next pass
	dirty := c.view.TakeDirty()
	fab, err := c.patchFabric(ctx, gen, dirty.Datapaths)
	if err != nil {
		c.remark(dirty)
		return err
	}
	start := time.Now()
	c.releasePrefetches() // the reads of the switches handed over run beside the pass
	if c.wantFull(fab) {
		err = c.fullPass(ctx, dirty, fab)
		c.passStats.full.Add(1)
		c.passStats.fullNanos.Add(int64(time.Since(start)))
		if err == nil {
			defer c.saveFlowCache() // after the pass's figures: its time is not the pass's
			defer c.readyOnce.Do(func() { close(c.ready) })
		}
	} else {
		err = c.incrementalPass(ctx, dirty, fab)
	}
	c.passStats.passes.Add(1)
	c.passStats.nanos.Add(int64(time.Since(start)))
	if err != nil {
		c.remark(dirty)
		c.inc.needFull = true // the cache may be half updated: the next pass starts from the store
	}
	return err
}

// remark marks again what a failed pass took, so that the next pass does it.
func (c *Controller) remark(d topology.Dirty) {
	for dp := range d.Datapaths {
		c.view.MarkDirty(dp)
	}
	for nic := range d.Nics {
		c.inc.dirtyNics[nic] = struct{}{}
	}
}

// fullPass reads every enabled session from the store and analyses it: the first pass, the periodic safety net,
// and the oracle the incremental passes are tested against.
func (c *Controller) fullPass(ctx context.Context, dirty topology.Dirty, fab *fabric) error {
	in, pms, err := c.buildInputFrom(ctx, fab)
	if err != nil {
		return err
	}
	plan := flows.Analyze(in)
	fps := fingerprints(in, plan)

	reports := make(map[string]flows.SessionReport, len(in.Sessions))
	revs := make(map[string]uint64, len(in.Sessions))
	for i, s := range in.Sessions {
		revs[s.UUID] = s.Revision
		reports[s.UUID] = plan.Reports()[i]
	}
	c.mu.Lock()
	prev := c.plan
	c.plan = &planState{reports: reports, fp: fps, rev: revs}
	c.mu.Unlock()
	c.inc.rebuild(c, in, pms, fab)

	// Bridges to recompute: those the view marked, and both the old and the new bridges of every session whose
	// fingerprint changed (added, removed, or anything it depends on changed).
	targets := dirty.Datapaths
	if targets == nil {
		targets = map[string]struct{}{}
	}
	for _, r := range plan.Reports() {
		if prev == nil || prev.fp[r.SessionUUID] != fps[r.SessionUUID] {
			for _, dp := range r.Bridges {
				targets[dp] = struct{}{}
			}
			if prev != nil {
				if old, ok := prev.reports[r.SessionUUID]; ok {
					for _, dp := range old.Bridges {
						targets[dp] = struct{}{}
					}
				}
			}
		}
	}
	if prev != nil {
		for _, r := range prev.reports {
			if _, still := fps[r.SessionUUID]; !still {
				for _, dp := range r.Bridges {
					targets[dp] = struct{}{}
				}
			}
		}
	}
	c.updateHostDesired(ctx, in)
	c.tunnelTargets(fab, targets)

	lead, term, lctx := c.leading()
	if !lead && c.onWork == nil {
		return nil // the leader programs the switches; this controller keeps its plan current to take over
	}
	c.submitTargets(lead, term, lctx, in, plan, fps, targets, c.bridgeKeys(fab, targets))
	return nil
}

// tunnelTargets adds the bridges whose set of flow-network tunnel ports changed: they need their tunnel-drop flows
// changed, sessions or not. They derive from the fabric alone: while it is the one of the last pass, nothing
// changed.
func (c *Controller) tunnelTargets(fab *fabric, targets map[string]struct{}) {
	c.mu.Lock()
	same := c.tunnelsOf == fab
	c.mu.Unlock()
	if same {
		return
	}
	tunnels := tunnelPorts(&flows.Input{Endpoints: fab.endpoints})
	c.mu.Lock()
	for dp := range fab.bridges {
		if t := tunnels[dp]; !slices.Equal(t, c.tunnels[dp]) {
			targets[dp] = struct{}{}
			c.tunnels[dp] = t
		}
	}
	c.tunnelsOf = fab
	c.mu.Unlock()
}

// forgetUnclaimed drops what the controller keeps of bridges that are disconnected and that no host claims: of
// the datapaths named, or of every one.
func (c *Controller) forgetUnclaimed(only ...string) {
	gone := c.view.ForgetUnclaimed(only...)
	if len(gone) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fabric = nil // the view forgot bridges without marking them
	for _, dp := range gone {
		delete(c.tunnels, dp)
		if b := c.bridges[dp]; b != nil {
			b.mu.Lock()
			idle := b.sw == nil && !b.running
			b.mu.Unlock()
			if idle {
				delete(c.bridges, dp)
			}
		}
	}
	c.log.Info("forgot bridges that are gone and claimed by no host", "datapaths", gone)
}

// fabric is the part of the compiler's input that changes rarely: the bridges with their ports, the flow
// networks and their endpoints. It derives from the view's switches and hosts (its generation) and the stored flow
// networks and endpoints (their changes drop it), and is shared, read-only, by the passes while those stay put.
type fabric struct {
	gen       uint64 // the view's, when it was built
	bridges   map[string]flows.Bridge
	endpoints map[flows.EndpointKey]flows.Endpoint
	networks  map[string]model.FlowNetwork
	hostEPs   map[string][]model.FlowEndpoint // host uuid -> its endpoints, as stored (patchFabric)
	dpFNs     map[string][]string             // datapath id -> the flow networks of its endpoints (setEndpoint)
}

// setEndpoint records e as flow network fn's endpoint on datapath dp.
func (f *fabric) setEndpoint(fn, dp string, e flows.Endpoint) {
	k := flows.EndpointKey{FlowNetwork: fn, DatapathID: dp}
	if _, had := f.endpoints[k]; !had {
		if f.dpFNs == nil {
			f.dpFNs = map[string][]string{}
		}
		f.dpFNs[dp] = append(f.dpFNs[dp], fn)
	}
	f.endpoints[k] = e
}

// dropEndpoints removes every endpoint on datapath dp: those of its flow networks, not a look for every flow
// network of the cloud (a storm patches every bridge).
func (f *fabric) dropEndpoints(dp string) {
	for _, fn := range f.dpFNs[dp] {
		delete(f.endpoints, flows.EndpointKey{FlowNetwork: fn, DatapathID: dp})
	}
	delete(f.dpFNs, dp)
}

// currentFabric returns the fabric of the last pass when nothing it derives from changed, or builds it anew.
func (c *Controller) currentFabric(ctx context.Context) (*fabric, error) {
	gen := c.view.Gen()
	c.mu.Lock()
	f := c.fabric
	c.mu.Unlock()
	if f != nil && f.gen == gen {
		return f, nil
	}
	f, err := c.buildFabric(ctx, gen)
	if err != nil {
		return nil, err
	}
	// noteChange, which drops it, runs on the pass's goroutine: a store change made while this was built is noted
	// after this pass, and drops it then.
	c.mu.Lock()
	c.fabric = f
	c.mu.Unlock()
	return f, nil
}

// buildFabric builds the fabric anew from the view (as of gen) and the store, without keeping it.
func (c *Controller) buildFabric(ctx context.Context, gen uint64) (*fabric, error) {
	f := &fabric{gen: gen, bridges: map[string]flows.Bridge{}, endpoints: map[flows.EndpointKey]flows.Endpoint{},
		hostEPs: map[string][]model.FlowEndpoint{}}
	// Every bridge that ever connected, with its last known ports: a disconnected one keeps its flows (fail_mode
	// secure), so what other bridges send towards it must not change while it is away. Only connected bridges are
	// programmed, and a session touching a disconnected one is PENDING (SessionStatus).
	bridges := c.view.Bridges(model.TunnelPortPrefix)
	for dp, b := range bridges {
		f.bridges[dp] = flows.Bridge{Ports: b.Numbers}
	}
	// Every flow network's endpoints, used by a session or not: each tunnel port of ours gets its drop flow,
	// so that nothing arriving on a flow network ever reaches NORMAL (a copy that arrives before its delivery
	// flow, or after its removal, would otherwise teach NORMAL a MAC on the tunnel port).
	networks, err := c.svc.FlowNetworks(ctx)
	if err != nil {
		return nil, fmt.Errorf("list flow networks: %w", err)
	}
	f.networks = make(map[string]model.FlowNetwork, len(networks))
	for _, fn := range networks {
		f.networks[fn.UUID] = fn
		eps, err := c.svc.FlowEndpoints(ctx, fn.UUID)
		if err != nil {
			return nil, fmt.Errorf("endpoints of flow network %s: %w", fn.UUID, err)
		}
		tunnel := model.TunnelPortName(fn.UUID)
		for _, ep := range eps {
			f.hostEPs[ep.HostUUID] = append(f.hostEPs[ep.HostUUID], ep)
			dp := c.view.HostDatapathID(ep.HostUUID)
			if dp == "" {
				continue
			}
			e := flows.Endpoint{}
			if ip, err := netip.ParseAddr(ep.IP); err == nil {
				e.IP = ip
			}
			e.TunnelPort = bridges[dp].ByName[tunnel]
			f.setEndpoint(fn.UUID, dp, e)
		}
	}
	return f, nil
}

// buildInput gathers the compiler's input from the service and the view.
func (c *Controller) buildInput(ctx context.Context) (*flows.Input, *fabric, error) {
	fab, err := c.currentFabric(ctx)
	if err != nil {
		return nil, nil, err
	}
	in, _, err := c.buildInputFrom(ctx, fab)
	return in, fab, err
}

// buildInputFrom gathers the compiler's input from the service and the view, on a fabric; pms[i] is the port
// mirror of in.Sessions[i].
func (c *Controller) buildInputFrom(ctx context.Context, fab *fabric) (*flows.Input, []string, error) {
	in := &flows.Input{
		NICs:      map[string]flows.NIC{},
		Endpoints: fab.endpoints,
		Bridges:   fab.bridges,
	}
	mirrors, err := c.svc.PortMirrors(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("list port mirrors: %w", err)
	}
	enabled := map[string]model.PortMirror{}
	for _, pm := range mirrors {
		if pm.State == model.Enabled {
			enabled[pm.UUID] = pm
		}
	}
	fns := fab.networks
	var sessions []model.Session
	if len(enabled) > 0 {
		if sessions, err = c.svc.AllSessions(ctx); err != nil {
			return nil, nil, fmt.Errorf("list sessions: %w", err)
		}
	}
	// sized once: a fleet's sessions grown by doubling were copied over and over (a restart's first pass)
	in.Sessions = make([]flows.Session, 0, len(sessions))
	pms := make([]string, 0, len(sessions))
	in.NICs = make(map[string]flows.NIC, 2*len(sessions))
	addNIC := func(uuid string) error {
		if _, ok := in.NICs[uuid]; ok {
			return nil
		}
		n, err := c.inputNIC(ctx, fab, uuid)
		if err != nil {
			return err
		}
		in.NICs[uuid] = n
		return nil
	}
	for _, s := range sessions {
		pm, ok := enabled[s.PortMirrorUUID]
		if !ok {
			continue
		}
		fn, ok := fns[pm.FlowNetworkUUID]
		if !ok {
			return nil, nil, fmt.Errorf("flow network %s of port mirror %s is not stored", pm.FlowNetworkUUID, pm.UUID)
		}
		if err := addNIC(s.SourceNicUUID); err != nil {
			return nil, nil, err
		}
		if err := addNIC(s.DestinationNicUUID); err != nil {
			return nil, nil, err
		}
		in.Sessions = append(in.Sessions, flowSession(s, fn))
		pms = append(pms, pm.UUID)
	}
	return in, pms, nil
}

// flowSession is what the compiler needs of a stored session of an enabled port mirror on flow network fn.
func flowSession(s model.Session, fn model.FlowNetwork) flows.Session {
	return flows.Session{
		UUID: s.UUID, Type: s.Type,
		SourceNIC: s.SourceNicUUID, DestinationNIC: s.DestinationNicUUID,
		TunnelKey: s.TunnelKey, FlowNetwork: fn.UUID, Encapsulation: fn.Encapsulation,
		Filters: s.Filters, Revision: s.Revision, SnapLength: uint16(s.SnapLength),
		BandwidthLimitKbps: uint32(s.BandwidthLimitKbps),
	}
}

// inputNIC is a NIC as the compiler sees it now: from the view (which holds the inventory as of this pass, MACs
// included), or from the store when the view does not know it.
func (c *Controller) inputNIC(ctx context.Context, fab *fabric, uuid string) (flows.NIC, error) {
	b, ok := c.view.Binding(uuid)
	if !ok {
		nic, err := c.svc.VmNic(ctx, uuid)
		if err != nil {
			return flows.NIC{}, fmt.Errorf("NIC %s: %w", uuid, err)
		}
		return flows.NIC{MAC: nic.MAC}, nil
	}
	// the datapath alone locates a NIC whose bridge has not connected yet: remote copies to it go on
	n := flows.NIC{MAC: b.MAC, DatapathID: b.DatapathID}
	// The view is read in several steps: a NIC bound on a bridge that connected after the fabric's bridges were
	// read stays located but unbound in this input, as its bridge is unknown to it (else the compiler would see a
	// bound NIC on an unknown bridge and drop the copies to it); the connection triggers a new pass.
	if _, known := fab.bridges[b.DatapathID]; b.Bound && known {
		n.Port = b.PortNo
	}
	return n, nil
}

// fingerprints hash, per session, everything its flows depend on: the session, both NICs' bindings, the endpoints
// of both bridges, and the analysis's verdict. The digest is the same in every process: the bridges' keys derive
// from them, and a restart compares those with the ones recorded before it (flowcache).
func fingerprints(in *flows.Input, plan *flows.Plan) map[string]uint64 {
	out := make(map[string]uint64, len(in.Sessions))
	var buf []byte
	str := func(s string) { buf = append(append(buf, s...), 0) }
	num := func(n uint64) { buf = append(strconv.AppendUint(buf, n, 16), 0) }
	for _, s := range in.Sessions {
		buf = buf[:0]
		str(s.UUID)
		str(string(s.Type))
		str(s.SourceNIC)
		str(s.DestinationNIC)
		num(uint64(s.TunnelKey))
		str(s.FlowNetwork)
		str(string(s.Encapsulation))
		str(model.FilterKey(s.Filters))
		num(uint64(s.SnapLength))
		num(uint64(s.BandwidthLimitKbps))
		for _, nic := range []string{s.SourceNIC, s.DestinationNIC} {
			n := in.NICs[nic]
			str(n.MAC)
			str(n.DatapathID)
			num(uint64(n.Port))
			ep := in.Endpoints[flows.EndpointKey{FlowNetwork: s.FlowNetwork, DatapathID: n.DatapathID}]
			buf = ep.IP.AppendTo(buf)
			num(uint64(ep.TunnelPort))
		}
		if r, ok := plan.Report(s.UUID); ok {
			for _, dp := range r.Bridges {
				str(dp)
			}
			str("|")
			for _, why := range r.Reasons {
				str(why)
			}
		}
		out[s.UUID] = flowcache.Digest(buf)
	}
	return out
}

// submit hands a desired state to a bridge's worker, starting one when none runs.
func (c *Controller) submit(ctx context.Context, dpid string, w *work) {
	c.mu.Lock()
	b := c.bridgeLocked(dpid)
	c.mu.Unlock()
	b.mu.Lock()
	b.want = w
	start := !b.running
	b.running = true
	b.mu.Unlock()
	if start {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.converge(ctx, b)
		}()
	}
}

// converge programs one bridge until it holds the latest desired state, retrying with backoff. It returns when
// the bridge is converged, its switch is gone (a reconnect submits again), or ctx ends.
func (c *Controller) converge(ctx context.Context, b *bridge) {
	for {
		b.mu.Lock()
		w, sw := b.want, b.sw
		if w == nil || sw == nil {
			b.running = false
			b.mu.Unlock()
			return
		}
		b.want = nil
		b.mu.Unlock()

		err := c.applyBridge(ctx, b, sw, w)
		if errors.Is(err, errRecompile) {
			// the pass it marked hands a compiled state; a newer one handed meanwhile is applied now
			b.mu.Lock()
			if b.want == nil {
				b.running = false
				b.mu.Unlock()
				return
			}
			b.mu.Unlock()
			continue
		}
		if errors.Is(err, errNotLeading) || (err != nil && ctx.Err() != nil) {
			// Stopped leading (the next leader reads the bridge back and takes over), or the work is of an
			// older term than this controller's new one: hand it to a worker of the current term.
			b.mu.Lock()
			b.running = false
			b.known = false
			if b.want == nil {
				b.want = w
			}
			next := b.want
			b.mu.Unlock()
			if lead, term, lctx := c.leading(); lead && next.term == term && lctx != ctx {
				c.submit(lctx, b.dpid, next)
			}
			return
		}
		if err == nil {
			b.mu.Lock()
			b.failures = 0
			b.mu.Unlock()
			continue
		}
		if ctx.Err() != nil {
			b.mu.Lock()
			b.running = false
			b.mu.Unlock()
			return
		}
		b.mu.Lock()
		if b.want == nil {
			b.want = w // retry the same state unless a newer one came
		}
		b.known = false // read back before the retry
		if b.sw != sw {
			// the switch reconnected (or went away) while we programmed it: start over at once on the new
			// connection, or stop until it comes back
			b.mu.Unlock()
			continue
		}
		b.failures++
		c.metrics.applyFailed.Add(1)
		delay := c.opts.RetryMin << min(b.failures-1, 10)
		if delay > c.opts.RetryMax {
			delay = c.opts.RetryMax
		}
		b.mu.Unlock()
		c.log.Warn("programming bridge failed; will retry", "datapath", b.dpid, "err", err, "retry_in", delay)
		select {
		case <-ctx.Done():
			b.mu.Lock()
			b.running = false
			b.mu.Unlock()
			return
		case <-time.After(delay):
		}
	}
}

// applyBridge converges one bridge to w: read back our flows when they are not known, send the difference in one
// pipelined run confirmed by one barrier, and record the sessions as confirmed.
func (c *Controller) applyBridge(ctx context.Context, b *bridge, sw *Switch, w *work) error {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-c.sem }()

	if lead, term, _ := c.leading(); !lead || term != w.term {
		return errNotLeading
	}
	if c.opts.Cluster != nil {
		// Raft's own state, not the last notification: a leader that lost its majority stops at once
		if lead, term := c.opts.Cluster.Leading(); !lead || term != w.term {
			return errNotLeading
		}
	}
	if err := c.ensureMaster(ctx, sw, w.term); err != nil {
		return err
	}
	var err error
	b.mu.Lock()
	known, kept, meters := b.known, b.installed, b.meters
	b.mu.Unlock()
	var installed []flows.Flow
	var installedPacked []byte // installed packed, when read back and decoded (holds; packedOK)
	packedOK := false
	heldKept := false // what the bridge holds is kept's packed flows, not decoded into installed (only a Diff needs that)
	same := false     // the bridge holds exactly w's flows
	digested := false // the bridge was read back as its digest (counted once in ReadBacks when read again whole)
	if !known && (w.flows.pending || w.flows.packed != nil) {
		// flows known by their digest (recorded by this program before its restart, flowcache), or packed (and so
		// digested) when compiled: the switch's are read back as their digest alone, kept that way (none of their
		// bytes: a reconnect storm reads back every bridge), and compared below; packed flows whose digest differs
		// are read back again whole, for the difference
		if kept, meters, err = c.readDigest(ctx, sw); err != nil {
			return fmt.Errorf("read back %s: %w", b.dpid, err)
		}
		known, digested = true, true
	}
	if known && kept.pending && !w.flows.pending && !kept.sameDigest(&w.flows) {
		known = false // the bridge's flows are known by their digest only: read back for the difference
	}
	if known && (kept.pending || w.flows.pending) {
		// either is known by its digest only: equal digests are equal flows; handed recorded flows the bridge
		// does not hold, it is compiled
		if !kept.sameDigest(&w.flows) {
			return c.recompile(b)
		}
		if w.flows.pending {
			c.passStats.restored.Add(1)
		}
		same = true
	} else if known {
		// both packed when they were compiled (submitTargets): equal bytes are equal flows
		if same = kept.equal(&w.flows); !same {
			if heldKept = kept.list == nil; !heldKept {
				installed = kept.list
			}
		}
	} else {
		var entries []byte
		meters, err = readWithMeters(ctx, sw, func() (err error) {
			entries, err = sw.ReadBack(ctx, flows.CookieOurs, flows.CookieMask)
			return err
		})
		if err != nil {
			return fmt.Errorf("read back %s: %w", b.dpid, err)
		}
		// What it should hold (packed when it was compiled) against what it holds, as bytes: only a bridge that
		// differs has its flows decoded, and diffed unless they are the same flows encoded otherwise.
		if !digested {
			c.passStats.readBacks.Add(1)
		}
		if same = w.flows.is(entries); !same {
			c.passStats.readBacksDecoded.Add(1)
			if installed, err = sw.FlowsOf(ctx, entries); err != nil {
				return fmt.Errorf("read back flows of %s: %w", b.dpid, err)
			}
			same, installedPacked, packedOK = w.flows.holds(installed)
		}
	}
	// Meters the flows will name first; meters no flow will name once the flows changed (see meters.go).
	madd, mmod, mdel := flows.DiffMeters(w.meters, meters)
	var meterRefused []MeterError
	for _, step := range []struct {
		cmd ofwire.MeterModCommand
		ms  []flows.Meter
	}{{ofwire.MeterAdd, madd}, {ofwire.MeterModify, mmod}} {
		r, err := sw.ApplyMeters(ctx, step.cmd, step.ms)
		if err != nil {
			return fmt.Errorf("program meters of %s: %w", b.dpid, err)
		}
		meterRefused = append(meterRefused, r...)
	}
	var add, mod, del []flows.Flow
	var adds [][]byte // instead of add, mod and del: the change is adds alone, as packed entries
	if !same {
		// what the bridge holds has one flow a key: our own packed desired state when it was packed from distinct
		// keys, and a flow table read back (a switch holds one flow per table, priority and match)
		held, ok, heldDistinct := kept.packed, true, kept.distinct
		if !heldKept {
			if !packedOK { // kept as a list, not read back: not packed yet
				p, err := ofwire.PackFlows(installed)
				installedPacked, packedOK = p, err == nil
			}
			held, ok, heldDistinct = installedPacked, packedOK, true
		}
		if ok {
			adds, add, mod, del, ok = packedDiff(&w.flows, held, heldDistinct)
		}
		if !ok {
			if heldKept {
				if installed, err = kept.get(); err != nil {
					return fmt.Errorf("the flows kept of %s: %w", b.dpid, err)
				}
			}
			desired, err := w.flows.get()
			if err != nil {
				return fmt.Errorf("the desired flows of %s: %w", b.dpid, err)
			}
			add, mod, del = flows.Diff(desired, installed)
		}
	}
	var refused []FlowError
	if len(adds) > 0 {
		var err error
		if refused, err = sw.ApplyAdds(ctx, adds); err != nil {
			return fmt.Errorf("program %s (%d adds): %w", b.dpid, len(adds), err)
		}
	} else if len(add)+len(mod)+len(del) > 0 {
		var err error
		refused, err = sw.Apply(ctx, add, mod, del)
		if err != nil {
			return fmt.Errorf("program %s (%d adds, %d modifies, %d deletes): %w", b.dpid, len(add), len(mod), len(del), err)
		}
	}
	if len(refused) == 0 {
		r, err := sw.ApplyMeters(ctx, ofwire.MeterDelete, mdel)
		if err != nil {
			return fmt.Errorf("delete meters of %s: %w", b.dpid, err)
		}
		meterRefused = append(meterRefused, r...)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.sw != sw {
		return errors.New("switch reconnected while programming")
	}
	if len(refused) > 0 {
		b.refused = blame(w.marks, refused)
		b.known = false
		b.confirmed = w.sessions
		// the sessions concerned show ERROR with the switch's words until a retry (with backoff) or a newer state
		// succeeds
		return fmt.Errorf("%w: %d flow_mods, the first: %s", errRefused, len(refused), refused[0].Error())
	}
	if len(meterRefused) > 0 {
		// The flows naming a refused meter were refused too (and blamed on their sessions); otherwise retry.
		b.known = false
		b.confirmed = w.sessions
		return fmt.Errorf("%w: %d meter_mods, the first: %s", errRefused, len(meterRefused), meterRefused[0].Error())
	}
	b.refused = nil
	// what the bridge now holds, packed as it was compiled: a fleet's flows in a tenth of the memory, with no
	// pointers for the collector to walk
	b.installed = w.flows
	b.meters = w.meters
	b.known = true
	b.confirmed = w.sessions
	return nil
}

// recompile drops the bridge's last state when its flows are pending (the switch does not hold them), marks the
// bridge for the next pass, which compiles it, and returns errRecompile.
func (c *Controller) recompile(b *bridge) error {
	b.mu.Lock()
	if b.last != nil && b.last.flows.pending {
		b.last = nil
	}
	b.mu.Unlock()
	c.passStats.restoreMissed.Add(1)
	c.view.MarkDirty(b.dpid)
	c.trigger()
	return errRecompile
}

// SessionRevision implements service.Live.
func (c *Controller) SessionRevision(sessionUUID string) (uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.plan == nil {
		return 0, false
	}
	r, ok := c.plan.rev[sessionUUID]
	return r, ok
}

// SessionStatus implements service.Live.
func (c *Controller) SessionStatus(sessionUUID string) (model.SessionStatus, string) {
	c.mu.Lock()
	ps := c.plan
	var r flows.SessionReport
	var ok bool
	var fp uint64
	if ps != nil {
		r, ok = ps.reports[sessionUUID]
		fp = ps.fp[sessionUUID]
	}
	c.mu.Unlock()
	if ps == nil {
		return model.StatusPending, "the controller has not reconciled yet"
	}
	if !ok {
		return model.StatusPending, "the controller has not reconciled this session yet"
	}
	if !r.Ready() {
		return model.StatusPending, r.Reason()
	}
	for _, dp := range r.Bridges {
		c.mu.Lock()
		b := c.bridges[dp]
		c.mu.Unlock()
		if b == nil {
			return model.StatusPending, fmt.Sprintf("switch %s is not connected", dp)
		}
		b.mu.Lock()
		connected, confirmed, refused := b.sw != nil, b.confirmed[sessionUUID], b.refused[sessionUUID]
		b.mu.Unlock()
		switch {
		case !connected:
			return model.StatusPending, fmt.Sprintf("switch %s is not connected", dp)
		case confirmed != fp:
			return model.StatusPending, fmt.Sprintf("waiting for switch %s to confirm the session's flows", dp)
		case refused != "":
			return model.StatusError, refused
		}
	}
	return model.StatusActive, ""
}

// Switches implements service.Live.
func (c *Controller) Switches() []model.Switch {
	out := c.view.Switches()
	for i := range out {
		c.mu.Lock()
		b := c.bridges[out[i].DatapathID]
		c.mu.Unlock()
		if b != nil {
			b.mu.Lock()
			if b.known {
				out[i].FlowCount = b.installed.len()
			}
			sw := b.sw
			b.mu.Unlock()
			if sw != nil {
				role, _ := sw.Role()
				out[i].Role = role.String()
			}
		}
	}
	return out
}

// NicPort implements service.Live.
func (c *Controller) NicPort(nicUUID string) *model.SwitchPort { return c.view.NicPort(nicUUID) }

// HostConnected implements service.Live.
func (c *Controller) HostConnected(hostUUID string) bool { return c.view.HostConnected(hostUUID) }

// HostDatapathID implements service.Live.
func (c *Controller) HostDatapathID(hostUUID string) string { return c.view.HostDatapathID(hostUUID) }

// tunnelPorts returns, per bridge, the tunnel ports the input gives it, sorted.
func tunnelPorts(in *flows.Input) map[string][]uint32 {
	out := map[string][]uint32{}
	for k, ep := range in.Endpoints {
		if ep.TunnelPort != 0 {
			out[k.DatapathID] = append(out[k.DatapathID], ep.TunnelPort)
		}
	}
	for _, ports := range out {
		slices.Sort(ports)
	}
	return out
}

// packedFlows is a bridge's flows, as a list or packed (ofwire.PackFlows), or, pending, known only by the
// digest and count of their packed form (recorded by the program's previous run: flowcache). Its methods are
// called with the bridge's lock held, or on a value not yet shared.
type packedFlows struct {
	list    []flows.Flow
	packed  []byte // when list is nil
	n       int
	sum     uint64 // flowsDigest(packed), when packed or pending
	pending bool   // not compiled: the flows whose packed form digests to sum (applyBridge compares the switch's)
	// distinct: packed from flows of distinct keys (packedDiff may diff them by their bytes, and send adds alone as adds:
	// no two would replace each other)
	distinct bool
}

// distinctKeys reports whether fs, in CompareFlows order, has no two flows of one key (they would be next to each
// other: CompareFlows orders by key alone). Unsorted flows answer false.
func distinctKeys(fs []flows.Flow) bool {
	for i := 1; i < len(fs); i++ {
		if flows.CompareFlows(fs[i-1], fs[i]) >= 0 {
			return false
		}
	}
	return true
}

func listFlows(fs []flows.Flow) packedFlows { return packedFlows{list: fs, n: len(fs)} }

// sameDigest reports whether q's flows digest as p's (sum and count; set when packed or pending).
func (p *packedFlows) sameDigest(q *packedFlows) bool { return p.sum == q.sum && p.n == q.n }

func (p *packedFlows) len() int { return p.n }

// equal reports whether both are packed and hold the same bytes (and so the same flows).
func (p *packedFlows) equal(q *packedFlows) bool {
	return p.list == nil && q.list == nil && p.packed != nil && q.packed != nil && bytes.Equal(p.packed, q.packed)
}

// holds reports whether fs (a bridge's flows as decoded, in any order) are exactly these, when these are packed:
// fs packed give the same bytes (packing puts them in canonical order). It answers false when unsure (not
// packed), which only means a Diff. It returns fs packed too, and whether they could be, for packedDiff.
func (p *packedFlows) holds(fs []flows.Flow) (same bool, packed []byte, ok bool) {
	b, err := ofwire.PackFlows(fs)
	if err != nil {
		return false, nil, false
	}
	return p.list == nil && p.packed != nil && bytes.Equal(b, p.packed), b, true
}

// is reports whether entries (a switch's flow-stats entries, Switch.ReadBack) are these flows, when these are
// packed. It answers false when unsure (not packed, encoded otherwise by the switch, or malformed), which only
// means the entries are decoded and diffed (and a malformed reply is refused there).
func (p *packedFlows) is(entries []byte) bool {
	if p.list != nil || p.packed == nil {
		return false
	}
	same, err := ofwire.SameFlowEntries(entries, p.packed)
	return err == nil && same
}

// packedDiff finds what turns held (packed flows a bridge holds, one flow a key when heldDistinct) into p (packed
// from flows of distinct keys) from their bytes: both are in canonical order, so one merge finds the entries in
// both (unchanged: nothing to decode), those only wanted and those only held. When nothing is only held, the
// change is adds alone, returned as p's packed entries (adds; Switch.ApplyAdds builds their flow_mods from the
// bytes: a bridge programmed from nothing, or one session added). Otherwise only the entries that differ are
// decoded and diffed (add, mod, del, as flows.Diff of the whole would give them): a one-session change on a bridge
// of hundreds of flows decodes a handful. It answers false when unsure (p not packed from distinct keys, held not
// of distinct keys, malformed entries), which only means a Diff of everything.
func packedDiff(p *packedFlows, held []byte, heldDistinct bool) (adds [][]byte, add, mod, del []flows.Flow, ok bool) {
	if p.list != nil || p.packed == nil || p.pending || !p.distinct || !heldDistinct {
		return nil, nil, nil, nil, false
	}
	want, err := ofwire.PackedEntries(p.packed)
	if err != nil {
		return nil, nil, nil, nil, false
	}
	have, err := ofwire.PackedEntries(held)
	if err != nil {
		return nil, nil, nil, nil, false
	}
	onlyWant := make([][]byte, 0, max(0, len(want)-len(have)))
	var onlyHave [][]byte
	i := 0
	for _, e := range want {
		for i < len(have) && bytes.Compare(have[i], e) < 0 {
			onlyHave = append(onlyHave, have[i])
			i++
		}
		if i < len(have) && bytes.Equal(have[i], e) {
			i++
			continue
		}
		onlyWant = append(onlyWant, e)
	}
	onlyHave = append(onlyHave, have[i:]...)
	if len(onlyHave) == 0 {
		return onlyWant, nil, nil, nil, true
	}
	// Of one key, both sides hold at most one flow, and a flow in both is left out of both: the Diff of what is
	// left is the Diff of the whole.
	desired, err := unpackEntries(onlyWant)
	if err != nil {
		return nil, nil, nil, nil, false
	}
	installed, err := unpackEntries(onlyHave)
	if err != nil {
		return nil, nil, nil, nil, false
	}
	add, mod, del = flows.Diff(desired, installed)
	return nil, add, mod, del, true
}

// unpackEntries decodes packed entries, in CompareFlows order (Diff's fast path).
func unpackEntries(entries [][]byte) ([]flows.Flow, error) {
	fs, err := ofwire.UnpackFlows(bytes.Join(entries, nil))
	if err != nil {
		return nil, err
	}
	slices.SortFunc(fs, flows.CompareFlows)
	return fs, nil
}

// get returns the flows, unpacked when packed (in CompareFlows order, as the compiler gives them: Diff's fast
// path). The caller does not change them.
func (p *packedFlows) get() ([]flows.Flow, error) {
	if p.pending {
		return nil, errPending
	}
	if p.list != nil || p.packed == nil {
		return p.list, nil
	}
	fs, err := ofwire.UnpackFlows(p.packed)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(fs, flows.CompareFlows)
	return fs, nil
}

// pack replaces the list by its packed form; it keeps the list when packing fails (a flow the wire form cannot
// hold: it was refused on the way to the switch already).
func (p *packedFlows) pack() { p.packWith(new(ofwire.Packer)) }

// packWith is pack, with pk's scratch space.
func (p *packedFlows) packWith(pk *ofwire.Packer) {
	if p.list == nil {
		return
	}
	if b, err := pk.Pack(p.list); err == nil {
		p.distinct = distinctKeys(p.list)
		p.packed, p.list = b, nil
		p.sum, _, _ = flowsDigest(b)
	}
}
