// Package model holds the plain types of the product: the objects of API.md as the store persists them and as
// the flow compiler, the controller and the API read them. It has no behaviour beyond small pure helpers.
package model

import (
	"strings"
	"time"
)

// Direction is a session's type: which frames of its source NIC it copies.
type Direction string

const (
	Ingress     Direction = "INGRESS"     // frames the switch delivers to the source NIC
	Egress      Direction = "EGRESS"      // frames the source NIC sends
	Bidirection Direction = "BIDIRECTION" // both
)

// Valid reports whether d is one of the three directions.
func (d Direction) Valid() bool { return d == Ingress || d == Egress || d == Bidirection }

// CopiesIngress reports whether d selects frames delivered to the source NIC.
func (d Direction) CopiesIngress() bool { return d == Ingress || d == Bidirection }

// CopiesEgress reports whether d selects frames sent by the source NIC.
func (d Direction) CopiesEgress() bool { return d == Egress || d == Bidirection }

// PortMirrorState is ENABLED or DISABLED.
type PortMirrorState string

const (
	Enabled  PortMirrorState = "ENABLED"
	Disabled PortMirrorState = "DISABLED"
)

// Encapsulation is the tunnel type of a flow network.
type Encapsulation string

const (
	GRE   Encapsulation = "GRE"
	VXLAN Encapsulation = "VXLAN"
	// ERSPANv1 is ERSPAN type II (erspan_ver=1), ERSPANv2 type III (erspan_ver=2): GRE-encapsulated copies whose
	// key is the 10-bit ERSPAN session id.
	ERSPANv1 Encapsulation = "ERSPAN_V1"
	ERSPANv2 Encapsulation = "ERSPAN_V2"
)

// Encapsulations lists every known encapsulation, GRE (the default) first.
func Encapsulations() []Encapsulation { return []Encapsulation{GRE, VXLAN, ERSPANv1, ERSPANv2} }

// Valid reports whether e is a known encapsulation.
func (e Encapsulation) Valid() bool { return e == GRE || e == VXLAN || e == ERSPANv1 || e == ERSPANv2 }

// IsERSPAN reports whether e is ERSPAN (type II or III).
func (e Encapsulation) IsERSPAN() bool { return e == ERSPANv1 || e == ERSPANv2 }

// ERSPANVersion is the erspan_ver a copy carries: 1 for ERSPAN_V1, 2 for ERSPAN_V2, 0 for the others.
func (e Encapsulation) ERSPANVersion() uint8 {
	switch e {
	case ERSPANv1:
		return 1
	case ERSPANv2:
		return 2
	}
	return 0
}

// PortType is the OVS interface type of the encapsulation's flow-based tunnel port: "gre", "vxlan" or "erspan"
// ("" for an unknown encapsulation).
func (e Encapsulation) PortType() string {
	switch e {
	case GRE:
		return "gre"
	case VXLAN:
		return "vxlan"
	case ERSPANv1, ERSPANv2:
		return "erspan"
	}
	return ""
}

// ConflictsWith reports whether flow networks of encapsulations e and o cannot share a host: OVS hands every
// IP-protocol-47 packet to the GRE-family flow port added first, so GRE and ERSPAN flow ports in one
// ovs-vswitchd steal each other's packets (ovs-3.1-mirroring-facts.md, section 3). VXLAN coexists with either.
func (e Encapsulation) ConflictsWith(o Encapsulation) bool {
	return e == GRE && o.IsERSPAN() || e.IsERSPAN() && o == GRE
}

// MaxTunnelKey is the largest tunnel key the encapsulation carries (GRE 32 bits, VXLAN 24 bits, ERSPAN the
// 10-bit session id).
func (e Encapsulation) MaxTunnelKey() uint32 {
	switch e {
	case VXLAN:
		return 1<<24 - 1
	case ERSPANv1, ERSPANv2:
		return 1<<10 - 1
	}
	return 1<<32 - 1
}

// SessionStatus is what the controller knows of a session's flows.
type SessionStatus string

const (
	StatusActive   SessionStatus = "ACTIVE"
	StatusInactive SessionStatus = "INACTIVE"
	StatusPending  SessionStatus = "PENDING"
	StatusError    SessionStatus = "ERROR"
)

// Cluster groups hosts; flow networks attach to clusters.
type Cluster struct {
	UUID      string    `json:"uuid"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"createdAt"`
}

// DefaultBridge is the bridge a host uses when registration names none.
const DefaultBridge = "br-int"

// Host is a hypervisor with one managed OVS bridge.
type Host struct {
	UUID         string    `json:"uuid"`
	Name         string    `json:"name"`
	ClusterUUID  string    `json:"clusterUuid"`
	ManagementIP string    `json:"managementIp,omitempty"`
	OVSDBAddress string    `json:"ovsdbAddress,omitempty"` // "tcp:IP:PORT", "ssl:IP:PORT" or "unix:PATH"; empty: not managed through OVSDB
	Bridge       string    `json:"bridge"`
	DatapathID   string    `json:"datapathId,omitempty"` // 16 lower-case hex digits, or empty while unknown
	CreatedAt    time.Time `json:"createdAt"`
}

// VmInstance is a VM on a host. Its NICs are VmNic objects with VmUUID set to it.
type VmInstance struct {
	UUID      string    `json:"uuid"`
	Name      string    `json:"name"`
	HostUUID  string    `json:"hostUuid"`
	CreatedAt time.Time `json:"createdAt"`
}

// NicQoS is a NIC's bandwidth limit; a nil field is unlimited.
type NicQoS struct {
	InboundBandwidthBps  *int64 `json:"inboundBandwidthBps,omitempty"`
	OutboundBandwidthBps *int64 `json:"outboundBandwidthBps,omitempty"`
}

// IsSet reports whether any limit is set.
func (q *NicQoS) IsSet() bool {
	return q != nil && (q.InboundBandwidthBps != nil || q.OutboundBandwidthBps != nil)
}

// VmNic is a VM's network interface.
type VmNic struct {
	UUID          string  `json:"uuid"`
	VmUUID        string  `json:"vmUuid"`
	Index         int     `json:"index"` // position among its VM's NICs
	MAC           string  `json:"mac"`   // lower-case, colon separated
	IP            string  `json:"ip,omitempty"`
	L3NetworkUUID string  `json:"l3NetworkUuid,omitempty"`
	IsDefault     bool    `json:"isDefault"`
	PortName      string  `json:"portName,omitempty"` // binds by OpenFlow port name when set
	QoS           *NicQoS `json:"qos,omitempty"`
}

// FlowNetwork is a network dedicated to mirroring.
type FlowNetwork struct {
	UUID          string        `json:"uuid"`
	Name          string        `json:"name"`
	Description   string        `json:"description,omitempty"`
	CIDR          string        `json:"cidr"`
	Encapsulation Encapsulation `json:"encapsulation"`
	ClusterUUIDs  []string      `json:"clusterUuids"`
	CreatedAt     time.Time     `json:"createdAt"`
}

// AttachedTo reports whether the flow network is attached to the cluster.
func (f *FlowNetwork) AttachedTo(clusterUUID string) bool {
	for _, c := range f.ClusterUUIDs {
		if c == clusterUUID {
			return true
		}
	}
	return false
}

// FlowEndpoint is a host's tunnel endpoint IP on a flow network.
type FlowEndpoint struct {
	FlowNetworkUUID string `json:"flowNetworkUuid"`
	HostUUID        string `json:"hostUuid"`
	IP              string `json:"ip"`
	Manual          bool   `json:"manual"` // set by setFlowEndpoint rather than allocated
}

// PortMirror is the product's main object: sessions on one flow network.
type PortMirror struct {
	UUID            string          `json:"uuid"`
	Name            string          `json:"name"`
	Description     string          `json:"description,omitempty"`
	FlowNetworkUUID string          `json:"flowNetworkUuid"`
	State           PortMirrorState `json:"state"`
	CreatedAt       time.Time       `json:"createdAt"`
	UpdatedAt       time.Time       `json:"updatedAt"`
}

// Session copies one NIC's traffic to another NIC.
type Session struct {
	UUID               string    `json:"uuid"`
	Name               string    `json:"name"`
	Type               Direction `json:"type"`
	PortMirrorUUID     string    `json:"portMirrorUuid"`
	SourceNicUUID      string    `json:"sourceNicUuid"`
	DestinationNicUUID string    `json:"destinationNicUuid"`
	TunnelKey          uint32    `json:"tunnelKey"` // one per destination NIC within the flow network
	CreatedAt          time.Time `json:"createdAt"`
	// Filters select the frames copied (ordered, first match decides); empty: every frame. Canonical form.
	Filters []FilterRule `json:"filters,omitempty"`
	// Revision counts the changes of the session's definition (updatePortMirrorSession); 0 as created.
	Revision uint64 `json:"revision,omitempty"`
	// SnapLength cuts copies to this many bytes (64..65535); 0: whole frames.
	SnapLength int `json:"snapLength,omitempty"`
	// ExpiresAt is when the controller deletes the session (audited as the actor "system"); nil: never.
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
}

// AuditEvent records one mutation, refused or not.
type AuditEvent struct {
	ID           string    `json:"id"` // sortable: later events have greater ids
	Time         time.Time `json:"time"`
	Actor        string    `json:"actor"`
	Operation    string    `json:"operation"`
	ResourceType string    `json:"resourceType"`
	ResourceUUID string    `json:"resourceUuid,omitempty"`
	Success      bool      `json:"success"`
	Error        string    `json:"error,omitempty"`
	Detail       string    `json:"detail,omitempty"`  // JSON: the input and what changed
	Related      []string  `json:"related,omitempty"` // other uuids the event is about (e.g. the session of a session operation)
}

// SwitchPort is an OpenFlow port of a bridge.
type SwitchPort struct {
	DatapathID string `json:"datapathId"`
	PortNo     uint32 `json:"portNo"`
	Name       string `json:"name"`
	Up         bool   `json:"up"`
}

// Switch is a bridge as the controller sees it.
type Switch struct {
	DatapathID    string       `json:"datapathId"`
	HostUUID      string       `json:"hostUuid,omitempty"`
	Connected     bool         `json:"connected"`
	RemoteAddress string       `json:"remoteAddress,omitempty"`
	ConnectedAt   time.Time    `json:"connectedAt"`
	Ports         []SwitchPort `json:"ports"`
	FlowCount     int          `json:"flowCount"`
	// Role is this controller's OpenFlow role on the switch (MASTER, SLAVE or EQUAL), as the switch granted it.
	Role string `json:"role,omitempty"`
}

// TunnelPortPrefix starts the name of every flow-network tunnel port.
const TunnelPortPrefix = "pm"

// TunnelPortName is the name of the flow-based tunnel port of a flow network on every bridge: "pm" and the first
// ten hex digits of the flow network's uuid (15 characters at most, as interface names must be).
func TunnelPortName(flowNetworkUUID string) string {
	hex := strings.ReplaceAll(strings.ToLower(flowNetworkUUID), "-", "")
	if len(hex) > 10 {
		hex = hex[:10]
	}
	return TunnelPortPrefix + hex
}

// NormalizeDatapathID returns a datapath id as 16 lower-case hex digits, accepting an optional "0x" prefix,
// colons, and fewer digits. ok is false when s is not a datapath id.
func NormalizeDatapathID(s string) (string, bool) {
	s = strings.ToLower(strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X"))
	s = strings.ReplaceAll(s, ":", "")
	if s == "" || len(s) > 16 {
		return "", false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", false
		}
	}
	return strings.Repeat("0", 16-len(s)) + s, true
}

// ControllerNode is one member of a cluster of controllers, as the answering controller sees it.
type ControllerNode struct {
	ID              string     `json:"id"`
	RaftAddress     string     `json:"raftAddress"`
	APIAddress      string     `json:"apiAddress,omitempty"`
	OpenFlowAddress string     `json:"openflowAddress,omitempty"`
	Role            string     `json:"role"` // LEADER, FOLLOWER, CANDIDATE or UNREACHABLE
	Self            bool       `json:"self"`
	LastContact     *time.Time `json:"lastContact,omitempty"`
}

// ProbeResult is the outcome of an end-to-end probe of a session (probePortMirrorSession).
type ProbeResult struct {
	Delivered bool     `json:"delivered"` // a marked frame injected at the source port was caught at the destination's bridge
	LatencyMs *float64 `json:"latencyMs,omitempty"`
	Path      []string `json:"path"`             // the hops the probe took or was to take
	Reason    string   `json:"reason,omitempty"` // why not delivered, naming the switch, port or flow that is missing
}
