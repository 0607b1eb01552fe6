package service

import (
	"errors"
	"strings"
	"testing"

	"portmirror/model"
)

func TestRefusals(t *testing.T) {
	long := strings.Repeat("x", 129)
	q := int64(5)
	neg := int64(-1)
	type tc struct {
		name  string
		setup func(f *fx)
		call  func(f *fx) error
		code  Code
		rule  Rule
		names func(f *fx) []string // what the message must mention
		op    string               // audited operation
	}
	sess := func(name string, typ model.Direction, src, dst string) SessionInput {
		return SessionInput{Name: name, Type: typ, SourceNicUUID: src, DestinationNicUUID: dst}
	}
	cases := []tc{
		{name: "cluster empty name", op: "createCluster", code: CodeValidation, rule: RuleInvalidArgument,
			call: func(f *fx) error { _, err := f.svc.CreateCluster(f.ctx, ClusterInput{Name: " "}); return err }},
		{name: "cluster name too long", op: "createCluster", code: CodeValidation, rule: RuleInvalidArgument,
			call: func(f *fx) error { _, err := f.svc.CreateCluster(f.ctx, ClusterInput{Name: long}); return err }},
		{name: "cluster bad uuid", op: "createCluster", code: CodeValidation, rule: RuleInvalidArgument,
			call: func(f *fx) error {
				_, err := f.svc.CreateCluster(f.ctx, ClusterInput{Name: "c", UUID: "not-a-uuid"})
				return err
			}, names: func(f *fx) []string { return []string{"not-a-uuid"} }},
		{name: "cluster uuid exists", op: "createCluster", code: CodeConflict, rule: RuleAlreadyExists,
			call: func(f *fx) error {
				_, err := f.svc.CreateCluster(f.ctx, ClusterInput{Name: "c", UUID: strings.ToUpper(uC1)})
				return err
			}, names: func(f *fx) []string { return []string{"alpha", uC1} }},
		{name: "host bad datapath id", op: "registerHost", code: CodeValidation, rule: RuleInvalidArgument,
			call: func(f *fx) error {
				_, err := f.svc.RegisterHost(f.ctx, HostInput{Name: "hv9", ClusterUUID: f.c1, DatapathID: "xyz"})
				return err
			}, names: func(f *fx) []string { return []string{"hv9", "xyz"} }},
		{name: "host datapath id taken", op: "registerHost", code: CodeConflict, rule: RuleAlreadyExists,
			call: func(f *fx) error {
				_, err := f.svc.RegisterHost(f.ctx, HostInput{Name: "hv9", ClusterUUID: f.c1, DatapathID: "00:00:00:00:00:00:00:01"})
				return err
			}, names: func(f *fx) []string { return []string{"hv9", "hv1", uH1, "0000000000000001"} }},
		{name: "host bad ovsdb address", op: "registerHost", code: CodeValidation, rule: RuleInvalidArgument,
			call: func(f *fx) error {
				_, err := f.svc.RegisterHost(f.ctx, HostInput{Name: "hv9", ClusterUUID: f.c1, OVSDBAddress: "tcp:example.com:6640"})
				return err
			}},
		{name: "host bad management ip", op: "registerHost", code: CodeValidation, rule: RuleInvalidArgument,
			call: func(f *fx) error {
				_, err := f.svc.RegisterHost(f.ctx, HostInput{Name: "hv9", ClusterUUID: f.c1, ManagementIP: "10.0.0.300"})
				return err
			}},
		{name: "host missing cluster", op: "registerHost", code: CodeNotFound,
			call: func(f *fx) error {
				_, err := f.svc.RegisterHost(f.ctx, HostInput{Name: "hv9", ClusterUUID: "00000000-0000-4000-8000-00000000dead"})
				return err
			}, names: func(f *fx) []string { return []string{"cluster", "00000000-0000-4000-8000-00000000dead"} }},
		{name: "vm bad mac", op: "createVmInstance", code: CodeValidation, rule: RuleInvalidArgument,
			call: func(f *fx) error {
				_, err := f.svc.CreateVmInstance(f.ctx, VmInstanceInput{Name: "vm9", HostUUID: f.h1, Nics: []VmNicInput{{MAC: "02:00:zz:00:00:01"}}})
				return err
			}, names: func(f *fx) []string { return []string{"vm9", "02:00:zz:00:00:01"} }},
		{name: "vm multicast mac", op: "createVmInstance", code: CodeValidation, rule: RuleInvalidArgument,
			call: func(f *fx) error {
				_, err := f.svc.CreateVmInstance(f.ctx, VmInstanceInput{Name: "vm9", HostUUID: f.h1, Nics: []VmNicInput{{MAC: "01:00:5e:00:00:01"}}})
				return err
			}},
		{name: "vm two default nics", op: "createVmInstance", code: CodeValidation, rule: RuleInvalidArgument,
			call: func(f *fx) error {
				_, err := f.svc.CreateVmInstance(f.ctx, VmInstanceInput{Name: "vm9", HostUUID: f.h1,
					Nics: []VmNicInput{{MAC: "02:00:00:00:09:01", IsDefault: true}, {MAC: "02:00:00:00:09:02", IsDefault: true}}})
				return err
			}},
		{name: "vm negative qos", op: "createVmInstance", code: CodeValidation, rule: RuleInvalidArgument,
			call: func(f *fx) error {
				_, err := f.svc.CreateVmInstance(f.ctx, VmInstanceInput{Name: "vm9", HostUUID: f.h1,
					Nics: []VmNicInput{{MAC: "02:00:00:00:09:01", QoS: &model.NicQoS{OutboundBandwidthBps: &neg}}}})
				return err
			}},
		{name: "vm nic on a flow network", op: "createVmInstance", code: CodeValidation, rule: RuleFlowNetworkDedicated,
			call: func(f *fx) error {
				_, err := f.svc.CreateVmInstance(f.ctx, VmInstanceInput{Name: "vm9", HostUUID: f.h1,
					Nics: []VmNicInput{{MAC: "02:00:00:00:09:01", L3NetworkUUID: f.fn1}}})
				return err
			}, names: func(f *fx) []string { return []string{"vm9", "mirror-net", uFN1} }},
		{name: "vm nic uuid exists", op: "createVmInstance", code: CodeConflict, rule: RuleAlreadyExists,
			call: func(f *fx) error {
				_, err := f.svc.CreateVmInstance(f.ctx, VmInstanceInput{Name: "vm9", HostUUID: f.h1,
					Nics: []VmNicInput{{UUID: f.n1a, MAC: "02:00:00:00:09:01"}}})
				return err
			}, names: func(f *fx) []string { return []string{f.n1a, "web"} }},
		{name: "vm missing host", op: "createVmInstance", code: CodeNotFound,
			call: func(f *fx) error {
				_, err := f.svc.CreateVmInstance(f.ctx, VmInstanceInput{Name: "vm9", HostUUID: uC1})
				return err
			}, names: func(f *fx) []string { return []string{"host", uC1} }},
		{name: "flow network bad cidr", op: "createFlowNetwork", code: CodeValidation, rule: RuleInvalidArgument,
			call: func(f *fx) error {
				_, err := f.svc.CreateFlowNetwork(f.ctx, FlowNetworkInput{Name: "fn9", CIDR: "198.18.0.0/33"})
				return err
			}, names: func(f *fx) []string { return []string{"fn9", "198.18.0.0/33"} }},
		{name: "flow network /31", op: "createFlowNetwork", code: CodeValidation, rule: RuleInvalidArgument,
			call: func(f *fx) error {
				_, err := f.svc.CreateFlowNetwork(f.ctx, FlowNetworkInput{Name: "fn9", CIDR: "198.18.0.0/31"})
				return err
			}},
		{name: "flow network ipv6", op: "createFlowNetwork", code: CodeValidation, rule: RuleInvalidArgument,
			call: func(f *fx) error {
				_, err := f.svc.CreateFlowNetwork(f.ctx, FlowNetworkInput{Name: "fn9", CIDR: "2001:db8::/64"})
				return err
			}},
		{name: "flow network bad encapsulation", op: "createFlowNetwork", code: CodeValidation, rule: RuleInvalidArgument,
			call: func(f *fx) error {
				_, err := f.svc.CreateFlowNetwork(f.ctx, FlowNetworkInput{Name: "fn9", CIDR: "198.18.9.0/24", Encapsulation: "GENEVE"})
				return err
			}},
		{name: "flow network description too long", op: "createFlowNetwork", code: CodeValidation, rule: RuleInvalidArgument,
			call: func(f *fx) error {
				_, err := f.svc.CreateFlowNetwork(f.ctx, FlowNetworkInput{Name: "fn9", CIDR: "198.18.9.0/24", Description: strings.Repeat("d", 1025)})
				return err
			}},
		{name: "flow network uuid used by a nic", op: "createFlowNetwork", code: CodeValidation, rule: RuleFlowNetworkDedicated,
			setup: func(f *fx) {
				f.must1(f.svc.CreateVmInstance(f.ctx, VmInstanceInput{Name: "biz", HostUUID: f.h1,
					Nics: []VmNicInput{{MAC: "02:00:00:00:09:01", L3NetworkUUID: "00000000-0000-4000-8000-0000000000b1"}}}))
			},
			call: func(f *fx) error {
				_, err := f.svc.CreateFlowNetwork(f.ctx, FlowNetworkInput{Name: "fn9", UUID: "00000000-0000-4000-8000-0000000000b1", CIDR: "198.18.9.0/24"})
				return err
			}, names: func(f *fx) []string { return []string{"fn9", "biz", "02:00:00:00:09:01"} }},
		{name: "flow network exhausted", op: "createFlowNetwork", code: CodeValidation, rule: RuleInvalidArgument,
			setup: func(f *fx) {
				f.must1(f.svc.RegisterHost(f.ctx, HostInput{Name: "hv4", ClusterUUID: f.c1}))
			},
			call: func(f *fx) error {
				_, err := f.svc.CreateFlowNetwork(f.ctx, FlowNetworkInput{Name: "tiny", CIDR: "198.18.9.0/30", ClusterUUIDs: []string{f.c1}})
				return err
			}, names: func(f *fx) []string { return []string{"tiny", "198.18.9.0/30", "hv4"} }},
		{name: "register host into exhausted flow network", op: "registerHost", code: CodeValidation, rule: RuleInvalidArgument,
			setup: func(f *fx) {
				f.must1(f.svc.CreateFlowNetwork(f.ctx, FlowNetworkInput{Name: "tiny", CIDR: "198.18.9.0/30", ClusterUUIDs: []string{f.c1}}))
			},
			call: func(f *fx) error {
				_, err := f.svc.RegisterHost(f.ctx, HostInput{Name: "hv4", ClusterUUID: f.c1})
				return err
			}, names: func(f *fx) []string { return []string{"tiny", "hv4", "no free endpoint"} }},
		{name: "port mirror on occupied flow network", op: "createPortMirror", code: CodeConflict, rule: RuleFlowNetworkInUse,
			call: func(f *fx) error {
				_, err := f.svc.CreatePortMirror(f.ctx, PortMirrorInput{Name: "pm-b", FlowNetworkUUID: f.fn1})
				return err
			}, names: func(f *fx) []string { return []string{"pm-b", "mirror-net", uFN1, "pm-a", f.pm1} }},
		{name: "delete occupied flow network", op: "deleteFlowNetwork", code: CodeConflict, rule: RuleFlowNetworkInUse,
			call:  func(f *fx) error { return f.svc.DeleteFlowNetwork(f.ctx, f.fn1) },
			names: func(f *fx) []string { return []string{"mirror-net", uFN1, "pm-a"} }},
		{name: "session source in unattached cluster", op: "addPortMirrorSession", code: CodeValidation, rule: RuleClusterNotAttached,
			call: func(f *fx) error {
				_, err := f.svc.AddPortMirrorSession(f.ctx, f.pm1, sess("x", model.Ingress, f.n3b, f.n2c))
				return err
			},
			names: func(f *fx) []string { return []string{"pm-a", "hv3", "beta", "mirror-net"} }},
		{name: "session destination is default", op: "addPortMirrorSession", code: CodeValidation, rule: RuleDestinationIsDefault,
			call: func(f *fx) error {
				_, err := f.svc.AddPortMirrorSession(f.ctx, f.pm1, sess("x", model.Ingress, f.n1b, f.n2a))
				return err
			}, names: func(f *fx) []string { return []string{"\"x\"", "pm-a", f.pm1, f.n2a, "monitor"} }},
		{name: "session same nic", op: "addPortMirrorSession", code: CodeValidation, rule: RuleSameNic,
			call: func(f *fx) error {
				_, err := f.svc.AddPortMirrorSession(f.ctx, f.pm1, sess("x", model.Ingress, f.n1b, f.n1b))
				return err
			}, names: func(f *fx) []string { return []string{f.n1b, "pm-a"} }},
		{name: "session source has qos", op: "addPortMirrorSession", code: CodeValidation, rule: RuleNicHasQoS,
			call: func(f *fx) error {
				_, err := f.svc.AddPortMirrorSession(f.ctx, f.pm1, sess("x", model.Egress, f.n4b, f.n2c))
				return err
			}, names: func(f *fx) []string { return []string{f.n4b, "qos"} }},
		{name: "session destination has qos", op: "addPortMirrorSession", code: CodeValidation, rule: RuleNicHasQoS,
			call: func(f *fx) error {
				_, err := f.svc.AddPortMirrorSession(f.ctx, f.pm1, sess("x", model.Egress, f.n1b, f.n4b))
				return err
			}, names: func(f *fx) []string { return []string{f.n4b} }},
		{name: "session destination is a source", op: "addPortMirrorSession", code: CodeValidation, rule: RuleMirrorLoop,
			setup: func(f *fx) { f.must1(f.svc.AddPortMirrorSession(f.ctx, f.pm1, sess("s2", model.Egress, f.n1b, f.n2c))) },
			call: func(f *fx) error {
				_, err := f.svc.AddPortMirrorSession(f.ctx, f.pm1, sess("x", model.Egress, f.n4a, f.n1b))
				return err
			}, names: func(f *fx) []string { return []string{f.n1b, "s2", "pm-a"} }},
		{name: "session source is a destination", op: "addPortMirrorSession", code: CodeValidation, rule: RuleMirrorLoop,
			call: func(f *fx) error {
				_, err := f.svc.AddPortMirrorSession(f.ctx, f.pm1, sess("x", model.Egress, f.n2b, f.n2c))
				return err
			}, names: func(f *fx) []string { return []string{f.n2b, "s1"} }},
		{name: "session loop across port mirrors", op: "createPortMirror", code: CodeValidation, rule: RuleMirrorLoop,
			setup: func(f *fx) { f.must1(f.svc.AddPortMirrorSession(f.ctx, f.pm1, sess("s2", model.Egress, f.n1b, f.n2c))) },
			call: func(f *fx) error {
				_, err := f.svc.CreatePortMirror(f.ctx, PortMirrorInput{Name: "pm-b", FlowNetworkUUID: f.fn2,
					Sessions: []SessionInput{sess("y", model.Egress, f.n4a, f.n1b)}})
				return err
			}, names: func(f *fx) []string { return []string{"pm-b", "pm-a", "s2"} }},
		{name: "session duplicate", op: "addPortMirrorSession", code: CodeConflict, rule: RuleDuplicateSession,
			call: func(f *fx) error {
				_, err := f.svc.AddPortMirrorSession(f.ctx, f.pm1, sess("again", model.Bidirection, f.n1a, f.n2b))
				return err
			}, names: func(f *fx) []string { return []string{"again", "s1", f.s1, "pm-a"} }},
		{name: "session bad type", op: "addPortMirrorSession", code: CodeValidation, rule: RuleInvalidArgument,
			call: func(f *fx) error {
				_, err := f.svc.AddPortMirrorSession(f.ctx, f.pm1, sess("x", "SIDEWAYS", f.n1b, f.n2c))
				return err
			}, names: func(f *fx) []string { return []string{"SIDEWAYS", "pm-a"} }},
		{name: "session missing nic", op: "addPortMirrorSession", code: CodeNotFound,
			call: func(f *fx) error {
				_, err := f.svc.AddPortMirrorSession(f.ctx, f.pm1, sess("x", model.Egress, f.n1b, uH1))
				return err
			}, names: func(f *fx) []string { return []string{"NIC", uH1} }},
		{name: "create with loop inside the call", op: "createPortMirror", code: CodeValidation, rule: RuleMirrorLoop,
			call: func(f *fx) error {
				_, err := f.svc.CreatePortMirror(f.ctx, PortMirrorInput{Name: "pm-b", FlowNetworkUUID: f.fn2, Enable: true,
					Sessions: []SessionInput{sess("ok", model.Egress, f.n1b, f.n2c), sess("loop", model.Egress, f.n2c, f.n2b)}})
				return err
			}, names: func(f *fx) []string { return []string{"loop", "pm-b", f.n2c} }},
		{name: "create with duplicate inside the call", op: "createPortMirror", code: CodeConflict, rule: RuleDuplicateSession,
			call: func(f *fx) error {
				_, err := f.svc.CreatePortMirror(f.ctx, PortMirrorInput{Name: "pm-b", FlowNetworkUUID: f.fn2,
					Sessions: []SessionInput{sess("one", model.Egress, f.n1b, f.n2c), sess("two", model.Egress, f.n1b, f.n2c)}})
				return err
			}, names: func(f *fx) []string { return []string{"two", "one"} }},
		{name: "create with a bad last session", op: "createPortMirror", code: CodeValidation, rule: RuleDestinationIsDefault,
			call: func(f *fx) error {
				_, err := f.svc.CreatePortMirror(f.ctx, PortMirrorInput{Name: "pm-b", FlowNetworkUUID: f.fn2, Enable: true,
					Sessions: []SessionInput{sess("ok", model.Egress, f.n1b, f.n2c), sess("ok2", model.Ingress, f.n1a, f.n2c), sess("bad", model.Egress, f.n1b, f.n2a)}})
				return err
			}, names: func(f *fx) []string { return []string{"bad", "pm-b"} }},
		{name: "detach a cluster a session needs", op: "detachFlowNetworkFromCluster", code: CodeConflict, rule: RuleClusterNotAttached,
			call:  func(f *fx) error { _, err := f.svc.DetachFlowNetworkFromCluster(f.ctx, f.fn1, f.c1); return err },
			names: func(f *fx) []string { return []string{"mirror-net", "alpha", "s1", "pm-a"} }},
		{name: "migrate to an unattached cluster", op: "migrateVmInstance", code: CodeValidation, rule: RuleClusterNotAttached,
			call:  func(f *fx) error { _, err := f.svc.MigrateVmInstance(f.ctx, f.vm1, f.h3); return err },
			names: func(f *fx) []string { return []string{"web", f.vm1, "hv3", "beta", "s1"} }},
		{name: "qos on a mirrored nic", op: "setVmNicQos", code: CodeValidation, rule: RuleNicHasQoS,
			call: func(f *fx) error {
				_, err := f.svc.SetVmNicQos(f.ctx, f.n2b, &model.NicQoS{InboundBandwidthBps: &q})
				return err
			}, names: func(f *fx) []string { return []string{f.n2b, "monitor", "s1", "pm-a"} }},
		{name: "delete a vm in use", op: "deleteVmInstance", code: CodeConflict, rule: RuleInUse,
			call:  func(f *fx) error { return f.svc.DeleteVmInstance(f.ctx, f.vm2) },
			names: func(f *fx) []string { return []string{"monitor", f.vm2, f.n2b, "s1"} }},
		{name: "delete a host in use", op: "deleteHost", code: CodeConflict, rule: RuleInUse,
			call:  func(f *fx) error { return f.svc.DeleteHost(f.ctx, f.h1) },
			names: func(f *fx) []string { return []string{"hv1", uH1, "web", "s1"} }},
		{name: "endpoint outside cidr", op: "setFlowEndpoint", code: CodeValidation, rule: RuleInvalidArgument,
			call:  func(f *fx) error { _, err := f.svc.SetFlowEndpoint(f.ctx, f.fn1, f.h1, "198.18.5.1"); return err },
			names: func(f *fx) []string { return []string{"hv1", "mirror-net", "198.18.5.1"} }},
		{name: "endpoint broadcast", op: "setFlowEndpoint", code: CodeValidation, rule: RuleInvalidArgument,
			call: func(f *fx) error { _, err := f.svc.SetFlowEndpoint(f.ctx, f.fn1, f.h1, "198.18.0.255"); return err }},
		{name: "endpoint taken", op: "setFlowEndpoint", code: CodeConflict, rule: RuleAlreadyExists,
			call:  func(f *fx) error { _, err := f.svc.SetFlowEndpoint(f.ctx, f.fn1, f.h1, "198.18.0.2"); return err },
			names: func(f *fx) []string { return []string{"hv2", "198.18.0.2"} }},
		{name: "endpoint on unattached cluster", op: "setFlowEndpoint", code: CodeValidation, rule: RuleClusterNotAttached,
			call:  func(f *fx) error { _, err := f.svc.SetFlowEndpoint(f.ctx, f.fn1, f.h3, "198.18.0.9"); return err },
			names: func(f *fx) []string { return []string{"hv3", "beta"} }},
		{name: "rename to empty", op: "updatePortMirror", code: CodeValidation, rule: RuleInvalidArgument,
			call: func(f *fx) error {
				empty := ""
				_, err := f.svc.UpdatePortMirror(f.ctx, f.pm1, &empty, nil)
				return err
			}, names: func(f *fx) []string { return []string{"pm-a", f.pm1} }},
		{name: "filter bad cidr", op: "addPortMirrorSession", code: CodeValidation, rule: RuleInvalidArgument,
			call: func(f *fx) error {
				in := sess("flt", model.Egress, f.n1a, f.n2c)
				in.Filters = []model.FilterRule{{Protocol: "tcp"}, {SourceCIDR: "198.18.0.0/40"}}
				_, err := f.svc.AddPortMirrorSession(f.ctx, f.pm1, in)
				return err
			}, names: func(f *fx) []string { return []string{"flt", "pm-a", "filter rule 2", "sourceCidr", "198.18.0.0/40"} }},
		{name: "filter ports without tcp or udp", op: "addPortMirrorSession", code: CodeValidation, rule: RuleInvalidArgument,
			call: func(f *fx) error {
				in := sess("flt", model.Egress, f.n1a, f.n2c)
				in.Filters = []model.FilterRule{{Protocol: "icmp", DestinationPorts: "80"}}
				_, err := f.svc.AddPortMirrorSession(f.ctx, f.pm1, in)
				return err
			}, names: func(f *fx) []string { return []string{"flt", "tcp and udp only"} }},
		{name: "filter bad port range", op: "createPortMirror", code: CodeValidation, rule: RuleInvalidArgument,
			call: func(f *fx) error {
				in := sess("flt", model.Egress, f.n1b, f.n2c)
				in.Filters = []model.FilterRule{{Protocol: "udp", SourcePorts: "99-12"}}
				_, err := f.svc.CreatePortMirror(f.ctx, PortMirrorInput{Name: "pm-b", FlowNetworkUUID: f.fn2, Sessions: []SessionInput{in}})
				return err
			}, names: func(f *fx) []string { return []string{"flt", "sourcePorts", "99-12"} }},
		{name: "filter bad protocol and action", op: "addPortMirrorSession", code: CodeValidation, rule: RuleInvalidArgument,
			call: func(f *fx) error {
				in := sess("flt", model.Egress, f.n1a, f.n2c)
				in.Filters = []model.FilterRule{{Protocol: "sctp"}}
				_, err := f.svc.AddPortMirrorSession(f.ctx, f.pm1, in)
				return err
			}, names: func(f *fx) []string { return []string{"protocol", "sctp"} }},
		{name: "filter too many rules", op: "addPortMirrorSession", code: CodeValidation, rule: RuleInvalidArgument,
			call: func(f *fx) error {
				in := sess("flt", model.Egress, f.n1a, f.n2c)
				in.Filters = make([]model.FilterRule, model.MaxFilterRules+1)
				_, err := f.svc.AddPortMirrorSession(f.ctx, f.pm1, in)
				return err
			}, names: func(f *fx) []string { return []string{"65 rules"} }},
		{name: "duplicate filter", op: "addPortMirrorSession", code: CodeConflict, rule: RuleDuplicateSession,
			setup: func(f *fx) {
				in := sess("web", model.Bidirection, f.n1a, f.n2b)
				in.Filters = []model.FilterRule{{Protocol: "tcp", DestinationPorts: "80"}}
				f.must1(f.svc.AddPortMirrorSession(f.ctx, f.pm1, in))
			},
			call: func(f *fx) error {
				in := sess("web-again", model.Bidirection, f.n1a, f.n2b)
				in.Filters = []model.FilterRule{{Action: model.FilterAccept, Protocol: "TCP", DestinationPorts: "80-80"}}
				_, err := f.svc.AddPortMirrorSession(f.ctx, f.pm1, in)
				return err
			}, names: func(f *fx) []string { return []string{"web-again", "web", "same filter"} }},
		{name: "update to a bad filter", op: "updatePortMirrorSession", code: CodeValidation, rule: RuleInvalidArgument,
			call: func(f *fx) error {
				rules := []model.FilterRule{{DestinationCIDR: "not-a-cidr"}}
				_, err := f.svc.UpdatePortMirrorSession(f.ctx, f.s1, SessionUpdate{Filters: &rules})
				return err
			}, names: func(f *fx) []string { return []string{"s1", "pm-a", "destinationCidr", "not-a-cidr"} }},
		{name: "update clears the name", op: "updatePortMirrorSession", code: CodeValidation, rule: RuleInvalidArgument,
			call: func(f *fx) error {
				_, err := f.svc.UpdatePortMirrorSession(f.ctx, f.s1, SessionUpdate{NameCleared: true})
				return err
			}, names: func(f *fx) []string { return []string{"s1", "name"} }},
		{name: "update into a duplicate", op: "updatePortMirrorSession", code: CodeConflict, rule: RuleDuplicateSession,
			setup: func(f *fx) {
				in := sess("web", model.Bidirection, f.n1a, f.n2b)
				in.Filters = []model.FilterRule{{Protocol: "tcp"}}
				f.must1(f.svc.AddPortMirrorSession(f.ctx, f.pm1, in))
			},
			call: func(f *fx) error {
				rules := []model.FilterRule{{Protocol: "tcp"}}
				_, err := f.svc.UpdatePortMirrorSession(f.ctx, f.s1, SessionUpdate{Filters: &rules})
				return err
			}, names: func(f *fx) []string { return []string{"s1", "web"} }},
		{name: "update missing session", op: "updatePortMirrorSession", code: CodeNotFound,
			call: func(f *fx) error {
				_, err := f.svc.UpdatePortMirrorSession(f.ctx, uH1, SessionUpdate{})
				return err
			}, names: func(f *fx) []string { return []string{"session", uH1} }},
		{name: "snap length too short", op: "addPortMirrorSession", code: CodeValidation, rule: RuleInvalidArgument,
			call: func(f *fx) error {
				in := sess("cut", model.Egress, f.n1a, f.n2c)
				n := 63
				in.SnapLength = &n
				_, err := f.svc.AddPortMirrorSession(f.ctx, f.pm1, in)
				return err
			}, names: func(f *fx) []string { return []string{"cut", "snapLength 63", "64..65535"} }},
		{name: "snap length too long", op: "updatePortMirrorSession", code: CodeValidation, rule: RuleInvalidArgument,
			call: func(f *fx) error {
				n := 65536
				_, err := f.svc.UpdatePortMirrorSession(f.ctx, f.s1, SessionUpdate{SnapLengthSet: true, SnapLength: &n})
				return err
			}, names: func(f *fx) []string { return []string{"s1", "snapLength 65536"} }},
		{name: "bandwidth limit below 1 kbps", op: "addPortMirrorSession", code: CodeValidation, rule: RuleInvalidArgument,
			call: func(f *fx) error {
				in := sess("capped", model.Egress, f.n1a, f.n2c)
				n := 0
				in.BandwidthLimitKbps = &n
				_, err := f.svc.AddPortMirrorSession(f.ctx, f.pm1, in)
				return err
			}, names: func(f *fx) []string { return []string{"capped", "bandwidthLimitKbps 0"} }},
		{name: "bandwidth limit negative on update", op: "updatePortMirrorSession", code: CodeValidation, rule: RuleInvalidArgument,
			call: func(f *fx) error {
				n := -5
				_, err := f.svc.UpdatePortMirrorSession(f.ctx, f.s1, SessionUpdate{BandwidthLimitSet: true, BandwidthLimitKbps: &n})
				return err
			}, names: func(f *fx) []string { return []string{"s1", "bandwidthLimitKbps -5"} }},
		{name: "enable missing", op: "enablePortMirror", code: CodeNotFound,
			call:  func(f *fx) error { _, err := f.svc.EnablePortMirror(f.ctx, uH1); return err },
			names: func(f *fx) []string { return []string{"port mirror", uH1} }},
		{name: "delete missing session", op: "deletePortMirrorSession", code: CodeNotFound,
			call:  func(f *fx) error { return f.svc.DeletePortMirrorSession(f.ctx, uH1) },
			names: func(f *fx) []string { return []string{"session", uH1} }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			if c.setup != nil {
				c.setup(f)
			}
			before := dump(t, f.st)
			nBefore := len(audits(t, f.svc, AuditQuery{First: 1000}))
			err := c.call(f)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v (%T), want *Error", err, err)
			}
			if e.Code != c.code || e.Rule != c.rule {
				t.Fatalf("got %s/%s (%s), want %s/%s", e.Code, e.Rule, e.Message, c.code, c.rule)
			}
			if c.rule != "" && !strings.Contains(e.Message, string(c.rule)) {
				t.Errorf("message %q does not name the rule", e.Message)
			}
			if c.names != nil {
				for _, n := range c.names(f) {
					if !strings.Contains(e.Message, n) {
						t.Errorf("message %q does not mention %q", e.Message, n)
					}
				}
			}
			if after := dump(t, f.st); after != before {
				t.Errorf("a refused call changed the store:\nbefore %s\nafter %s", before, after)
			}
			evs := audits(t, f.svc, AuditQuery{First: 1000})
			if len(evs) != nBefore+1 {
				t.Fatalf("audit events %d → %d, want one more", nBefore, len(evs))
			}
			ev := evs[0]
			if ev.Success || ev.Error != e.Message || ev.Operation != c.op || ev.Actor != "tester" {
				t.Errorf("audit event %+v, want a failed %s by tester with the message", ev, c.op)
			}
		})
	}
}
