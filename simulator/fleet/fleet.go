package fleet

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"portmirror/model"
	"portmirror/simulator/dataplane"
	"portmirror/simulator/fabric"
	"portmirror/simulator/ofsim"
)

// Fleet is a built topology: its objects, their simulated bridges and the fabric joining them.
type Fleet struct {
	Topology     Topology // as given, with defaults filled in
	Fabric       *fabric.Fabric
	Clusters     []*Cluster
	Hosts        []*Host
	VMs          []*VM
	NICs         []*NIC
	FlowNetworks []*FlowNetwork

	opts Options
	ids  ids
	bufs ofsim.Buffers // the switches' reply buffers, shared

	mu     sync.Mutex             // guards VM placement and the port maps
	byPort map[portKey]*NIC       // where each NIC is plugged now
	byMAC  map[dataplane.MAC]*NIC // every NIC
	byUUID map[string]*NIC        // every NIC
	byName map[string]*Host       // host name -> host
	run    *runState              // set by Start
	hostOf map[*VM]*Host          // current placement
	portOf map[*NIC]uint32        // current port number

	packetOuts packetOutLog // what PACKET_OUTs made the bridges deliver
}

type portKey struct {
	host int
	port uint32
}

type runState struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Cluster is a cluster of the fleet.
type Cluster struct {
	Index int
	UUID  string
	Name  string
	Hosts []*Host
}

// Host is a hypervisor: one simulated OVS bridge ("br-int") with its OpenFlow switch.
type Host struct {
	Index      int
	UUID       string
	Name       string
	Cluster    *Cluster
	DatapathID uint64
	Bridge     *dataplane.Bridge
	Switch     *ofsim.Switch // set by Start, for the fleet's run
	Endpoints  []netip.Addr  // tunnel endpoint IP per flow network, by flow network index

	nextPort uint32 // guarded by Fleet.mu
}

// DatapathIDString is the datapath id as the API writes it: 16 lower-case hex digits.
func (h *Host) DatapathIDString() string { return fmt.Sprintf("%016x", h.DatapathID) }

// VM is a VM instance; a monitor VM has a default NIC and a capture NIC.
type VM struct {
	Index   int
	UUID    string
	Name    string
	Monitor bool
	NICs    []*NIC
}

// NIC is a VM's network interface, plugged into a port of its host's bridge named PortName.
type NIC struct {
	Index    int
	UUID     string
	VM       *VM
	MAC      dataplane.MAC
	IP       netip.Addr
	PortName string
	Default  bool
	Capture  bool // a monitor's capture NIC: its port is NoFlood and it never sends
}

// String names the NIC for people: "vm-3/nic0", "monitor-1/capture".
func (n *NIC) String() string {
	if n.Capture {
		return n.VM.Name + "/capture"
	}
	if n.VM.Monitor {
		return n.VM.Name + "/default"
	}
	return fmt.Sprintf("%s/nic%d", n.VM.Name, n.indexInVM())
}

func (n *NIC) indexInVM() int {
	for i, m := range n.VM.NICs {
		if m == n {
			return i
		}
	}
	return -1
}

// FlowNetwork is a flow network of the fleet, attached to every cluster.
type FlowNetwork struct {
	Index         int
	UUID          string
	Name          string
	CIDR          netip.Prefix
	Encapsulation model.Encapsulation
	PortName      string // model.TunnelPortName(UUID)
}

// Options tune the simulated switches.
type Options struct {
	Logger        *slog.Logger  // nil: discard
	ProbeInterval time.Duration // ofsim.Config.ProbeInterval
	MinBackoff    time.Duration // ofsim.Config.MinBackoff; 0: 20ms
	MaxBackoff    time.Duration // ofsim.Config.MaxBackoff; 0: 1s
	NoBundles     bool          // ofsim.Config.NoBundles: the switches refuse bundles, as a switch without the extension
	// Controllers are OpenFlow controllers (host:port) every bridge connects to besides the address Start is
	// given (which may then be ""), as bridges that list several controllers: each connection has its own role
	// and reconnects on its own.
	Controllers []string
}

// Build creates the fleet's objects and bridges (nothing connects until Start). It refuses a topology beyond the
// address plan's limits.
func Build(t Topology, opts Options) (*Fleet, error) {
	if t.Clusters == nil {
		t.Clusters = DefaultClusters()
	}
	if t.FlowNetworks == 0 {
		t.FlowNetworks = 1
	}
	if t.Encapsulation == "" {
		t.Encapsulation = model.GRE
	}
	if !t.Encapsulation.Valid() {
		return nil, fmt.Errorf("fleet: encapsulation %q is not GRE, VXLAN, ERSPAN_V1 or ERSPAN_V2", t.Encapsulation)
	}
	if t.FlowNetworks < 0 || t.FlowNetworks > MaxFlowNetworks {
		return nil, fmt.Errorf("fleet: %d flow networks: the address plan holds 1 to %d", t.FlowNetworks, MaxFlowNetworks)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 20 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = time.Second
	}
	nHosts, nNICs := 0, 0
	for ci, c := range t.Clusters {
		for hi, h := range c.Hosts {
			if h.VMs < 0 || h.Monitors < 0 || h.NICsPerVM < 0 {
				return nil, fmt.Errorf("fleet: cluster %d host %d: negative counts in %+v", ci, hi, h)
			}
			nHosts++
			nNICs += h.VMs*max(h.NICsPerVM, 1) + 2*h.Monitors
		}
	}
	if nHosts == 0 {
		return nil, fmt.Errorf("fleet: the topology has no host")
	}
	if nHosts > MaxHosts {
		return nil, fmt.Errorf("fleet: %d hosts: the address plan holds at most %d", nHosts, MaxHosts)
	}
	if nNICs > MaxNICs {
		return nil, fmt.Errorf("fleet: %d NICs: the address plan holds at most %d", nNICs, MaxNICs)
	}

	f := &Fleet{
		Topology: t, Fabric: fabric.New(), opts: opts, ids: newIDs(t.Seed),
		byPort: map[portKey]*NIC{}, byMAC: map[dataplane.MAC]*NIC{}, byUUID: map[string]*NIC{},
		byName: map[string]*Host{}, hostOf: map[*VM]*Host{}, portOf: map[*NIC]uint32{},
	}
	for i := range t.FlowNetworks {
		u := f.ids.uuid(kindFN, i)
		f.FlowNetworks = append(f.FlowNetworks, &FlowNetwork{Index: i, UUID: u, Name: fmt.Sprintf("mirror-net-%d", i+1),
			CIDR: flowNetworkCIDR(i), Encapsulation: t.Encapsulation, PortName: model.TunnelPortName(u)})
	}
	vmN, monN := 0, 0
	for ci, cs := range t.Clusters {
		c := &Cluster{Index: ci, UUID: f.ids.uuid(kindCluster, ci), Name: fmt.Sprintf("cluster-%d", ci+1)}
		f.Clusters = append(f.Clusters, c)
		for _, hs := range cs.Hosts {
			h, err := f.newHost(c)
			if err != nil {
				return nil, err
			}
			for range hs.VMs {
				vmN++
				vm := &VM{Index: len(f.VMs), UUID: f.ids.uuid(kindVM, len(f.VMs)), Name: fmt.Sprintf("vm-%d", vmN)}
				for j := range max(hs.NICsPerVM, 1) {
					f.newNIC(vm, j == 0, false)
				}
				f.VMs = append(f.VMs, vm)
				if err := f.place(vm, h); err != nil {
					return nil, err
				}
			}
			for range hs.Monitors {
				monN++
				vm := &VM{Index: len(f.VMs), UUID: f.ids.uuid(kindVM, len(f.VMs)), Name: fmt.Sprintf("monitor-%d", monN), Monitor: true}
				f.newNIC(vm, true, false)
				f.newNIC(vm, false, true)
				f.VMs = append(f.VMs, vm)
				if err := f.place(vm, h); err != nil {
					return nil, err
				}
			}
		}
	}
	return f, nil
}

func (f *Fleet) newHost(c *Cluster) (*Host, error) {
	i := len(f.Hosts)
	h := &Host{Index: i, UUID: f.ids.uuid(kindHost, i), Name: fmt.Sprintf("hv-%d", i+1), Cluster: c,
		DatapathID: f.ids.datapathID(i), nextPort: 1}
	h.Bridge = dataplane.NewBridge(model.DefaultBridge, f.ids.localMAC(i))
	if err := h.Bridge.AddPort(dataplane.Port{No: UplinkPort, Name: UplinkName, Up: true, MAC: f.ids.portMAC(i, UplinkPort)}); err != nil {
		return nil, fmt.Errorf("fleet: host %s: %w", h.Name, err)
	}
	typ := f.Topology.Encapsulation.PortType()
	for _, fn := range f.FlowNetworks {
		ip := endpointIP(fn.Index, i)
		no := TunnelPortBase + uint32(fn.Index)
		if err := h.Bridge.AddPort(dataplane.Port{No: no, Name: fn.PortName, Up: true, MAC: f.ids.portMAC(i, no),
			Tunnel: &dataplane.TunnelConfig{Type: typ, LocalIP: ip}}); err != nil {
			return nil, fmt.Errorf("fleet: host %s tunnel port: %w", h.Name, err)
		}
		h.Endpoints = append(h.Endpoints, ip)
	}
	if _, err := f.Fabric.AddHost(h.Name, h.Bridge); err != nil {
		return nil, err
	}
	c.Hosts = append(c.Hosts, h)
	f.Hosts = append(f.Hosts, h)
	f.byName[h.Name] = h
	return h, nil
}

func (f *Fleet) newNIC(vm *VM, def, capture bool) {
	i := len(f.NICs)
	n := &NIC{Index: i, UUID: f.ids.uuid(kindNIC, i), VM: vm, MAC: f.ids.nicMAC(i), IP: nicIP(i),
		PortName: fmt.Sprintf("tap%d", i), Default: def, Capture: capture}
	vm.NICs = append(vm.NICs, n)
	f.NICs = append(f.NICs, n)
	f.byMAC[n.MAC] = n
	f.byUUID[n.UUID] = n
}

// place plugs every NIC of vm into h's bridge, on new port numbers, and reports the ports to the controller.
func (f *Fleet) place(vm *VM, h *Host) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, n := range vm.NICs {
		no := h.nextPort
		h.nextPort++
		if no >= UplinkPort {
			return fmt.Errorf("fleet: host %s has no port number left for %s", h.Name, n)
		}
		p := dataplane.Port{No: no, Name: n.PortName, Up: true, MAC: f.ids.portMAC(h.Index, no), NoFlood: n.Capture}
		var err error
		if h.Switch != nil {
			err = h.Switch.AddPort(p) // reported to the controller
		} else {
			err = h.Bridge.AddPort(p)
		}
		if err != nil {
			return fmt.Errorf("fleet: plugging %s into %s: %w", n, h.Name, err)
		}
		if fh, ok := f.Fabric.Host(h.Name); ok {
			fh.AttachNIC(no, n.MAC)
		}
		f.byPort[portKey{h.Index, no}] = n
		f.portOf[n] = no
	}
	f.hostOf[vm] = h
	return nil
}

// unplug removes every NIC of vm from its host's bridge.
func (f *Fleet) unplug(vm *VM) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := f.hostOf[vm]
	for _, n := range vm.NICs {
		no := f.portOf[n]
		var err error
		if h.Switch != nil {
			err = h.Switch.RemovePort(no)
		} else {
			_, err = h.Bridge.RemovePort(no)
		}
		if err != nil {
			return fmt.Errorf("fleet: unplugging %s from %s: %w", n, h.Name, err)
		}
		delete(f.byPort, portKey{h.Index, no})
		delete(f.portOf, n)
	}
	delete(f.hostOf, vm)
	return nil
}

// HostOf is where vm runs now.
func (f *Fleet) HostOf(vm *VM) *Host {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hostOf[vm]
}

// PortOf is where n is plugged now: its host and port number.
func (f *Fleet) PortOf(n *NIC) (*Host, uint32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hostOf[n.VM], f.portOf[n]
}

// NICByUUID returns a NIC of the fleet.
func (f *Fleet) NICByUUID(uuid string) (*NIC, bool) {
	n, ok := f.byUUID[uuid]
	return n, ok
}

// NICByMAC returns a NIC of the fleet.
func (f *Fleet) NICByMAC(mac dataplane.MAC) (*NIC, bool) {
	n, ok := f.byMAC[mac]
	return n, ok
}

// Monitors lists the monitor VMs' capture NICs.
func (f *Fleet) Monitors() []*NIC {
	var out []*NIC
	for _, n := range f.NICs {
		if n.Capture {
			out = append(out, n)
		}
	}
	return out
}

// Senders lists the NICs that send traffic: every NIC but the capture NICs.
func (f *Fleet) Senders() []*NIC {
	var out []*NIC
	for _, n := range f.NICs {
		if !n.Capture {
			out = append(out, n)
		}
	}
	return out
}

// MoveVM unplugs vm's NICs from its host's bridge, plugs them into to's bridge under the same port names (the
// controller hears both through port-status), and announces each sending NIC with a gratuitous ARP, as a
// hypervisor does after a live migration, so that the bridges learn where its MACs are now. Tell the controller
// with MigrateVmInstance (Migrate does both).
func (f *Fleet) MoveVM(vm *VM, to *Host) error {
	if f.HostOf(vm) == to {
		return nil
	}
	if err := f.unplug(vm); err != nil {
		return err
	}
	if err := f.place(vm, to); err != nil {
		return err
	}
	for _, n := range vm.NICs {
		if !n.Capture {
			if _, err := f.Send(f.Announce(n)); err != nil {
				return err
			}
		}
	}
	return nil
}

// Start connects every bridge to the controller at addr (host:port) and to every one of Options.Controllers, and
// keeps them connected until ctx ends or Stop is called.
func (f *Fleet) Start(ctx context.Context, addr string) error {
	if addr == "" && len(f.opts.Controllers) == 0 {
		return fmt.Errorf("fleet: no controller address")
	}
	f.mu.Lock()
	if f.run != nil {
		f.mu.Unlock()
		return fmt.Errorf("fleet: already started")
	}
	ctx, cancel := context.WithCancel(ctx)
	rs := &runState{cancel: cancel}
	f.run = rs
	f.mu.Unlock()
	for _, h := range f.Hosts {
		sw := ofsim.New(ofsim.Config{Controller: addr, Controllers: f.opts.Controllers, DatapathID: h.DatapathID, Bridge: h.Bridge,
			Logger: f.opts.Logger.With("host", h.Name), ProbeInterval: f.opts.ProbeInterval,
			MinBackoff: f.opts.MinBackoff, MaxBackoff: f.opts.MaxBackoff, NoBundles: f.opts.NoBundles,
			OnPacketOut: f.forwardPacketOut(h), Buffers: &f.bufs})
		f.mu.Lock()
		h.Switch = sw
		f.mu.Unlock()
		rs.wg.Add(1)
		go func() {
			defer rs.wg.Done()
			if err := sw.Run(ctx); err != nil && ctx.Err() == nil {
				f.opts.Logger.Error("simulated switch stopped", "host", h.Name, "err", err)
			}
		}()
	}
	return nil
}

// Stop disconnects every bridge and waits for their goroutines. The bridges keep their flows.
func (f *Fleet) Stop() {
	f.mu.Lock()
	rs := f.run
	f.run = nil
	f.mu.Unlock()
	if rs == nil {
		return
	}
	rs.cancel()
	rs.wg.Wait()
}

// Connected counts the bridges whose OpenFlow connection is up.
func (f *Fleet) Connected() int {
	n := 0
	for _, h := range f.Hosts {
		if sw := f.SwitchOf(h); sw != nil && sw.Connected() {
			n++
		}
	}
	return n
}

// FullyConnected counts the bridges connected to every controller.
func (f *Fleet) FullyConnected() int {
	n := 0
	for _, h := range f.Hosts {
		if sw := f.SwitchOf(h); sw != nil && sw.ConnectedControllers() == len(sw.Controllers()) {
			n++
		}
	}
	return n
}

// Masters counts, by controller address, the bridges that have that controller as their OpenFlow MASTER; the
// bridges with no master count under "".
func (f *Fleet) Masters() map[string]int {
	m := map[string]int{}
	for _, h := range f.Hosts {
		if sw := f.SwitchOf(h); sw != nil {
			m[sw.Master()]++
		}
	}
	return m
}

// WaitConnected polls until every bridge is connected to at least one controller, or ctx ends.
func (f *Fleet) WaitConnected(ctx context.Context) error {
	return f.waitFor(ctx, f.Connected, "connected")
}

// WaitFullyConnected polls until every bridge is connected to every controller, or ctx ends.
func (f *Fleet) WaitFullyConnected(ctx context.Context) error {
	return f.waitFor(ctx, f.FullyConnected, "connected to every controller")
}

func (f *Fleet) waitFor(ctx context.Context, count func() int, what string) error {
	for {
		n := count()
		if n == len(f.Hosts) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("fleet: %d of %d bridges %s: %w", n, len(f.Hosts), what, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// SwitchOf is the host's simulated switch of the current run, or nil before Start.
func (f *Fleet) SwitchOf(h *Host) *ofsim.Switch {
	f.mu.Lock()
	defer f.mu.Unlock()
	return h.Switch
}
