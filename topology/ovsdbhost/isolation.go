package ovsdbhost

import (
	"fmt"
	"slices"
	"strings"
)

// Isolating a mirror destination port from NORMAL.
//
// A port parked on VLAN 4095 alone is not isolated: a trunk port (no tag, no trunks: every VLAN) carries frames
// tagged 4095, and NORMAL floods them, and forwards unicasts to the destination's MAC, into the parked port
// (measured on ovs-vswitchd 3.1 netdev, test/e2e TestDestinationIsolation). OpenFlow 1.3 cannot set the port's
// no-flood bit (OFPPC_NO_FLOOD is an OpenFlow 1.0 bit that OVS masks off in later versions; `ovs-ofctl mod-port
// no-flood` on an OpenFlow13 bridge leaves config 0), and no-flood would not stop a learned unicast anyway.
//
// What holds is OVS's own rule for mirror output ports: a port that is the output_port of a Mirror row is
// "reserved exclusively for mirroring": NORMAL never floods to it, never forwards a learned unicast to it, and
// drops (and does not learn from) what arrives on it; an explicit output: action from a flow still delivers. So
// each isolated port also gets a Mirror row of ours that selects nothing (no select_* column set) and has the port
// as its output_port: it mirrors no frame, it only reserves the port. The VLAN 4095 parking stays, as a second
// fence for a bridge where the Mirror cannot be created.
//
// Both are written in one transaction with the port's VLAN change: OVS 3.1 re-translates its cached datapath flows
// after a port's VLAN changes, but not after a Mirror row is added alone (measured: stale datapath flows kept
// delivering floods to the port for seconds, until the next flow-table change). So a Mirror of ours that went
// missing while the port kept VLAN 4095 is created again with the port moved to VLAN 4094, and the next round
// parks it on 4095 again: both VLAN changes re-translate the cached flows, and the reservation, in place from the
// first, keeps NORMAL away from the port in either VLAN.
//
// OVS allows 32 mirrors per bridge: beyond that (counting other mirrors), a destination port is isolated by the
// VLAN parking only, and the manager says so in its log.

// KeyIsolationMirror marks our Mirror rows: the name of the port they reserve.
const KeyIsolationMirror = "portmirror-isolation"

// maxMirrors is how many Mirror rows ovs-vswitchd serves per bridge (MAX_MIRRORS in ofproto).
const maxMirrors = 32

// isolationMirrorName is the name of the Mirror row that reserves a port.
func isolationMirrorName(port string) string { return "portmirror-isolate-" + port }

// isolationPlan is what the isolation part of a pass found on the bridge.
type isolationPlan struct {
	mirrorOf map[string]string // port uuid -> our Mirror row reserving it (one kept per port)
	drop     []string          // our Mirror rows to remove: duplicates, dangling, or for a port not isolated
	others   int               // Mirror rows of the bridge that are not ours
}

// readIsolationMirrors sorts the bridge's Mirror rows into ours (by the port they reserve) and the others.
func readIsolationMirrors(st *state, br row) isolationPlan {
	p := isolationPlan{mirrorOf: map[string]string{}}
	ports := br.uuidSet("ports")
	for _, mu := range br.uuidSet("mirrors") {
		mr, ok := st.mirrors[mu]
		if !ok {
			continue
		}
		if mr.strMap("external_ids")[KeyIsolationMirror] == "" {
			p.others++
			continue
		}
		out := mr.uuidSet("output_port")
		selects := len(mr.uuidSet("select_src_port")) + len(mr.uuidSet("select_dst_port")) + len(mr.intSet("select_vlan"))
		all := string(mr["select_all"]) == "true"
		switch {
		case len(out) != 1 || !slices.Contains(ports, out[0]) || selects > 0 || all:
			p.drop = append(p.drop, mu) // dangling (its port went) or changed by someone: not a reservation we trust
		case p.mirrorOf[out[0]] != "":
			p.drop = append(p.drop, mu)
		default:
			p.mirrorOf[out[0]] = mu
		}
	}
	return p
}

// planIsolation adds to tx what isolates the wanted ports and releases the others; see the comment at the top.
func (m *Manager) planIsolation(tx *txn, st *state, br row, brWhere []cond, isolated map[string]bool) {
	mp := readIsolationMirrors(st, br)
	budget := maxMirrors - mp.others - len(mp.mirrorOf)
	var overBudget []string
	removeMirror := func(mu, why string) {
		tx.add(why, opMutate{Table: "Bridge", Where: brWhere, Mutations: []mutation{{"mirrors", "delete", oset{uuidRef(mu)}}}})
	}
	for _, mu := range mp.drop {
		removeMirror(mu, "remove mirror "+mu+" (a port reservation of ours no longer valid)")
	}
	ports := br.uuidSet("ports")
	slices.SortFunc(ports, func(a, b string) int { return strings.Compare(st.ports[a].str("name"), st.ports[b].str("name")) })
	for _, pu := range ports {
		pr := st.ports[pu]
		name := pr.str("name")
		ext := pr.strMap("external_ids")
		if ext[KeyFlowNetwork] != "" {
			continue
		}
		marked := ext[KeyIsolated] == "true"
		tag, hasTag := pr.optInt("tag")
		mode := pr.str("vlan_mode")
		where := []cond{eq("_uuid", uuidRef(pu))}
		mirror := mp.mirrorOf[pu]
		addMirror := func() {
			if budget <= 0 {
				overBudget = append(overBudget, name)
				return
			}
			budget--
			mn := "mirror_" + strings.ReplaceAll(pu, "-", "_")
			tx.add("reserve port "+name+" for mirroring (a mirror that selects nothing)", opInsert{Table: "Mirror", UUIDName: mn,
				Row: map[string]any{"name": isolationMirrorName(name), "output_port": uuidRef(pu),
					"external_ids": omap{KeyIsolationMirror: name}}})
			tx.add("add the reservation of port "+name+" to the bridge", opMutate{Table: "Bridge", Where: brWhere,
				Mutations: []mutation{{"mirrors", "insert", oset{namedRef(mn)}}}})
		}
		switch {
		case isolated[name] && !marked:
			saved := omap{KeyIsolated: "true", KeySavedTag: "", KeySavedVlanMode: mode}
			if hasTag {
				saved[KeySavedTag] = itoa(tag)
			}
			park := IsolationVLAN
			if hasTag && tag == IsolationVLAN && mode == "access" && mirror == "" && budget > 0 {
				park = IsolationVLAN - 1 // already on 4095: a VLAN change must come with the reservation (see below)
			}
			tx.add("isolate port "+name, opUpdate{Table: "Port", Where: where,
				Row: map[string]any{"tag": park, "vlan_mode": "access"}})
			tx.add("remember the VLAN settings of port "+name, opMutate{Table: "Port", Where: where, Mutations: []mutation{
				{"external_ids", "delete", oset{KeyIsolated, KeySavedTag, KeySavedVlanMode}},
				{"external_ids", "insert", saved},
			}})
			if mirror == "" {
				addMirror() // written with the VLAN change: see above
			}
		case isolated[name]:
			parked := hasTag && tag == IsolationVLAN && mode == "access"
			switch {
			case mirror == "" && parked && budget > 0:
				// The reservation alone would not reach the datapath flows cached before it: move the port to the
				// next VLAN down with it (a VLAN change makes OVS re-translate them; the reservation keeps NORMAL
				// away from the port whatever its VLAN), and the next round parks it on VLAN 4095 again.
				addMirror()
				tx.add("move port "+name+" off VLAN 4095 for one round, so that its new reservation reaches the cached datapath flows",
					opUpdate{Table: "Port", Where: where, Row: map[string]any{"tag": IsolationVLAN - 1, "vlan_mode": "access"}})
			case !parked:
				tx.add("re-isolate port "+name, opUpdate{Table: "Port", Where: where,
					Row: map[string]any{"tag": IsolationVLAN, "vlan_mode": "access"}})
				if mirror == "" {
					addMirror()
				}
			case mirror == "":
				addMirror() // over budget: logged below
			}
		case marked:
			var restoreTag any = oset{}
			if s := ext[KeySavedTag]; s != "" {
				var n int
				if _, err := fmt.Sscan(s, &n); err == nil {
					restoreTag = n
				}
			}
			tx.add("restore the VLAN settings of port "+name, opUpdate{Table: "Port", Where: where,
				Row: map[string]any{"tag": restoreTag, "vlan_mode": optStr(ext[KeySavedVlanMode])}})
			tx.add("forget the saved VLAN settings of port "+name, opMutate{Table: "Port", Where: where, Mutations: []mutation{
				{"external_ids", "delete", oset{KeyIsolated, KeySavedTag, KeySavedVlanMode}},
			}})
			if mirror != "" {
				removeMirror(mirror, "release port "+name+" from its mirroring reservation")
			}
		case mirror != "":
			removeMirror(mirror, "release port "+name+" from its mirroring reservation")
		}
	}
	if len(overBudget) > 0 {
		m.log.Warn("destination ports isolated by VLAN 4095 only: OVS serves 32 mirrors per bridge", "bridge", m.cfg.Bridge,
			"ports", overBudget, "other_mirrors", mp.others)
	}
}
