package dataplane

import (
	"fmt"

	"portmirror/ofwire"
)

// OpenFlow 1.3 error types (ofp_error_type) the bridge reports, as the wire layer defines them.
const (
	ErrTypeBadRequest     = ofwire.ErrTypeBadRequest
	ErrTypeBadAction      = ofwire.ErrTypeBadAction
	ErrTypeBadInstruction = ofwire.ErrTypeBadInstruction
	ErrTypeBadMatch       = ofwire.ErrTypeBadMatch
	ErrTypeFlowModFailed  = ofwire.ErrTypeFlowModFailed
	ErrTypeGroupModFailed = ofwire.ErrTypeGroupModFailed
	ErrTypeMeterModFailed = ofwire.ErrTypeMeterModFailed
)

// Error codes used with those types.
const (
	BadActionType          uint16 = 0  // OFPBAC_BAD_TYPE
	BadActionLen           uint16 = 1  // OFPBAC_BAD_LEN
	BadActionArgument      uint16 = 5  // OFPBAC_BAD_ARGUMENT
	BadActionOutPort       uint16 = 4  // OFPBAC_BAD_OUT_PORT
	BadActionOutGroup      uint16 = 9  // OFPBAC_BAD_OUT_GROUP
	BadActionInconsistent  uint16 = 10 // OFPBAC_MATCH_INCONSISTENT
	BadActionSetType       uint16 = 13 // OFPBAC_BAD_SET_TYPE
	BadActionSetLen        uint16 = 14 // OFPBAC_BAD_SET_LEN
	BadInstUnknown         uint16 = 0  // OFPBIC_UNKNOWN_INST
	BadInstUnsupported     uint16 = 1  // OFPBIC_UNSUP_INST
	BadInstTableID         uint16 = 2  // OFPBIC_BAD_TABLE_ID
	BadInstLen             uint16 = 6  // OFPBIC_BAD_LEN
	FlowModUnknown         uint16 = 0  // OFPFMFC_UNKNOWN
	FlowModTableFull       uint16 = 1  // OFPFMFC_TABLE_FULL
	FlowModBadTableID      uint16 = 2  // OFPFMFC_BAD_TABLE_ID
	FlowModOverlap         uint16 = 3  // OFPFMFC_OVERLAP
	FlowModBadCommand      uint16 = 6  // OFPFMFC_BAD_COMMAND
	GroupModExists         uint16 = 0  // OFPGMFC_GROUP_EXISTS
	GroupModInvalidGroup   uint16 = 1  // OFPGMFC_INVALID_GROUP
	GroupModBadType        uint16 = 10 // OFPGMFC_BAD_TYPE
	GroupModUnknownGroup   uint16 = 8  // OFPGMFC_UNKNOWN_GROUP
	GroupModBadCommand     uint16 = 11 // OFPGMFC_BAD_COMMAND
	BadRequestBadType             = ofwire.BadRequestBadType
	BadRequestBadMultipart uint16 = 2  // OFPBRC_BAD_MULTIPART
	BadRequestBadLen       uint16 = 6  // OFPBRC_BAD_LEN
	BadRequestBadTableID   uint16 = 9  // OFPBRC_BAD_TABLE_ID
	BadRequestBadVersion   uint16 = 0  // OFPBRC_BAD_VERSION
	BadRequestBadPort      uint16 = 11 // OFPBRC_BAD_PORT
)

// OFError is a refusal with the OpenFlow error type and code OVS sends for it, and a reason for people.
type OFError struct {
	Type, Code uint16
	Reason     string
}

func (e *OFError) Error() string {
	return fmt.Sprintf("%s (OpenFlow error type %d code %d)", e.Reason, e.Type, e.Code)
}

func badMatch(code uint16, reason string) *OFError {
	return &OFError{Type: ErrTypeBadMatch, Code: code, Reason: reason}
}
