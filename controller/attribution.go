package controller

import "portmirror/flows"

// sessionMark is what identifies one session's flows on one bridge, so that a flow the switch refuses can be
// blamed on the sessions it concerns rather than on every session of the bridge.
type sessionMark struct {
	ports  []uint32 // the session's source and destination ports on this bridge
	mac    flows.MAC
	hasMAC bool   // the source NIC is on this bridge: flows matching frames to its MAC are its ingress flows
	key    uint32 // the session's tunnel key (shared by the sessions of one destination NIC)
	tunnel uint32 // the flow network's tunnel port on this bridge, 0 when none
}

// marks returns the marks of the sessions with flows on bridge dp.
func marks(in *flows.Input, byUUID map[string]*flows.Session, dp string, sessions []string) map[string]sessionMark {
	out := make(map[string]sessionMark, len(sessions))
	for _, id := range sessions {
		s := byUUID[id]
		if s == nil {
			continue
		}
		m := sessionMark{key: s.TunnelKey, tunnel: in.Endpoints[flows.EndpointKey{FlowNetwork: s.FlowNetwork, DatapathID: dp}].TunnelPort}
		if src := in.NICs[s.SourceNIC]; src.DatapathID == dp && src.Port != 0 {
			m.ports = append(m.ports, src.Port)
			if mac, err := flows.ParseMAC(src.MAC); err == nil {
				m.mac, m.hasMAC = mac, true
			}
		}
		if dst := in.NICs[s.DestinationNIC]; dst.DatapathID == dp && dst.Port != 0 {
			m.ports = append(m.ports, dst.Port)
		}
		out[id] = m
	}
	return out
}

// concerns reports whether flow f is one of the session's: it selects the session's frames (by its ports, its
// source MAC, or its tunnel key arriving on the tunnel port) or carries the session's copies.
func (m sessionMark) concerns(f flows.Flow) bool {
	for _, p := range m.ports {
		if f.Match.InPort == p {
			return true
		}
	}
	if m.hasMAC && f.Match.EthDstMask == (flows.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) && f.Match.EthDst == m.mac {
		return true
	}
	if m.tunnel != 0 && f.Match.InPort == m.tunnel && f.Match.HasTunID && f.Match.TunID == uint64(m.key) {
		return true
	}
	for _, a := range f.Actions {
		switch a.Type {
		case flows.ActSetTunID:
			if a.Value == uint64(m.key) {
				return true
			}
		case flows.ActOutput:
			for _, p := range m.ports {
				if a.Port == p {
					return true
				}
			}
		}
	}
	return false
}

// blame maps each session of a bridge to the refusals that concern it. A refused flow that concerns no session
// (the baseline, a tunnel port's drop) concerns them all: every session's frames go through it.
func blame(ms map[string]sessionMark, refused []FlowError) map[string]string {
	out := map[string]string{}
	add := func(id, msg string) {
		if out[id] == "" {
			out[id] = msg
		} else {
			out[id] += "; " + msg
		}
	}
	for _, r := range refused {
		hit := false
		for id, m := range ms {
			if m.concerns(r.Flow) {
				add(id, r.Error())
				hit = true
			}
		}
		if !hit {
			for id := range ms {
				add(id, r.Error())
			}
		}
	}
	return out
}
