package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// addUnderlay gives br-flow a second address (a second flow network's endpoint), waits until ovs-vswitchd routes
// its subnet, and pre-sets the tunnel neighbour of each peer's address there.
func addUnderlay(t *testing.T, tp *Topology, prefix string) map[*Hypervisor]string {
	t.Helper()
	ips := map[*Hypervisor]string{}
	for i, h := range tp.Hypervisors() {
		ips[h] = fmt.Sprintf("%s%d", prefix, i+1)
		if _, err := h.Exec(t.Context(), "ip", "addr", "add", ips[h]+"/24", "dev", "br-flow"); err != nil {
			t.Fatal(err)
		}
		if err := poll(t.Context(), 10*time.Second, 10*time.Millisecond, func() (bool, error) {
			out, err := h.Appctl(t.Context(), "ovs/route/show")
			return err == nil && strings.Contains(out, prefix+"0/24 dev br-flow"), fmt.Errorf("%s: no route to %s0/24: %s %v", h.Name, prefix, out, err)
		}); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range tp.Hypervisors() {
		for _, p := range tp.Hypervisors() {
			if p != h {
				if _, err := h.Appctl(t.Context(), "tnl/neigh/set", "br-flow", ips[p], p.EndpointMAC); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return ips
}

// TestMirrorTwoERSPANNetworks: an ERSPAN_V1 and an ERSPAN_V2 flow network on the same hosts (one erspan port per
// local_ip on each bridge) each deliver their copies exactly once: unlike GRE beside ERSPAN, two ERSPAN flow
// networks do not steal each other's packets, so the service allows them on one cluster.
func TestMirrorTwoERSPANNetworks(t *testing.T) {
	t.Parallel()
	tp := NewTopology(t, TopologyOptions{Secure: true})
	a := tp.AddVM(t, tp.HV1, "a")
	b := tp.AddVM(t, tp.HV2, "b")
	m1 := tp.AddMonitorVM(t, tp.HV2, "m1")
	m2 := tp.AddMonitorVM(t, tp.HV2, "m2")
	w := NewWorld(t, tp, InventoryOptions{Encapsulation: "ERSPAN_V1"})
	an, bn := a.DefaultNIC(), b.DefaultNIC()
	waitNICBound(t, w, an, tp.HV1)

	ips := addUnderlay(t, tp, "198.18.101.")
	var fn struct{ CreateFlowNetwork struct{ UUID string } }
	w.GC.Must(t, `mutation($in: FlowNetworkInput!) { createFlowNetwork(input: $in) { uuid } }`,
		map[string]any{"in": map[string]any{"name": "span2-" + tp.Suffix, "cidr": "198.18.101.0/24",
			"encapsulation": "ERSPAN_V2", "clusterUuids": []string{w.Inv.ClusterUUID}}}, &fn)
	for _, h := range tp.Hypervisors() {
		w.GC.Must(t, `mutation($f: ID!, $h: ID!, $ip: String!) { setFlowEndpoint(flowNetworkUuid: $f, hostUuid: $h, ip: $ip) { ip } }`,
			map[string]any{"f": fn.CreateFlowNetwork.UUID, "h": w.Inv.HostUUID(h), "ip": ips[h]}, nil)
	}
	var pm1, pm2 struct{ CreatePortMirror struct{ UUID string } }
	w.GC.Must(t, `mutation($in: PortMirrorInput!) { createPortMirror(input: $in) { uuid } }`,
		map[string]any{"in": map[string]any{"name": "v1", "flowNetworkUuid": w.Inv.FlowNetworkUUID, "enable": true,
			"sessions": []map[string]any{{"name": "s", "type": "EGRESS", "sourceNicUuid": an.UUID, "destinationNicUuid": m1.NICs[1].UUID}}}}, &pm1)
	w.GC.Must(t, `mutation($in: PortMirrorInput!) { createPortMirror(input: $in) { uuid } }`,
		map[string]any{"in": map[string]any{"name": "v2", "flowNetworkUuid": fn.CreateFlowNetwork.UUID, "enable": true,
			"sessions": []map[string]any{{"name": "s", "type": "INGRESS", "sourceNicUuid": an.UUID, "destinationNicUuid": m2.NICs[1].UUID}}}}, &pm2)
	w.WaitStatus(t, pm1.CreatePortMirror.UUID, "ENABLED", "ACTIVE")
	w.WaitStatus(t, pm2.CreatePortMirror.UUID, "ENABLED", "ACTIVE")
	FirstCopy(t, "two-erspan", time.Now(), a, bn.IP, StartCapture(t, m1.NICs[1]), StartCapture(t, m2.NICs[1]))
	const n = 10
	ExpectCopies(t, "two-erspan", a, bn.IP, n, Want{m1.NICs[1], PingCount{Requests: n}}, Want{m2.NICs[1], PingCount{Replies: n}})
}
