package flows

import (
	"hash/fnv"
	"slices"
)

// Counting. Every session has a counting point on its source bridge: table 2 (TableCount) holds, per session, a
// flow matching reg0=<the session's count id> (plus, for a filtered session, each rule's fields, in rule order),
// whose actions are empty. A table-0 flow that selects a frame for a session loads the session's count id into
// reg0 and resubmits to TableCount once per selecting session, whichever destination and filter slot the copy
// then takes. So the n_packets and n_bytes of a session's KindCount flows are exactly the frames the session
// selected (bytes before truncation), even where a flow's copies serve several sessions and a destination gets a
// frame once. The resubmits add no datapath action: OVS only credits the rules when it attributes a megaflow's
// statistics. The filter table's and the count table's reg0 meanings never meet: each load precedes its resubmit.
const (
	// TableCount holds the sessions' counting flows.
	TableCount uint8 = 2
	// KindCount is the kind (low 16 bits of the cookie) of a counting flow: a frame that hits it was selected by
	// the session whose count id is in bits 16..47.
	KindCount uint64 = 0x20
	// KindCountReject is a filtered session's REJECT rule in TableCount: it stops the frame uncounted.
	KindCountReject uint64 = 0x21
	// CountCookieMask selects the counting flows of every session with the cookie CookieOurs|KindCount: what a
	// counter poll asks a switch for.
	CountCookieMask = CookieMask | 0xffff

	maxCountID = 0x7fffffff
)

// CountCookie is the cookie of a session's counting flows on a bridge where its count id is id.
func CountCookie(id uint32) uint64 { return CookieOurs | uint64(id)<<16 | KindCount }

// CountID returns the count id a counting flow's cookie carries; false when the cookie is not a counting flow's.
func CountID(cookie uint64) (uint32, bool) {
	if cookie&CountCookieMask != CookieOurs|KindCount {
		return 0, false
	}
	return uint32(cookie >> 16 & maxCountID), true
}

// countIDs assigns the count ids of the sessions with a source on a bridge: a hash of the session's uuid, so that
// a session keeps its id (and its counting flows their counters) while others come and go; a collision takes the
// next free id, in uuid order. srcs are indexes into p.res; the result is aligned with srcs.
func (p *Plan) countIDs(srcs []int32) []uint32 {
	order := make([]int, len(srcs))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		ua, ub := p.res[srcs[a]].sess.UUID, p.res[srcs[b]].sess.UUID
		switch {
		case ua < ub:
			return -1
		case ua > ub:
			return 1
		}
		return 0
	})
	ids := make([]uint32, len(srcs))
	used := make(map[uint32]struct{}, len(srcs))
	for _, i := range order {
		h := fnv.New32a()
		h.Write([]byte(p.res[srcs[i]].sess.UUID))
		id := h.Sum32() & maxCountID
		for {
			if id == 0 {
				id = 1
			}
			if _, taken := used[id]; !taken {
				break
			}
			id = id%maxCountID + 1
		}
		used[id] = struct{}{}
		ids[i] = id
	}
	return ids
}

// CountIDs returns, for a bridge, the session uuid of each count id whose counting flows the bridge holds: the
// sessions whose source is there and whose copies can leave it now.
func (p *Plan) CountIDs(datapathID string) map[uint32]string {
	b := p.bridges[datapathID]
	if b == nil || len(b.sources) == 0 {
		return nil
	}
	ids := p.countIDs(b.sources)
	out := make(map[uint32]string, len(ids))
	for i, n := range b.sources {
		out[ids[i]] = p.res[n].sess.UUID
	}
	return out
}

// countFlows returns the counting flows of the sessions srcs (indexes into p.res) with their count ids.
func (p *Plan) countFlows(srcs []int32, ids []uint32) []Flow {
	var out []Flow
	for i, n := range srcs {
		r := &p.res[n]
		id := ids[i]
		if r.fkey == "" {
			out = append(out, Flow{Table: TableCount, Priority: PriorityFilterTop, Cookie: CountCookie(id),
				Match: Match{Reg0: id, HasReg0: true}})
			continue
		}
		for ri, rule := range r.rules {
			c := CountCookie(id)
			if !rule.Accept {
				c = c&^0xffff | KindCountReject
			}
			for _, m := range RuleMatches(rule) {
				m.Reg0, m.HasReg0 = id, true
				out = append(out, Flow{Table: TableCount, Priority: PriorityFilterTop - uint16(ri), Cookie: c, Match: m})
			}
		}
	}
	return out
}
