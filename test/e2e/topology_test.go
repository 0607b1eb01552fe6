package e2e

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const (
	flowNetCIDR   = "198.18.100.0/24" // the flow network's underlay between the hypervisors
	flowNetPrefix = "198.18.100."
	vmNetPrefix   = "198.18.1." // VMs get 198.18.1.N/16
	vmNetBits     = 16
)

// TopologyOptions tunes NewTopology.
type TopologyOptions struct {
	// Secure sets br-int to fail_mode=secure with no flows at all (what the controller
	// manages); by default br-int is fail_mode=standalone, a learning switch.
	Secure bool
	// DynamicARP leaves neighbour resolution to ARP; by default every VM gets a
	// permanent neighbour entry for every other VM's IP, so that captures hold only
	// the traffic a test sends.
	DynamicARP bool
}

// Topology is one test's world: two hypervisors (HV1, HV2) joined by a flow-network
// underlay (br-flow ↔ br-flow) and a business link (br-int ↔ br-int), a controller
// link from the root namespace into each hypervisor (ControllerIP here, each
// hypervisor's ControlIP there), and the VMs added to it. Everything carries a
// random suffix and is removed when the test ends.
type Topology struct {
	Suffix       string
	Dir          string
	HV1, HV2     *Hypervisor
	ControllerIP string // root-namespace address on the controller link, reachable from both hypervisors
	opts         TopologyOptions

	ctlBridge string
	ctlLock   *os.File

	mu      sync.Mutex
	vms     []*VM
	nextNIC int
	nextTag int
}

// Hypervisors returns HV1 and HV2.
func (tp *Topology) Hypervisors() []*Hypervisor { return []*Hypervisor{tp.HV1, tp.HV2} }

func (tp *Topology) peer(h *Hypervisor) *Hypervisor {
	if h == tp.HV1 {
		return tp.HV2
	}
	return tp.HV1
}

// NewTopology builds the two-hypervisor topology for t and registers its teardown.
// It skips the test when not root or the OVS binaries are missing. When the test
// fails, the OVS state of both hypervisors is logged before teardown.
func NewTopology(t testing.TB, opts TopologyOptions) *Topology {
	t.Helper()
	requireEnv(t)
	start := time.Now()
	ctx := t.Context()
	sfx := randSuffix(5)
	dir, err := os.MkdirTemp("", "pm-e2e-"+sfx+"-") // short: unix socket paths are limited to 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	tp := &Topology{Suffix: sfx, Dir: dir, opts: opts, ctlBridge: "pmc" + sfx, nextTag: 3000}
	t.Cleanup(func() { tp.teardown(t) })
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("e2e: topology %s diagnostics:\n%s", sfx, tp.Diagnostics(context.Background()))
		}
	})

	third, lock, err := reserveControlSubnet()
	if err != nil {
		t.Fatal(err)
	}
	tp.ctlLock = lock
	tp.ControllerIP = fmt.Sprintf("198.19.%d.1", third)
	for i := range 2 {
		n := i + 1
		h := &Hypervisor{
			Name:         fmt.Sprintf("hv%d", n),
			Netns:        fmt.Sprintf("pm%s-hv%d", sfx, n),
			Dir:          filepath.Join(dir, fmt.Sprintf("hv%d", n)),
			Bridge:       "br-int",
			DPID:         fmt.Sprintf("00000000000000e%d", n),
			EndpointIP:   fmt.Sprintf("%s%d", flowNetPrefix, n),
			EndpointMAC:  fmt.Sprintf("02:00:c6:12:64:%02x", n),
			ControlIP:    fmt.Sprintf("198.19.%d.%d", third, n+1),
			BusinessPort: "bl0",
			topo:         tp,
		}
		if n == 1 {
			tp.HV1 = h
		} else {
			tp.HV2 = h
		}
	}

	if err := forBoth(tp, func(h *Hypervisor) error { return createNetns(ctx, h.Netns) }); err != nil {
		t.Fatal(err)
	}
	if err := tp.createLinks(ctx, third); err != nil {
		t.Fatal(err)
	}
	failMode := "standalone"
	if opts.Secure {
		failMode = "secure"
	}
	err = forBoth(tp, func(h *Hypervisor) error {
		if err := h.startOVS(ctx); err != nil {
			return err
		}
		if _, err := h.Vsctl(ctx,
			"add-br", "br-int", "--", "set", "Bridge", "br-int", "datapath_type=netdev", "fail_mode="+failMode,
			"other_config:disable-in-band=true", "other_config:datapath-id="+h.DPID,
			"--", "add-port", "br-int", h.BusinessPort,
			"--", "add-br", "br-flow", "--", "set", "Bridge", "br-flow", "datapath_type=netdev",
			"other_config:hwaddr="+h.EndpointMAC, "other_config:disable-in-band=true",
			"--", "add-port", "br-flow", "uf0"); err != nil {
			return err
		}
		return h.configureUnderlay(ctx)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := forBoth(tp, func(h *Hypervisor) error { return h.setTunnelNeighbour(ctx, tp.peer(h)) }); err != nil {
		t.Fatal(err)
	}
	t.Logf("e2e: topology %s up in %v (dir %s)", sfx, time.Since(start).Round(time.Millisecond), dir)
	return tp
}

// forBoth runs fn for both hypervisors concurrently.
func forBoth(tp *Topology, fn func(h *Hypervisor) error) error {
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, h := range tp.Hypervisors() {
		wg.Go(func() { errs[i] = fn(h) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// createLinks creates the underlay veth (uf0 ↔ uf0), the business veth (bl0 ↔ bl0)
// and the controller link (a root-namespace bridge with ControllerIP, a veth ctl0
// into each hypervisor).
func (tp *Topology) createLinks(ctx context.Context, third int) error {
	h1, h2 := tp.HV1, tp.HV2
	script := []string{
		fmt.Sprintf("ip link add uf0 netns %s type veth peer name uf0 netns %s", h1.Netns, h2.Netns),
		fmt.Sprintf("ip link add bl0 netns %s type veth peer name bl0 netns %s", h1.Netns, h2.Netns),
		fmt.Sprintf("ip link add %s type bridge", tp.ctlBridge),
		fmt.Sprintf("ip addr add %s/24 dev %s", tp.ControllerIP, tp.ctlBridge),
		fmt.Sprintf("ip link set %s up", tp.ctlBridge),
	}
	for _, h := range tp.Hypervisors() {
		root := tp.ctlBridge + strings.TrimPrefix(h.Name, "hv")
		script = append(script,
			fmt.Sprintf("ip link add %s type veth peer name ctl0 netns %s", root, h.Netns),
			fmt.Sprintf("ip link set %s master %s up", root, tp.ctlBridge),
			fmt.Sprintf("ip -n %s addr add %s/24 dev ctl0", h.Netns, h.ControlIP),
			fmt.Sprintf("ip -n %s link set ctl0 up", h.Netns),
			fmt.Sprintf("ip -n %s link set uf0 up", h.Netns),
			fmt.Sprintf("ip -n %s link set bl0 up", h.Netns),
		)
	}
	_, err := runCmd(ctx, nil, "sh", "-ec", strings.Join(script, "\n"))
	return err
}

// reserveControlSubnet picks a free 198.19.X.0/24 for the controller link: free in
// the root namespace and not held by a concurrent run (a flock on a file in the temp
// directory, released when the process dies).
func reserveControlSubnet() (int, *os.File, error) {
	addrs, _ := net.InterfaceAddrs()
	used := map[int]bool{}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			if ip4 := ipn.IP.To4(); ip4 != nil && ip4[0] == 198 && ip4[1] == 19 {
				used[int(ip4[2])] = true
			}
		}
	}
	for _, x := range mrand.Perm(256) {
		if used[x] {
			continue
		}
		f, err := os.OpenFile(filepath.Join(os.TempDir(), fmt.Sprintf("portmirror-e2e-ctl-198.19.%d.lock", x)), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return 0, nil, fmt.Errorf("reserve controller subnet: %w", err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			continue
		}
		return x, f, nil
	}
	return 0, nil, errors.New("reserve controller subnet: every 198.19.X.0/24 is in use")
}

// teardown stops what the topology started, by pid, and removes what it created.
func (tp *Topology) teardown(t testing.TB) {
	ctx := context.Background()
	var errs []error
	for _, h := range tp.Hypervisors() {
		if h != nil {
			errs = append(errs, h.stopOVS())
		}
	}
	tp.mu.Lock()
	vms := tp.vms
	tp.mu.Unlock()
	for _, vm := range vms {
		errs = append(errs, deleteNetns(ctx, vm.Netns))
	}
	for _, h := range tp.Hypervisors() {
		if h != nil {
			errs = append(errs, deleteNetns(ctx, h.Netns))
		}
	}
	if _, err := runCmd(ctx, nil, "ip", "link", "delete", tp.ctlBridge); err != nil && !strings.Contains(err.Error(), "Cannot find device") {
		errs = append(errs, err)
	}
	if tp.ctlLock != nil {
		tp.ctlLock.Close()
	}
	if os.Getenv("PORTMIRROR_E2E_KEEP") == "" {
		errs = append(errs, os.RemoveAll(tp.Dir))
	} else {
		t.Logf("e2e: kept %s (PORTMIRROR_E2E_KEEP)", tp.Dir)
	}
	if err := errors.Join(errs...); err != nil {
		t.Errorf("e2e: teardown of topology %s: %v", tp.Suffix, err)
	}
}

// Diagnostics returns the OVS state of both hypervisors (see Hypervisor.Diagnostics).
func (tp *Topology) Diagnostics(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var b strings.Builder
	for _, h := range tp.Hypervisors() {
		if h != nil {
			b.WriteString(h.Diagnostics(ctx))
		}
	}
	return b.String()
}
