package fleet

import (
	"fmt"
	"net/netip"
	"slices"

	"portmirror/model"
	"portmirror/simulator/dataplane"
	"portmirror/simulator/fabric"
)

// Kind is a frame's destination kind.
type Kind int

const (
	Unicast   Kind = iota // to one NIC's MAC
	Broadcast             // ff:ff:ff:ff:ff:ff (an ARP request)
	Multicast             // 01:00:5e:01:01:01 (UDP to 239.1.1.1)
)

func (k Kind) String() string {
	return [...]string{"unicast", "broadcast", "multicast"}[k]
}

// Frame is one frame a NIC sends.
type Frame struct {
	Kind Kind
	From *NIC
	To   *NIC // for Unicast: the NIC whose MAC it is sent to
	Raw  []byte
}

// Describe writes the frame the way tcpdump would summarise it: "ICMP 198.19.0.1 > 198.19.0.2".
func (fr Frame) Describe() string {
	p, err := dataplane.ParseFrame(fr.Raw)
	if err != nil {
		return fmt.Sprintf("%d bytes", len(fr.Raw))
	}
	switch {
	case p.EthType == dataplane.EthTypeARP:
		return fmt.Sprintf("ARP who-has %v tell %v", p.IPDst, p.IPSrc)
	case p.IPProto == dataplane.ProtoICMP:
		return fmt.Sprintf("ICMP %v > %v", p.IPSrc, p.IPDst)
	case p.IPProto == dataplane.ProtoUDP:
		return fmt.Sprintf("UDP %v.%d > %v.%d", p.IPSrc, p.L4Src, p.IPDst, p.L4Dst)
	}
	return fmt.Sprintf("%v > %v type %#04x", p.EthSrc, p.EthDst, p.EthType)
}

var (
	multicastMAC = dataplane.MAC{0x01, 0x00, 0x5e, 0x01, 0x01, 0x01}
	multicastIP  = netip.AddrFrom4([4]byte{239, 1, 1, 1})
)

// UnicastFrame is an ICMP echo request from one NIC to another.
func UnicastFrame(from, to *NIC, seq uint16) Frame {
	return Frame{Kind: Unicast, From: from, To: to, Raw: dataplane.BuildICMPEcho(to.MAC, from.MAC, from.IP, to.IP, uint16(from.Index), seq)}
}

// BroadcastFrame is an ARP request from a NIC.
func BroadcastFrame(from *NIC, target netip.Addr) Frame {
	return Frame{Kind: Broadcast, From: from, Raw: dataplane.BuildARPRequest(from.MAC, from.IP, target)}
}

// MulticastFrame is a UDP datagram from a NIC to 239.1.1.1.
func MulticastFrame(from *NIC, seq uint16) Frame {
	return Frame{Kind: Multicast, From: from, Raw: dataplane.BuildUDP(multicastMAC, from.MAC, from.IP, multicastIP, 5000+seq, 5353, []byte("portmirror-sim"))}
}

// Announce is the gratuitous ARP a NIC sends when it comes up (or after its VM migrated).
func (f *Fleet) Announce(n *NIC) Frame { return BroadcastFrame(n, n.IP) }

// Frames is the traffic of one sending NIC: an ICMP echo to every other sending NIC's MAC, one ARP broadcast and
// one multicast datagram.
func (f *Fleet) Frames(from *NIC) []Frame {
	var out []Frame
	for _, to := range f.Senders() {
		if to != from {
			out = append(out, UnicastFrame(from, to, uint16(to.Index)))
		}
	}
	return append(out, BroadcastFrame(from, nicIP(MaxNICs)), MulticastFrame(from, 1))
}

// Arrival is one frame leaving a bridge port towards a VM NIC.
type Arrival struct {
	Host *Host
	Port uint32
	NIC  *NIC // the NIC plugged into Port
	Raw  []byte
	// Via is the tunnel a mirror copy travelled through to reach this host (tun_id, and the sending host's
	// endpoint as Src); unset for a copy made on this host, and for business traffic.
	Via dataplane.Tunnel
}

// Delivery is everything one sent frame caused.
type Delivery struct {
	Frame    Frame
	Arrivals []Arrival     // at VM NIC ports, capture ports included
	Copies   []fabric.Copy // every frame that left any port anywhere (tunnel and uplink ports included)
	Trace    []string
}

// Captured counts the arrivals at each capture NIC.
func (d Delivery) Captured() map[*NIC]int {
	out := map[*NIC]int{}
	for _, a := range d.Arrivals {
		if a.NIC != nil && a.NIC.Capture {
			out[a.NIC]++
		}
	}
	return out
}

// Send puts the frame on its NIC's port and follows it through the bridges, the flow networks' tunnels and the
// business underlay: a frame a bridge sends out of its uplink reaches the uplink of the host owning the destination
// MAC, or of every other host for a broadcast, a multicast or an unknown MAC (a star: nothing returns to the
// underlay).
func (f *Fleet) Send(fr Frame) (Delivery, error) {
	h, port := f.PortOf(fr.From)
	if h == nil {
		return Delivery{}, fmt.Errorf("fleet: %s is not plugged in", fr.From)
	}
	d := Delivery{Frame: fr}
	first, err := f.Fabric.Inject(h.Name, port, fr.Raw)
	if err != nil {
		return d, err
	}
	f.collect(&d, first)
	for _, c := range first.Copies {
		if c.Port != UplinkPort || c.Tunnel.IsSet() {
			continue
		}
		from := f.hostByName(c.Host)
		for _, to := range f.underlayTargets(fr.Raw, from) {
			next, err := f.Fabric.Inject(to.Name, UplinkPort, c.Frame)
			if err != nil {
				return d, err
			}
			f.collect(&d, next)
		}
	}
	return d, nil
}

func (f *Fleet) hostByName(name string) *Host { return f.byName[name] }

// underlayTargets are the hosts a frame leaving from's uplink reaches.
func (f *Fleet) underlayTargets(raw []byte, from *Host) []*Host {
	var dst dataplane.MAC
	copy(dst[:], raw[:6])
	if !dst.IsMulticast() {
		if n, ok := f.NICByMAC(dst); ok {
			if h := f.HostOf(n.VM); h != nil {
				if h == from {
					return nil
				}
				return []*Host{h}
			}
		}
	}
	var out []*Host
	for _, h := range f.Hosts {
		if h != from {
			out = append(out, h)
		}
	}
	return out
}

func (f *Fleet) collect(d *Delivery, in fabric.Delivery) {
	d.Copies = append(d.Copies, in.Copies...)
	d.Trace = append(d.Trace, in.Trace...)
	for _, c := range in.Copies {
		if c.Tunnel.IsSet() {
			continue
		}
		h := f.hostByName(c.Host)
		if h == nil {
			continue
		}
		f.mu.Lock()
		n := f.byPort[portKey{h.Index, c.Port}]
		f.mu.Unlock()
		if n == nil {
			continue
		}
		a := Arrival{Host: h, Port: c.Port, NIC: n, Raw: c.Frame}
		if n.Capture {
			for _, t := range in.Copies {
				if t.Tunnel.IsSet() && slices.Contains(h.Endpoints, t.Tunnel.Dst) {
					a.Via = t.Tunnel
					break
				}
			}
		}
		d.Arrivals = append(d.Arrivals, a)
	}
}

// Session is a session as the oracle sees it.
type Session struct {
	UUID        string
	Name        string
	Source      *NIC
	Destination *NIC
	Direction   model.Direction
	Enabled     bool               // its port mirror is enabled
	Filters     []model.FilterRule // ordered, first match decides; empty: every frame
}

// Selects reports whether the session's filter selects the frame: the first rule that matches decides, a frame
// that no rule matches is not selected. Fields are compared directly, as a person reads the rule.
func (s Session) Selects(raw []byte) bool {
	if len(s.Filters) == 0 {
		return true
	}
	p, err := dataplane.ParseFrame(raw)
	if err != nil {
		return false
	}
	isIP := p.EthType == dataplane.EthTypeIPv4 || p.EthType == dataplane.EthTypeIPv6
	for _, r := range s.Filters {
		pr, err := r.Parse()
		if err != nil {
			return false
		}
		ok := true
		switch {
		case pr.ARP:
			ok = p.EthType == dataplane.EthTypeARP
		case pr.IPv4 || pr.IPv6:
			ok = (pr.IPv4 && p.EthType == dataplane.EthTypeIPv4) || (pr.IPv6 && p.EthType == dataplane.EthTypeIPv6)
		}
		if ok && pr.Proto >= 0 {
			ok = isIP && int(p.IPProto) == pr.Proto
		}
		if ok && pr.Src.IsValid() {
			ok = isIP && pr.Src.Contains(p.IPSrc)
		}
		if ok && pr.Dst.IsValid() {
			ok = isIP && pr.Dst.Contains(p.IPDst)
		}
		if ok && (pr.Proto == model.ProtoTCP || pr.Proto == model.ProtoUDP) {
			ok = p.L4Src >= pr.SrcPorts.Lo && p.L4Src <= pr.SrcPorts.Hi && p.L4Dst >= pr.DstPorts.Lo && p.L4Dst <= pr.DstPorts.Hi
		}
		if ok {
			return pr.Accept
		}
	}
	return false
}

// Expect is the rule of API.md for one frame: a session selects frames at its source NIC's host (EGRESS: sent by
// the source NIC; INGRESS: delivered to it, i.e. unicast to its MAC or broadcast/multicast, that reached its host
// and were not sent by it); at each host every selected frame goes to each destination of the sessions selecting
// it there exactly once. It returns how many copies each capture NIC receives.
func (f *Fleet) Expect(fr Frame, sessions []Session) map[*NIC]int {
	origin := f.HostOf(fr.From.VM)
	reached := map[*Host]bool{origin: true}
	for _, h := range f.underlayTargets(fr.Raw, origin) {
		reached[h] = true
	}
	var dst dataplane.MAC
	copy(dst[:], fr.Raw[:6])
	perHost := map[*Host]map[*NIC]bool{}
	for _, s := range sessions {
		if !s.Enabled {
			continue
		}
		h := f.HostOf(s.Source.VM)
		sel := s.Direction.CopiesEgress() && s.Source == fr.From
		if s.Direction.CopiesIngress() && s.Source != fr.From && reached[h] && (dst == s.Source.MAC || dst.IsMulticast()) {
			sel = true
		}
		if !sel || !s.Selects(fr.Raw) {
			continue
		}
		if perHost[h] == nil {
			perHost[h] = map[*NIC]bool{}
		}
		perHost[h][s.Destination] = true
	}
	out := map[*NIC]int{}
	for _, ds := range perHost {
		for d := range ds {
			out[d]++
		}
	}
	return out
}
