package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"portmirror/model"
)

// TestMirrorDirections drives portmirrord through its API against real OVS, over
// GRE and over VXLAN: source VM a on hv1 pings b on hv2; monitoring VM mr on hv2
// (a remote destination for a) and ml on hv1 (a local one) capture. Each case is
// one port mirror, created enabled, checked with exact counts, then deleted (its
// flows gone from both bridges). b's NIC is bound by portName alone (no iface-id
// in OVSDB); the others by iface-id.
func TestMirrorDirections(t *testing.T) {
	for _, enc := range []string{"GRE", "VXLAN"} {
		t.Run(enc, func(t *testing.T) {
			t.Parallel()
			testMirrorDirections(t, enc)
		})
	}
}

func testMirrorDirections(t *testing.T, enc string) {
	tp := NewTopology(t, TopologyOptions{Secure: true})
	a := tp.AddVM(t, tp.HV1, "a")
	mr := tp.AddMonitorVM(t, tp.HV2, "mr")
	ml := tp.AddMonitorVM(t, tp.HV1, "ml")
	start := time.Now()
	w := NewWorld(t, tp, InventoryOptions{Encapsulation: enc})
	t.Logf("e2e: registration to both bridges connected: %v", time.Since(start).Round(time.Millisecond))
	checkManagedBridges(t, w, enc)

	// b: bound by its port name only.
	b := tp.AddVM(t, tp.HV2, "b")
	bn := b.DefaultNIC()
	tp.HV2.MustVsctl(t, "remove", "Interface", bn.HostPort, "external_ids", "iface-id")
	w.GC.Must(t, `mutation($in: VmInstanceInput!) { createVmInstance(input: $in) { uuid } }`,
		map[string]any{"in": map[string]any{"uuid": b.UUID, "name": b.Name, "hostUuid": w.Inv.HostUUID(tp.HV2),
			"nics": []map[string]any{{"uuid": bn.UUID, "mac": bn.MAC, "ip": bn.IP, "isDefault": true, "portName": bn.HostPort}}}}, nil)
	waitNICBound(t, w, bn, tp.HV2)
	waitNICBound(t, w, a.DefaultNIC(), tp.HV1)

	const n = 5
	dr, dl := mr.NICs[1], ml.NICs[1]
	an := a.DefaultNIC()
	cases := []struct {
		name     string
		sessions []SessionSpec
		mr, ml   PingCount
	}{
		{"EGRESS", []SessionSpec{{"r", "EGRESS", an, dr}, {"l", "EGRESS", an, dl}}, PingCount{Requests: n}, PingCount{Requests: n}},
		{"INGRESS", []SessionSpec{{"r", "INGRESS", an, dr}, {"l", "INGRESS", an, dl}}, PingCount{Replies: n}, PingCount{Replies: n}},
		{"BIDIRECTION", []SessionSpec{{"r", "BIDIRECTION", an, dr}, {"l", "BIDIRECTION", an, dl}}, PingCount{Requests: n, Replies: n}, PingCount{Requests: n, Replies: n}},
		// Two sessions of a select the same frames for one destination: copied once.
		{"same-frame-twice", []SessionSpec{{"r1", "EGRESS", an, dr}, {"r2", "BIDIRECTION", an, dr},
			{"l1", "INGRESS", an, dl}, {"l2", "BIDIRECTION", an, dl}}, PingCount{Requests: n, Replies: n}, PingCount{Requests: n, Replies: n}},
		// a's EGRESS and b's INGRESS select each request at two hosts: copied at each.
		{"two-hosts", []SessionSpec{{"ra", "EGRESS", an, dr}, {"rb", "INGRESS", bn, dr},
			{"la", "EGRESS", an, dl}, {"lb", "INGRESS", bn, dl}}, PingCount{Requests: 2 * n}, PingCount{Requests: 2 * n}},
	}
	for i, tc := range cases {
		label := enc + "/" + tc.name
		cr, cl := StartCapture(t, dr), StartCapture(t, dl)
		pm, t0 := w.CreatePortMirror(t, fmt.Sprintf("pm-%d", i), true, tc.sessions...)
		FirstCopy(t, label, t0, a, bn.IP, cr, cl)
		w.WaitStatus(t, pm, "ENABLED", "ACTIVE")
		t.Logf("e2e: %s ACTIVE %v after createPortMirror", label, time.Since(t0).Round(time.Millisecond))
		// What an operator's monitoring sees: every session ACTIVE, and OVS took every change as an atomic bundle.
		m := w.D.Metrics(t)
		if got := m[`portmirror_sessions{status="ACTIVE"}`]; got != float64(len(tc.sessions)) {
			t.Errorf("%s: metrics say %v sessions ACTIVE, want %d", label, got, len(tc.sessions))
		}
		if m[`portmirror_flow_changes_total{way="bundle"}`] == 0 || m[`portmirror_flow_changes_total{way="plain"}`] != 0 ||
			m[`portmirror_flow_changes_total{way="bundle_refused"}`] != 0 || m[`portmirror_openflow_switches_connected`] != 2 {
			t.Errorf("%s: metrics: bundles %v, refused %v, plain %v, switches %v; want bundles only, two switches", label,
				m[`portmirror_flow_changes_total{way="bundle"}`], m[`portmirror_flow_changes_total{way="bundle_refused"}`],
				m[`portmirror_flow_changes_total{way="plain"}`], m[`portmirror_openflow_switches_connected`])
		}
		for _, d := range []*NIC{dr, dl} {
			if tag := PortTag(t, d.Hypervisor(), d.HostPort); tag != "4095" {
				t.Errorf("%s: destination port %s has tag %q, want 4095 (isolated from NORMAL)", label, d.HostPort, tag)
			}
		}
		ExpectCopies(t, label, a, bn.IP, n, Want{dr, tc.mr}, Want{dl, tc.ml})

		w.Mutate(t, "deletePortMirror", pm)
		for _, h := range tp.Hypervisors() {
			w.WaitBaselineOnly(t, h)
		}
		for _, d := range []*NIC{dr, dl} {
			if tag := PortTag(t, d.Hypervisor(), d.HostPort); tag != "" {
				t.Errorf("%s: after delete, port %s has tag %q, want none (restored)", label, d.HostPort, tag)
			}
		}
	}
	// Nothing is copied once the last port mirror is gone.
	ExpectCopies(t, enc+"/after-delete", a, bn.IP, n, Want{dr, PingCount{}}, Want{dl, PingCount{}})
}

// checkManagedBridges: after registration through OVSDB alone, both br-int are
// fail_mode=secure, OpenFlow13, with the daemon as their controller, and hold the
// flow network's tunnel port of the right type with local_ip = the host's endpoint.
func checkManagedBridges(t *testing.T, w *World, enc string) {
	t.Helper()
	tun := model.TunnelPortName(w.Inv.FlowNetworkUUID)
	for _, h := range w.TP.Hypervisors() {
		br := h.Bridge
		if got := h.MustVsctl(t, "get", "Bridge", br, "fail_mode"); got != "secure" {
			t.Errorf("%s: %s fail_mode %q, want secure", h.Name, br, got)
		}
		if got := h.MustVsctl(t, "get", "Bridge", br, "protocols"); !strings.Contains(got, "OpenFlow13") {
			t.Errorf("%s: %s protocols %s, want OpenFlow13", h.Name, br, got)
		}
		if got := h.MustVsctl(t, "get-controller", br); got != w.D.OpenFlowTarget {
			t.Errorf("%s: %s controller %q, want %q", h.Name, br, got, w.D.OpenFlowTarget)
		}
		var typ, opts string
		err := poll(t.Context(), 10*time.Second, 20*time.Millisecond, func() (bool, error) {
			out, err := h.Vsctl(t.Context(), "--bare", "--columns=type,options", "find", "Interface", "name="+tun)
			f := strings.SplitN(strings.TrimSpace(out), "\n", 2)
			if err != nil || len(f) != 2 {
				return false, fmt.Errorf("tunnel port %s: %q %v", tun, out, err)
			}
			typ, opts = f[0], f[1]
			return true, nil
		})
		if err != nil {
			t.Fatalf("%s: %v", h.Name, err)
		}
		if typ != strings.ToLower(enc) || !strings.Contains(opts, "local_ip="+h.EndpointIP) ||
			!strings.Contains(opts, "remote_ip=flow") || !strings.Contains(opts, "key=flow") {
			t.Errorf("%s: tunnel port %s is type %q options %q, want %s with local_ip=%s, remote_ip=flow, key=flow",
				h.Name, tun, typ, opts, strings.ToLower(enc), h.EndpointIP)
		}
	}
}

// waitNICBound polls vmNic.port until the NIC is bound to its host port on h.
func waitNICBound(t *testing.T, w *World, nic *NIC, h *Hypervisor) {
	t.Helper()
	var out struct {
		VMNic struct {
			Port *struct {
				DatapathID string
				PortNo     int
				Name       string
			}
		} `json:"vmNic"`
	}
	want := nic.OFPort(t)
	w.GC.Eventually(t, 15*time.Second, `query($u: ID!) { vmNic(uuid: $u) { port { datapathId portNo name } } }`,
		map[string]any{"u": nic.UUID}, &out, func() (bool, string) {
			p := out.VMNic.Port
			if p == nil {
				return false, "unbound"
			}
			return p.Name == nic.HostPort && p.PortNo == want && p.DatapathID == h.DPID, fmt.Sprintf("bound to %+v", *p)
		})
}
