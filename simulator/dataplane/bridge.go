package dataplane

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// NumTables is how many flow tables an OVS bridge has (0..254).
const NumTables = 255

// TunnelConfig makes a port a flow-based tunnel port: type=gre|vxlan|erspan, options:remote_ip=flow, options:key=flow,
// options:local_ip=LocalIP.
type TunnelConfig struct {
	Type    string // "gre", "vxlan" or "erspan" (with every erspan_* option flow-based)
	LocalIP netip.Addr
}

// KeyBits is how many bits of tun_id the encapsulation carries (GRE 32, VXLAN 24).
func (t TunnelConfig) KeyBits() int {
	switch t.Type {
	case "vxlan":
		return 24
	case "erspan":
		return 10
	}
	return 32
}

// Port is a bridge port as OVSDB and OpenFlow describe it.
type Port struct {
	No      uint32
	Name    string
	MAC     MAC
	Up      bool          // link up; a down port receives nothing
	Tag     uint16        // access VLAN (OVSDB Port.tag) when Tagged
	Tagged  bool          // access port; otherwise a trunk carrying every VLAN
	NoFlood bool          // OFPPC_NO_FLOOD
	Tunnel  *TunnelConfig // flow-based tunnel port
}

// Bridge is one OVS bridge's data plane: ports, flow tables, groups and the MAC learning table. It is safe for
// concurrent use. fail_mode is secure: a table miss drops.
type Bridge struct {
	mu     sync.Mutex
	name   string
	ports  map[uint32]*Port
	order  []uint32 // port numbers, sorted
	tables map[uint8][]*Flow
	groups map[uint32]*Group
	macs   map[macKey]uint32
	limits map[uint8]int // flow_limit per table (OVSDB Flow_Table, overflow_policy=refuse)
	meters map[uint32]*Meter
	tx     *Tx // the transaction under way, while Atomically runs

	onPacketIn func(PacketIn) // SetPacketInHandler
}

type macKey struct {
	vlan uint16
	mac  MAC
}

// NewBridge returns an empty bridge with its LOCAL port (named like the bridge).
func NewBridge(name string, localMAC MAC) *Bridge {
	b := &Bridge{name: name, ports: map[uint32]*Port{}, tables: map[uint8][]*Flow{}, groups: map[uint32]*Group{}, macs: map[macKey]uint32{}}
	b.addPortLocked(Port{No: PortLocal, Name: name, MAC: localMAC, Up: true})
	return b
}

// Name is the bridge's name.
func (b *Bridge) Name() string { return b.name }

func (b *Bridge) addPortLocked(p Port) {
	pp := p
	b.ports[p.No] = &pp
	if i, found := slices.BinarySearch(b.order, p.No); !found {
		b.order = slices.Insert(b.order, i, p.No)
	}
}

// AddPort adds a port; it refuses a number or name already in use, or a number outside 1..0xfeff.
func (b *Bridge) AddPort(p Port) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if p.No == 0 || p.No >= PortMax {
		return fmt.Errorf("bridge %s: port %q: number %d is not in 1..%d", b.name, p.Name, p.No, PortMax-1)
	}
	if _, ok := b.ports[p.No]; ok {
		return fmt.Errorf("bridge %s: port %q: number %d is already in use", b.name, p.Name, p.No)
	}
	for _, q := range b.ports {
		if q.Name == p.Name {
			return fmt.Errorf("bridge %s: port name %q is already in use (port %d)", b.name, p.Name, q.No)
		}
	}
	if p.Tunnel != nil && (p.Tunnel.Type != "gre" && p.Tunnel.Type != "vxlan" && p.Tunnel.Type != "erspan" || !p.Tunnel.LocalIP.Is4()) {
		return fmt.Errorf("bridge %s: port %q: tunnel needs type gre, vxlan or erspan and an IPv4 local_ip", b.name, p.Name)
	}
	b.addPortLocked(p)
	return nil
}

// RemovePort removes a port and forgets the MACs learned on it.
func (b *Bridge) RemovePort(no uint32) (Port, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := b.ports[no]
	if !ok || no == PortLocal {
		return Port{}, fmt.Errorf("bridge %s: no port %d to remove", b.name, no)
	}
	delete(b.ports, no)
	if i, found := slices.BinarySearch(b.order, no); found {
		b.order = slices.Delete(b.order, i, i+1)
	}
	b.flushPortLocked(no)
	return *p, nil
}

// SetPortUp sets a port's link state; taking it down forgets the MACs learned on it.
func (b *Bridge) SetPortUp(no uint32, up bool) (Port, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := b.ports[no]
	if !ok {
		return Port{}, fmt.Errorf("bridge %s: no port %d", b.name, no)
	}
	p.Up = up
	if !up {
		b.flushPortLocked(no)
	}
	return *p, nil
}

// SetPortTag makes a port an access port of VLAN tag (tagged) or a trunk (!tagged).
func (b *Bridge) SetPortTag(no uint32, tag uint16, tagged bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := b.ports[no]
	if !ok {
		return fmt.Errorf("bridge %s: no port %d", b.name, no)
	}
	if tag > 4095 {
		return fmt.Errorf("bridge %s: port %q: tag %d is not in 0..4095", b.name, p.Name, tag)
	}
	p.Tag, p.Tagged = tag, tagged
	b.flushPortLocked(no)
	return nil
}

func (b *Bridge) flushPortLocked(no uint32) {
	for k, v := range b.macs {
		if v == no {
			delete(b.macs, k)
		}
	}
}

// Ports returns the ports sorted by number, LOCAL last.
func (b *Bridge) Ports() []Port {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]Port, 0, len(b.order))
	for _, no := range b.order {
		out = append(out, *b.ports[no])
	}
	return out
}

// Port returns one port.
func (b *Bridge) Port(no uint32) (Port, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := b.ports[no]
	if !ok {
		return Port{}, false
	}
	return *p, true
}

// PortByName returns the port with that name.
func (b *Bridge) PortByName(name string) (Port, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.ports {
		if p.Name == name {
			return *p, true
		}
	}
	return Port{}, false
}

// Reset empties the flow tables, the groups and the MAC table (a restarted ovs-vswitchd without a saved state).
func (b *Bridge) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tables = map[uint8][]*Flow{}
	b.groups = map[uint32]*Group{}
	b.macs = map[macKey]uint32{}
}

// FlushMACs empties the MAC learning table.
func (b *Bridge) FlushMACs() {
	b.mu.Lock()
	defer b.mu.Unlock()
	clear(b.macs)
}

// LearnedPort returns where NORMAL sends mac in vlan.
func (b *Bridge) LearnedPort(vlan uint16, mac MAC) (uint32, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := b.macs[macKey{vlan, mac}]
	return p, ok
}

// validateActions checks an action list as OVS does when a flow or group is installed.
func (b *Bridge) validateActions(m Match, acts []Action) error {
	return b.validateActionsOpts(m, acts, true)
}

// validateActionsOpts checks an action list; groups says whether the groups it uses must exist.
func (b *Bridge) validateActionsOpts(m Match, acts []Action, groups bool) error {
	for _, a := range acts {
		switch a.Type {
		case ActOutput:
			switch {
			case a.Port == PortAny || (a.Port > PortMax && a.Port < PortInPort):
				return &OFError{ErrTypeBadAction, BadActionOutPort, fmt.Sprintf("output to port %s is not valid", PortString(a.Port))}
			}
		case ActGroup:
			if _, ok := b.groups[a.Group]; !ok && groups {
				return &OFError{ErrTypeBadAction, BadActionOutGroup, fmt.Sprintf("group %d does not exist", a.Group)}
			}
		case ActSetField:
			if !a.Set.Field.Known() || a.Set.Field == FieldInPort {
				return &OFError{ErrTypeBadAction, BadActionSetType, fmt.Sprintf("set_field of %v is not supported", a.Set.Field)}
			}
			// A set_field needs the same prerequisites in the match as a match on that field would.
			var probe Match
			probe.fields = append(slices.Clone(m.fields), FieldMatch{Field: a.Set.Field})
			if _, dup := m.Get(a.Set.Field); dup {
				probe = m
			}
			if err := probe.Validate(); err != nil {
				return &OFError{ErrTypeBadAction, BadActionInconsistent, fmt.Sprintf("set_field of %v: %v", a.Set.Field, err.(*OFError).Reason)}
			}
		case ActPushVLAN:
			if a.EthType != 0x8100 && a.EthType != 0x88a8 {
				return &OFError{ErrTypeBadAction, BadActionArgument, fmt.Sprintf("push_vlan ethertype %#04x is not 0x8100 or 0x88a8", a.EthType)}
			}
		case ActPopVLAN:
		case ActOutputTrunc:
			if a.Port == 0 || a.Port > PortMax && a.Port != PortInPort && a.Port != PortLocal {
				return &OFError{ErrTypeBadAction, BadActionOutPort, fmt.Sprintf("output with max_len to port %s is not supported", PortString(a.Port))}
			}
			if a.MaxTrunc < 14 {
				return &OFError{ErrTypeBadAction, BadActionArgument, fmt.Sprintf("output max_len %d is below 14", a.MaxTrunc)}
			}
		case ActResubmit:
			if a.Table == 0xff {
				return &OFError{ErrTypeBadAction, BadActionArgument, "resubmit to table 255"}
			}
		case ActClone:
			if err := b.validateActionsOpts(m, a.Body, groups); err != nil {
				return err
			}
		default:
			return &OFError{ErrTypeBadAction, BadActionType, fmt.Sprintf("action type %d is not supported", a.Type)}
		}
	}
	return nil
}

// CheckFlow makes the checks AddFlow makes that depend on nothing installed: the table exists, the match is
// consistent, goto_table goes forward, and the actions are valid. A bundle makes them when a flow_mod is added to
// it, as OVS does; what depends on the flows and groups (a group exists, overlap, a full table) waits for the
// commit.
func (b *Bridge) CheckFlow(f Flow) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.validateFlowOpts(&f, false)
}

// SetFlowLimit caps how many flows a table holds, like OVSDB's Flow_Table flow_limit with
// overflow_policy=refuse: adding a flow to a full table fails with OFPFMFC_TABLE_FULL (replacing one does not).
// A limit of 0 removes the cap.
func (b *Bridge) SetFlowLimit(table uint8, limit int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.limits == nil {
		b.limits = map[uint8]int{}
	}
	if limit <= 0 {
		delete(b.limits, table)
		return
	}
	b.limits[table] = limit
}

// writable returns table id for changing in place: inside a transaction, its first change copies it, so the
// snapshot the transaction rolls back to keeps the original.
func (b *Bridge) writable(id uint8) []*Flow {
	t := b.tables[id]
	if b.tx != nil && !b.tx.copied[id] {
		t = slices.Clone(t)
		b.tables[id] = t
		b.tx.copied[id] = true
	}
	return t
}

func (b *Bridge) validateFlow(f *Flow) error { return b.validateFlowOpts(f, true) }

func (b *Bridge) validateFlowOpts(f *Flow, groups bool) error {
	if f.Table >= NumTables {
		return &OFError{ErrTypeFlowModFailed, FlowModBadTableID, fmt.Sprintf("table %d does not exist (0..%d)", f.Table, NumTables-1)}
	}
	if err := f.Match.Validate(); err != nil {
		return err
	}
	if f.HasGoto && (f.GotoTable <= f.Table || f.GotoTable >= NumTables) {
		return &OFError{ErrTypeBadInstruction, BadInstTableID, fmt.Sprintf("goto_table:%d from table %d: must go to a later table", f.GotoTable, f.Table)}
	}
	if f.Meter != 0 && groups && b.meters[f.Meter] == nil {
		// OVS 3.1 answers a flow whose meter does not exist with INVALID_METER (not UNKNOWN_METER, which is for
		// meter_mods), for a plain flow_mod and at a bundle's commit alike.
		return &OFError{ErrTypeMeterModFailed, MeterModInvalidMeter, fmt.Sprintf("meter %d does not exist", f.Meter)}
	}
	return b.validateActionsOpts(f.Match, f.Actions, groups)
}

// AddFlow installs a flow (OFPFC_ADD). An identical (table, priority, match) flow is replaced; with
// checkOverlap, a flow of the same priority that could match the same frames refuses it (OFPFMFC_OVERLAP).
func (b *Bridge) AddFlow(f Flow, checkOverlap bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.addFlowLocked(f, checkOverlap)
}

func (b *Bridge) addFlowLocked(f Flow, checkOverlap bool) error {
	if err := b.validateFlow(&f); err != nil {
		return err
	}
	f.Actions = slices.Clone(f.Actions)
	if f.Installed.IsZero() {
		f.Installed = time.Now()
	}
	t := b.tables[f.Table]
	// Like OVS, an identical flow is replaced whatever check_overlap says; only a new flow can overlap.
	for i, g := range t {
		if g.Priority == f.Priority && g.Match.Equal(f.Match) {
			f.Packets, f.Bytes = 0, 0
			b.writable(f.Table)[i] = &f
			return nil
		}
	}
	if checkOverlap {
		for _, g := range t {
			if g.Priority == f.Priority && g.Match.Overlaps(f.Match) {
				return &OFError{ErrTypeFlowModFailed, FlowModOverlap, fmt.Sprintf("flow overlaps %s", g)}
			}
		}
	}
	if limit := b.limits[f.Table]; limit > 0 && len(t) >= limit {
		return &OFError{ErrTypeFlowModFailed, FlowModTableFull, fmt.Sprintf("table %d is full (flow_limit %d)", f.Table, limit)}
	}
	// Keep each table sorted by priority, highest first; among equals, oldest first.
	i := 0
	for i < len(t) && t[i].Priority >= f.Priority {
		i++
	}
	b.tables[f.Table] = slices.Insert(b.writable(f.Table), i, &f)
	return nil
}

// FlowFilter selects flows for modify, delete and stats, with OpenFlow's semantics.
type FlowFilter struct {
	Table      uint8 // 0xff: all tables
	Match      Match
	Strict     bool   // Priority and Match must equal the flow's; otherwise Match must cover the flow's
	Priority   uint16 // with Strict
	Cookie     uint64
	CookieMask uint64
	OutPort    uint32 // PortAny: no filter
	OutGroup   uint32 // GroupAny: no filter
}

// AllFlows is the filter that selects every flow.
func AllFlows() FlowFilter { return FlowFilter{Table: 0xff, OutPort: PortAny, OutGroup: GroupAny} }

func (b *Bridge) selects(ff *FlowFilter, f *Flow) bool {
	if ff.Table != 0xff && ff.Table != f.Table {
		return false
	}
	if f.Cookie&ff.CookieMask != ff.Cookie&ff.CookieMask {
		return false
	}
	if ff.Strict {
		if f.Priority != ff.Priority || !f.Match.Equal(ff.Match) {
			return false
		}
	} else if !ff.Match.Covers(f.Match) {
		return false
	}
	if ff.OutPort != PortAny && !f.outputsTo(ff.OutPort, b.groups) {
		return false
	}
	if ff.OutGroup != GroupAny && !f.usesGroup(ff.OutGroup) {
		return false
	}
	return true
}

// ModifyFlows replaces the actions (and goto) of the selected flows (OFPFC_MODIFY[_STRICT]); out_port is
// ignored as OpenFlow says. Like OVS, when nothing is selected and the cookie mask is zero, it adds the flow.
// It returns how many flows changed.
func (b *Bridge) ModifyFlows(ff FlowFilter, f Flow) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.modifyFlowsLocked(ff, f)
}

func (b *Bridge) modifyFlowsLocked(ff FlowFilter, f Flow) (int, error) {
	if ff.Table == 0xff && !ff.Strict {
		// OVS accepts table 255 for modify: every table.
	} else if ff.Table >= NumTables {
		return 0, &OFError{ErrTypeFlowModFailed, FlowModBadTableID, fmt.Sprintf("table %d does not exist", ff.Table)}
	}
	probe := f
	if probe.Table == 0xff {
		probe.Table = 0
	}
	if err := b.validateFlow(&probe); err != nil {
		return 0, err
	}
	ff.OutPort, ff.OutGroup = PortAny, GroupAny
	n := 0
	for id, t := range b.tables {
		for i, g := range t {
			if b.selects(&ff, g) {
				if f.HasGoto && f.GotoTable <= g.Table {
					return n, &OFError{ErrTypeBadInstruction, BadInstTableID, fmt.Sprintf("goto_table:%d from table %d", f.GotoTable, g.Table)}
				}
				// A changed flow is a new copy, never the old one changed in place (a transaction keeps the old).
				c := *g
				c.Actions, c.HasGoto, c.GotoTable = slices.Clone(f.Actions), f.HasGoto, f.GotoTable
				b.writable(id)[i] = &c
				n++
			}
		}
	}
	if n == 0 && ff.CookieMask == 0 && f.Table != 0xff {
		return 0, b.addFlowLocked(f, false)
	}
	return n, nil
}

// DeleteFlows removes the selected flows (OFPFC_DELETE[_STRICT]) and returns them.
func (b *Bridge) DeleteFlows(ff FlowFilter) ([]Flow, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.deleteFlowsLocked(ff)
}

func (b *Bridge) deleteFlowsLocked(ff FlowFilter) ([]Flow, error) {
	if ff.Table != 0xff && ff.Table >= NumTables {
		return nil, &OFError{ErrTypeFlowModFailed, FlowModBadTableID, fmt.Sprintf("table %d does not exist", ff.Table)}
	}
	var out []Flow
	sel := func(g *Flow) bool { return b.selects(&ff, g) }
	for id, t := range b.tables {
		if !slices.ContainsFunc(t, sel) {
			continue
		}
		t = b.writable(id)
		kept := t[:0]
		for _, g := range t {
			if sel(g) {
				out = append(out, *g)
			} else {
				kept = append(kept, g)
			}
		}
		clear(t[len(kept):])
		b.tables[id] = kept
	}
	return out, nil
}

// Flows returns copies of the selected flows, by table, then priority (highest first).
func (b *Bridge) Flows(ff FlowFilter) []Flow {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.flowsLocked(ff)
}

func (b *Bridge) flowsLocked(ff FlowFilter) []Flow {
	ids := make([]int, 0, len(b.tables))
	for id := range b.tables {
		ids = append(ids, int(id))
	}
	slices.Sort(ids)
	var out []Flow
	for _, id := range ids {
		for _, g := range b.tables[uint8(id)] {
			if b.selects(&ff, g) {
				c := *g
				c.Actions = slices.Clone(g.Actions)
				out = append(out, c)
			}
		}
	}
	return out
}

// EachFlow calls fn with each installed flow that ff selects, in the order Flows lists them, under the bridge's
// lock and without copying: fn reads the flow and keeps nothing of it (a flow-stats reply encodes each at once).
func (b *Bridge) EachFlow(ff FlowFilter, fn func(*Flow)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var ids [NumTables]bool
	for id := range b.tables {
		ids[id] = true
	}
	for id, used := range ids {
		if !used {
			continue
		}
		for _, g := range b.tables[uint8(id)] {
			if b.selects(&ff, g) {
				fn(g)
			}
		}
	}
}

// FlowCount is the number of installed flows.
func (b *Bridge) FlowCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, t := range b.tables {
		n += len(t)
	}
	return n
}

// Group commands (OFPGC_*).
const (
	GroupAdd    uint16 = 0
	GroupModify uint16 = 1
	GroupDelete uint16 = 2
)

// ModGroup applies a group-mod. Only type ALL is supported; deleting a group deletes the flows that use it,
// as OVS does; GroupAll (or GroupAny) deletes every group.
func (b *Bridge) ModGroup(cmd uint16, g Group) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.modGroupLocked(cmd, g)
}

func (b *Bridge) modGroupLocked(cmd uint16, g Group) error {
	switch cmd {
	case GroupAdd, GroupModify:
		if g.ID > GroupMax {
			return &OFError{ErrTypeGroupModFailed, GroupModInvalidGroup, fmt.Sprintf("group id %#x is reserved", g.ID)}
		}
		if g.Type != GroupTypeAll {
			return &OFError{ErrTypeGroupModFailed, GroupModBadType, fmt.Sprintf("group %d: type %d is not supported (only ALL)", g.ID, g.Type)}
		}
		_, exists := b.groups[g.ID]
		if cmd == GroupAdd && exists {
			return &OFError{ErrTypeGroupModFailed, GroupModExists, fmt.Sprintf("group %d exists", g.ID)}
		}
		if cmd == GroupModify && !exists {
			return &OFError{ErrTypeGroupModFailed, GroupModUnknownGroup, fmt.Sprintf("group %d does not exist", g.ID)}
		}
		for _, bk := range g.Buckets {
			if err := b.validateActions(Match{}, bk); err != nil {
				return err
			}
		}
		c := g
		c.Buckets = slices.Clone(g.Buckets)
		b.groups[g.ID] = &c
	case GroupDelete:
		for id := range b.groups {
			if g.ID == GroupAll || g.ID == GroupAny || g.ID == id {
				delete(b.groups, id)
				uses := func(f *Flow) bool { return f.usesGroup(id) }
				for tid, t := range b.tables {
					if slices.ContainsFunc(t, uses) {
						b.tables[tid] = slices.DeleteFunc(b.writable(tid), uses)
					}
				}
			}
		}
	default:
		return &OFError{ErrTypeGroupModFailed, GroupModBadCommand, fmt.Sprintf("group command %d is not known", cmd)}
	}
	return nil
}

// Groups returns copies of the groups, by id.
func (b *Bridge) Groups() []Group {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]Group, 0, len(b.groups))
	for _, g := range b.groups {
		c := *g
		c.Buckets = slices.Clone(g.Buckets)
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Group) int { return int(a.ID) - int(b.ID) })
	return out
}
