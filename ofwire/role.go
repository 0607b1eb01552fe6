package ofwire

import (
	"encoding/binary"
	"fmt"
)

// Controller roles (OFPCR_ROLE_*). Several controllers share a switch: at most one MASTER, which alone may change
// its state; SLAVEs only read and receive port status; EQUAL controllers may all write.
type Role uint32

const (
	RoleNoChange Role = 0
	RoleEqual    Role = 1
	RoleMaster   Role = 2
	RoleSlave    Role = 3
)

func (r Role) String() string {
	switch r {
	case RoleNoChange:
		return "NOCHANGE"
	case RoleEqual:
		return "EQUAL"
	case RoleMaster:
		return "MASTER"
	case RoleSlave:
		return "SLAVE"
	}
	return fmt.Sprintf("ROLE_%d", uint32(r))
}

// Role request failure codes (OFPRRFC_*) under ErrTypeRoleRequestFailed, and the bad-request code a SLAVE gets for
// a message only a MASTER or EQUAL controller may send (OFPBRC_IS_SLAVE).
const (
	RoleErrStale      uint16 = 0
	RoleErrUnsup      uint16 = 1
	RoleErrBadRole    uint16 = 2
	BadRequestIsSlave uint16 = 10
	ONFRoleStatus     uint32 = 1911 // ONF experimenter type of ROLE_STATUS on OpenFlow 1.3 (EXT-191)
)

// Reasons of a ROLE_STATUS (OFPCRR_*).
const (
	RoleReasonMasterRequest uint8 = 0 // another controller asked to be MASTER
	RoleReasonConfig        uint8 = 1
	RoleReasonExperimenter  uint8 = 2
)

// RoleMsg is the body of a ROLE_REQUEST or ROLE_REPLY.
type RoleMsg struct {
	Role         Role
	GenerationID uint64
}

// AppendRole appends a ROLE_REQUEST or ROLE_REPLY (t) asking for or reporting role with the generation id.
func AppendRole(dst []byte, t Type, xid uint32, role Role, generationID uint64) []byte {
	start := len(dst)
	dst = appendHeader(dst, t, xid)
	dst = binary.BigEndian.AppendUint32(dst, uint32(role))
	dst = append(dst, 0, 0, 0, 0) // pad
	dst = binary.BigEndian.AppendUint64(dst, generationID)
	dst, _ = finish(dst, start)
	return dst
}

// DecodeRole decodes the body of a ROLE_REQUEST or ROLE_REPLY.
func DecodeRole(body []byte) (RoleMsg, error) {
	if len(body) < 16 {
		return RoleMsg{}, malformed("role message body of %d bytes, want 16", len(body))
	}
	return RoleMsg{Role: Role(binary.BigEndian.Uint32(body)), GenerationID: binary.BigEndian.Uint64(body[8:])}, nil
}

// RoleStatus is the ONF ROLE_STATUS a switch sends a controller whose role changed without it asking (a MASTER
// demoted to SLAVE because another controller became MASTER).
type RoleStatus struct {
	Role         Role
	Reason       uint8
	GenerationID uint64
}

// AppendRoleStatus appends an ONF experimenter ROLE_STATUS (OpenFlow 1.3 extension EXT-191, as OVS sends it).
func AppendRoleStatus(dst []byte, xid uint32, rs RoleStatus) []byte {
	start := len(dst)
	dst = appendONFHeader(dst, xid, ONFRoleStatus)
	dst = binary.BigEndian.AppendUint32(dst, uint32(rs.Role))
	dst = append(dst, rs.Reason, 0, 0, 0) // reason, pad[3]
	dst = binary.BigEndian.AppendUint64(dst, rs.GenerationID)
	dst, _ = finish(dst, start)
	return dst
}

// DecodeRoleStatus decodes the data of an ONF ROLE_STATUS experimenter message (after the experimenter header).
func DecodeRoleStatus(data []byte) (RoleStatus, error) {
	if len(data) < 16 {
		return RoleStatus{}, malformed("role status of %d bytes, want 16", len(data))
	}
	return RoleStatus{
		Role:         Role(binary.BigEndian.Uint32(data)),
		Reason:       data[4],
		GenerationID: binary.BigEndian.Uint64(data[8:]),
	}, nil
}
