// Package fleet builds a simulated cloud from a declarative topology: clusters of hosts, each host one simulated
// OVS bridge (ofsim over dataplane, joined by the fabric's flow-based tunnels and by a business underlay), VMs
// with NICs plugged into those bridges, and monitor VMs whose capture NIC receives only copies. It registers
// itself with a controller (through the GraphQL API or an in-process service), generates traffic between VMs,
// collects every copy that reaches a capture port, and says which copies the rule of API.md expects.
//
// Everything is deterministic from Topology.Seed: uuids, MACs, IPs, datapath ids and port numbers. The package
// never imports the controller; a controller is reached through the wire (OpenFlow) and the API.
package fleet

import (
	"fmt"
	"net/netip"

	"portmirror/model"
	"portmirror/simulator/dataplane"
)

// Topology describes a fleet. Its zero value is a valid small fleet: one cluster of three hosts, each with two
// VMs of one NIC and one monitor VM, one GRE flow network.
type Topology struct {
	Seed          uint64
	Clusters      []ClusterSpec       // nil: DefaultClusters()
	FlowNetworks  int                 // how many flow networks, each attached to every cluster; 0: 1, at most 8
	Encapsulation model.Encapsulation // of every flow network; "": GRE
}

// ClusterSpec is one cluster's hosts.
type ClusterSpec struct {
	Hosts []HostSpec
}

// HostSpec is what runs on one host at the start: VMs ordinary VMs of NICsPerVM NICs (the first one the VM's
// default NIC; 0 means 1) and Monitors monitor VMs (a default NIC and a capture NIC).
type HostSpec struct {
	VMs       int
	NICsPerVM int
	Monitors  int
}

// DefaultClusters is the topology of the zero Topology.
func DefaultClusters() []ClusterSpec {
	return []ClusterSpec{{Hosts: []HostSpec{{VMs: 2, Monitors: 1}, {VMs: 2, Monitors: 1}, {VMs: 2, Monitors: 1}}}}
}

// Uniform is a one-cluster topology of hosts hosts, each with vmsPerHost one-NIC VMs and monitorsPerHost monitors.
func Uniform(seed uint64, hosts, vmsPerHost, monitorsPerHost int) Topology {
	c := ClusterSpec{Hosts: make([]HostSpec, hosts)}
	for i := range c.Hosts {
		c.Hosts[i] = HostSpec{VMs: vmsPerHost, Monitors: monitorsPerHost}
	}
	return Topology{Seed: seed, Clusters: []ClusterSpec{c}}
}

// Limits of a fleet, from its address plan.
const (
	MaxHosts        = 4094 // endpoint IPs per flow network (the upper half of a /19)
	MaxFlowNetworks = 8    // /19 each, within 198.18.0.0/16
	MaxNICs         = 65534
)

// Port numbers on every simulated bridge that are not VM NICs.
const (
	UplinkPort     uint32 = 0xfe00 // the business underlay: frames between hosts that are not mirror copies
	TunnelPortBase uint32 = 0xfe10 // + flow network index: the flow network's flow-based tunnel port
)

// UplinkName is the name of the underlay port on every bridge.
const UplinkName = "uplink"

// ids derives the fleet's identifiers from its seed.
type ids struct{ tag uint32 }

func newIDs(seed uint64) ids {
	// splitmix64: different seeds give unrelated tags
	z := seed + 0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	z ^= z >> 31
	return ids{tag: uint32(z)}
}

// uuid kinds
const (
	kindCluster = 0xc1
	kindHost    = 0xa1
	kindVM      = 0xb1
	kindNIC     = 0xd1
	kindFN      = 0xf1
)

// uuid is object n of a kind. The first ten hex digits (which name a flow network's tunnel port) hold the seed's
// tag and the low byte of n.
func (d ids) uuid(kind, n int) string {
	return fmt.Sprintf("%08x-%02x%02x-4000-8000-%012x", d.tag, n&0xff, kind, n)
}

func (d ids) datapathID(host int) uint64 { return uint64(d.tag)<<24 | uint64(host+1) }

func (d ids) nicMAC(n int) dataplane.MAC {
	return dataplane.MAC{0x02, byte(d.tag), byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
}

func (d ids) portMAC(host int, port uint32) dataplane.MAC {
	return dataplane.MAC{0x0e, byte(d.tag), byte(host >> 8), byte(host), byte(port >> 8), byte(port)}
}

func (d ids) localMAC(host int) dataplane.MAC {
	return dataplane.MAC{0x0a, byte(d.tag), 0, 0, byte(host >> 8), byte(host)}
}

// flowNetworkCIDR is flow network i's CIDR: the i-th /19 of 198.18.0.0/16.
func flowNetworkCIDR(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(i * 32), 0}), 19)
}

// endpointIP is host h's tunnel endpoint on flow network i: in the upper half of the /19, so that it never collides
// with what the service allocates by itself (from the bottom) before the fleet sets its own.
func endpointIP(i, h int) netip.Addr {
	n := 4096 + h + 1
	return netip.AddrFrom4([4]byte{198, 18, byte(i*32 + n>>8), byte(n)})
}

// nicIP is NIC n's address, in 198.19.0.0/16.
func nicIP(n int) netip.Addr {
	n++
	return netip.AddrFrom4([4]byte{198, 19, byte(n >> 8), byte(n)})
}
