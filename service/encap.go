package service

import (
	"portmirror/model"
	"portmirror/store"
)

// The rules of API.md's "What a session copies, and what it tells".
const (
	// RuleEncapsulationConflict: a cluster would carry a GRE and an ERSPAN flow network at once.
	RuleEncapsulationConflict Rule = "ENCAPSULATION_CONFLICT"
	// RuleTunnelKeysExhausted: no free tunnel key is left on the flow network.
	RuleTunnelKeysExhausted Rule = "TUNNEL_KEYS_EXHAUSTED"
)

// checkEncapsulation refuses attaching fn to the cluster while another flow network attached to that cluster has
// an encapsulation that cannot share a host with fn's: GRE beside ERSPAN (OVS hands every GRE-family packet to
// the flow port added first, so one of the two would deliver nothing). VXLAN coexists with either.
func checkEncapsulation(r store.Reader, what string, fn model.FlowNetwork, clusterUUID string) error {
	for _, o := range store.List[model.FlowNetwork](r) {
		if o.UUID == fn.UUID || !o.AttachedTo(clusterUUID) || !fn.Encapsulation.ConflictsWith(o.Encapsulation) {
			continue
		}
		c, _ := store.Get[model.Cluster](r, clusterUUID)
		return refuse(CodeConflict, RuleEncapsulationConflict,
			"%s: %s (%s) cannot be attached to %s, which already carries %s (%s): a host cannot hold a GRE and an ERSPAN flow network at once, since OVS delivers every GRE-family packet to one of their tunnel ports; detach one, or use VXLAN",
			what, descFN(fn), fn.Encapsulation, descCluster(c), descFN(o), o.Encapsulation)
	}
	return nil
}

// keysExhausted is the refusal when a flow network has no free tunnel key left for a new destination.
func keysExhausted(what string, fn model.FlowNetwork) error {
	return refuse(CodeConflict, RuleTunnelKeysExhausted,
		"%s: %s has no free tunnel key left (%s carries keys 1..%d, one per destination NIC); delete sessions to other destinations first",
		what, descFN(fn), fn.Encapsulation, min(fn.Encapsulation.MaxTunnelKey(), maxTunnelKey))
}
