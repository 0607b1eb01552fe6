// Package e2e holds the end-to-end tests of portmirror against real Open vSwitch.
//
// The harness (in the _test.go files) builds, per test, two hypervisors as network
// namespaces, each with its own ovsdb-server and ovs-vswitchd (userspace datapath,
// datapath_type=netdev), a flow-network underlay between them for userspace GRE and
// VXLAN tunnels, a business link between the two br-int bridges, VMs as network
// namespaces on veth pairs, tcpdump captures counted by a pcap reader, and the
// portmirrord daemon with a small GraphQL client. The tests need root and the OVS
// binaries; without them they skip with a message saying what is missing.
package e2e
