// Package fabric joins simulated hosts into a flow network: a frame a bridge sends out of a flow-based tunnel
// port (remote_ip=flow, key=flow) with tun_dst set arrives at the host owning that endpoint IP, on its tunnel
// port of the same type, with tun_id (GRE: 32 bits, VXLAN: 24 bits) and tun_src set. Inject puts a frame on a
// port and follows it everywhere, returning every copy that leaves any port and a trace of the path.
package fabric

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"portmirror/simulator/dataplane"
)

// Host is a hypervisor: one bridge, plus what sits behind its ports.
type Host struct {
	Name   string
	Bridge *dataplane.Bridge

	mu   sync.Mutex
	nics map[uint32]dataplane.MAC // the MAC of the VM NIC behind each port
}

// AttachNIC records that a VM NIC with mac is plugged into port.
func (h *Host) AttachNIC(port uint32, mac dataplane.MAC) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.nics[port] = mac
}

// NIC returns the MAC of the NIC behind port.
func (h *Host) NIC(port uint32) (dataplane.MAC, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m, ok := h.nics[port]
	return m, ok
}

type endpointKey struct {
	ip  netip.Addr
	typ string
}

type endpoint struct {
	host *Host
	port uint32
}

// Fabric is the set of hosts and their tunnel endpoints. It is safe for concurrent use.
type Fabric struct {
	mu        sync.Mutex
	hosts     map[string]*Host
	endpoints map[endpointKey]endpoint
	unowned   atomic.Int64
	maxHops   int
}

// New returns an empty fabric.
func New() *Fabric {
	return &Fabric{hosts: map[string]*Host{}, endpoints: map[endpointKey]endpoint{}, maxHops: 16}
}

// AddHost adds a host with its bridge; the bridge's tunnel ports become endpoints (their local_ip).
func (f *Fabric) AddHost(name string, br *dataplane.Bridge) (*Host, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.hosts[name]; ok {
		return nil, fmt.Errorf("fabric: host %q already exists", name)
	}
	h := &Host{Name: name, Bridge: br, nics: map[uint32]dataplane.MAC{}}
	for _, p := range br.Ports() {
		if p.Tunnel != nil {
			if err := f.addEndpointLocked(h, p); err != nil {
				return nil, err
			}
		}
	}
	f.hosts[name] = h
	return h, nil
}

func (f *Fabric) addEndpointLocked(h *Host, p dataplane.Port) error {
	k := endpointKey{p.Tunnel.LocalIP, p.Tunnel.Type}
	if e, ok := f.endpoints[k]; ok && e.host != h {
		return fmt.Errorf("fabric: %s endpoint %v of host %q is already owned by host %q", p.Tunnel.Type, p.Tunnel.LocalIP, h.Name, e.host.Name)
	}
	f.endpoints[k] = endpoint{host: h, port: p.No}
	return nil
}

// AddTunnelPort adds a flow-based tunnel port to a host's bridge and registers its endpoint.
func (f *Fabric) AddTunnelPort(host string, p dataplane.Port) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	h, ok := f.hosts[host]
	if !ok {
		return fmt.Errorf("fabric: no host %q", host)
	}
	if p.Tunnel == nil {
		return fmt.Errorf("fabric: host %q port %q: not a tunnel port", host, p.Name)
	}
	if e, ok := f.endpoints[endpointKey{p.Tunnel.LocalIP, p.Tunnel.Type}]; ok && e.host != h {
		return fmt.Errorf("fabric: %s endpoint %v is already owned by host %q", p.Tunnel.Type, p.Tunnel.LocalIP, e.host.Name)
	}
	if err := h.Bridge.AddPort(p); err != nil {
		return err
	}
	return f.addEndpointLocked(h, p)
}

// RegisterTunnelPort registers as an endpoint a tunnel port already added to the host's bridge (e.g. through
// ofsim.Switch.AddPort, so that the controller hears of it).
func (f *Fabric) RegisterTunnelPort(host string, no uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	h, ok := f.hosts[host]
	if !ok {
		return fmt.Errorf("fabric: no host %q", host)
	}
	p, ok := h.Bridge.Port(no)
	if !ok || p.Tunnel == nil {
		return fmt.Errorf("fabric: host %q port %d is not a tunnel port", host, no)
	}
	return f.addEndpointLocked(h, p)
}

// Host returns a host by name.
func (f *Fabric) Host(name string) (*Host, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h, ok := f.hosts[name]
	return h, ok
}

// UnownedDrops counts tunnelled frames whose tun_dst no host owns.
func (f *Fabric) UnownedDrops() int64 { return f.unowned.Load() }

// Copy is one frame leaving a port: a NIC port (Tunnel unset) or a tunnel port (Tunnel holds the
// encapsulation: tun_id, local_ip as Src, tun_dst as Dst).
type Copy struct {
	Host     string
	Port     uint32
	PortName string
	Frame    []byte
	Tunnel   dataplane.Tunnel
}

func (c Copy) String() string {
	s := fmt.Sprintf("%s:%s", c.Host, c.PortName)
	if c.Tunnel.IsSet() {
		s += fmt.Sprintf(" (tun_id=%#x %v->%v)", c.Tunnel.ID, c.Tunnel.Src, c.Tunnel.Dst)
	}
	return s
}

// Delivery is everything one injected frame caused.
type Delivery struct {
	Copies []Copy   // every frame that left any port anywhere, tunnel ports included, in order
	Trace  []string // per host visited: the bridge's ofproto/trace-like explanation
}

// At returns the copies that left NIC ports (not tunnel ports), as "host:port" strings, sorted.
func (d Delivery) At() []string {
	var out []string
	for _, c := range d.Copies {
		if !c.Tunnel.IsSet() {
			out = append(out, c.Host+":"+c.PortName)
		}
	}
	slices.Sort(out)
	return out
}

// TraceString joins the trace.
func (d Delivery) TraceString() string { return strings.Join(d.Trace, "\n") }

type hop struct {
	host  *Host
	frame dataplane.Frame
	depth int
}

// Inject puts an Ethernet frame on a host's port, as if the NIC behind it sent it, and follows it through
// every bridge and tunnel. MACs are learned along the way, as with real traffic.
func (f *Fabric) Inject(host string, port uint32, raw []byte) (Delivery, error) {
	h, ok := f.Host(host)
	if !ok {
		return Delivery{}, fmt.Errorf("fabric: no host %q", host)
	}
	if _, ok := h.Bridge.Port(port); !ok {
		return Delivery{}, fmt.Errorf("fabric: host %q has no port %d", host, port)
	}
	fr, err := dataplane.ParseFrame(raw)
	if err != nil {
		return Delivery{}, fmt.Errorf("fabric: inject at %s port %d: %w", host, port, err)
	}
	fr.InPort = port
	var d Delivery
	f.run(&d, []hop{{host: h, frame: fr}})
	return d, nil
}

// Forward continues the delivery of what a bridge emitted outside Inject (e.g. by a PACKET_OUT).
func (f *Fabric) Forward(host string, res dataplane.Result) Delivery {
	var d Delivery
	h, ok := f.Host(host)
	if !ok {
		return d
	}
	d.Trace = append(d.Trace, "host "+host+":")
	d.Trace = append(d.Trace, indent(res.Trace)...)
	f.run(&d, f.emits(&d, h, res, 0))
	return d
}

func (f *Fabric) run(d *Delivery, queue []hop) {
	for len(queue) > 0 {
		hp := queue[0]
		queue = queue[1:]
		res := hp.host.Bridge.Process(hp.frame)
		d.Trace = append(d.Trace, "host "+hp.host.Name+":")
		d.Trace = append(d.Trace, indent(res.Trace)...)
		queue = append(queue, f.emits(d, hp.host, res, hp.depth)...)
	}
}

// emits records a bridge's output and turns tunnel outputs into arrivals at the owning hosts.
func (f *Fabric) emits(d *Delivery, h *Host, res dataplane.Result, depth int) []hop {
	var next []hop
	for _, e := range res.Emits {
		d.Copies = append(d.Copies, Copy{Host: h.Name, Port: e.Port, PortName: e.PortName, Frame: e.Frame.Raw, Tunnel: e.Frame.Tunnel})
		if !e.Frame.Tunnel.IsSet() {
			continue
		}
		p, ok := h.Bridge.Port(e.Port)
		if !ok || p.Tunnel == nil {
			continue
		}
		f.mu.Lock()
		ep, ok := f.endpoints[endpointKey{e.Frame.Tunnel.Dst, p.Tunnel.Type}]
		f.mu.Unlock()
		if !ok {
			f.unowned.Add(1)
			d.Trace = append(d.Trace, fmt.Sprintf("fabric: no host owns %s endpoint %v: dropped", p.Tunnel.Type, e.Frame.Tunnel.Dst))
			continue
		}
		if depth+1 > f.maxHops {
			d.Trace = append(d.Trace, fmt.Sprintf("fabric: more than %d tunnel hops: dropped (loop?)", f.maxHops))
			continue
		}
		in := e.Frame.Clone()
		in.InPort = ep.port
		in.Tunnel = p.Tunnel.Received(e.Frame.Tunnel, p.Tunnel.LocalIP, e.Frame.Tunnel.Dst)
		d.Trace = append(d.Trace, fmt.Sprintf("fabric: %s tun_id=%#x %v -> %v: to host %s port %d", p.Tunnel.Type, in.Tunnel.ID, in.Tunnel.Src, in.Tunnel.Dst, ep.host.Name, ep.port))
		next = append(next, hop{host: ep.host, frame: in, depth: depth + 1})
	}
	return next
}

func indent(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = "  " + l
	}
	return out
}
