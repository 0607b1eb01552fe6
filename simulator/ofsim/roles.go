package ofsim

import (
	"encoding/binary"
	"math"
	"time"

	"portmirror/ofwire"
	"portmirror/simulator/dataplane"
)

// Controller roles as OVS 3.1 keeps them (ofproto/connmgr.c), checked against it by TestRolesAsOVS:
//
//   - every connection starts EQUAL; the switch keeps one master election id for all its connections, unset
//     until a MASTER or SLAVE request first carries one;
//   - a MASTER or SLAVE request whose generation id is older than the election id (by the signed difference of
//     OpenFlow 1.3, so ids wrap) is refused with ROLE_REQUEST_FAILED/STALE and changes nothing; an equal or newer
//     one becomes the election id. EQUAL and NOCHANGE requests neither check nor set it;
//   - a connection becoming MASTER demotes the MASTER there was to SLAVE, which gets an ONF ROLE_STATUS (role
//     SLAVE, reason MASTER_REQUEST, the election id) with xid 0;
//   - the ROLE_REPLY carries the connection's role and the election id (all ones while it is unset), whatever
//     role was asked for;
//   - a SLAVE may not change the switch: FLOW_MOD, GROUP_MOD, PORT_MOD, TABLE_MOD, METER_MOD, PACKET_OUT and the
//     bundle extension's control and add messages get BAD_REQUEST/IS_SLAVE (the whole message as data) before
//     anything else is checked;
//   - with the default async config PORT_STATUS goes to every connection, PACKET_IN and FLOW_REMOVED to MASTER
//     and EQUAL ones only.

const (
	flagSendFlowRem   = 1 // OFPFF_SEND_FLOW_REM
	flowRemovedDelete = 2 // OFPRR_DELETE
)

// electionID is what OVS reports as the generation id: the master election id, or all ones while it is unset.
// s.mu is held.
func (s *Switch) electionID() uint64 {
	if !s.genSet {
		return math.MaxUint64
	}
	return s.genID
}

// roleRequest handles a ROLE_REQUEST (body after the header).
func (s *Switch) roleRequest(c *conn, xid uint32, body []byte) error {
	if len(body) != 16 {
		return badReqLen("role request of %d bytes", len(body)+ofwire.HeaderLen)
	}
	req, err := ofwire.DecodeRole(body)
	if err != nil {
		return badReqLen("role request: %v", err)
	}
	if req.Role > ofwire.RoleSlave {
		return ofErr(ofwire.ErrTypeRoleRequestFailed, ofwire.RoleErrBadRole, "role %d is not a role", uint32(req.Role))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.Role != ofwire.RoleNoChange {
		if req.Role != ofwire.RoleEqual {
			if s.genSet && int64(req.GenerationID-s.genID) < 0 {
				return ofErr(ofwire.ErrTypeRoleRequestFailed, ofwire.RoleErrStale,
					"generation id %d is older than the master election id %d", req.GenerationID, s.genID)
			}
			s.genID, s.genSet = req.GenerationID, true
		}
		if req.Role == ofwire.RoleMaster && c.role != ofwire.RoleMaster {
			for o := range s.conns {
				if o != c && o.role == ofwire.RoleMaster {
					o.role = ofwire.RoleSlave
					o.send(ofwire.AppendRoleStatus(nil, 0, ofwire.RoleStatus{Role: ofwire.RoleSlave,
						Reason: ofwire.RoleReasonMasterRequest, GenerationID: s.electionID()}))
					s.log.Info("controller demoted to slave", "controller", o.addr, "by", c.addr)
				}
			}
		}
		if c.role != req.Role {
			s.log.Debug("controller role changed", "controller", c.addr, "from", c.role, "to", req.Role, "generation", req.GenerationID)
		}
		c.role = req.Role
	}
	c.send(ofwire.AppendRole(nil, ofwire.TypeRoleReply, xid, c.role, s.electionID()))
	return nil
}

// refuseSlave is BAD_REQUEST/IS_SLAVE when c is a SLAVE, for a message only a MASTER or EQUAL controller may send.
func (s *Switch) refuseSlave(c *conn) error {
	s.mu.Lock()
	slave := c.role == ofwire.RoleSlave
	s.mu.Unlock()
	if slave {
		return ofErr(dataplane.ErrTypeBadRequest, ofwire.BadRequestIsSlave, "the controller is a slave")
	}
	return nil
}

// Roles are the roles of the negotiated connections, by controller address.
func (s *Switch) Roles() map[string]ofwire.Role {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]ofwire.Role, len(s.conns))
	for c := range s.conns {
		if c.negotiated {
			m[c.addr] = c.role
		}
	}
	return m
}

// Master is the address of the controller the switch has as MASTER, "" when none.
func (s *Switch) Master() string {
	for addr, r := range s.Roles() {
		if r == ofwire.RoleMaster {
			return addr
		}
	}
	return ""
}

// GenerationID is the master election id and whether it is set.
func (s *Switch) GenerationID() (uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.genID, s.genSet
}

// packetIn sends a frame the pipeline sent to the controller as an OpenFlow 1.3 PACKET_IN, as OVS 3.1 encodes it
// (no buffering; the match carries the packet's metadata: in_port, and the tunnel it came from), to every
// MASTER and EQUAL connection.
func (s *Switch) packetIn(pi dataplane.PacketIn) {
	data := pi.Frame.Raw
	if pi.MaxLen != 0xffff && int(pi.MaxLen) < len(data) {
		data = data[:pi.MaxLen]
	}
	b := appendHeader(nil, ofwire.TypePacketIn, 0)
	b = binary.BigEndian.AppendUint32(b, ofwire.NoBuffer)
	b = binary.BigEndian.AppendUint16(b, uint16(len(pi.Frame.Raw)))
	b = append(b, pi.Reason, pi.Table)
	b = binary.BigEndian.AppendUint64(b, pi.Cookie)
	start := len(b)
	b = append(b, 0, 1, 0, 0)
	b = append(b, 0x80, 0, 0<<1, 4)
	b = binary.BigEndian.AppendUint32(b, pi.Frame.InPort)
	if t := pi.Frame.Tunnel; t.ID != 0 || t.IsSet() {
		if t.ID != 0 {
			b = append(b, 0x80, 0, 38<<1, 8) // OXM_OF_TUNNEL_ID
			b = binary.BigEndian.AppendUint64(b, t.ID)
		}
		if t.Src.Is4() {
			b = append(b, 0x00, 0x01, 31<<1, 4) // NXM_NX_TUN_IPV4_SRC
			b = append(b, t.Src.AsSlice()...)
		}
		if t.Dst.Is4() {
			b = append(b, 0x00, 0x01, 32<<1, 4) // NXM_NX_TUN_IPV4_DST
			b = append(b, t.Dst.AsSlice()...)
		}
	}
	binary.BigEndian.PutUint16(b[start+2:], uint16(len(b)-start))
	for (len(b)-start)%8 != 0 {
		b = append(b, 0)
	}
	b = append(b, 0, 0) // pad
	b = append(b, data...)
	s.sendAsync(finish(b, 0), false)
}

// flowRemoved sends a FLOW_REMOVED (reason DELETE) for every deleted flow that asked for one (OFPFF_SEND_FLOW_REM),
// to every MASTER and EQUAL connection, as OVS 3.1 encodes it.
func (s *Switch) flowRemoved(flows []dataplane.Flow) {
	now := time.Now()
	for i := range flows {
		f := &flows[i]
		if f.Flags&flagSendFlowRem == 0 {
			continue
		}
		d := max(now.Sub(f.Installed), 0)
		b := appendHeader(nil, ofwire.TypeFlowRemoved, 0)
		b = binary.BigEndian.AppendUint64(b, f.Cookie)
		b = binary.BigEndian.AppendUint16(b, f.Priority)
		b = append(b, flowRemovedDelete, f.Table)
		b = binary.BigEndian.AppendUint32(b, uint32(d/time.Second))
		b = binary.BigEndian.AppendUint32(b, uint32(d%time.Second))
		b = binary.BigEndian.AppendUint16(b, f.IdleTimeout)
		b = binary.BigEndian.AppendUint16(b, f.HardTimeout)
		b = binary.BigEndian.AppendUint64(b, f.Packets)
		b = binary.BigEndian.AppendUint64(b, f.Bytes)
		b = appendMatch(b, f.Match)
		s.sendAsync(finish(b, 0), false)
	}
}
