package flows

import (
	"bytes"
	"cmp"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"portmirror/model"
)

// The priorities of the flows in table 0, highest first. Flows of one priority never overlap, so the frame's
// flow is always the single most specific one:
//
//	600 in_port=<destination port>                      drop: a destination NIC is a capture port
//	500 in_port=<tunnel port>,tun_id=<key>              output:<destination port>, for each destination here
//	400 in_port=<tunnel port>                           drop: nothing else leaves the flow network
//	300 in_port=<source port>,dl_dst=<mac or multicast> NORMAL, copies: where an egress source meets an ingress
//	                                                    one, or an ingress source's own port (no self copies)
//	200 in_port=<egress source port>                    NORMAL, its egress copies
//	100 dl_dst=<ingress source MAC or multicast>        NORMAL, the ingress copies of that address
//	  0 (everything)                                    NORMAL
//
// A copy to a destination that only filtered sessions select on a frame's flow is not output in table 0: the flow
// loads a filter slot into reg0 and resubmits to table 1 (TableFilter), whose flows for that slot are the
// session's rules in order (reg0=<slot> plus the rule's fields, priority PriorityFilterTop minus the rule's
// position): ACCEPT outputs the copy, REJECT and no match go on to the next filtered session copying to the same
// destination (the slot's continuation: reg0=<next>, resubmit(,1)), or end. So a destination gets a frame once
// however many of its sessions accept it, and business forwarding (NORMAL in table 0) never depends on a filter.
//
// A 300 flow is emitted only where the frame's copies differ from what the 200 or 100 flow would give it.
const (
	PriorityBaseline      uint16 = 0
	PriorityIngress       uint16 = 100
	PriorityEgress        uint16 = 200
	PriorityCombined      uint16 = 300
	PriorityTunnelDrop    uint16 = 400
	PriorityTunnelDeliver uint16 = 500
	PriorityCapture       uint16 = 600

	// TableFilter holds the filter slots' rules.
	TableFilter uint8 = 1
	// PriorityFilterTop is the priority of a slot's first rule; rule i has PriorityFilterTop-i.
	PriorityFilterTop uint16 = 1000
	// PriorityFilterMiss is a slot's catch-all: the continuation when no rule matched.
	PriorityFilterMiss uint16 = 1
)

// The low 48 bits of a cookie tell the kind of flow: a function of the flow's priority alone, so a flow's cookie
// follows from its key and never needs changing in place.
const (
	KindBaseline uint64 = iota + 1
	KindIngress
	KindEgress
	KindCombined
	KindTunnelDrop
	KindTunnelDeliver
	KindCapture
	KindFilter
)

func cookie(kind uint64) uint64 { return CookieOurs | kind }

// Bridge returns the flows one bridge should hold, sorted canonically (see CompareFlows): the baseline NORMAL
// flow, and whatever the plan's sessions need there. Every bridge gets the baseline, even one the plan does not
// mention.
func (p *Plan) Bridge(datapathID string) []Flow {
	baseline := Flow{Priority: PriorityBaseline, Cookie: cookie(KindBaseline), Actions: []Action{{Type: ActNormal}}}
	b := p.bridges[datapathID]
	if b == nil {
		return []Flow{baseline}
	}
	out := p.destinationFlows(b, nil)
	out, filters := p.sourceFlows(b, out)
	// The counting table's flows come in the sessions' order, not their ids': sorting them (a few per session)
	// here keeps the whole list (100k flows on a crowded bridge) from being sorted below.
	if !slices.IsSortedFunc(filters, CompareFlows) {
		slices.SortFunc(filters, CompareFlows)
	}
	out = append(out, baseline)
	out = append(out, filters...)
	// The flows are built in canonical order; sorting is the safety net.
	if !slices.IsSortedFunc(out, CompareFlows) {
		slices.SortFunc(out, CompareFlows)
	}
	// Returned in what append grew (up to twice their size): the controller packs a bridge's flows as soon as
	// they are compiled (ofwire.PackFlows) and keeps only that, so a copy of its own size would be work for nothing.
	return out
}

// destinationFlows: capture ports, tunnel delivery by key, and the tunnel ports' drop.
func (p *Plan) destinationFlows(b *bridgePlan, out []Flow) []Flow {
	type deliverKey struct{ tun, key uint32 }
	var capture []uint32
	deliver := make(map[deliverKey][]uint32)
	for _, n := range b.dests {
		r := &p.res[n]
		capture = append(capture, r.dstPort)
		if r.deliverPort != 0 {
			k := deliverKey{r.deliverPort, r.sess.TunnelKey}
			deliver[k] = append(deliver[k], r.dstPort)
		}
	}
	slices.Sort(capture)
	for _, port := range slices.Compact(capture) {
		out = append(out, Flow{Priority: PriorityCapture, Cookie: cookie(KindCapture), Match: Match{InPort: port}})
	}
	keys := slices.SortedFunc(maps.Keys(deliver), func(a, b deliverKey) int {
		return cmp.Or(cmp.Compare(a.tun, b.tun), cmp.Compare(a.key, b.key))
	})
	for _, k := range keys {
		ports := deliver[k]
		slices.Sort(ports)
		ports = slices.Compact(ports)
		acts := make([]Action, len(ports))
		for i, port := range ports {
			acts[i] = Action{Type: ActOutput, Port: port}
		}
		out = append(out, Flow{Priority: PriorityTunnelDeliver, Cookie: cookie(KindTunnelDeliver),
			Match: Match{InPort: k.tun, TunID: uint64(k.key), HasTunID: true}, Actions: acts})
	}
	for _, tun := range b.tunnels {
		out = append(out, Flow{Priority: PriorityTunnelDrop, Cookie: cookie(KindTunnelDrop), Match: Match{InPort: tun}})
	}
	return out
}

// ingressEntry is one ingress source on the bridge: frames to mac from any port but port get ids.
type ingressEntry struct {
	port uint32
	mac  MAC
	ids  idset
}

// MinSnapLength is the shortest snap length a session may have (the API's rule; OVS takes 14 and more).
const MinSnapLength = 64

// copyKey is one kind of copy a source flow can make: to a target, cut to a snap length (0: whole), through a
// session's meter (0: none; kbps its rate), under a filter ("" for none).
type copyKey struct {
	t     target
	snap  uint16
	kbps  uint32
	meter uint32
	fkey  string
}

// snapRank orders snap lengths from the longest copy: whole frames first.
func snapRank(s uint16) int {
	if s == 0 {
		return 0
	}
	return 0x10000 - int(s)
}

// capRank orders bandwidth caps from the least limited: uncapped first, then the highest rate.
func capRank(kbps uint32) uint64 {
	if kbps == 0 {
		return 0
	}
	return 1<<32 - uint64(kbps)
}

// compareCopy orders copy kinds by target, then longest copy first, then least limited first (uncapped, then the
// highest cap), then unfiltered first: so that, for one target, walking a flow's copy kinds in order reaches the
// longest, least limited copy any selecting session makes first. Where sessions to one destination select one
// frame, that is the copy the destination gets (once), and only that copy's meter is charged: a capped session
// never makes an uncapped session's copy of the same frame drop.
func compareCopy(a, b copyKey) int {
	if c := compareTarget(a.t, b.t); c != 0 {
		return c
	}
	if c := cmp.Compare(snapRank(a.snap), snapRank(b.snap)); c != 0 {
		return c
	}
	if c := cmp.Compare(capRank(a.kbps), capRank(b.kbps)); c != 0 {
		return c
	}
	if c := cmp.Compare(a.meter, b.meter); c != 0 {
		return c
	}
	return cmp.Compare(a.fkey, b.fkey)
}

// sourceFlows: the flows that forward business traffic with NORMAL and add the copies, and the filter table's
// flows they use.
func (p *Plan) sourceFlows(b *bridgePlan, out []Flow) ([]Flow, []Flow) {
	if len(b.sources) == 0 {
		return out, nil
	}
	// One target per destination NIC, so a frame reaches each destination once however many sessions select it.
	best := make(map[string]target)
	for _, n := range b.sources {
		r := &p.res[n]
		if cur, ok := best[r.sess.DestinationNIC]; !ok || compareTarget(r.copy, cur) < 0 {
			best[r.sess.DestinationNIC] = r.copy
		}
	}
	targets := slices.SortedFunc(maps.Values(best), compareTarget)
	targets = slices.CompactFunc(targets, func(a, b target) bool { return compareTarget(a, b) == 0 })
	// The ids the copy sets below hold are copy kinds: a target, unconditionally or under one filter.
	countIDs := p.countIDs(b.sources)
	// A capped session's meter has its count id.
	keyOf := func(j int, r *resolved) copyKey {
		k := copyKey{t: best[r.sess.DestinationNIC], snap: r.snap, fkey: r.fkey}
		if r.kbps != 0 {
			k.kbps, k.meter = r.kbps, countIDs[j]
		}
		return k
	}
	copies := make([]copyKey, 0, len(targets))
	rulesOf := make(map[string][]model.ParsedRule)
	for j, n := range b.sources {
		r := &p.res[n]
		copies = append(copies, keyOf(j, r))
		if r.fkey != "" {
			rulesOf[r.fkey] = r.rules
		}
	}
	slices.SortFunc(copies, compareCopy)
	copies = slices.CompactFunc(copies, func(a, b copyKey) bool { return compareCopy(a, b) == 0 })
	// The sets below hold sessions (their positions in b.sources), so that each flow knows which sessions select
	// its frames and counts each of them (see TableCount); copyOf maps a session to its copy kind.
	copyOf := make([]int32, len(b.sources))
	for j, n := range b.sources {
		r := &p.res[n]
		i, _ := slices.BinarySearchFunc(copies, keyOf(j, r), compareCopy)
		copyOf[j] = int32(i)
	}
	// The actions of each copy kind: to its target, cut when it has a snap length (output with max_len: the inner
	// frame is cut before a tunnel encapsulates it).
	// A metered copy is made inside a clone: its meter (in TableMeter, reached with the meter id in reg0) can drop
	// only the clone's frame; the output with max_len (65535: whole) makes OVS emit a real datapath clone.
	copyActs := make([][]Action, len(copies))
	for i, ck := range copies {
		out := Action{Type: ActOutput, Port: ck.t.port}
		if ck.snap != 0 {
			out = Action{Type: ActOutputTrunc, Port: ck.t.port, Value: uint64(ck.snap)}
		} else if ck.meter != 0 {
			out = Action{Type: ActOutputTrunc, Port: ck.t.port, Value: 65535}
		}
		var acts []Action
		if ck.meter != 0 {
			acts = []Action{{Type: ActClone}, {Type: ActSetReg0, Value: uint64(ck.meter)}, {Type: ActResubmit, Value: uint64(TableMeter)}}
		}
		if ck.t.remote {
			acts = append(acts, ck.t.tunnelActs(out)...)
		} else {
			acts = append(acts, out)
		}
		if ck.meter != 0 {
			acts[0].Value = uint64(len(acts) - 1)
		}
		copyActs[i] = acts
	}
	// Flows are emitted with their copy sets; the action lists are filled at the end from one allocation (each
	// capped to its length, so appending to one copies it instead of overwriting its neighbour).
	start := len(out)
	var sets []idset
	emit := func(prio uint16, kind uint64, m Match, ids idset) {
		out = append(out, Flow{Priority: prio, Cookie: cookie(kind), Match: m})
		sets = append(sets, ids)
	}
	egress := make(map[uint32]idset)
	type entryKey struct {
		port uint32
		mac  MAC
	}
	entryIdx := make(map[entryKey]int)
	var entries []ingressEntry
	for j, n := range b.sources {
		r := &p.res[n]
		i := int32(j)
		if r.egress {
			egress[r.srcPort] = egress[r.srcPort].with(i)
		}
		if r.ingress {
			k := entryKey{r.srcPort, r.srcMAC}
			e, ok := entryIdx[k]
			if !ok {
				e = len(entries)
				entryIdx[k] = e
				entries = append(entries, ingressEntry{port: r.srcPort, mac: r.srcMAC})
			}
			entries[e].ids = entries[e].ids.with(i)
		}
	}
	slices.SortFunc(entries, func(a, b ingressEntry) int {
		if c := bytes.Compare(a.mac[:], b.mac[:]); c != 0 {
			return c
		}
		return cmp.Compare(a.port, b.port)
	})

	// 100: dl_dst=<mac> and dl_dst=multicast, from any port.
	byMAC := make(map[MAC][]int) // entries with that MAC
	var macs []MAC
	entriesAt := make(map[uint32][]int)
	var all idset
	count := make([]int, len(b.sources)) // how many entries hold each session
	for e := range entries {
		m := entries[e].mac
		if _, seen := byMAC[m]; !seen {
			macs = append(macs, m)
		}
		byMAC[m] = append(byMAC[m], e)
		entriesAt[entries[e].port] = append(entriesAt[entries[e].port], e)
		all = all.union(entries[e].ids)
		for _, i := range entries[e].ids {
			count[i]++
		}
	}
	mcMAC, mcMask := MatchMulticast()
	perMAC := make(map[MAC]idset, len(macs))
	for _, m := range macs {
		var ids idset
		for _, e := range byMAC[m] {
			ids = ids.union(entries[e].ids)
		}
		perMAC[m] = ids
	}
	egressPorts := slices.Sorted(maps.Keys(egress))

	// 300: in_port=<port>,dl_dst=<class> wherever the lower flows would give the wrong copies: an egress source's
	// frames to an ingress-mirrored address, and an ingress source's own frames (never copied as its ingress).
	special := slices.Sorted(maps.Keys(entriesAt))
	special = append(special, egressPorts...)
	slices.Sort(special)
	special = slices.Compact(special)
	// Size out and sets once: at 100k flows, growing them as they fill allocated five times their final size
	// (growslice adds a quarter at a time). The bound is all but exact: an egress source's port gets a flow for
	// nearly every address, another port one for nearly each of its own.
	bound := len(special) + len(egressPorts) + 1 + len(macs)
	for _, port := range special {
		if _, ok := egress[port]; ok {
			bound += len(macs)
		} else {
			bound += len(entriesAt[port])
		}
	}
	out = slices.Grow(out, bound)
	sets = slices.Grow(sets, bound)
	for _, port := range special {
		eg, hasEgress := egress[port]
		classes := macs
		if !hasEgress {
			classes = classes[:0:0]
			for _, e := range entriesAt[port] {
				classes = append(classes, entries[e].mac)
			}
			slices.SortFunc(classes, func(a, b MAC) int { return bytes.Compare(a[:], b[:]) })
			classes = slices.Compact(classes)
		}
		if len(all) > 0 {
			mc := all
			if own := entriesAt[port]; len(own) > 0 {
				// Leave out what only this port's own ingress entries copy.
				mine := make(map[int32]int)
				for _, e := range own {
					for _, i := range entries[e].ids {
						mine[i]++
					}
				}
				mc = make(idset, 0, len(all))
				for _, i := range all {
					if count[i] > mine[i] {
						mc = append(mc, i)
					}
				}
			}
			want := eg.union(mc)
			lower := all
			if hasEgress {
				lower = eg
			}
			if !want.equal(lower) {
				emit(PriorityCombined, KindCombined, Match{InPort: port, EthDst: mcMAC, EthDstMask: mcMask}, want)
			}
		}
		for _, m := range classes {
			want := eg
			for _, e := range byMAC[m] {
				if entries[e].port != port {
					want = want.union(entries[e].ids)
				}
			}
			lower := perMAC[m]
			if hasEgress {
				lower = eg
			}
			if !want.equal(lower) {
				emit(PriorityCombined, KindCombined, Match{InPort: port, EthDst: m, EthDstMask: exactMask()}, want)
			}
		}
	}

	// 200: in_port=<egress source port>.
	for _, port := range egressPorts {
		emit(PriorityEgress, KindEgress, Match{InPort: port}, egress[port])
	}

	// 100: dl_dst=<multicast> and dl_dst=<mac> from any port.
	if len(all) > 0 {
		emit(PriorityIngress, KindIngress, Match{EthDst: mcMAC, EthDstMask: mcMask}, all)
	}
	for _, m := range macs {
		emit(PriorityIngress, KindIngress, Match{EthDst: m, EthDstMask: exactMask()}, perMAC[m])
	}

	n := 0
	for _, ids := range sets {
		n++
		for _, i := range ids {
			n += 2 + max(len(copyActs[copyOf[i]]), 2)
		}
	}
	fs := filterSlots{copies: copies, rulesOf: rulesOf, copyActs: copyActs, memo: make(map[string]uint32)}
	arena := make([]Action, 0, n)
	var kinds idset
	var cids []uint32
	for k, sessions := range sets {
		from := len(arena)
		arena = append(arena, Action{Type: ActNormal})
		// Count the frame once for each session that selects it, then make its copies by kind.
		kinds, cids = kinds[:0], cids[:0]
		for _, s := range sessions {
			cids = append(cids, countIDs[s])
			kinds = append(kinds, copyOf[s])
		}
		slices.Sort(cids) // the sessions' order in the input must not matter
		for _, c := range cids {
			arena = append(arena, Action{Type: ActSetReg0, Value: uint64(c)}, Action{Type: ActResubmit, Value: uint64(TableCount)})
		}
		slices.Sort(kinds)
		ids := slices.Compact(kinds)
		for j := 0; j < len(ids); {
			t := copies[ids[j]].t
			e := j + 1
			for e < len(ids) && compareTarget(copies[ids[e]].t, t) == 0 {
				e++
			}
			// ids[j:e] copy to t, longest copy first: the filtered ones up to the first unfiltered one are asked in
			// turn, and that unfiltered copy (or nothing) is what a frame none of them accepts gets.
			u := int32(-1)
			chain := ids[j:e]
			for x, c := range chain {
				if copies[c].fkey == "" {
					u, chain = c, chain[:x]
					break
				}
			}
			if len(chain) == 0 {
				arena = append(arena, copyActs[u]...)
			} else {
				arena = append(arena, fs.enter(fs.slot(chain, u))...)
			}
			j = e
		}
		out[start+k].Actions = arena[from:len(arena):len(arena)]
	}
	return out, append(append(fs.flows(), p.countFlows(b.sources, countIDs)...), p.meterFlows(b.sources, countIDs)...)
}

// filterSlots allocates the filter table's slots of one bridge: a slot is a chain of filtered copies to one
// target, evaluated in turn until one accepts.
type filterSlots struct {
	copies   []copyKey
	rulesOf  map[string][]model.ParsedRule
	copyActs [][]Action        // by copy id
	memo     map[string]uint32 // chain (copy ids) and fallback -> slot
	defs     []slotDef         // slot i+1
}

type slotDef struct {
	copy     int32
	next     uint32 // 0: none
	fallback int32  // with next 0: the unfiltered copy made when no filter of the chain accepts; -1: none
}

// slot returns the slot of a chain of copy ids (sorted, one target, each under a filter) ending in fallback (an
// unfiltered copy id, or -1), allocating it.
func (fs *filterSlots) slot(chain []int32, fallback int32) uint32 {
	var kb strings.Builder
	for _, c := range chain {
		kb.WriteString(strconv.Itoa(int(c)))
		kb.WriteByte(',')
	}
	kb.WriteString(strconv.Itoa(int(fallback)))
	k := kb.String()
	if s, ok := fs.memo[k]; ok {
		return s
	}
	d := slotDef{copy: chain[0], fallback: -1}
	if len(chain) > 1 {
		d.next = fs.slot(chain[1:], fallback)
	} else {
		d.fallback = fallback
	}
	fs.defs = append(fs.defs, d)
	s := uint32(len(fs.defs))
	fs.memo[k] = s
	return s
}

// enter returns the actions that evaluate a slot.
func (fs *filterSlots) enter(slot uint32) []Action {
	if slot == 0 {
		return nil
	}
	return []Action{{Type: ActSetReg0, Value: uint64(slot)}, {Type: ActResubmit, Value: uint64(TableFilter)}}
}

// flows returns the filter table's flows of every slot allocated.
func (fs *filterSlots) flows() []Flow {
	var out []Flow
	for i, d := range fs.defs {
		slot := uint32(i + 1)
		ck := fs.copies[d.copy]
		accept := fs.copyActs[d.copy]
		cont := fs.enter(d.next)
		if d.fallback >= 0 {
			cont = fs.copyActs[d.fallback]
		}
		for ri, rule := range fs.rulesOf[ck.fkey] {
			acts := cont
			if rule.Accept {
				acts = accept
			}
			for _, m := range RuleMatches(rule) {
				m.Reg0, m.HasReg0 = slot, true
				out = append(out, Flow{Table: TableFilter, Priority: PriorityFilterTop - uint16(ri),
					Cookie: cookie(KindFilter), Match: m, Actions: slices.Clip(acts)})
			}
		}
		if len(cont) > 0 {
			out = append(out, Flow{Table: TableFilter, Priority: PriorityFilterMiss, Cookie: cookie(KindFilter),
				Match: Match{Reg0: slot, HasReg0: true}, Actions: slices.Clip(cont)})
		}
	}
	return out
}

// RuleMatches returns the matches whose union is exactly the frames a filter rule matches: one per IP family
// and per masked port block (a port range is turned into the fewest prefix-masked values).
func RuleMatches(r model.ParsedRule) []Match {
	if r.ARP {
		return []Match{{EthType: EthTypeARP}}
	}
	if !r.IPv4 && !r.IPv6 {
		return []Match{{}}
	}
	var fams []uint16
	if r.IPv4 {
		fams = append(fams, EthTypeIPv4)
	}
	if r.IPv6 {
		fams = append(fams, EthTypeIPv6)
	}
	srcs, dsts := [][2]uint16{{0, 0}}, [][2]uint16{{0, 0}}
	if r.Proto == model.ProtoTCP || r.Proto == model.ProtoUDP {
		if !r.SrcPorts.Any() {
			srcs = r.SrcPorts.PortMasks()
		}
		if !r.DstPorts.Any() {
			dsts = r.DstPorts.PortMasks()
		}
	}
	var out []Match
	for _, et := range fams {
		m := Match{EthType: et, IPSrc: r.Src, IPDst: r.Dst}
		if r.Proto >= 0 {
			m.IPProto, m.HasIPProto = uint8(r.Proto), true
		}
		for _, sp := range srcs {
			for _, dp := range dsts {
				x := m
				x.TPSrc, x.TPSrcMask = sp[0], sp[1]
				x.TPDst, x.TPDstMask = dp[0], dp[1]
				out = append(out, x)
			}
		}
	}
	return out
}

// idset is a sorted set of target ids.
type idset []int32

// with returns s with i added (s may be modified).
func (s idset) with(i int32) idset {
	j, found := slices.BinarySearch(s, i)
	if found {
		return s
	}
	return slices.Insert(s, j, i)
}

// union returns s ∪ t without modifying either (it returns one of them when the other adds nothing).
func (s idset) union(t idset) idset {
	if len(t) == 0 {
		return s
	}
	if len(s) == 0 {
		return t
	}
	out := make(idset, 0, len(s)+len(t))
	i, j := 0, 0
	for i < len(s) && j < len(t) {
		switch {
		case s[i] < t[j]:
			out = append(out, s[i])
			i++
		case s[i] > t[j]:
			out = append(out, t[j])
			j++
		default:
			out = append(out, s[i])
			i++
			j++
		}
	}
	out = append(out, s[i:]...)
	return append(out, t[j:]...)
}

func (s idset) equal(t idset) bool { return slices.Equal(s, t) }

// CompareFlows orders flows canonically: by table, priority from high to low, then match (in_port, tun_id,
// dl_dst mask, dl_dst).
func CompareFlows(a, b Flow) int { return CompareKeys(a.Key(), b.Key()) }

// CompareKeys orders flow keys as CompareFlows does.
func CompareKeys(a, b Key) int {
	if c := cmp.Compare(a.Table, b.Table); c != 0 {
		return c
	}
	if c := cmp.Compare(b.Priority, a.Priority); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Match.InPort, b.Match.InPort); c != 0 {
		return c
	}
	if a.Match.HasTunID != b.Match.HasTunID {
		if !a.Match.HasTunID {
			return -1
		}
		return 1
	}
	if c := cmp.Compare(a.Match.TunID, b.Match.TunID); c != 0 {
		return c
	}
	if c := bytes.Compare(a.Match.EthDstMask[:], b.Match.EthDstMask[:]); c != 0 {
		return c
	}
	if c := bytes.Compare(a.Match.EthDst[:], b.Match.EthDst[:]); c != 0 {
		return c
	}
	return compareFilterFields(&a.Match, &b.Match)
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

func comparePrefix(a, b netip.Prefix) int {
	if c := compareBool(a.IsValid(), b.IsValid()); c != 0 {
		return c
	}
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return cmp.Compare(a.Bits(), b.Bits())
}

func compareFilterFields(a, b *Match) int {
	return cmp.Or(
		compareBool(a.HasReg0, b.HasReg0), cmp.Compare(a.Reg0, b.Reg0),
		cmp.Compare(a.EthType, b.EthType),
		compareBool(a.HasIPProto, b.HasIPProto), cmp.Compare(a.IPProto, b.IPProto),
		comparePrefix(a.IPSrc, b.IPSrc), comparePrefix(a.IPDst, b.IPDst),
		cmp.Compare(a.TPSrcMask, b.TPSrcMask), cmp.Compare(a.TPSrc, b.TPSrc),
		cmp.Compare(a.TPDstMask, b.TPDstMask), cmp.Compare(a.TPDst, b.TPDst),
	)
}
