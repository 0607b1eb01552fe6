package service

// This file is the service's contract with its callers (graphql, controller, cmd): the error type, the inputs,
// the live-state interface the controller implements, and the list of operations. The operations are methods of
// *Service, implemented in the other files of this package.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"portmirror/model"
)

// Code is an error's extensions.code in the API.
type Code string

// The codes of API.md.
const (
	CodeValidation      Code = "VALIDATION"
	CodeNotFound        Code = "NOT_FOUND"
	CodeConflict        Code = "CONFLICT"
	CodeUnauthenticated Code = "UNAUTHENTICATED"
	CodeForbidden       Code = "FORBIDDEN"
	CodeInternal        Code = "INTERNAL"
	CodeUnavailable     Code = "UNAVAILABLE" // several controllers, and no majority reachable
)

// Rule is an error's extensions.rule in the API.
type Rule string

// The rules of API.md.
const (
	RuleFlowNetworkInUse     Rule = "FLOW_NETWORK_IN_USE"
	RuleFlowNetworkDedicated Rule = "FLOW_NETWORK_DEDICATED"
	RuleClusterNotAttached   Rule = "CLUSTER_NOT_ATTACHED"
	RuleDestinationIsDefault Rule = "DESTINATION_IS_DEFAULT_NIC"
	RuleNicHasQoS            Rule = "NIC_HAS_QOS"
	RuleSameNic              Rule = "SAME_NIC"
	RuleMirrorLoop           Rule = "MIRROR_LOOP"
	RuleDuplicateSession     Rule = "DUPLICATE_SESSION"
	RuleInUse                Rule = "IN_USE"
	RuleInvalidArgument      Rule = "INVALID_ARGUMENT"
	// RuleAlreadyExists is not in API.md's table: a CONFLICT on a client-given uuid, datapath id or endpoint IP
	// that is taken.
	RuleAlreadyExists Rule = "ALREADY_EXISTS"
)

// Error is a refusal or fault that the API reports with a code, an optional rule and a message a person can act on.
type Error struct {
	Code    Code
	Rule    Rule   // empty when no rule applies (NOT_FOUND, INTERNAL)
	Message string // names the object and the rule
	Err     error  // the cause, for INTERNAL
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %v", e.Message, e.Err)
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// AsError returns err as an *Error; an error that is not one becomes INTERNAL.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeInternal, Message: "internal error", Err: err}
}

type actorKey struct{}

// WithActor returns ctx carrying the actor recorded in audit events (a token name, "local" or "system").
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

// ActorFrom returns the actor of ctx, "system" when none is set.
func ActorFrom(ctx context.Context) string {
	if a, ok := ctx.Value(actorKey{}).(string); ok && a != "" {
		return a
	}
	return "system"
}

// Live is what the controller knows and the store does not: connections, ports, bindings and flow status.
// The service answers queries with it; a nil Live answers as a controller with no switch connected.
type Live interface {
	// SessionStatus is the status of a session of an ENABLED port mirror (the service answers INACTIVE for a
	// disabled one itself), with a reason for PENDING and ERROR.
	SessionStatus(sessionUUID string) (model.SessionStatus, string)
	// SessionRevision is the revision of the session's definition that the controller's last plan compiled;
	// false when it has not compiled the session.
	SessionRevision(sessionUUID string) (uint64, bool)
	// Switches lists every bridge that is or was connected.
	Switches() []model.Switch
	// NicPort is where a NIC is attached now, or nil while it is unbound.
	NicPort(nicUUID string) *model.SwitchPort
	// HostConnected reports whether the host's bridge has an OpenFlow connection up.
	HostConnected(hostUUID string) bool
	// HostDatapathID is the datapath id learned for the host through OVSDB, or "" (a registered one is stored).
	HostDatapathID(hostUUID string) string
}

// Inputs of the operations; they mirror the GraphQL input objects. An empty string is an absent optional value.

type ClusterInput struct {
	UUID string `json:"uuid,omitempty"`
	Name string `json:"name"`
}

type HostInput struct {
	UUID         string `json:"uuid,omitempty"`
	Name         string `json:"name"`
	ClusterUUID  string `json:"clusterUuid,omitempty"`
	ManagementIP string `json:"managementIp,omitempty"`
	OVSDBAddress string `json:"ovsdbAddress,omitempty"`
	Bridge       string `json:"bridge,omitempty"` // "" means model.DefaultBridge
	DatapathID   string `json:"datapathId,omitempty"`
}

type VmNicInput struct {
	UUID          string        `json:"uuid,omitempty"`
	MAC           string        `json:"mac"`
	IP            string        `json:"ip,omitempty"`
	L3NetworkUUID string        `json:"l3NetworkUuid,omitempty"`
	IsDefault     bool          `json:"isDefault"`
	PortName      string        `json:"portName,omitempty"`
	QoS           *model.NicQoS `json:"qos,omitempty"`
}

type VmInstanceInput struct {
	UUID     string       `json:"uuid,omitempty"`
	Name     string       `json:"name"`
	HostUUID string       `json:"hostUuid,omitempty"`
	Nics     []VmNicInput `json:"nics,omitempty"`
}

type FlowNetworkInput struct {
	UUID          string              `json:"uuid,omitempty"`
	Name          string              `json:"name"`
	Description   string              `json:"description,omitempty"`
	CIDR          string              `json:"cidr"`
	Encapsulation model.Encapsulation `json:"encapsulation,omitempty"` // "" means GRE
	ClusterUUIDs  []string            `json:"clusterUuids,omitempty"`
}

type SessionInput struct {
	Name               string             `json:"name"`
	Type               model.Direction    `json:"type"`
	SourceNicUUID      string             `json:"sourceNicUuid,omitempty"`
	DestinationNicUUID string             `json:"destinationNicUuid,omitempty"`
	Filters            []model.FilterRule `json:"filters,omitempty"`
	SnapLength         *int               `json:"snapLength,omitempty"`         // nil: whole frames
	BandwidthLimitKbps *int               `json:"bandwidthLimitKbps,omitempty"` // nil: unlimited
	ExpiresAt          *time.Time         `json:"expiresAt,omitempty"`          // nil: never; refused when past
}

// SessionUpdate is what updatePortMirrorSession changes: a nil field stays as it is.
type SessionUpdate struct {
	Name *string `json:"name,omitempty"`
	// Filters replaces the filter when set; a set, empty list (or an explicit null) clears it.
	Filters *[]model.FilterRule `json:"filters,omitempty"`
	// NameCleared: the caller gave name: null, which a session cannot have.
	NameCleared bool `json:"-"`
	// SnapLengthSet: snapLength was given; SnapLength nil then clears it (whole frames).
	SnapLengthSet bool `json:"-"`
	SnapLength    *int `json:"snapLength,omitempty"`
	// BandwidthLimitSet: bandwidthLimitKbps was given; BandwidthLimitKbps nil then clears it (unlimited).
	BandwidthLimitSet  bool `json:"-"`
	BandwidthLimitKbps *int `json:"bandwidthLimitKbps,omitempty"`
	// ExpiresAtSet: expiresAt was given; ExpiresAt nil then clears it (the session no longer expires).
	ExpiresAtSet bool       `json:"-"`
	ExpiresAt    *time.Time `json:"expiresAt,omitempty"`
}

type PortMirrorInput struct {
	Name            string         `json:"name"`
	Description     string         `json:"description,omitempty"`
	FlowNetworkUUID string         `json:"flowNetworkUuid,omitempty"`
	Enable          bool           `json:"enable"`
	Sessions        []SessionInput `json:"sessions,omitempty"`
}

// AuditQuery selects audit events, newest first.
type AuditQuery struct {
	ResourceUUID string    // events about it and what it holds; "" for all
	Operation    string    // "" for all
	Actor        string    // "" for all
	ResourceType string    // "" for all
	Since, Until time.Time // zero for unbounded
	First        int       // at most this many; <= 0 means 100
	After        string    // the id of the last event of the previous page; "" to start at the newest
}

// Operations is the whole surface of *Service, written down so that callers can see it in one place and tests can
// wrap it. Mutations return once the change is durable and audited; every one, refused or not, writes one audit
// event with the actor of ctx.
type Operations interface {
	// inventory
	CreateCluster(ctx context.Context, in ClusterInput) (model.Cluster, error)
	RegisterHost(ctx context.Context, in HostInput) (model.Host, error)
	RegisterHosts(ctx context.Context, in []HostInput) (BulkResult, error)
	DeleteHost(ctx context.Context, uuid string) error
	CreateVmInstance(ctx context.Context, in VmInstanceInput) (model.VmInstance, error)
	CreateVmInstances(ctx context.Context, in []VmInstanceInput) (BulkResult, error)
	MigrateVmInstance(ctx context.Context, uuid, hostUUID string) (model.VmInstance, error)
	DeleteVmInstance(ctx context.Context, uuid string) error
	SetVmNicQos(ctx context.Context, nicUUID string, qos *model.NicQoS) (model.VmNic, error)

	// flow networks
	CreateFlowNetwork(ctx context.Context, in FlowNetworkInput) (model.FlowNetwork, error)
	AttachFlowNetworkToCluster(ctx context.Context, flowNetworkUUID, clusterUUID string) (model.FlowNetwork, error)
	DetachFlowNetworkFromCluster(ctx context.Context, flowNetworkUUID, clusterUUID string) (model.FlowNetwork, error)
	SetFlowEndpoint(ctx context.Context, flowNetworkUUID, hostUUID, ip string) (model.FlowEndpoint, error)
	DeleteFlowNetwork(ctx context.Context, uuid string) error

	// port mirroring
	CreatePortMirror(ctx context.Context, in PortMirrorInput) (model.PortMirror, error)
	UpdatePortMirror(ctx context.Context, uuid string, name, description *string) (model.PortMirror, error)
	EnablePortMirror(ctx context.Context, uuid string) (model.PortMirror, error)
	DisablePortMirror(ctx context.Context, uuid string) (model.PortMirror, error)
	DeletePortMirror(ctx context.Context, uuid string) error
	AddPortMirrorSession(ctx context.Context, portMirrorUUID string, in SessionInput) (model.Session, error)
	DeletePortMirrorSession(ctx context.Context, uuid string) error
	UpdatePortMirrorSession(ctx context.Context, uuid string, in SessionUpdate) (model.Session, error)
	ProbePortMirrorSession(ctx context.Context, uuid string) (model.ProbeResult, error)

	// queries: a missing object is a NOT_FOUND *Error from the single-object getters
	Clusters(ctx context.Context) ([]model.Cluster, error)
	Cluster(ctx context.Context, uuid string) (model.Cluster, error)
	Hosts(ctx context.Context) ([]model.Host, error)
	Host(ctx context.Context, uuid string) (model.Host, error)
	HostsInCluster(ctx context.Context, clusterUUID string) ([]model.Host, error)
	VmInstances(ctx context.Context) ([]model.VmInstance, error)
	VmInstance(ctx context.Context, uuid string) (model.VmInstance, error)
	VmInstancesOnHost(ctx context.Context, hostUUID string) ([]model.VmInstance, error)
	VmNics(ctx context.Context, vmUUID string) ([]model.VmNic, error) // in Index order
	VmNic(ctx context.Context, uuid string) (model.VmNic, error)
	FlowNetworks(ctx context.Context) ([]model.FlowNetwork, error)
	FlowNetwork(ctx context.Context, uuid string) (model.FlowNetwork, error)
	FlowNetworksOfCluster(ctx context.Context, clusterUUID string) ([]model.FlowNetwork, error)
	FlowEndpoints(ctx context.Context, flowNetworkUUID string) ([]model.FlowEndpoint, error)
	FlowEndpointsOfHost(ctx context.Context, hostUUID string) ([]model.FlowEndpoint, error)
	PortMirrors(ctx context.Context) ([]model.PortMirror, error)
	PortMirror(ctx context.Context, uuid string) (model.PortMirror, error)
	PortMirrorOfFlowNetwork(ctx context.Context, flowNetworkUUID string) (*model.PortMirror, error) // nil when free
	Sessions(ctx context.Context, portMirrorUUID string) ([]model.Session, error)                   // in creation order
	// SessionPage is at most first of them (all when first is negative) after the one whose uuid is after.
	SessionPage(ctx context.Context, portMirrorUUID string, first int, after string) ([]model.Session, error)
	SessionCount(ctx context.Context, portMirrorUUID string) int
	Session(ctx context.Context, uuid string) (model.Session, error)
	AllSessions(ctx context.Context) ([]model.Session, error)
	Audits(ctx context.Context, q AuditQuery) ([]model.AuditEvent, error)
	// CandidateNics says of each NIC whether a session may use it as its source or destination, by the rules the
	// session mutations check.
	CandidateNics(ctx context.Context, q CandidateQuery) ([]CandidateNic, error)

	// live state, through Live
	SessionStatus(ctx context.Context, s model.Session) (model.SessionStatus, string)
	Switches(ctx context.Context) []model.Switch
	NicPort(ctx context.Context, nicUUID string) *model.SwitchPort
	HostConnected(ctx context.Context, hostUUID string) bool

	// the controllers' cluster
	ControllerNodes(ctx context.Context) ([]model.ControllerNode, error)
	AddControllerNode(ctx context.Context, id, raftAddress string) (model.ControllerNode, error)
	RemoveControllerNode(ctx context.Context, id string) error
}

var _ Operations = (*Service)(nil)
