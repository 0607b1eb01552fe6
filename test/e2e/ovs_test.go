package e2e

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"portmirror/internal/ovstest"
)

// Hypervisor is one host: a network namespace running its own ovsdb-server and
// ovs-vswitchd (userspace datapath, an ovstest instance) with br-int (the bridge VMs
// attach to) and br-flow (the flow-network underlay bridge whose internal port holds
// EndpointIP).
type Hypervisor struct {
	Name  string // "hv1", "hv2"
	Netns string // network namespace name, unique per run
	Dir   string // OVS_RUNDIR, OVS_LOGDIR, OVS_DBDIR and OVS_SYSCONFDIR: conf.db, sockets, logs, pidfiles

	OVSDBAddress    string // "unix:<Dir>/db.sock": a Host's ovsdbAddress for the controller
	OVSDBTCPAddress string // "tcp:<ControlIP>:<port>": the same database over TCP, reachable from the root namespace

	Bridge       string // "br-int"
	DPID         string // br-int's datapath id, fixed per hypervisor: "00000000000000e1", "00000000000000e2"
	EndpointIP   string // this host's tunnel endpoint on the flow network, e.g. "198.18.100.1"
	EndpointMAC  string // MAC of br-flow's internal port (fixed, so peers can pre-set the tunnel neighbour)
	ControlIP    string // this host's address on the controller link (where the daemon's OpenFlow listener is reachable)
	BusinessPort string // br-int port of the business link to the other hypervisor

	topo *Topology
	ovs  *ovstest.OVS // set by startOVS
}

// Mgmt returns the OpenFlow management socket of a bridge, the target ovs-ofctl uses.
func (h *Hypervisor) Mgmt(bridge string) string { return h.ovs.Mgmt(bridge) }

// startOVS starts ovsdb-server (with a TCP remote on ControlIP) and ovs-vswitchd
// inside the namespace, in Dir.
func (h *Hypervisor) startOVS(ctx context.Context) error {
	o, err := ovstest.Start(ctx, ovstest.Options{Datapath: ovstest.Netdev, Netns: h.Netns, Dir: h.Dir,
		TCP: true, TCPHost: h.ControlIP})
	if err != nil {
		return fmt.Errorf("%s: %w", h.Name, err)
	}
	h.ovs = o
	h.OVSDBAddress = o.DBAddr()
	h.OVSDBTCPAddress = o.TCPAddr()
	return nil
}

// stopOVS stops this hypervisor's ovs-vswitchd and ovsdb-server, by pid.
func (h *Hypervisor) stopOVS() error {
	if h.ovs == nil {
		return nil
	}
	if err := h.ovs.Stop(); err != nil {
		return fmt.Errorf("%s: stop OVS: %w", h.Name, err)
	}
	return nil
}

// VswitchdPid is the pid of the running ovs-vswitchd (0 when stopped).
func (h *Hypervisor) VswitchdPid() int { return h.ovs.VswitchdPid() }

// Vsctl runs ovs-vsctl against this hypervisor's database. Without --no-wait it
// waits until ovs-vswitchd has applied the change.
func (h *Hypervisor) Vsctl(ctx context.Context, args ...string) (string, error) {
	out, err := h.ovs.Vsctl(ctx, args...)
	if err != nil {
		return out, fmt.Errorf("%s: %w", h.Name, err)
	}
	return strings.TrimSpace(out), nil
}

// MustVsctl is Vsctl that fails the test on error.
func (h *Hypervisor) MustVsctl(t testing.TB, args ...string) string {
	t.Helper()
	out, err := h.Vsctl(t.Context(), args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Ofctl runs "ovs-ofctl -O OpenFlow13 <cmd> <bridge's mgmt socket> args...".
func (h *Hypervisor) Ofctl(ctx context.Context, cmd, bridge string, args ...string) (string, error) {
	out, err := h.ovs.Ofctl(ctx, append([]string{cmd, h.Mgmt(bridge)}, args...)...)
	if err != nil {
		return out, fmt.Errorf("%s: %w", h.Name, err)
	}
	return out, nil
}

// AddFlow installs one flow (ovs-ofctl syntax, OpenFlow 1.3) on a bridge.
func (h *Hypervisor) AddFlow(t testing.TB, bridge, flow string) {
	t.Helper()
	if _, err := h.Ofctl(t.Context(), "add-flow", bridge, flow); err != nil {
		t.Fatal(err)
	}
}

// DumpFlows returns ovs-ofctl dump-flows of a bridge (OpenFlow 1.3).
func (h *Hypervisor) DumpFlows(ctx context.Context, bridge string) (string, error) {
	return h.Ofctl(ctx, "dump-flows", bridge)
}

// Appctl runs ovs-appctl against this hypervisor's ovs-vswitchd.
func (h *Hypervisor) Appctl(ctx context.Context, args ...string) (string, error) {
	out, err := h.ovs.Appctl(ctx, args...)
	if err != nil {
		return out, fmt.Errorf("%s: %w", h.Name, err)
	}
	return out, nil
}

// Exec runs a program inside the hypervisor's network namespace.
func (h *Hypervisor) Exec(ctx context.Context, name string, args ...string) (string, error) {
	return runCmd(ctx, nil, "ip", append([]string{"netns", "exec", h.Netns, name}, args...)...)
}

// OFPort returns the OpenFlow port number of an interface, waiting for
// ovs-vswitchd to assign it.
func (h *Hypervisor) OFPort(t testing.TB, iface string) int {
	t.Helper()
	var port int
	err := poll(t.Context(), 10*time.Second, 10*time.Millisecond, func() (bool, error) {
		out, err := h.Vsctl(t.Context(), "get", "Interface", iface, "ofport")
		if err != nil {
			return false, err
		}
		n, err := strconv.Atoi(strings.Trim(out, "[] "))
		if err != nil || n <= 0 {
			return false, fmt.Errorf("%s: interface %s has ofport %q", h.Name, iface, out)
		}
		port = n
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// DatapathID returns a bridge's datapath id (16 hex digits).
func (h *Hypervisor) DatapathID(t testing.TB, bridge string) string {
	t.Helper()
	var id string
	err := poll(t.Context(), 10*time.Second, 10*time.Millisecond, func() (bool, error) {
		out, err := h.Vsctl(t.Context(), "get", "Bridge", bridge, "datapath_id")
		id = strings.Trim(out, `"[] `)
		return err == nil && len(id) == 16, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// SetController points a bridge at OpenFlow controller targets (e.g. the daemon's
// OpenFlowTarget). No target removes the controller.
func (h *Hypervisor) SetController(t testing.TB, bridge string, targets ...string) {
	t.Helper()
	if len(targets) == 0 {
		h.MustVsctl(t, "del-controller", bridge)
		return
	}
	h.MustVsctl(t, append([]string{"set-controller", bridge}, targets...)...)
}

// AddTunnelPort adds a flow-based tunnel port (kind "gre" or "vxlan") to br-int:
// remote_ip=flow, key=flow, local_ip=EndpointIP. It returns its OpenFlow port.
func (h *Hypervisor) AddTunnelPort(t testing.TB, name, kind string) int {
	t.Helper()
	h.MustVsctl(t, "add-port", h.Bridge, name, "--", "set", "Interface", name, "type="+kind,
		"options:remote_ip=flow", "options:key=flow", "options:local_ip="+h.EndpointIP)
	return h.OFPort(t, name)
}

// configureUnderlay gives br-flow's internal port the endpoint IP, brings it up and
// waits until ovs-vswitchd's own route table (which userspace tunnels use, not the
// kernel's) holds the flow network's route.
func (h *Hypervisor) configureUnderlay(ctx context.Context) error {
	if _, err := h.Exec(ctx, "sh", "-c", fmt.Sprintf(
		"ip addr replace %s/24 dev br-flow && ip link set br-flow up", h.EndpointIP)); err != nil {
		return err
	}
	return poll(ctx, 10*time.Second, 10*time.Millisecond, func() (bool, error) {
		out, err := h.Appctl(ctx, "ovs/route/show")
		if err != nil {
			return false, err
		}
		if strings.Contains(out, flowNetCIDR+" dev br-flow") {
			return true, nil
		}
		return false, fmt.Errorf("%s: ovs/route/show has no route to %s via br-flow:\n%s", h.Name, flowNetCIDR, out)
	})
}

// setTunnelNeighbour pre-sets OVS's tunnel neighbour (ARP) cache for the peer's
// endpoint, so that the first encapsulated frame is not dropped while OVS resolves it.
func (h *Hypervisor) setTunnelNeighbour(ctx context.Context, peer *Hypervisor) error {
	if _, err := h.Appctl(ctx, "tnl/neigh/set", "br-flow", peer.EndpointIP, peer.EndpointMAC); err != nil {
		return err
	}
	out, err := h.Appctl(ctx, "tnl/arp/show")
	if err != nil {
		return err
	}
	if !strings.Contains(out, peer.EndpointIP) {
		return fmt.Errorf("%s: tnl/arp/show lacks %s after tnl/neigh/set:\n%s", h.Name, peer.EndpointIP, out)
	}
	return nil
}

// RestartVswitchd stops this hypervisor's ovs-vswitchd (SIGTERM by pid) and starts
// it again on the same database. The bridges come back with their ports (from
// conf.db) but without OpenFlow flows; the harness restores what the kernel lost
// (br-flow's address: netdev internal ports are tap devices that die with the
// process) and the tunnel neighbour entry, and waits until the bridges are
// configured and reachable over OpenFlow.
func (h *Hypervisor) RestartVswitchd(t testing.TB) {
	t.Helper()
	ctx := t.Context()
	start := time.Now()
	pid := h.VswitchdPid()
	if pid == 0 {
		t.Fatalf("%s: ovs-vswitchd is not running", h.Name)
	}
	if err := h.ovs.StopVswitchd(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := h.ovs.StartVswitchd(ctx); err != nil {
		t.Fatal(err)
	}
	// A change without --no-wait returns once ovs-vswitchd has reconfigured.
	if _, err := h.Vsctl(ctx, "set", "Open_vSwitch", ".", "external_ids:e2e-restarts="+strconv.FormatInt(time.Now().UnixNano(), 10)); err != nil {
		t.Fatal(err)
	}
	if err := h.configureUnderlay(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.setTunnelNeighbour(ctx, h.topo.peer(h)); err != nil {
		t.Fatal(err)
	}
	for _, br := range []string{h.Bridge, "br-flow"} {
		if _, err := h.Ofctl(ctx, "show", br); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%s: ovs-vswitchd restarted (pid %d -> %d) in %v", h.Name, pid, h.VswitchdPid(), time.Since(start).Round(time.Millisecond))
}

// Diagnostics returns what helps explain a failure: ovs-vsctl show, the flows of
// both bridges, the datapath flows, OVS's route and tunnel-neighbour tables and the
// tails of the daemons' logs.
func (h *Hypervisor) Diagnostics(ctx context.Context) string {
	if h.ovs == nil {
		return fmt.Sprintf("----- %s: OVS not started\n", h.Name)
	}
	var b strings.Builder
	section := func(title, out string, err error) {
		fmt.Fprintf(&b, "----- %s: %s\n", h.Name, title)
		if err != nil {
			fmt.Fprintf(&b, "(error: %v)\n", err)
		}
		b.WriteString(strings.TrimRight(out, "\n"))
		b.WriteString("\n")
	}
	out, err := h.Vsctl(ctx, "show")
	section("ovs-vsctl show", out, err)
	for _, br := range []string{h.Bridge, "br-flow"} {
		out, err = h.DumpFlows(ctx, br)
		section("ovs-ofctl dump-flows "+br, out, err)
	}
	out, err = h.Ofctl(ctx, "dump-ports-desc", h.Bridge)
	section("ovs-ofctl dump-ports-desc "+h.Bridge, out, err)
	for _, cmd := range []string{"dpctl/dump-flows", "ovs/route/show", "tnl/arp/show"} {
		out, err = h.Appctl(ctx, cmd)
		section("ovs-appctl "+cmd, out, err)
	}
	b.WriteString(h.ovs.LogTails(40))
	return b.String()
}

// tailFile returns the last n lines of a file.
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// RefreshTunnelNeighbour sets OVS's tunnel neighbour entry for the other
// hypervisor's endpoint again (after tnl/neigh/flush, or anything else that empties
// the cache): without it the first encapsulated frame is dropped while OVS ARPs.
func (h *Hypervisor) RefreshTunnelNeighbour(t testing.TB) {
	t.Helper()
	if err := h.setTunnelNeighbour(t.Context(), h.topo.peer(h)); err != nil {
		t.Fatal(err)
	}
}
