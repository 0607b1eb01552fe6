package e2e

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"slices"
	"testing"
	"time"
)

// TestControllerLink: each hypervisor's ovs-vswitchd reaches an OpenFlow listener on
// the root namespace's ControllerIP (where portmirrord listens) and says hello in
// OpenFlow 1.3; each ovsdb-server answers on its TCP remote from the root namespace.
func TestControllerLink(t *testing.T) {
	t.Parallel()
	tp := NewTopology(t, TopologyOptions{Secure: true})
	ln, err := net.Listen("tcp", net.JoinHostPort(tp.ControllerIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	target := "tcp:" + ln.Addr().String()
	for _, h := range tp.Hypervisors() {
		h.MustVsctl(t, "set", "Bridge", h.Bridge, "protocols=OpenFlow13")
		h.SetController(t, h.Bridge, target)
		_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
		conn, err := ln.Accept()
		if err != nil {
			t.Fatalf("%s: no OpenFlow connection to %s: %v", h.Name, target, err)
		}
		hdr := make([]byte, 8)
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(conn, hdr); err != nil {
			t.Fatalf("%s: reading hello: %v", h.Name, err)
		}
		conn.Close()
		if hdr[0] != 4 || hdr[1] != 0 {
			t.Errorf("%s: first message version %d type %d, want an OpenFlow 1.3 HELLO (4, 0)", h.Name, hdr[0], hdr[1])
		}
		if remote := conn.RemoteAddr().(*net.TCPAddr).IP.String(); remote != h.ControlIP {
			t.Errorf("%s: connection from %s, want %s", h.Name, remote, h.ControlIP)
		}
		h.SetController(t, h.Bridge)

		conn, err = net.DialTimeout("tcp", h.OVSDBTCPAddress[len("tcp:"):], 5*time.Second)
		if err != nil {
			t.Fatalf("%s: OVSDB over TCP: %v", h.Name, err)
		}
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Write([]byte(`{"method":"list_dbs","params":[],"id":1}`)); err != nil {
			t.Fatal(err)
		}
		var resp struct{ Result []string }
		if err := json.NewDecoder(bufio.NewReader(conn)).Decode(&resp); err != nil {
			t.Fatalf("%s: OVSDB list_dbs over %s: %v", h.Name, h.OVSDBTCPAddress, err)
		}
		conn.Close()
		if !slices.Contains(resp.Result, "Open_vSwitch") {
			t.Errorf("%s: list_dbs = %v, want Open_vSwitch among them", h.Name, resp.Result)
		}
	}
}

// TestSecureNormal: with fail_mode=secure and no flows, business traffic stops;
// the controller's baseline (priority=0 actions=NORMAL, put here by hand) restores it.
func TestSecureNormal(t *testing.T) {
	t.Parallel()
	tp := NewTopology(t, TopologyOptions{Secure: true})
	a := tp.AddVM(t, tp.HV1, "a")
	b := tp.AddVM(t, tp.HV2, "b")
	res, err := a.PingN(t.Context(), b.DefaultNIC().IP, 1, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if res.Received != 0 {
		t.Fatalf("secure bridges without flows forwarded a ping")
	}
	for _, h := range tp.Hypervisors() {
		h.AddFlow(t, "br-int", "priority=0,actions=NORMAL")
	}
	a.Ping(t, b.DefaultNIC().IP, 3)
}

// TestDaemon: portmirrord starts on a temp data dir with its OpenFlow listener on the
// controller link, answers GraphQL, keeps an acknowledged mutation across SIGKILL and
// restart, and stops cleanly on SIGTERM.
func TestDaemon(t *testing.T) {
	t.Parallel()
	tp := NewTopology(t, TopologyOptions{Secure: true})
	d := StartDaemon(t, tp, DaemonOptions{APIOnly: true})
	if code, body := d.Healthz(t); code != 200 {
		t.Logf("e2e: /healthz answers %d (%s): the harness waited for the API only", code, body)
	}
	c := d.Client()
	var created struct{ CreateCluster struct{ UUID, Name string } }
	c.Must(t, `mutation($n: String!) { createCluster(input: {name: $n}) { uuid name } }`, map[string]any{"n": "e2e-" + tp.Suffix}, &created)
	if created.CreateCluster.UUID == "" {
		t.Fatalf("createCluster returned %+v", created)
	}
	err := c.Do(t.Context(), `mutation { createCluster(input: {name: ""}) { uuid } }`, nil, nil)
	if ErrorCode(err) != "VALIDATION" {
		t.Errorf("createCluster with an empty name: %v, want code VALIDATION", err)
	}

	// The whole topology registers the way the scenarios will do it.
	a := tp.AddVM(t, tp.HV1, "a")
	m := tp.AddMonitorVM(t, tp.HV2, "m")
	inv := RegisterInventory(t, c, tp, InventoryOptions{Encapsulation: "VXLAN"})
	var hosts struct {
		Hosts []struct {
			UUID, OvsdbAddress string
			FlowEndpoints      []struct{ IP string }
			VmInstances        []struct {
				UUID string
				Nics []struct{ UUID, Mac string }
			}
		}
	}
	c.Must(t, `{ hosts { uuid ovsdbAddress flowEndpoints { ip } vmInstances { uuid nics { uuid mac } } } }`, nil, &hosts)
	for _, h := range hosts.Hosts {
		hv, vm := tp.HV1, a
		if h.UUID == inv.HostUUID(tp.HV2) {
			hv, vm = tp.HV2, m
		}
		if h.OvsdbAddress != hv.OVSDBAddress || len(h.FlowEndpoints) != 1 || h.FlowEndpoints[0].IP != hv.EndpointIP ||
			len(h.VmInstances) != 1 || h.VmInstances[0].UUID != vm.UUID || len(h.VmInstances[0].Nics) != len(vm.NICs) {
			t.Errorf("host %s registered as %+v", hv.Name, h)
		}
	}

	d.Restart(t) // SIGKILL, then start on the same data dir
	var got struct{ Clusters []struct{ UUID, Name string } }
	c.Must(t, `{ clusters { uuid name } }`, nil, &got)
	if !slices.ContainsFunc(got.Clusters, func(c struct{ UUID, Name string }) bool { return c.UUID == created.CreateCluster.UUID }) {
		t.Errorf("after SIGKILL and restart, clusters = %+v, want %+v among them", got.Clusters, created.CreateCluster)
	}
	d.Stop(t)
}
