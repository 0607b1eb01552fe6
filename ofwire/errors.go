package ofwire

import "fmt"

// OpenFlow 1.3 error types.
const (
	ErrTypeHelloFailed        uint16 = 0
	ErrTypeBadRequest         uint16 = 1
	ErrTypeBadAction          uint16 = 2
	ErrTypeBadInstruction     uint16 = 3
	ErrTypeBadMatch           uint16 = 4
	ErrTypeFlowModFailed      uint16 = 5
	ErrTypeGroupModFailed     uint16 = 6
	ErrTypePortModFailed      uint16 = 7
	ErrTypeTableModFailed     uint16 = 8
	ErrTypeQueueOpFailed      uint16 = 9
	ErrTypeSwitchConfigFailed uint16 = 10
	ErrTypeRoleRequestFailed  uint16 = 11
	ErrTypeMeterModFailed     uint16 = 12
	ErrTypeTableFeatures      uint16 = 13
	ErrTypeExperimenter       uint16 = 0xffff

	// ErrCodeHelloIncompatible is OFPHFC_INCOMPATIBLE: no common version.
	ErrCodeHelloIncompatible uint16 = 0
)

var errTypeNames = []string{
	"HELLO_FAILED", "BAD_REQUEST", "BAD_ACTION", "BAD_INSTRUCTION", "BAD_MATCH", "FLOW_MOD_FAILED",
	"GROUP_MOD_FAILED", "PORT_MOD_FAILED", "TABLE_MOD_FAILED", "QUEUE_OP_FAILED", "SWITCH_CONFIG_FAILED",
	"ROLE_REQUEST_FAILED", "METER_MOD_FAILED", "TABLE_FEATURES_FAILED",
}

var errCodeNames = [][]string{
	{"INCOMPATIBLE", "EPERM"},
	{"BAD_VERSION", "BAD_TYPE", "BAD_MULTIPART", "BAD_EXPERIMENTER", "BAD_EXP_TYPE", "EPERM", "BAD_LEN",
		"BUFFER_EMPTY", "BUFFER_UNKNOWN", "BAD_TABLE_ID", "IS_SLAVE", "BAD_PORT", "BAD_PACKET",
		"MULTIPART_BUFFER_OVERFLOW"},
	{"BAD_TYPE", "BAD_LEN", "BAD_EXPERIMENTER", "BAD_EXP_TYPE", "BAD_OUT_PORT", "BAD_ARGUMENT", "EPERM",
		"TOO_MANY", "BAD_QUEUE", "BAD_OUT_GROUP", "MATCH_INCONSISTENT", "UNSUPPORTED_ORDER", "BAD_TAG",
		"BAD_SET_TYPE", "BAD_SET_LEN", "BAD_SET_ARGUMENT"},
	{"UNKNOWN_INST", "UNSUP_INST", "BAD_TABLE_ID", "UNSUP_METADATA", "UNSUP_METADATA_MASK",
		"BAD_EXPERIMENTER", "BAD_EXP_TYPE", "BAD_LEN", "EPERM"},
	{"BAD_TYPE", "BAD_LEN", "BAD_TAG", "BAD_DL_ADDR_MASK", "BAD_NW_ADDR_MASK", "BAD_WILDCARDS", "BAD_FIELD",
		"BAD_VALUE", "BAD_MASK", "BAD_PREREQ", "DUP_FIELD", "EPERM"},
	{"UNKNOWN", "TABLE_FULL", "BAD_TABLE_ID", "OVERLAP", "EPERM", "BAD_TIMEOUT", "BAD_COMMAND", "BAD_FLAGS"},
	6: nil, 7: nil, 8: nil, 9: nil, 10: nil,
	ErrTypeRoleRequestFailed: {"STALE", "UNSUP", "BAD_ROLE"},
}

// ErrorTypeName names an OpenFlow 1.3 error type, e.g. "BAD_ACTION".
func ErrorTypeName(t uint16) string {
	if int(t) < len(errTypeNames) {
		return errTypeNames[t]
	}
	if t == ErrTypeExperimenter {
		return "EXPERIMENTER"
	}
	return fmt.Sprintf("TYPE_%d", t)
}

// bundleErrNames are the ONF bundle extension's failure codes from BundleErrUnknown on.
var bundleErrNames = []string{"UNKNOWN", "EPERM", "BAD_ID", "BUNDLE_EXIST", "BUNDLE_CLOSED", "OUT_OF_BUNDLES",
	"BAD_TYPE", "BAD_FLAGS", "MSG_BAD_LEN", "MSG_BAD_XID", "MSG_UNSUP", "MSG_CONFLICT", "MSG_TOO_MANY", "MSG_FAILED",
	"TIMEOUT", "BUNDLE_IN_PROGRESS"}

// ErrorCodeName names an error code within its type, e.g. "BAD_OUT_PORT" or, for the ONF bundle extension's
// experimenter errors, "BUNDLE_MSG_FAILED"; otherwise it gives the number.
func ErrorCodeName(t, c uint16) string {
	if t == ErrTypeExperimenter && c >= BundleErrUnknown && int(c-BundleErrUnknown) < len(bundleErrNames) {
		return "BUNDLE_" + bundleErrNames[c-BundleErrUnknown]
	}
	if int(t) < len(errCodeNames) && int(c) < len(errCodeNames[t]) {
		return errCodeNames[t][c]
	}
	return fmt.Sprintf("CODE_%d", c)
}
