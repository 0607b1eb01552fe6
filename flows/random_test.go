package flows

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"portmirror/model"
)

// world is a random fleet: the compiler's Input plus the facts the oracle reads.
type world struct {
	in      Input
	bridges []string // every datapath id, connected or not
	nics    []string // NIC uuids in creation order
	fns     []string
}

func (w *world) connected(dp string) bool { _, ok := w.in.Bridges[dp]; return ok }

func (w *world) portExists(dp string, port uint32) bool {
	return w.connected(dp) && slices.Contains(w.in.Bridges[dp].Ports, port)
}

// placed reports whether a NIC is at an existing port of a connected bridge.
func (w *world) placed(uuid string) bool {
	n, ok := w.in.NICs[uuid]
	return ok && n.Bound() && w.portExists(n.DatapathID, n.Port)
}

// tunnel returns the flow network's tunnel port on a bridge when it exists there, else 0.
func (w *world) tunnel(fn, dp string) uint32 {
	ep := w.in.Endpoints[EndpointKey{fn, dp}]
	if ep.TunnelPort != 0 && w.portExists(dp, ep.TunnelPort) {
		return ep.TunnelPort
	}
	return 0
}

func randomWorld(r *rand.Rand) *world {
	w := &world{in: Input{NICs: map[string]NIC{}, Endpoints: map[EndpointKey]Endpoint{}, Bridges: map[string]Bridge{}}}
	nb := 1 + r.IntN(4)
	ports := map[string][]uint32{}
	for b := range nb {
		dp := fmt.Sprintf("%016x", b+1)
		w.bridges = append(w.bridges, dp)
		ports[dp] = []uint32{50} // an uplink: business traffic from elsewhere
	}
	for f := range 1 + r.IntN(2) {
		fn := fmt.Sprintf("f%07d-0000-4000-8000-000000000000", f)
		w.fns = append(w.fns, fn)
		for b, dp := range w.bridges {
			var ep Endpoint
			if r.IntN(10) > 0 {
				ep.IP = netip.AddrFrom4([4]byte{198, 18, byte(f), byte(b + 1)})
			}
			if r.IntN(10) > 0 {
				ep.TunnelPort = uint32(100 + f)
				if r.IntN(12) > 0 { // now and then OVSDB knows it but the switch has not reported it
					ports[dp] = append(ports[dp], ep.TunnelPort)
				}
			}
			if ep != (Endpoint{}) {
				w.in.Endpoints[EndpointKey{fn, dp}] = ep
			}
		}
	}
	nn := 3 + r.IntN(9)
	for i := range nn {
		uuid := fmt.Sprintf("nic-%02d", i)
		w.nics = append(w.nics, uuid)
		n := NIC{MAC: fmt.Sprintf("02:00:00:00:00:%02x", i+1)}
		if r.IntN(12) > 0 {
			n.DatapathID = w.bridges[r.IntN(nb)]
			n.Port = uint32(i + 1)
			if r.IntN(20) > 0 {
				ports[n.DatapathID] = append(ports[n.DatapathID], n.Port)
			}
		}
		w.in.NICs[uuid] = n
	}
	for _, dp := range w.bridges {
		if nb == 1 || r.IntN(10) > 0 {
			w.in.Bridges[dp] = Bridge{Ports: ports[dp]}
		}
	}
	// Sessions that respect MIRROR_LOOP: no NIC is both a source and a destination.
	role := map[string]byte{}
	keys := map[[2]string]uint32{} // (flow network, destination) -> key
	nextKey := uint32(1 + r.IntN(1000))
	dirs := []model.Direction{model.Ingress, model.Egress, model.Bidirection}
	for i := range 1 + r.IntN(10) {
		src, dst := w.nics[r.IntN(nn)], w.nics[r.IntN(nn)]
		if src == dst || role[src] == 'd' || role[dst] == 's' {
			continue
		}
		role[src], role[dst] = 's', 'd'
		fn := w.fns[r.IntN(len(w.fns))]
		k, ok := keys[[2]string{fn, dst}]
		if !ok {
			k = nextKey
			nextKey++
			keys[[2]string{fn, dst}] = k
		}
		w.in.Sessions = append(w.in.Sessions, Session{UUID: fmt.Sprintf("s%02d", i), Type: dirs[r.IntN(3)],
			SourceNIC: src, DestinationNIC: dst, TunnelKey: k, FlowNetwork: fn, Encapsulation: model.GRE,
			Filters: randomFilter(r), SnapLength: randomSnap(r), BandwidthLimitKbps: randomCap(r)})
	}
	randomEncaps(r, w)
	return w
}

// Values random filters and frames draw from, so that they meet often.
var (
	randPrefixes = []string{"198.18.0.0/16", "198.18.1.0/24", "198.18.1.7/32", "10.0.0.0/8", "2001:db8::/32", "2001:db8:1::/48"}
	randAddrs    = []string{"198.18.1.7", "198.18.1.8", "198.18.2.1", "10.1.2.3", "192.0.2.1", "2001:db8:1::5", "2001:db8:2::1", "2001:dbf::1"}
	randPorts    = []uint16{0, 1, 22, 79, 80, 81, 443, 1023, 1024, 4096, 8080, 49151, 65534, 65535}
	randProtos   = []string{"", "", "tcp", "tcp", "udp", "icmp", "icmpv6", "arp", "47", "6"}
)

// randomSnap returns no snap length most of the time, else one of a few.
func randomSnap(r *rand.Rand) uint16 {
	if r.IntN(3) > 0 {
		return 0
	}
	return []uint16{64, 96, 128, 1500, 65535}[r.IntN(5)]
}

// randomFilter returns no filter most of the time, else a few rules that are valid per the API.
func randomFilter(r *rand.Rand) []model.FilterRule {
	if r.IntN(3) == 0 {
		return nil
	}
	var out []model.FilterRule
	for range 1 + r.IntN(4) {
		for {
			fr := model.FilterRule{Action: model.FilterAccept, Protocol: randProtos[r.IntN(len(randProtos))]}
			if r.IntN(3) == 0 {
				fr.Action = model.FilterReject
			}
			if r.IntN(2) == 0 {
				fr.SourceCIDR = randPrefixes[r.IntN(len(randPrefixes))]
			}
			if r.IntN(2) == 0 {
				fr.DestinationCIDR = randPrefixes[r.IntN(len(randPrefixes))]
			}
			ports := func() string {
				switch r.IntN(4) {
				case 0:
					return fmt.Sprint(randPorts[r.IntN(len(randPorts))])
				case 1:
					a, b := r.IntN(65536), r.IntN(65536)
					return fmt.Sprintf("%d-%d", min(a, b), max(a, b))
				case 2:
					a, b := randPorts[r.IntN(len(randPorts))], randPorts[r.IntN(len(randPorts))]
					return fmt.Sprintf("%d-%d", min(a, b), max(a, b))
				}
				return ""
			}
			if fr.Protocol == "tcp" || fr.Protocol == "udp" || fr.Protocol == "6" {
				fr.SourcePorts, fr.DestinationPorts = ports(), ports()
			}
			c, err := fr.Canonical()
			if err == nil {
				out = append(out, c)
				break
			}
		}
	}
	return out
}

// frame is what enters a bridge: business traffic (no tunnel metadata) or a copy arriving on a tunnel port.
type frame struct {
	inPort       uint32
	dlDst        MAC
	tunID        uint64
	ethType      uint16
	proto        uint8
	ipSrc, ipDst netip.Addr
	tpSrc, tpDst uint16
}

// randomL3 returns a frame's upper layers: ARP, IPv4 or IPv6 with a random protocol, addresses and ports, or
// another EtherType.
func randomL3(r *rand.Rand, fr frame) frame {
	switch r.IntN(8) {
	case 0:
		fr.ethType = EthTypeARP
		return fr
	case 1:
		fr.ethType = 0x88cc
		return fr
	}
	for {
		fr.ipSrc = netip.MustParseAddr(randAddrs[r.IntN(len(randAddrs))])
		fr.ipDst = netip.MustParseAddr(randAddrs[r.IntN(len(randAddrs))])
		if fr.ipSrc.Is4() == fr.ipDst.Is4() {
			break
		}
	}
	fr.ethType = EthTypeIPv4
	if fr.ipSrc.Is6() {
		fr.ethType = EthTypeIPv6
	}
	fr.proto = []uint8{6, 6, 17, 17, 1, 58, 47}[r.IntN(7)]
	if fr.proto == 6 || fr.proto == 17 {
		fr.tpSrc = randPorts[r.IntN(len(randPorts))]
		fr.tpDst = uint16(r.IntN(65536))
		if r.IntN(2) == 0 {
			fr.tpDst = randPorts[r.IntN(len(randPorts))]
		}
	}
	return fr
}

// filterSelects is the oracle of a filter: the first rule that matches decides, checked field by field with
// plain comparisons (no masks).
func filterSelects(rules []model.FilterRule, fr frame) bool {
	if len(rules) == 0 {
		return true
	}
	for _, rule := range rules {
		p, err := rule.Parse()
		if err != nil {
			panic(err)
		}
		ok := true
		isIP := fr.ethType == EthTypeIPv4 || fr.ethType == EthTypeIPv6
		switch {
		case p.ARP:
			ok = fr.ethType == EthTypeARP
		case p.IPv4 || p.IPv6:
			ok = (p.IPv4 && fr.ethType == EthTypeIPv4) || (p.IPv6 && fr.ethType == EthTypeIPv6)
		}
		if ok && p.Proto >= 0 {
			ok = isIP && int(fr.proto) == p.Proto
		}
		if ok && p.Src.IsValid() {
			ok = isIP && p.Src.Contains(fr.ipSrc)
		}
		if ok && p.Dst.IsValid() {
			ok = isIP && p.Dst.Contains(fr.ipDst)
		}
		if ok && (p.Proto == model.ProtoTCP || p.Proto == model.ProtoUDP) {
			ok = fr.tpSrc >= p.SrcPorts.Lo && fr.tpSrc <= p.SrcPorts.Hi && fr.tpDst >= p.DstPorts.Lo && fr.tpDst <= p.DstPorts.Hi
		}
		if ok {
			return p.Accept
		}
	}
	return false
}

func matches(m Match, fr frame, reg0 uint32) bool {
	if m.InPort != 0 && m.InPort != fr.inPort {
		return false
	}
	if m.HasTunID && m.TunID != fr.tunID {
		return false
	}
	if m.HasReg0 && m.Reg0 != reg0 {
		return false
	}
	if m.EthType != 0 && m.EthType != fr.ethType {
		return false
	}
	if m.HasIPProto && m.IPProto != fr.proto {
		return false
	}
	if m.IPSrc.IsValid() && !m.IPSrc.Contains(fr.ipSrc) || m.IPDst.IsValid() && !m.IPDst.Contains(fr.ipDst) {
		return false
	}
	if fr.tpSrc&m.TPSrcMask != m.TPSrc || fr.tpDst&m.TPDstMask != m.TPDst {
		return false
	}
	for i := range 6 {
		if fr.dlDst[i]&m.EthDstMask[i] != m.EthDst[i]&m.EthDstMask[i] {
			return false
		}
	}
	return true
}

// emitted is one output of the evaluated flow: a port with the tunnel metadata set at that point.
type emitted struct {
	port  uint32
	tunID uint64
	tunIP netip.Addr
	snap  uint16 // 0: the whole frame
	meter uint32 // the meter the copy went through; 0: none
}

// evaluate applies the table to a frame: the single highest-priority matching flow, or an error when none or
// several of equal priority match.
func evaluate(table []Flow, fr frame) (normal bool, outs []emitted, err error) {
	normal, outs, _, err = evaluateCounting(table, fr)
	return normal, outs, err
}

// evaluateCounting is evaluate that also returns the count ids of the counting flows the frame hit, in order.
func evaluateCounting(table []Flow, fr frame) (normal bool, outs []emitted, counted []uint32, err error) {
	var tunID uint64
	var tunIP netip.Addr
	var reg0 uint32
	normal, outs, err = evaluateIn(table, fr, 0, 0, &reg0, &tunID, &tunIP, &counted, nil)
	return normal, outs, counted, err
}

// meter is the meter applied so far in the clone being run; nil outside a clone, where a meter would drop the
// frame for every later action (the business frame included).
func evaluateIn(table []Flow, fr frame, tableID uint8, depth int, reg0 *uint32, tunID *uint64, tunIP *netip.Addr, counted *[]uint32, meter *uint32) (normal bool, outs []emitted, err error) {
	if depth > 64 {
		return false, nil, fmt.Errorf("resubmit depth over 64")
	}
	var best []Flow
	for _, f := range table {
		if f.Table != tableID || !matches(f.Match, fr, *reg0) {
			continue
		}
		switch {
		case len(best) == 0 || f.Priority > best[0].Priority:
			best = []Flow{f}
		case f.Priority == best[0].Priority:
			best = append(best, f)
		}
	}
	if len(best) == 0 && tableID != 0 {
		return false, nil, nil // a resubmit that misses does nothing
	}
	if len(best) != 1 {
		return false, nil, fmt.Errorf("%d flows of top priority match %+v in table %d: %v", len(best), fr, tableID, best)
	}
	if id, ok := CountID(best[0].Cookie); ok {
		if tableID != TableCount || len(best[0].Actions) != 0 {
			return false, nil, fmt.Errorf("counting flow out of its table or with actions: %s", best[0])
		}
		*counted = append(*counted, id)
	}
	if m := best[0].Meter; m != 0 {
		switch {
		case meter == nil:
			return false, nil, fmt.Errorf("meter %d applied outside a clone (it would drop the business frame and every later copy): %s", m, best[0])
		case *meter != 0:
			return false, nil, fmt.Errorf("a second meter %d in one clone: %s", m, best[0])
		}
		*meter = m
	}
	cloneLeft := 0
	var cloneMeter, savedReg0 uint32
	var savedTunID uint64
	var savedTunIP netip.Addr
	cur := meter
	for i, a := range best[0].Actions {
		if a.Type == ActClone {
			if cloneLeft > 0 || a.Value == 0 || i+int(a.Value) >= len(best[0].Actions) {
				return false, nil, fmt.Errorf("clone nested, empty or past the end: %s", best[0])
			}
			cloneLeft, cloneMeter, cur = int(a.Value), 0, &cloneMeter
			savedReg0, savedTunID, savedTunIP = *reg0, *tunID, *tunIP
			continue
		}
		if cloneLeft > 0 {
			cloneLeft--
		}
		endClone := cur == &cloneMeter && cloneLeft == 0
		switch a.Type {
		case ActNormal:
			if i != 0 || tableID != 0 {
				return false, nil, fmt.Errorf("NORMAL is not first in %s", best[0])
			}
			normal = true
		case ActSetTunID:
			*tunID = a.Value
		case ActSetTunDst:
			*tunIP = a.IP.Addr()
		case ActSetReg0:
			*reg0 = uint32(a.Value)
		case ActResubmit:
			n, o, err := evaluateIn(table, fr, uint8(a.Value), depth+1, reg0, tunID, tunIP, counted, cur)
			if err != nil {
				return false, nil, err
			}
			if n {
				return false, nil, fmt.Errorf("NORMAL in a resubmitted table: %s", best[0])
			}
			outs = append(outs, o...)
		case ActOutput, ActOutputTrunc:
			var snap uint16
			if a.Type == ActOutputTrunc {
				if a.Value < 64 || a.Value > 65535 {
					return false, nil, fmt.Errorf("max_len %d out of 64..65535 in %s", a.Value, best[0])
				}
				snap = uint16(a.Value)
			}
			var m uint32
			if cur != nil {
				m = *cur
			}
			outs = append(outs, emitted{a.Port, *tunID, *tunIP, snap, m})
			*tunID, *tunIP = 0, netip.Addr{} // the oracle insists every tunnel copy sets both fields itself
		}
		if endClone {
			*reg0, *tunID, *tunIP, cur = savedReg0, savedTunID, savedTunIP, meter
		}
	}
	if cloneLeft > 0 {
		return false, nil, fmt.Errorf("clone past the end of %s", best[0])
	}
	return normal, outs, nil
}

// expectedCopies is the oracle: the destination NICs that a business frame entering dp at inPort gets a copy to,
// from API.md's rule, restricted to sessions whose copy can leave this bridge now.
// Each is "<nic>/<snap>": the copy is cut to the longest snap length of the sessions that select the frame for that
// NIC (0: whole, longer than any).
// Each is "<nic>/<snap>/<kbps>": the copy is cut to the longest snap length of the sessions that select the frame
// for that NIC (0: whole, longer than any), and among those goes through the least limiting cap (0: uncapped).
func (w *world) expectedCopies(dp string, fr frame) []string {
	type choice struct{ snap, cap int }
	best := map[string]choice{}
	for _, s := range w.selecting(dp, fr) {
		c := choice{int(s.SnapLength), int(s.BandwidthLimitKbps)}
		if c.snap == 0 || c.snap == 65535 {
			c.snap = 1 << 16
		}
		if c.cap == 0 {
			c.cap = 1 << 40
		}
		if b, ok := best[s.DestinationNIC]; !ok || c.snap > b.snap || c.snap == b.snap && c.cap > b.cap {
			best[s.DestinationNIC] = c
		}
	}
	var want []string
	for nic, c := range best {
		want = append(want, fmt.Sprintf("%s/%d/%d", nic, c.snap%(1<<16), c.cap%(1<<40)))
	}
	slices.Sort(want)
	return want
}

func randomCap(r *rand.Rand) uint32 {
	switch r.IntN(6) {
	case 0:
		return 100
	case 1:
		return 2000
	}
	return 0
}

// selecting returns the sessions that select a business frame entering dp at inPort and whose copy can leave the
// bridge now: each counts the frame once.
func (w *world) selecting(dp string, fr frame) []Session {
	var out []Session
	for _, s := range w.in.Sessions {
		src := w.in.NICs[s.SourceNIC]
		if src.DatapathID != dp || !w.placed(s.SourceNIC) || !w.placed(s.DestinationNIC) {
			continue
		}
		mac, _ := ParseMAC(src.MAC)
		selected := s.Type.CopiesEgress() && fr.inPort == src.Port ||
			s.Type.CopiesIngress() && fr.inPort != src.Port && (fr.dlDst == mac || fr.dlDst.IsMulticast())
		if !selected || !filterSelects(s.Filters, fr) {
			continue
		}
		dst := w.in.NICs[s.DestinationNIC]
		if dst.DatapathID != dp {
			if w.tunnel(s.FlowNetwork, dp) == 0 || !w.in.Endpoints[EndpointKey{s.FlowNetwork, dst.DatapathID}].IP.IsValid() {
				continue
			}
		}
		out = append(out, s)
	}
	return out
}

func (w *world) sessionByUUID(uuid string) *Session {
	for i := range w.in.Sessions {
		if w.in.Sessions[i].UUID == uuid {
			return &w.in.Sessions[i]
		}
	}
	return nil
}

// isDestination reports whether a NIC is the destination of any session.
func (w *world) isDestination(uuid string) bool {
	return slices.ContainsFunc(w.in.Sessions, func(s Session) bool { return s.DestinationNIC == uuid })
}

func TestRandomAgainstOracle(t *testing.T) {
	seeds := 3000
	if testing.Short() {
		seeds = 300
	}
	for seed := range seeds {
		r := rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15))
		w := randomWorld(r)
		if err := w.check(r); err != nil {
			t.Fatalf("seed %d: %v\ninput: %+v\ntables:\n%s", seed, err, w.in, dump(&w.in))
		}
	}
}

func (w *world) check(r *rand.Rand) error {
	plan := Analyze(&w.in)
	tables := map[string][]Flow{}
	for _, dp := range w.bridges {
		tables[dp] = plan.Bridge(dp)
		// Deterministic, and independent of the order of the sessions.
		shuffled := w.in
		shuffled.Sessions = slices.Clone(w.in.Sessions)
		r.Shuffle(len(shuffled.Sessions), func(i, j int) {
			shuffled.Sessions[i], shuffled.Sessions[j] = shuffled.Sessions[j], shuffled.Sessions[i]
		})
		if a, b := fmt.Sprint(tables[dp]), fmt.Sprint(CompileBridge(&shuffled, dp)); a != b {
			return fmt.Errorf("bridge %s: the table depends on the order of sessions:\n%s\n%s", dp, a, b)
		}
		for _, f := range tables[dp] {
			if f.Cookie&CookieMask != CookieOurs {
				return fmt.Errorf("bridge %s: flow without our cookie: %s", dp, f)
			}
			back, err := ParseFlow(f.String())
			if err != nil || back.String() != f.String() {
				return fmt.Errorf("flow %s does not parse back: %v", f, err)
			}
		}
	}
	// A session is ready exactly when both ends are in place and, between bridges, both have the flow network.
	for _, s := range w.in.Sessions {
		rep, ok := plan.Report(s.UUID)
		if !ok {
			return fmt.Errorf("no report for session %s", s.UUID)
		}
		src, dst := w.in.NICs[s.SourceNIC], w.in.NICs[s.DestinationNIC]
		ready := w.placed(s.SourceNIC) && w.placed(s.DestinationNIC)
		if ready && src.DatapathID != dst.DatapathID {
			for _, dp := range []string{src.DatapathID, dst.DatapathID} {
				ready = ready && w.tunnel(s.FlowNetwork, dp) != 0 && w.in.Endpoints[EndpointKey{s.FlowNetwork, dp}].IP.IsValid()
			}
		}
		if rep.Ready() != ready {
			return fmt.Errorf("session %s: ready=%v (%q), want %v", s.UUID, rep.Ready(), rep.Reason(), ready)
		}
		var bridges []string
		for _, n := range []NIC{src, dst} {
			if n.Bound() && !slices.Contains(bridges, n.DatapathID) {
				bridges = append(bridges, n.DatapathID)
			}
		}
		slices.Sort(bridges)
		if !slices.Equal(rep.Bridges, bridges) {
			return fmt.Errorf("session %s: bridges %v, want %v", s.UUID, rep.Bridges, bridges)
		}
		for _, dp := range bridges {
			if !slices.Contains(plan.SessionsOn(dp), s.UUID) {
				return fmt.Errorf("session %s: not listed on bridge %s", s.UUID, dp)
			}
		}
	}

	// What each (flow network, tunnel key, endpoint IP) means: the one NIC it delivers to.
	type wireKey struct {
		fn  string
		key uint64
		ip  netip.Addr
	}
	wire := map[wireKey]string{}
	for _, s := range w.in.Sessions {
		dst := w.in.NICs[s.DestinationNIC]
		if ip := w.in.Endpoints[EndpointKey{s.FlowNetwork, dst.DatapathID}].IP; dst.Bound() && ip.IsValid() {
			wire[wireKey{s.FlowNetwork, uint64(s.TunnelKey), ip}] = s.DestinationNIC
		}
	}
	tunnelFN := func(dp string, port uint32) string {
		for _, fn := range w.fns {
			if w.tunnel(fn, dp) == port {
				return fn
			}
		}
		return ""
	}

	var macs []MAC
	for _, uuid := range w.nics {
		m, _ := ParseMAC(w.in.NICs[uuid].MAC)
		macs = append(macs, m)
	}
	macs = append(macs, MAC{0x02, 0xff, 0, 0, 0, 1}, MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, MAC{0x01, 0, 0x5e, 0, 0, 1})

	countIDs := map[string]map[uint32]string{}
	meters := map[string]map[uint32]Meter{}
	for _, dp := range w.bridges {
		countIDs[dp] = plan.CountIDs(dp)
		meters[dp] = map[uint32]Meter{}
		for _, m := range plan.Meters(dp) {
			if s := w.sessionByUUID(countIDs[dp][m.ID]); s == nil || m.Kbps != s.BandwidthLimitKbps {
				return fmt.Errorf("bridge %s: meter %+v is no capped session's", dp, m)
			}
			meters[dp][m.ID] = m
		}
	}
	for _, dp := range w.bridges {
		if !w.connected(dp) {
			continue
		}
		for _, port := range w.in.Bridges[dp].Ports {
			var nicHere string
			for _, uuid := range w.nics {
				if n := w.in.NICs[uuid]; n.DatapathID == dp && n.Port == port {
					nicHere = uuid
				}
			}
			if fn := tunnelFN(dp, port); fn != "" {
				if err := w.checkTunnelPort(tables, dp, port, fn); err != nil {
					return err
				}
				continue
			}
			var frs []frame
			for _, mac := range macs {
				frs = append(frs, frame{inPort: port, dlDst: mac})
				for range 4 {
					frs = append(frs, randomL3(r, frame{inPort: port, dlDst: mac}))
				}
			}
			for _, fr := range frs {
				normal, outs, counted, err := evaluateCounting(tables[dp], fr)
				if err != nil {
					return fmt.Errorf("bridge %s: %w", dp, err)
				}
				// Each session that selects the frame counts it once, and no other.
				var gotCount, wantCount []string
				for _, id := range counted {
					gotCount = append(gotCount, countIDs[dp][id])
				}
				if nicHere == "" || !w.isDestination(nicHere) { // a capture port's frames are dropped, uncounted
					for _, s := range w.selecting(dp, fr) {
						wantCount = append(wantCount, s.UUID)
					}
				}
				slices.Sort(gotCount)
				slices.Sort(wantCount)
				if !slices.Equal(gotCount, wantCount) {
					return fmt.Errorf("bridge %s: frame %+v: counted for %v, want %v", dp, fr, gotCount, wantCount)
				}
				if nicHere != "" && w.isDestination(nicHere) {
					if normal || len(outs) > 0 {
						return fmt.Errorf("bridge %s: frame %+v from capture port of %s is not dropped", dp, fr, nicHere)
					}
					continue
				}
				if !normal {
					return fmt.Errorf("bridge %s: business frame %+v is not forwarded with NORMAL", dp, fr)
				}
				var got []string
				for _, o := range outs {
					if o.port == port {
						return fmt.Errorf("bridge %s: frame %+v is copied back to the port that sent it", dp, fr)
					}
					var to string
					if fn := tunnelFN(dp, o.port); fn != "" {
						to = wire[wireKey{fn, o.tunID, o.tunIP}]
						if to == "" {
							return fmt.Errorf("bridge %s: copy of %+v to tunnel %d with key %d to %s reaches no destination",
								dp, fr, o.port, o.tunID, o.tunIP)
						}
						if err := w.checkArrival(tables, fn, o, to); err != nil {
							return fmt.Errorf("bridge %s: copy of %+v: %w", dp, fr, err)
						}
					} else {
						for _, uuid := range w.nics {
							if n := w.in.NICs[uuid]; n.DatapathID == dp && n.Port == o.port && w.isDestination(uuid) {
								to = uuid
							}
						}
						if to == "" {
							return fmt.Errorf("bridge %s: copy of %+v to port %d, which is no destination", dp, fr, o.port)
						}
					}
					var kbps uint32
					if o.meter != 0 {
						m, ok := meters[dp][o.meter]
						if !ok {
							return fmt.Errorf("bridge %s: copy of %+v through meter %d, which the bridge does not hold", dp, fr, o.meter)
						}
						kbps = m.Kbps
					}
					snap := o.snap
					if snap == 65535 {
						snap = 0 // max_len 65535 keeps the whole frame (a metered whole copy is output so)
					}
					got = append(got, fmt.Sprintf("%s/%d/%d", to, snap, kbps))
				}
				slices.Sort(got)
				if want := w.expectedCopies(dp, fr); !slices.Equal(got, want) {
					return fmt.Errorf("bridge %s: frame %+v: copies to %v, want %v", dp, fr, got, want)
				}
			}
		}
	}
	return nil
}

// checkArrival follows a tunnel copy to the bridge that owns its endpoint IP: there it must go to the destination
// NIC's port and nowhere else, when that bridge is connected and has its tunnel port and the NIC's port.
func (w *world) checkArrival(tables map[string][]Flow, fn string, o emitted, to string) error {
	dst := w.in.NICs[to]
	tun := w.tunnel(fn, dst.DatapathID)
	if tun == 0 || !w.placed(to) {
		return nil // lost on the way, and the session's report says why
	}
	normal, outs, err := evaluate(tables[dst.DatapathID], frame{inPort: tun, tunID: o.tunID, dlDst: MAC{0x02, 0xee}})
	if err != nil {
		return fmt.Errorf("at %s: %w", dst.DatapathID, err)
	}
	if normal || len(outs) != 1 || outs[0].port != dst.Port {
		return fmt.Errorf("at %s key %d: normal=%v outputs %v, want only port %d of %s", dst.DatapathID, o.tunID,
			normal, outs, dst.Port, to)
	}
	return nil
}

// checkTunnelPort: what arrives on a tunnel port goes only to the destination port its key names, or is dropped.
func (w *world) checkTunnelPort(tables map[string][]Flow, dp string, port uint32, fn string) error {
	keys := []uint64{0, 0xfffffff0}
	for _, s := range w.in.Sessions {
		keys = append(keys, uint64(s.TunnelKey))
	}
	for _, key := range keys {
		normal, outs, err := evaluate(tables[dp], frame{inPort: port, tunID: key, dlDst: MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}})
		if err != nil {
			return fmt.Errorf("bridge %s tunnel port %d: %w", dp, port, err)
		}
		if normal {
			return fmt.Errorf("bridge %s: frame from tunnel port %d with key %d goes to NORMAL", dp, port, key)
		}
		for _, o := range outs {
			ok := false
			for _, s := range w.in.Sessions {
				dst := w.in.NICs[s.DestinationNIC]
				if s.FlowNetwork == fn && uint64(s.TunnelKey) == key && dst.DatapathID == dp && dst.Port == o.port {
					ok = true
				}
			}
			if !ok {
				return fmt.Errorf("bridge %s: key %d on tunnel port %d goes to port %d, which no session of flow network %s with that key names",
					dp, key, port, o.port, fn)
			}
		}
	}
	return nil
}
