package dataplane

import (
	"fmt"
	"net/netip"
	"strings"
)

// Emit is one frame leaving the bridge: the port, the frame as it leaves (VLAN tag as the port sends it) and,
// for a tunnel port, the tunnel metadata it is encapsulated with (Frame.Tunnel; Src is the port's local_ip).
type Emit struct {
	Port     uint32
	PortName string
	Frame    Frame
}

// Result is what the bridge did with one frame.
type Result struct {
	Emits        []Emit
	ToController []PacketIn // what output:CONTROLLER sent to the controllers
	Trace        []string   // ofproto/trace-like explanation
}

// Packet-in reasons of OpenFlow 1.3 (OFPR_*), as OVS reports them.
const (
	PacketInNoMatch uint8 = 0 // sent by a table-miss flow (priority 0, empty match)
	PacketInAction  uint8 = 1 // sent by any other flow's output:CONTROLLER, or by a packet-out
)

// PacketIn is a frame the pipeline sent to the controller: the switch sends it as a PACKET_IN.
type PacketIn struct {
	Frame  Frame  // as it was when sent, InPort and Tunnel as it entered
	Reason uint8  // PacketInNoMatch or PacketInAction
	Table  uint8  // the table of the flow that sent it
	Cookie uint64 // that flow's cookie
	MaxLen uint16 // the output action's max_len: at most this many bytes of the frame go (0xffff: all)
}

// TraceString joins the trace lines.
func (r Result) TraceString() string { return strings.Join(r.Trace, "\n") }

const maxDepth = 64 // resubmit/group nesting guard

type xlate struct {
	b      *Bridge
	commit bool // learn MACs and count packets (a real packet), not just explain (a trace)
	in     uint32
	tun    Tunnel // as the frame entered
	rule   *Flow  // the flow whose actions run; nil in a packet-out
	res    Result
}

func (x *xlate) say(depth int, format string, args ...any) {
	x.res.Trace = append(x.res.Trace, strings.Repeat("    ", depth)+fmt.Sprintf(format, args...))
}

// Process runs a frame that arrived on fr.InPort through the pipeline, as the datapath would: MACs are learned
// and flow counters move. What it sends to the controller also goes to the packet-in handler, if any.
func (b *Bridge) Process(fr Frame) Result {
	res := b.run(fr, true)
	b.dispatch(res)
	return res
}

// SetPacketInHandler makes h receive every frame a flow or packet-out sends to the controller (nil: none). It
// is called outside the bridge's lock.
func (b *Bridge) SetPacketInHandler(h func(PacketIn)) {
	b.mu.Lock()
	b.onPacketIn = h
	b.mu.Unlock()
}

func (b *Bridge) dispatch(res Result) {
	if len(res.ToController) == 0 {
		return
	}
	b.mu.Lock()
	h := b.onPacketIn
	b.mu.Unlock()
	if h != nil {
		for _, pi := range res.ToController {
			h(pi)
		}
	}
}

// Trace explains what the bridge would do with the frame, changing nothing (like ofproto/trace).
func (b *Bridge) Trace(fr Frame) Result { return b.run(fr, false) }

func (b *Bridge) run(fr Frame, commit bool) Result {
	b.mu.Lock()
	defer b.mu.Unlock()
	x := &xlate{b: b, commit: commit, in: fr.InPort, tun: fr.Tunnel}
	fr = fr.Clone()
	x.say(0, "Flow: in_port=%s,%s", PortString(fr.InPort), frameSummary(&fr))
	p, ok := b.ports[fr.InPort]
	switch {
	case !ok:
		x.say(0, "no input port %d on bridge %s: dropped", fr.InPort, b.name)
		return x.res
	case !p.Up:
		x.say(0, "input port %s is down: dropped", p.Name)
		return x.res
	}
	x.say(0, "bridge(%q)", b.name)
	x.pipeline(&fr, 0, 1)
	return x.res
}

func frameSummary(fr *Frame) string {
	s := fmt.Sprintf("dl_src=%v,dl_dst=%v", fr.EthSrc, fr.EthDst)
	if fr.HasVLAN {
		s += fmt.Sprintf(",dl_vlan=%d,dl_vlan_pcp=%d", fr.VID, fr.PCP)
	}
	s += fmt.Sprintf(",dl_type=0x%04x", fr.EthType)
	if fr.IPSrc.IsValid() {
		s += fmt.Sprintf(",nw_src=%v,nw_dst=%v", fr.IPSrc, fr.IPDst)
	}
	if fr.Tunnel.ID != 0 || fr.Tunnel.IsSet() {
		s += "," + fr.Tunnel.String()
	}
	return s
}

// lookup finds the frame's rule in one table (the first, by priority), traces it and counts it when the
// translation is committed; nil when no rule matches.
func (x *xlate) lookup(fr *Frame, table uint8, depth int) *Flow {
	for _, f := range x.b.tables[table] {
		if !f.Match.Matches(fr) {
			continue
		}
		m := f.Match.String()
		if m != "" {
			m += ", "
		}
		x.say(depth, "%d. %spriority %d%s", table, m, f.Priority, cookieNote(f.Cookie))
		if x.commit {
			f.Packets++
			f.Bytes += uint64(len(fr.Raw))
		}
		return f
	}
	return nil
}

func (x *xlate) pipeline(fr *Frame, table uint8, depth int) {
	for {
		hit := x.lookup(fr, table, depth)
		if hit == nil {
			x.say(depth, "%d. No match: drop (fail_mode=secure)", table)
			return
		}
		x.rule = hit
		x.meter(fr, hit.Meter, depth+1)
		x.actions(fr, hit.Actions, depth+1)
		if !hit.HasGoto {
			return
		}
		x.say(depth+1, "goto_table:%d", hit.GotoTable)
		table = hit.GotoTable
	}
}

func cookieNote(c uint64) string {
	if c == 0 {
		return ""
	}
	return fmt.Sprintf(", cookie %#x", c)
}

func (x *xlate) actions(fr *Frame, acts []Action, depth int) {
	if len(acts) == 0 {
		x.say(depth, "drop")
	}
	for _, a := range acts {
		if fr.Dropped {
			return
		}
		x.say(depth, "%s", a.String())
		switch a.Type {
		case ActClone:
			c := fr.Clone()
			c.Dropped = false
			x.actions(&c, a.Body, depth+1)
		case ActOutput:
			if a.Port == PortController {
				x.toController(fr, a.MaxLen, depth)
				continue
			}
			x.output(fr, a.Port, depth)
		case ActGroup:
			g, ok := x.b.groups[a.Group]
			if !ok || depth > maxDepth {
				x.say(depth+1, "-> group %d missing: dropped", a.Group)
				continue
			}
			for i, bk := range g.Buckets {
				x.say(depth+1, "bucket %d", i)
				c := fr.Clone()
				x.actions(&c, bk, depth+2)
			}
		case ActSetField:
			applySetField(fr, a.Set)
		case ActOutputTrunc:
			// As OVS: the copy is cut (a tunnel encapsulates the cut frame); the frame itself is untouched.
			c := fr.Clone()
			if uint32(len(c.Raw)) > a.MaxTrunc {
				c.Raw = c.Raw[:a.MaxTrunc]
			}
			x.output(&c, a.Port, depth)
		case ActResubmit:
			// As OVS: look the frame up in the table and run the rule's actions; a miss does nothing, and the
			// frame's changes (registers, tunnel metadata) carry on after the resubmit returns.
			if depth > maxDepth {
				x.say(depth+1, "-> resubmit depth exceeded: dropped")
				continue
			}
			x.resubmit(fr, a.Table, depth+1)
		case ActPushVLAN:
			if !fr.HasVLAN {
				fr.SetVLAN(0, 0)
			}
		case ActPopVLAN:
			fr.StripVLAN()
		}
	}
}

// resubmit looks the frame up in one table and runs the matching rule's actions (counted like any hit).
func (x *xlate) resubmit(fr *Frame, table uint8, depth int) {
	hit := x.lookup(fr, table, depth)
	if hit == nil {
		x.say(depth, "%d. No match.", table)
		return
	}
	x.meter(fr, hit.Meter, depth+1)
	x.actions(fr, hit.Actions, depth+1)
}

func applySetField(fr *Frame, fm FieldMatch) {
	v := fm.Uint()
	switch fm.Field {
	case FieldReg0:
		fr.Reg0 = uint32(v)
	case FieldTunnelID:
		fr.Tunnel.ID = v
	case FieldTunDst:
		fr.Tunnel.Dst = netip.AddrFrom4([4]byte(fm.val()))
	case FieldTunSrc:
		fr.Tunnel.Src = netip.AddrFrom4([4]byte(fm.val()))
	case FieldTunErspanIdx:
		fr.Tunnel.ErspanIdx = uint32(v) & 0xfffff
	case FieldTunErspanVer:
		fr.Tunnel.ErspanVer = uint8(v) & 0xf
	case FieldTunErspanDir:
		fr.Tunnel.ErspanDir = uint8(v) & 1
	case FieldTunErspanHwid:
		fr.Tunnel.ErspanHwid = uint8(v) & 0x3f
	case FieldEthDst:
		fr.setEth(true, MAC(fm.val()))
	case FieldEthSrc:
		fr.setEth(false, MAC(fm.val()))
	case FieldVlanVID:
		if fr.HasVLAN {
			fr.SetVLAN(uint16(v)&0x0fff, fr.PCP)
		}
	case FieldVlanPCP:
		if fr.HasVLAN {
			fr.SetVLAN(fr.VID, uint8(v)&7)
		}
	// The header rewrites below change only the parsed view; Raw keeps the original L3/L4 bytes.
	case FieldIPv4Src, FieldIPv6Src, FieldARPSPA:
		fr.IPSrc, _ = netip.AddrFromSlice(fm.val())
	case FieldIPv4Dst, FieldIPv6Dst, FieldARPTPA:
		fr.IPDst, _ = netip.AddrFromSlice(fm.val())
	case FieldTCPSrc, FieldUDPSrc:
		fr.L4Src = uint16(v)
	case FieldTCPDst, FieldUDPDst:
		fr.L4Dst = uint16(v)
	case FieldIPProto:
		fr.IPProto = uint8(v)
	case FieldEthType:
		fr.EthType = uint16(v)
	}
}

// toController sends the frame to the controllers.
func (x *xlate) toController(fr *Frame, maxLen uint16, depth int) {
	pi := PacketIn{Frame: fr.Clone(), Reason: PacketInAction, Table: 0xff, MaxLen: maxLen}
	pi.Frame.InPort, pi.Frame.Tunnel = x.in, x.tun
	if r := x.rule; r != nil {
		pi.Table, pi.Cookie = r.Table, r.Cookie
		if r.Priority == 0 && len(r.Match.fields) == 0 {
			pi.Reason = PacketInNoMatch
		}
	}
	x.say(depth+1, "-> to controller (%s)", map[uint8]string{PacketInNoMatch: "no_match", PacketInAction: "action"}[pi.Reason])
	if x.commit {
		x.res.ToController = append(x.res.ToController, pi)
	}
}

// output sends the frame to an OpenFlow port (reserved ones included).
func (x *xlate) output(fr *Frame, port uint32, depth int) {
	switch port {
	case PortNormal:
		x.normal(fr, depth+1)
	case PortInPort:
		x.emit(fr, x.in, depth+1, true)
	case PortAll, PortFlood:
		for _, no := range x.b.order {
			if no == x.in {
				continue
			}
			if port == PortFlood && x.b.ports[no].NoFlood {
				continue
			}
			x.emit(fr, no, depth+1, false)
		}
	case PortController:
		x.toController(fr, 0xffff, depth)
	case PortTable:
		x.say(depth+1, "-> output to TABLE is only valid in packet-out: dropped")
	default:
		if port == x.in {
			x.say(depth+1, "-> skipping output to input port")
			return
		}
		x.emit(fr, port, depth+1, false)
	}
}

// emit puts a copy of the frame on the wire of one port.
func (x *xlate) emit(fr *Frame, no uint32, depth int, allowIn bool) {
	p, ok := x.b.ports[no]
	if !ok {
		x.say(depth, "-> output to nonexistent port %d: dropped", no)
		return
	}
	if !p.Up {
		x.say(depth, "-> port %s is down: dropped", p.Name)
		return
	}
	out := fr.Clone()
	out.InPort = 0
	if p.Tunnel != nil {
		if !fr.Tunnel.IsSet() {
			x.say(depth, "-> output to tunnel port %s without tun_dst: dropped", p.Name)
			return
		}
		out.Tunnel.Src = p.Tunnel.LocalIP
		if p.Tunnel.LocalIP == fr.Tunnel.Dst {
			x.say(depth, "-> not tunneling to our own address %v: dropped", fr.Tunnel.Dst)
			return
		}
		if why := p.Tunnel.headerProblem(fr.Tunnel); why != "" {
			x.say(depth, "-> output to tunnel port %s: header build failed (%s): dropped", p.Name, why)
			return
		}
		x.say(depth, "-> output to tunnel port %s: tun_id=%#x, %v -> %v (%s)", p.Name, fr.Tunnel.ID, p.Tunnel.LocalIP, fr.Tunnel.Dst, p.Tunnel.Type)
	} else {
		out.Tunnel = Tunnel{}
		x.say(depth, "-> output to port %s (%d)", p.Name, p.No)
	}
	x.res.Emits = append(x.res.Emits, Emit{Port: no, PortName: p.Name, Frame: out})
}

// normal is OVS's NORMAL action: an 802.1Q learning switch over the bridge's ports.
func (x *xlate) normal(fr *Frame, depth int) {
	in := x.b.ports[x.in]
	if in == nil {
		x.say(depth, "-> NORMAL for a frame with no input port: dropped")
		return
	}
	if fr.EthDst.isReserved() {
		x.say(depth, "-> drop frame to reserved multicast %v (forward_bpdu=false)", fr.EthDst)
		return
	}
	var vlan uint16
	if in.Tagged {
		if fr.HasVLAN && fr.VID != 0 {
			x.say(depth, "-> dropping VLAN %d tagged packet received on port %s configured as VLAN %d access port", fr.VID, in.Name, in.Tag)
			return
		}
		vlan = in.Tag
	} else if fr.HasVLAN {
		vlan = fr.VID
	}
	if x.commit && !fr.EthSrc.IsMulticast() {
		k := macKey{vlan, fr.EthSrc}
		if old, ok := x.b.macs[k]; !ok || old != x.in {
			x.b.macs[k] = x.in
			x.say(depth, "-> learned %v on port %s in VLAN %d", fr.EthSrc, in.Name, vlan)
		}
	}
	if !fr.EthDst.IsMulticast() {
		if no, ok := x.b.macs[macKey{vlan, fr.EthDst}]; ok {
			if no == x.in {
				x.say(depth, "-> learned port is input port, dropping")
				return
			}
			x.say(depth, "-> forwarding to learned port")
			x.normalOut(fr, no, vlan, depth)
			return
		}
		x.say(depth, "-> no learned MAC for destination, flooding")
	} else {
		x.say(depth, "-> multicast or broadcast destination, flooding")
	}
	for _, no := range x.b.order {
		p := x.b.ports[no]
		if no == x.in || p.NoFlood || (p.Tagged && p.Tag != vlan) {
			continue
		}
		x.normalOut(fr, no, vlan, depth)
	}
}

// normalOut emits the frame on a port as NORMAL does: untagged on an access port, tagged with the VLAN on a trunk.
func (x *xlate) normalOut(fr *Frame, no uint32, vlan uint16, depth int) {
	p := x.b.ports[no]
	c := fr.Clone()
	if p.Tagged || vlan == 0 {
		c.StripVLAN()
	} else {
		c.SetVLAN(vlan, fr.PCP)
	}
	x.emit(&c, no, depth, false)
}

// Execute applies an action list to a frame that enters on fr.InPort (a packet-out): no table lookup. The
// input port may be LOCAL or CONTROLLER; an unknown one is refused.
func (b *Bridge) Execute(fr Frame, acts []Action) (Result, error) {
	res, err := b.execute(fr, acts)
	if err == nil {
		b.dispatch(res)
	}
	return res, err
}

func (b *Bridge) execute(fr Frame, acts []Action) (Result, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.validateActions(Match{}, acts); err != nil {
		return Result{}, err
	}
	x := &xlate{b: b, commit: true, in: fr.InPort, tun: fr.Tunnel}
	fr = fr.Clone()
	x.say(0, "packet-out: in_port=%s,%s", PortString(fr.InPort), frameSummary(&fr))
	if _, ok := b.ports[fr.InPort]; !ok && fr.InPort != PortController {
		return Result{}, &OFError{ErrTypeBadRequest, BadRequestBadPort, fmt.Sprintf("packet-out in_port %s does not exist", PortString(fr.InPort))}
	}
	x.actions(&fr, acts, 1)
	return x.res, nil
}
