package flows

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"portmirror/model"
)

// SessionReport says what the compiler made of one session.
type SessionReport struct {
	SessionUUID string
	// Bridges are the datapath ids whose flows depend on this session: its source NIC's bridge and its
	// destination NIC's bridge, as far as they are bound. Sorted, without duplicates. When a session changes, or
	// anything it refers to, the reconciler recomputes these bridges (before and after the change).
	Bridges []string
	// Reasons say why the session cannot be fully realised now, each naming the object to act on. Empty when
	// every flow the session needs is in the compiled tables of Bridges.
	Reasons []string
}

// Ready reports whether the session is fully realised by the compiled flows.
func (r SessionReport) Ready() bool { return len(r.Reasons) == 0 }

// Reason joins the reasons into one status message; empty when the session is ready.
func (r SessionReport) Reason() string { return strings.Join(r.Reasons, "; ") }

// Plan is the analysis of one Input: every session resolved against the live view, indexed by bridge, ready to
// compile any bridge's table. It is read-only once built, so Bridge may be called from several goroutines.
type Plan struct {
	reports []SessionReport
	index   map[string]int // session uuid -> position in reports/res
	res     []resolved
	bridges map[string]*bridgePlan
}

// target is where one copy goes from the source bridge: a local port, or a tunnel port with key and peer.
type target struct {
	remote bool
	port   uint32 // local: the destination port; remote: the tunnel port
	key    uint32
	ip     netip.Addr
	// ERSPAN: the version the copy carries (0 for GRE and VXLAN) and its direction (see erspanDir).
	erspanVer, erspanDir uint8
}

func compareTarget(a, b target) int {
	if a.remote != b.remote {
		if !a.remote {
			return -1
		}
		return 1
	}
	if c := cmp.Compare(a.port, b.port); c != 0 {
		return c
	}
	if c := cmp.Compare(a.key, b.key); c != 0 {
		return c
	}
	if c := a.ip.Compare(b.ip); c != 0 {
		return c
	}
	return cmp.Or(cmp.Compare(a.erspanVer, b.erspanVer), cmp.Compare(a.erspanDir, b.erspanDir))
}

// resolved is one session checked against the live view.
type resolved struct {
	sess *Session

	srcDP   string // source bridge when the source port exists there
	srcPort uint32
	srcMAC  MAC
	egress  bool // copies frames sent by the source port
	ingress bool // copies frames delivered to the source MAC
	copy    target
	hasCopy bool

	dstDP       string // destination bridge when the destination port exists there
	dstPort     uint32
	deliverPort uint32 // tunnel port on the destination bridge that delivers this session's key; 0: none

	snap  uint16 // the session's snap length; 0: whole frames
	kbps  uint32 // the session's bandwidth cap; 0: none
	fkey  string // model.FilterKey of the session's filter; "": every frame
	rules []model.ParsedRule
}

// bridgePlan lists what concerns one bridge.
type bridgePlan struct {
	sources  []int32  // sessions copying from a source on this bridge
	dests    []int32  // sessions whose destination port is on this bridge
	tunnels  []uint32 // tunnel ports (of any flow network) present on this bridge
	sessions []string // uuids of the sessions whose flows are here, sorted
}

// Analyze resolves every session of in against the live view. Use it once per reconciliation pass and compile
// each dirty bridge from it with Plan.Bridge.
func Analyze(in *Input) *Plan { return analyze(in, "") }

// CompileBridge returns the flows one bridge should hold, sorted canonically (see CompareFlows). It looks only at
// the sessions that touch the bridge; to compile many bridges, Analyze once and call Plan.Bridge for each.
func CompileBridge(in *Input, datapathID string) []Flow {
	return analyze(in, datapathID).Bridge(datapathID)
}

// Reports returns one report per session, in the order of Input.Sessions (when the Plan was made by Analyze).
func (p *Plan) Reports() []SessionReport { return p.reports }

// Report returns the report of one session.
func (p *Plan) Report(sessionUUID string) (SessionReport, bool) {
	i, ok := p.index[sessionUUID]
	if !ok {
		return SessionReport{}, false
	}
	return p.reports[i], true
}

// Bridges returns the datapath ids that hold any flow beyond the baseline, sorted.
func (p *Plan) Bridges() []string {
	out := make([]string, 0, len(p.bridges))
	for dp := range p.bridges {
		out = append(out, dp)
	}
	slices.Sort(out)
	return out
}

// SessionsOn returns the uuids of the sessions whose flows are on a bridge, sorted.
func (p *Plan) SessionsOn(datapathID string) []string {
	if b := p.bridges[datapathID]; b != nil {
		return b.sessions
	}
	return nil
}

// analyze resolves the sessions; when only is set, just those touching that bridge.
func analyze(in *Input, only string) *Plan {
	p := &Plan{index: make(map[string]int), bridges: make(map[string]*bridgePlan)}
	if only == "" {
		// sized once: a fleet's sessions grown by doubling were copied over and over
		p.index = make(map[string]int, len(in.Sessions))
		p.reports = make([]SessionReport, 0, len(in.Sessions))
		p.res = make([]resolved, 0, len(in.Sessions))
	}
	hasPort := func(dp string, port uint32) bool {
		br, connected := in.Bridges[dp]
		if !connected {
			return false
		}
		if _, found := slices.BinarySearch(br.Ports, port); found {
			return true
		}
		return !slices.IsSorted(br.Ports) && slices.Contains(br.Ports, port)
	}
	bridge := func(dp string) *bridgePlan {
		b := p.bridges[dp]
		if b == nil {
			b = &bridgePlan{}
			p.bridges[dp] = b
		}
		return b
	}

	// A NIC that is the destination of any session is a capture port: it cannot also be a source (MIRROR_LOOP).
	destOf := make(map[string]string, len(in.Sessions))
	for i := range in.Sessions {
		s := &in.Sessions[i]
		if _, dup := destOf[s.DestinationNIC]; !dup {
			destOf[s.DestinationNIC] = s.UUID
		}
	}

	for i := range in.Sessions {
		s := &in.Sessions[i]
		src, srcKnown := in.NICs[s.SourceNIC]
		dst, dstKnown := in.NICs[s.DestinationNIC]
		if only != "" && src.DatapathID != only && dst.DatapathID != only {
			continue
		}
		r, rep := resolveSession(in, s, src, srcKnown, dst, dstKnown, destOf, hasPort)
		p.index[s.UUID] = len(p.reports)
		p.reports = append(p.reports, rep)
		p.res = append(p.res, r)
		n := int32(len(p.res) - 1)
		if r.hasCopy && (only == "" || r.srcDP == only) {
			b := bridge(r.srcDP)
			b.sources = append(b.sources, n)
		}
		if r.dstDP != "" && (only == "" || r.dstDP == only) {
			b := bridge(r.dstDP)
			b.dests = append(b.dests, n)
		}
		for _, dp := range rep.Bridges {
			if only == "" || dp == only {
				b := bridge(dp)
				b.sessions = append(b.sessions, s.UUID)
			}
		}
	}
	for k, ep := range in.Endpoints {
		if ep.TunnelPort == 0 || (only != "" && k.DatapathID != only) || !hasPort(k.DatapathID, ep.TunnelPort) {
			continue
		}
		b := bridge(k.DatapathID)
		b.tunnels = append(b.tunnels, ep.TunnelPort)
	}
	for _, b := range p.bridges {
		slices.Sort(b.tunnels)
		b.tunnels = slices.Compact(b.tunnels)
		slices.Sort(b.sessions)
		b.sessions = slices.Compact(b.sessions)
	}
	return p
}

// resolveSession checks one session against the live view and says what it can contribute now.
func resolveSession(in *Input, s *Session, src NIC, srcKnown bool, dst NIC, dstKnown bool,
	destOf map[string]string, hasPort func(string, uint32) bool) (resolved, SessionReport) {
	r := resolved{sess: s}
	rep := SessionReport{SessionUUID: s.UUID}
	why := func(format string, args ...any) { rep.Reasons = append(rep.Reasons, fmt.Sprintf(format, args...)) }

	// placed checks one end: known, bound, its switch connected, its port present.
	placed := func(role, uuid string, n NIC, known bool) bool {
		switch {
		case !known:
			why("%s NIC %s is unknown", role, uuid)
		case n.DatapathID != "" && !bridgeKnown(in, n.DatapathID):
			why("switch %s of %s NIC %s is not connected", n.DatapathID, role, uuid)
		case !n.Bound():
			why("%s NIC %s is not bound to any switch port", role, uuid)
		case !bridgeKnown(in, n.DatapathID):
			why("switch %s of %s NIC %s is not connected", n.DatapathID, role, uuid)
		case !hasPort(n.DatapathID, n.Port):
			why("port %d of %s NIC %s is missing on bridge %s", n.Port, role, uuid, n.DatapathID)
		default:
			return true
		}
		return false
	}
	if !s.Type.Valid() {
		why("session %s has unknown direction %q", s.UUID, s.Type)
	}
	filterOK := true
	r.snap = s.SnapLength
	r.kbps = s.BandwidthLimitKbps
	if r.snap == 65535 {
		r.snap = 0 // no frame is longer: a whole copy, the same kind as one without a snap length
	}
	if r.snap != 0 && r.snap < MinSnapLength {
		why("session %s: snap length %d is below %d", s.UUID, r.snap, MinSnapLength)
		filterOK = false
	}
	if len(s.Filters) > 0 {
		r.fkey = model.FilterKey(s.Filters)
		for i, fr := range s.Filters {
			pr, err := fr.Parse()
			if err != nil {
				why("session %s: filter rule %d: %v", s.UUID, i+1, err)
				filterOK = false
				break
			}
			r.rules = append(r.rules, pr)
		}
	}
	srcOK := placed("source", s.SourceNIC, src, srcKnown)
	dstOK := placed("destination", s.DestinationNIC, dst, dstKnown)
	if srcKnown && src.Bound() {
		rep.Bridges = append(rep.Bridges, src.DatapathID)
	}
	if dstKnown && dst.Bound() && !slices.Contains(rep.Bridges, dst.DatapathID) {
		rep.Bridges = append(rep.Bridges, dst.DatapathID)
	}
	slices.Sort(rep.Bridges)

	sourceUsable := s.Type.Valid() && filterOK
	if s.SourceNIC == s.DestinationNIC {
		why("source and destination are the same NIC %s (SAME_NIC)", s.SourceNIC)
		sourceUsable = false
	} else if other, loop := destOf[s.SourceNIC]; loop {
		why("source NIC %s is also the destination of session %s (MIRROR_LOOP)", s.SourceNIC, other)
		sourceUsable = false
	}
	if srcOK {
		r.srcDP, r.srcPort = src.DatapathID, src.Port
		r.egress = sourceUsable && s.Type.CopiesEgress()
		if sourceUsable && s.Type.CopiesIngress() {
			mac, err := ParseMAC(src.MAC)
			switch {
			case err != nil:
				why("source NIC %s: %v, so frames delivered to it cannot be matched", s.SourceNIC, err)
			case mac.IsMulticast():
				why("source NIC %s has MAC %s, which is not a unicast address, so frames delivered to it cannot be matched",
					s.SourceNIC, mac)
			default:
				r.srcMAC, r.ingress = mac, true
			}
		}
	}
	if dstOK {
		r.dstDP, r.dstPort = dst.DatapathID, dst.Port
	}
	// A destination on a bridge that has not connected yet (its datapath is known from the host, its port is
	// not) is still reachable through the flow network: its bridge keeps the flows it had (fail_mode secure), e.g.
	// while a restarted controller waits for it. The source side keeps sending; the session stays not ready.
	dstLocated := dstKnown && dst.DatapathID != "" && dst.Port == 0 && !bridgeKnown(in, dst.DatapathID)
	remoteToLocated := srcOK && dstLocated && src.DatapathID != dst.DatapathID
	if !remoteToLocated && (!srcOK || !dstOK) {
		// The copy needs both ends. The destination's capture and delivery flows still go in, so that copies
		// from sources elsewhere arrive as soon as the rest is in place.
		if dstOK && !(srcKnown && src.DatapathID == dst.DatapathID) {
			r.deliverPort = tunnelPort(in, s.FlowNetwork, dst.DatapathID, hasPort)
		}
		return r, rep
	}
	if src.DatapathID == dst.DatapathID {
		r.copy, r.hasCopy = target{port: dst.Port}, r.egress || r.ingress
		return r, rep
	}

	// Remote: through the flow network's tunnel port on both bridges.
	ok := true
	if s.FlowNetwork == "" {
		why("session %s has no flow network to carry copies between bridges %s and %s", s.UUID, src.DatapathID,
			dst.DatapathID)
		ok = false
	}
	if s.Encapsulation.Valid() && s.TunnelKey > s.Encapsulation.MaxTunnelKey() {
		why("tunnel key %d of session %s exceeds the %s maximum %d", s.TunnelKey, s.UUID, s.Encapsulation,
			s.Encapsulation.MaxTunnelKey())
		ok = false
	}
	srcEP := in.Endpoints[EndpointKey{FlowNetwork: s.FlowNetwork, DatapathID: src.DatapathID}]
	dstEP := in.Endpoints[EndpointKey{FlowNetwork: s.FlowNetwork, DatapathID: dst.DatapathID}]
	if s.FlowNetwork != "" {
		if !srcEP.IP.IsValid() {
			why("host of source NIC %s has no endpoint on flow network %s", s.SourceNIC, s.FlowNetwork)
		}
		if !dstEP.IP.IsValid() {
			why("host of destination NIC %s has no endpoint on flow network %s", s.DestinationNIC, s.FlowNetwork)
			ok = false
		} else if !dstEP.IP.Is4() {
			why("endpoint %s of the destination NIC %s's host on flow network %s is not an IPv4 address", dstEP.IP,
				s.DestinationNIC, s.FlowNetwork)
			ok = false
		}
	}
	srcTun := tunnelPort(in, s.FlowNetwork, src.DatapathID, hasPort)
	if s.FlowNetwork != "" && srcTun == 0 {
		why("tunnel port %s of flow network %s missing on bridge %s", model.TunnelPortName(s.FlowNetwork),
			s.FlowNetwork, src.DatapathID)
		ok = false
	}
	r.deliverPort = tunnelPort(in, s.FlowNetwork, dst.DatapathID, hasPort)
	if s.FlowNetwork != "" && r.deliverPort == 0 {
		why("tunnel port %s of flow network %s missing on bridge %s", model.TunnelPortName(s.FlowNetwork),
			s.FlowNetwork, dst.DatapathID)
	}
	if ok {
		r.copy = target{remote: true, port: srcTun, key: s.TunnelKey, ip: dstEP.IP, erspanVer: s.Encapsulation.ERSPANVersion()}
		if r.copy.erspanVer == 2 {
			r.copy.erspanDir = erspanDir(s.Type)
		}
		r.hasCopy = r.egress || r.ingress
	}
	return r, rep
}

func bridgeKnown(in *Input, dp string) bool {
	_, ok := in.Bridges[dp]
	return ok
}

// tunnelPort returns the flow network's tunnel port on a bridge, 0 when it is missing.
func tunnelPort(in *Input, fn, dp string, hasPort func(string, uint32) bool) uint32 {
	if fn == "" {
		return 0
	}
	ep := in.Endpoints[EndpointKey{FlowNetwork: fn, DatapathID: dp}]
	if ep.TunnelPort == 0 || !hasPort(dp, ep.TunnelPort) {
		return 0
	}
	return ep.TunnelPort
}
