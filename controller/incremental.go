package controller

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"portmirror/flows"
	"portmirror/internal/flowcache"
	"portmirror/model"
	"portmirror/ofwire"
	"portmirror/service"
	"portmirror/store"
	"portmirror/topology"
)

// incState is what lets a pass analyse only what a change touches: the sessions of the enabled port mirrors as
// the compiler sees them, indexed by NIC and by bridge, and the changes noted since the last pass. A full pass
// rebuilds it; an incremental pass updates the entries it analysed. Only the loop's goroutine uses it.
type incState struct {
	ready    bool      // a full pass built it
	needFull bool      // the next pass must be a full one
	lastFull time.Time // when the last full pass ran
	seq      uint64    // creation order of the sessions, as the store lists them

	sessions map[string]*sessEntry        // by session uuid: the sessions of enabled port mirrors
	byPM     map[string]map[string]bool   // port mirror uuid -> its sessions in sessions
	pmFN     map[string]string            // enabled port mirror uuid -> its flow network, as the state holds it
	asSource map[string][]string          // NIC uuid -> sessions whose source it is (few: a slice, not a map each)
	asDest   map[string][]string          // NIC uuid -> sessions whose destination it is
	onBridge map[string]map[string]bool   // datapath id -> sessions with a NIC located there
	fab      *fabric                      // the fabric the state was built with
	networks map[string]model.FlowNetwork // its flow networks
	bridges  map[string]flows.Bridge      // the fabric's bridges the state was built with
	eps      map[flows.EndpointKey]flows.Endpoint
	// datapath id -> digest of what the analysis of its sessions reads of its bridge (bridgeDigest), as of the
	// last pass that analysed them for it: the full pass (every bridge), or an incremental one that had it dirty
	seen map[string]uint64

	// changes noted since the last pass
	pendSessions map[string]struct{}
	pendPMs      map[string]struct{}
	pendHosts    map[string]struct{}
	pendVMs      map[string]struct{}
	pendNics     map[string]struct{}
	dirtyNics    map[string]struct{} // NICs whose binding changed in a failed pass
}

// sessEntry is one session of an enabled port mirror.
type sessEntry struct {
	s   flows.Session
	pm  string
	seq uint64
	dps []string // the datapaths it is indexed under in onBridge
}

func newIncState() *incState {
	inc := &incState{}
	inc.clearPending()
	inc.dirtyNics = map[string]struct{}{}
	inc.pendHosts, inc.pendVMs, inc.pendNics = map[string]struct{}{}, map[string]struct{}{}, map[string]struct{}{}
	return inc
}

func (inc *incState) clearPending() {
	inc.pendSessions = map[string]struct{}{}
	inc.pendPMs = map[string]struct{}{}
}

func addTo(idx map[string]map[string]bool, k, v string) {
	if k == "" {
		return
	}
	m := idx[k]
	if m == nil {
		m = map[string]bool{}
		idx[k] = m
	}
	m[v] = true
}

// addToList and delFromList keep an index whose sets are small (a NIC is the source or destination of a few
// sessions) as slices: a full pass builds 200,000 of them at ten times the cloud.
func addToList(idx map[string][]string, k, v string) {
	if k != "" && !slices.Contains(idx[k], v) {
		idx[k] = append(idx[k], v)
	}
}

func delFromList(idx map[string][]string, k, v string) {
	l := idx[k]
	i := slices.Index(l, v)
	switch {
	case i < 0:
	case len(l) == 1:
		delete(idx, k)
	default:
		l[i] = l[len(l)-1]
		idx[k] = l[:len(l)-1]
	}
}

func delFrom(idx map[string]map[string]bool, k, v string) {
	if m := idx[k]; m != nil {
		delete(m, v)
		if len(m) == 0 {
			delete(idx, k)
		}
	}
}

// index records a session (its NICs located on dps) in the indexes.
func (inc *incState) index(e *sessEntry) {
	inc.sessions[e.s.UUID] = e
	addTo(inc.byPM, e.pm, e.s.UUID)
	addToList(inc.asSource, e.s.SourceNIC, e.s.UUID)
	addToList(inc.asDest, e.s.DestinationNIC, e.s.UUID)
	for _, dp := range e.dps {
		addTo(inc.onBridge, dp, e.s.UUID)
	}
}

// unindex removes a session from the indexes.
func (inc *incState) unindex(e *sessEntry) {
	delete(inc.sessions, e.s.UUID)
	delFrom(inc.byPM, e.pm, e.s.UUID)
	delFromList(inc.asSource, e.s.SourceNIC, e.s.UUID)
	delFromList(inc.asDest, e.s.DestinationNIC, e.s.UUID)
	for _, dp := range e.dps {
		delFrom(inc.onBridge, dp, e.s.UUID)
	}
}

// located returns the datapaths of a session's NICs in an input, bound or not.
func located(in *flows.Input, s *flows.Session) []string {
	var out []string
	for _, nic := range []string{s.SourceNIC, s.DestinationNIC} {
		if dp := in.NICs[nic].DatapathID; dp != "" && !slices.Contains(out, dp) {
			out = append(out, dp)
		}
	}
	return out
}

// rebuild makes the state anew from a full pass's input.
func (inc *incState) rebuild(c *Controller, in *flows.Input, pms []string, fab *fabric) {
	inc.sessions = make(map[string]*sessEntry, len(in.Sessions))
	inc.byPM = map[string]map[string]bool{}
	inc.asSource = make(map[string][]string, len(in.Sessions))
	inc.asDest = make(map[string][]string, len(in.Sessions))
	inc.onBridge = map[string]map[string]bool{}
	inc.pmFN = map[string]string{}
	inc.seq = 0
	for i := range in.Sessions {
		s := &in.Sessions[i]
		inc.seq++
		inc.index(&sessEntry{s: *s, pm: pms[i], seq: inc.seq, dps: located(in, s)})
		inc.pmFN[pms[i]] = s.FlowNetwork
	}
	inc.fab, inc.networks, inc.bridges, inc.eps = fab, fab.networks, fab.bridges, fab.endpoints
	// what the full pass analysed every session with: a bridge that comes back as it is now analyses nothing
	inc.seen = bridgeDigests(fab)
	inc.ready, inc.needFull, inc.lastFull = true, false, time.Now()
	inc.clearPending()
	inc.dirtyNics = map[string]struct{}{}
}

// noteChange records a store change for the next pass; it reports whether it concerns the sessions' cache.
func (inc *incState) noteChange(ch store.Change) {
	switch ch.Kind {
	case store.KindSession:
		inc.pendSessions[ch.UUID] = struct{}{}
	case store.KindPortMirror:
		inc.pendPMs[ch.UUID] = struct{}{}
	case store.KindAll:
		inc.needFull = true
	}
}

// wantFull says whether this pass must analyse everything: nothing to start from, a change the indexes do not
// follow (a flow network's definition), the periodic safety net, or so many changes that a full pass is cheaper.
func (c *Controller) wantFull(fab *fabric) bool {
	inc := c.inc
	if !inc.ready || inc.needFull || time.Since(inc.lastFull) >= c.opts.FullPassEvery {
		return true
	}
	if len(inc.pendSessions)+4*len(inc.pendPMs) > len(inc.sessions)/4+64 {
		return true
	}
	if !maps.EqualFunc(fab.networks, inc.networks, func(a, b model.FlowNetwork) bool {
		return a.UUID == b.UUID && a.Encapsulation == b.Encapsulation
	}) {
		return true
	}
	return false
}

// fabricChanges returns the datapaths whose bridge (ports) or flow endpoints differ between the fabric the state
// was built with and fab; it takes fab as the state's.
func (inc *incState) fabricChanges(fab *fabric) map[string]struct{} {
	out := map[string]struct{}{}
	if fab == inc.fab {
		return out
	}
	for dp, b := range fab.bridges {
		if old, ok := inc.bridges[dp]; !ok || !slices.Equal(old.Ports, b.Ports) {
			out[dp] = struct{}{}
		}
	}
	for dp := range inc.bridges {
		if _, ok := fab.bridges[dp]; !ok {
			out[dp] = struct{}{}
		}
	}
	for k, ep := range fab.endpoints {
		if old, ok := inc.eps[k]; !ok || old != ep {
			out[k.DatapathID] = struct{}{}
		}
	}
	for k := range inc.eps {
		if _, ok := fab.endpoints[k]; !ok {
			out[k.DatapathID] = struct{}{}
		}
	}
	inc.fab, inc.networks, inc.bridges, inc.eps = fab, fab.networks, fab.bridges, fab.endpoints
	return out
}

// incrementalPass analyses only the sessions a change touches, found through the indexes, and recompiles only
// the bridges whose desired flows may have changed, each from every session that touches it (so the compiler's
// promise, one copy per destination at a bridge, holds as in a full pass).
func (c *Controller) incrementalPass(ctx context.Context, dirty topology.Dirty, fab *fabric) error {
	inc := c.inc
	changed := map[string]bool{} // sessions to analyse again
	removed := map[string]bool{} // sessions that are no longer analysed (deleted, or their port mirror disabled)
	touchNIC := func(nic string) {
		for _, s := range inc.asSource[nic] {
			changed[s] = true
		}
		for _, s := range inc.asDest[nic] {
			changed[s] = true
		}
	}
	// A session's MIRROR_LOOP verdict depends on the sessions whose destination is its source: when a session
	// comes, goes or changes, the sessions whose source is its destination are analysed again.
	loopNeighbours := func(s *flows.Session) {
		for _, o := range inc.asSource[s.DestinationNIC] {
			changed[o] = true
		}
	}

	// 1. The store's changes, into the cache.
	upsert := map[string]*sessEntry{}
	drop := func(uuid string) {
		if e := inc.sessions[uuid]; e != nil {
			loopNeighbours(&e.s)
			removed[uuid] = true
		}
		delete(upsert, uuid)
	}
	pmCache := map[string]*model.PortMirror{}
	portMirror := func(uuid string) (*model.PortMirror, error) {
		if pm, ok := pmCache[uuid]; ok {
			return pm, nil
		}
		pm, err := c.svc.PortMirror(ctx, uuid)
		var se *service.Error
		switch {
		case errors.As(err, &se) && se.Code == service.CodeNotFound:
			pmCache[uuid] = nil
			return nil, nil
		case err != nil:
			return nil, fmt.Errorf("port mirror %s: %w", uuid, err)
		}
		pmCache[uuid] = &pm
		return &pm, nil
	}
	take := func(s model.Session) error {
		pm, err := portMirror(s.PortMirrorUUID)
		if err != nil {
			return err
		}
		if pm == nil || pm.State != model.Enabled {
			drop(s.UUID)
			return nil
		}
		fn, ok := fab.networks[pm.FlowNetworkUUID]
		if !ok {
			return fmt.Errorf("flow network %s of port mirror %s is not stored", pm.FlowNetworkUUID, pm.UUID)
		}
		e := &sessEntry{s: flowSession(s, fn), pm: pm.UUID}
		if old := inc.sessions[s.UUID]; old != nil {
			e.seq = old.seq
			loopNeighbours(&old.s)
		}
		upsert[s.UUID] = e
		delete(removed, s.UUID)
		return nil
	}
	for pmUUID := range inc.pendPMs {
		pm, err := portMirror(pmUUID)
		if err != nil {
			return err
		}
		enabled := pm != nil && pm.State == model.Enabled
		if fn, known := inc.pmFN[pmUUID]; enabled && known && fn == pm.FlowNetworkUUID {
			continue // nothing its sessions depend on changed (a session added or removed is a change of its own)
		}
		if enabled {
			inc.pmFN[pmUUID] = pm.FlowNetworkUUID
		} else {
			delete(inc.pmFN, pmUUID)
		}
		still := map[string]bool{}
		if enabled {
			ss, err := c.svc.Sessions(ctx, pmUUID)
			if err != nil {
				return fmt.Errorf("sessions of port mirror %s: %w", pmUUID, err)
			}
			for _, s := range ss {
				still[s.UUID] = true
				if err := take(s); err != nil {
					return err
				}
			}
		}
		for uuid := range inc.byPM[pmUUID] {
			if !still[uuid] {
				drop(uuid)
			}
		}
	}
	for uuid := range inc.pendSessions {
		s, err := c.svc.Session(ctx, uuid)
		var se *service.Error
		switch {
		case errors.As(err, &se) && se.Code == service.CodeNotFound:
			drop(uuid)
			continue
		case err != nil:
			return fmt.Errorf("session %s: %w", uuid, err)
		}
		if err := take(s); err != nil {
			return err
		}
	}
	// New sessions come after every stored one, in the order the store lists them (its creation order).
	fresh := make([]*sessEntry, 0, len(upsert))
	for _, e := range upsert {
		if e.seq == 0 {
			fresh = append(fresh, e)
		}
	}
	if len(fresh) > 1 {
		all, err := c.svc.AllSessions(ctx) // rare: several sessions created in one pass
		if err != nil {
			return fmt.Errorf("list sessions: %w", err)
		}
		pos := make(map[string]int, len(fresh))
		for _, e := range fresh {
			pos[e.s.UUID] = -1
		}
		for i, s := range all {
			if _, ok := pos[s.UUID]; ok {
				pos[s.UUID] = i
			}
		}
		slices.SortFunc(fresh, func(a, b *sessEntry) int { return cmp.Compare(pos[a.s.UUID], pos[b.s.UUID]) })
	}
	for _, e := range fresh {
		inc.seq++
		e.seq = inc.seq
	}
	for uuid, e := range upsert {
		changed[uuid] = true
		loopNeighbours(&e.s)
	}

	// 2. The live view's changes: NICs that moved, bridges that changed.
	for nic := range dirty.Nics {
		touchNIC(nic)
	}
	for nic := range inc.dirtyNics {
		touchNIC(nic)
	}
	// A bridge the view marked is compiled (or handed its last state) again; its sessions are analysed again
	// only when what their analysis reads of it changed: a bridge that reconnects with the ports it had (its
	// NICs' bindings survive a disconnect, so they did not change either) costs no analysis, only its read-back.
	targets := map[string]struct{}{}
	analyse := map[string]struct{}{}
	for dp := range dirty.Datapaths {
		targets[dp] = struct{}{}
		if c.bridgeChanged(fab, dp) {
			analyse[dp] = struct{}{}
		}
	}
	for dp := range inc.fabricChanges(fab) {
		targets[dp] = struct{}{}
		c.bridgeChanged(fab, dp)
		analyse[dp] = struct{}{}
	}
	for dp := range analyse {
		for s := range inc.onBridge[dp] {
			changed[s] = true
		}
	}

	// 3. Swap the changed entries in the indexes, each located where its NICs are now.
	nics := map[string]flows.NIC{}
	nicOf := func(uuid string) (flows.NIC, error) {
		if n, ok := nics[uuid]; ok {
			return n, nil
		}
		n, err := c.inputNIC(ctx, fab, uuid)
		if err != nil {
			return flows.NIC{}, err
		}
		nics[uuid] = n
		return n, nil
	}
	relocate := func(e *sessEntry) error {
		e.dps = e.dps[:0]
		for _, nic := range []string{e.s.SourceNIC, e.s.DestinationNIC} {
			n, err := nicOf(nic)
			if err != nil {
				return err
			}
			if n.DatapathID != "" && !slices.Contains(e.dps, n.DatapathID) {
				e.dps = append(e.dps, n.DatapathID)
			}
		}
		return nil
	}
	for uuid := range removed {
		if e := inc.sessions[uuid]; e != nil {
			inc.unindex(e)
		}
		delete(changed, uuid)
	}
	for uuid := range changed {
		e := upsert[uuid]
		old := inc.sessions[uuid]
		if e == nil {
			if old == nil {
				delete(changed, uuid)
				continue
			}
			e = &sessEntry{s: old.s, pm: old.pm, seq: old.seq}
			if err := relocate(e); err != nil {
				return err
			}
			if slices.Equal(e.dps, old.dps) {
				continue // its definition and its bridges are as indexed (a bridge that reconnected): nothing to swap
			}
		} else if err := relocate(e); err != nil {
			return err
		}
		if old != nil {
			inc.unindex(old)
		}
		inc.index(e)
	}

	// 4. Analyse the changed sessions; the bridges of those whose fingerprint changed (before and after) are
	// recompiled, with the marked ones and those whose tunnel ports changed.
	c.mu.Lock()
	ps := c.plan
	for uuid := range removed {
		if r, ok := ps.reports[uuid]; ok {
			for _, dp := range r.Bridges {
				targets[dp] = struct{}{}
			}
		}
		delete(ps.reports, uuid)
		delete(ps.fp, uuid)
		delete(ps.rev, uuid)
	}
	c.mu.Unlock()
	if len(changed) > 0 {
		in, err := c.subInput(fab, slices.Collect(maps.Keys(changed)), nil, nicOf)
		if err != nil {
			return err
		}
		plan := flows.Analyze(in)
		fps := fingerprints(in, plan)
		c.passStats.reanalysed.Add(uint64(len(changed)))
		c.mu.Lock()
		for uuid := range changed {
			r, _ := plan.Report(uuid)
			if ps.fp[uuid] != fps[uuid] || !ps.hasReport(uuid) {
				for _, dp := range r.Bridges {
					targets[dp] = struct{}{}
				}
				for _, dp := range ps.reports[uuid].Bridges {
					targets[dp] = struct{}{}
				}
			}
			ps.reports[uuid] = r
			ps.fp[uuid] = fps[uuid]
			ps.rev[uuid] = inc.sessions[uuid].s.Revision
		}
		c.mu.Unlock()
	}
	inc.clearPending()
	inc.dirtyNics = map[string]struct{}{}

	if len(c.hostManagers()) > 0 {
		all := &flows.Input{Sessions: make([]flows.Session, 0, len(inc.sessions))}
		for _, e := range inc.sessions {
			all.Sessions = append(all.Sessions, e.s)
		}
		c.updateHostDesired(ctx, all)
	}
	c.tunnelTargets(fab, targets)
	return c.compileTargets(ctx, fab, targets, nicOf)
}

// bridgeChanged records what the analysis of the sessions on dp reads of its bridge now (its ports and its flow
// endpoints: bridgeDigest) and reports whether it differs from the last record (or there is none).
func (c *Controller) bridgeChanged(fab *fabric, dp string) bool {
	d, ok := bridgeDigest(fab, dp)
	prev, had := c.inc.seen[dp]
	if !ok {
		delete(c.inc.seen, dp)
		return true
	}
	c.inc.seen[dp] = d
	return !had || prev != d
}

// bridgeDigest digests the fabric's bridge dp (its ports) and its flow endpoints (the endpoints summed, so that
// the flow networks' order does not matter); ok is false when the fabric has no such bridge.
func bridgeDigest(fab *fabric, dp string) (uint64, bool) {
	b, ok := fab.bridges[dp]
	if !ok {
		return 0, false
	}
	buf, sum := portsDigest(nil, b)
	for _, fn := range fab.dpFNs[dp] {
		if _, ok := fab.networks[fn]; !ok {
			continue
		}
		if ep, ok := fab.endpoints[flows.EndpointKey{FlowNetwork: fn, DatapathID: dp}]; ok {
			var d uint64
			buf, d = endpointDigest(buf, fn, ep)
			sum += d
		}
	}
	return sum, true
}

// bridgeDigests is bridgeDigest of every bridge of the fabric, in one sweep over its endpoints.
func bridgeDigests(fab *fabric) map[string]uint64 {
	var buf []byte
	out := make(map[string]uint64, len(fab.bridges))
	for dp, b := range fab.bridges {
		buf, out[dp] = portsDigest(buf, b)
	}
	for k, ep := range fab.endpoints {
		if _, ok := out[k.DatapathID]; ok {
			if _, known := fab.networks[k.FlowNetwork]; known {
				var d uint64
				buf, d = endpointDigest(buf, k.FlowNetwork, ep)
				out[k.DatapathID] += d
			}
		}
	}
	return out
}

// portsDigest and endpointDigest digest a bridge's ports and one of its flow endpoints in buf (returned for the
// next call).
func portsDigest(buf []byte, b flows.Bridge) ([]byte, uint64) {
	buf = binary.BigEndian.AppendUint64(buf[:0], uint64(len(b.Ports)))
	for _, p := range b.Ports {
		buf = binary.BigEndian.AppendUint32(buf, p)
	}
	return buf, flowcache.Digest(buf)
}

func endpointDigest(buf []byte, fn string, ep flows.Endpoint) ([]byte, uint64) {
	buf = append(binary.AppendUvarint(buf[:0], uint64(len(fn))), fn...)
	buf = binary.BigEndian.AppendUint32(buf, ep.TunnelPort)
	ip := ep.IP.As16()
	buf = append(append(buf, ip[:]...), byte(ep.IP.BitLen()))
	return buf, flowcache.Digest(buf)
}

func (ps *planState) hasReport(uuid string) bool {
	_, ok := ps.reports[uuid]
	return ok
}

// hostManagers returns the OVSDB host managers running.
func (c *Controller) hostManagers() []*hostManager {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Collect(maps.Values(c.hosts))
}

// subInput is the compiler's input for some sessions: them, in the store's order, and every session whose
// destination is the source of one of them (for the MIRROR_LOOP verdict), with their NICs.
//
// Its endpoints are those of the bridges it concerns (the sessions' NICs' and targets) only: the compiler looks at
// every endpoint it is given, and the whole fabric's would make every pass cost the fleet.
func (c *Controller) subInput(fab *fabric, uuids []string, targets map[string]struct{}, nicOf func(string) (flows.NIC, error)) (*flows.Input, error) {
	inc := c.inc
	in := &flows.Input{NICs: map[string]flows.NIC{}, Endpoints: map[flows.EndpointKey]flows.Endpoint{}, Bridges: fab.bridges}
	seenDP := map[string]bool{}
	addDP := func(dp string) {
		if dp == "" || seenDP[dp] {
			return
		}
		seenDP[dp] = true
		for _, fn := range fab.dpFNs[dp] { // its own flow networks, not every one of the cloud
			if _, ok := fab.networks[fn]; !ok {
				continue
			}
			k := flows.EndpointKey{FlowNetwork: fn, DatapathID: dp}
			if ep, ok := fab.endpoints[k]; ok {
				in.Endpoints[k] = ep
			}
		}
	}
	for dp := range targets {
		addDP(dp)
	}
	set := make(map[string]*sessEntry, len(uuids))
	for _, u := range uuids {
		if e := inc.sessions[u]; e != nil {
			set[u] = e
		}
	}
	for _, u := range uuids {
		if e := inc.sessions[u]; e != nil {
			for _, o := range inc.asDest[e.s.SourceNIC] {
				set[o] = inc.sessions[o]
			}
		}
	}
	entries := slices.SortedFunc(maps.Values(set), func(a, b *sessEntry) int { return cmp.Compare(a.seq, b.seq) })
	in.Sessions = make([]flows.Session, len(entries))
	for i, e := range entries {
		in.Sessions[i] = e.s
		for _, nic := range []string{e.s.SourceNIC, e.s.DestinationNIC} {
			if _, ok := in.NICs[nic]; ok {
				continue
			}
			n, err := nicOf(nic)
			if err != nil {
				return nil, err
			}
			in.NICs[nic] = n
			addDP(n.DatapathID)
		}
	}
	return in, nil
}

// compileTargets compiles each target bridge from every session located on it, and hands it to its worker.
func (c *Controller) compileTargets(ctx context.Context, fab *fabric, targets map[string]struct{},
	nicOf func(string) (flows.NIC, error)) error {
	lead, term, lctx := c.leading()
	if !lead && c.onWork == nil {
		return nil // the leader programs the switches; this controller keeps its plan current to take over
	}
	// A bridge whose inputs are as when it was last compiled gets that state again, with no analysis: a storm
	// of reconnects costs each bridge its read-back only.
	keys := c.bridgeKeys(fab, targets)
	rest := make(map[string]struct{}, len(targets))
	for dp := range targets {
		if _, known := fab.bridges[dp]; !known {
			continue
		}
		if !c.submitReused(lead, term, lctx, dp, keys[dp]) {
			rest[dp] = struct{}{}
		}
	}
	if len(rest) == 0 {
		return nil
	}
	var uuids []string
	for dp := range rest {
		uuids = append(uuids, slices.Collect(maps.Keys(c.inc.onBridge[dp]))...)
	}
	slices.Sort(uuids)
	in, err := c.subInput(fab, slices.Compact(uuids), rest, nicOf)
	if err != nil {
		return err
	}
	plan := flows.Analyze(in)
	c.mu.Lock()
	fps := make(map[string]uint64, len(in.Sessions))
	for _, s := range in.Sessions {
		fps[s.UUID] = c.plan.fp[s.UUID]
	}
	c.mu.Unlock()
	c.submitTargets(lead, term, lctx, in, plan, fps, rest, keys)
	return nil
}

// bridgeKeys digests, for each target bridge, everything its compiled state derives from: the sessions located
// on it (the incremental index) with their fingerprints (each covers the session's definition, both NICs'
// bridge, port and MAC, both endpoints and its verdict), the bridge's ports and its tunnel ports. Two equal keys
// compile to the same flows, in this process and in the next one of the same program (flowcache). The index, the
// fingerprints and the tunnel ports (c.tunnels) must be those of this pass.
func (c *Controller) bridgeKeys(fab *fabric, targets map[string]struct{}) map[string]uint64 {
	out := make(map[string]uint64, len(targets))
	var buf []byte
	var sessions []string
	c.mu.Lock()
	defer c.mu.Unlock()
	for dp := range targets {
		sessions = sessions[:0]
		for s := range c.inc.onBridge[dp] {
			sessions = append(sessions, s)
		}
		slices.Sort(sessions)
		// the tunnel ports are kept current with the fabric (tunnelTargets, patchFabric)
		buf, out[dp] = bridgeKey(buf[:0], dp, sessions, c.plan.fp, fab.bridges[dp].Ports, c.tunnels[dp])
	}
	return out
}

// bridgeKey digests bridge dp's sessions (sorted) with their fingerprints, its ports and its tunnel ports, in buf
// (returned for the next call).
func bridgeKey(buf []byte, dp string, sessions []string, fp map[string]uint64, ports, tunnels []uint32) ([]byte, uint64) {
	u64 := func(v uint64) { buf = binary.BigEndian.AppendUint64(buf, v) }
	str := func(s string) { buf = append(binary.AppendUvarint(buf, uint64(len(s))), s...) }
	str(dp)
	u64(uint64(len(sessions)))
	for _, s := range sessions {
		str(s)
		u64(fp[s])
	}
	for _, list := range [][]uint32{ports, tunnels} {
		u64(uint64(len(list)))
		for _, p := range list {
			u64(uint64(p))
		}
	}
	return buf, flowcache.Digest(buf)
}

// submitReused hands a bridge its last compiled state again when key is the one it was compiled with, and says
// whether it did.
func (c *Controller) submitReused(lead bool, term uint64, lctx context.Context, dp string, key uint64) bool {
	c.mu.Lock()
	b := c.bridges[dp]
	c.mu.Unlock()
	if b == nil {
		return false
	}
	b.mu.Lock()
	if b.last == nil || b.lastKey != key {
		b.mu.Unlock()
		return false
	}
	again := *b.last
	again.term = term
	b.mu.Unlock()
	c.passStats.reused.Add(1)
	if c.onWork != nil {
		c.onWork(dp, &again)
	}
	if lead && c.view.Connected(dp) {
		c.submit(lctx, dp, &again)
	}
	return true
}

// submitTargets hands each target bridge its compiled flows.
func (c *Controller) submitTargets(lead bool, term uint64, lctx context.Context, in *flows.Input, plan *flows.Plan,
	fps map[string]uint64, targets map[string]struct{}, keys map[string]uint64) {
	bySession := make(map[string]*flows.Session, len(in.Sessions))
	for i := range in.Sessions {
		bySession[in.Sessions[i].UUID] = &in.Sessions[i]
	}
	c.passStats.analysed.Add(uint64(len(in.Sessions)))
	// Program only a bridge that this pass's input knew: one that connected after the input was read gets a pass
	// of its own (its connection marked it dirty), and a plan that did not know it holds none of its flows.
	dps := make([]string, 0, len(targets))
	for dp := range targets {
		if _, known := in.Bridges[dp]; known {
			dps = append(dps, dp)
		}
	}
	// Each bridge is compiled, packed and handed to its worker on its own (the plan is only read): on every core
	// when there are many (a restart's first pass compiles the fleet), each bridge's read-back starting as soon
	// as it is compiled, not after the last one.
	var onWorkMu sync.Mutex // onWork (tests) is called one bridge at a time
	compile := func(dp string) {
		on := plan.SessionsOn(dp)
		w := &work{meters: plan.Meters(dp), sessions: make(map[string]uint64, len(on)),
			marks: marks(in, bySession, dp, on), term: term}
		for _, s := range on {
			w.sessions[s] = fps[s]
		}
		if rec, ok := c.takeRestored(dp, keys[dp]); ok {
			// compiled by this program's previous run from the same inputs: the worker finds out from the switch
			// whether it holds them, and has the bridge compiled only if not
			w.flows = packedFlows{pending: true, sum: rec.Flows, n: rec.Count}
		} else {
			w.flows = listFlows(plan.Bridge(dp))
			// Packed at once: a pass that compiles many bridges would otherwise hold every one's flows as
			// []flows.Flow until its worker gets to it, several times the memory; a bridge read back is compared
			// with the packed form anyway, and one that holds them already needs no diff.
			pk, _ := c.packers.Get().(*ofwire.Packer)
			if pk == nil {
				pk = new(ofwire.Packer)
			}
			w.flows.packWith(pk)
			c.packers.Put(pk)
			c.passStats.compiled.Add(1)
		}
		counts := plan.CountIDs(dp) // the counter reads' key: which session a counting flow's id stands for
		c.mu.Lock()
		b := c.bridgeLocked(dp)
		c.mu.Unlock()
		b.mu.Lock()
		b.counts = counts
		// kept to hand again while nothing it derives from changes (compileTargets)
		b.last, b.lastKey = w, keys[dp]
		b.mu.Unlock()
		if c.onWork != nil {
			onWorkMu.Lock()
			c.onWork(dp, w)
			onWorkMu.Unlock()
		}
		if lead && c.view.Connected(dp) {
			c.submit(lctx, dp, w)
		}
	}
	if workers := min(runtime.GOMAXPROCS(0), len(dps)/8); workers > 1 {
		var next atomic.Int64
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := int(next.Add(1) - 1); i < len(dps); i = int(next.Add(1) - 1) {
					compile(dps[i])
				}
			}()
		}
		wg.Wait()
		return
	}
	for _, dp := range dps {
		compile(dp)
	}
}
