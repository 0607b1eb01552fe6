package e2e

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// NICSpec describes one NIC of a VM for AddVM. The zero value is an ordinary NIC
// with an allocated MAC and IP.
type NICSpec struct {
	Capture bool   // a capture NIC: no IP; it only receives (copies)
	IP      string // "" allocates 198.18.1.N (none for a capture NIC)
	MAC     string // "" allocates 02:00:c6:12:01:NN
	// Isolate gives the host port an otherwise unused VLAN tag, so br-int's NORMAL
	// never floods business frames to it; explicit output:<port> still reaches it.
	Isolate bool
}

// NIC is one VM NIC: a veth whose VM end (Name, inside the VM's namespace) carries
// MAC and IP, and whose host end is the br-int port HostPort with
// external_ids:iface-id=UUID and external_ids:attached-mac=MAC.
type NIC struct {
	UUID      string
	VM        *VM
	Index     int
	Name      string // interface name inside the VM: eth0, eth1, ...
	MAC       string
	IP        string // without prefix length; "" for a capture NIC
	IsDefault bool   // NIC 0 is the VM's default NIC
	Capture   bool
	HostPort  string // port and interface name on br-int; kept across migration
	Tag       int    // VLAN tag of the host port when isolated, else 0

	hv *Hypervisor // guarded by topo.mu
}

// Hypervisor returns where the NIC is attached now.
func (n *NIC) Hypervisor() *Hypervisor {
	n.VM.topo.mu.Lock()
	defer n.VM.topo.mu.Unlock()
	return n.hv
}

// OFPort returns the NIC's OpenFlow port number on its current hypervisor's br-int.
func (n *NIC) OFPort(t testing.TB) int {
	t.Helper()
	return n.Hypervisor().OFPort(t, n.HostPort)
}

// VM is a network namespace with NICs on a hypervisor's br-int.
type VM struct {
	Name  string
	UUID  string
	Netns string
	NICs  []*NIC
	topo  *Topology
}

// DefaultNIC returns NIC 0.
func (v *VM) DefaultNIC() *NIC { return v.NICs[0] }

// Hypervisor returns where the VM runs now.
func (v *VM) Hypervisor() *Hypervisor { return v.NICs[0].Hypervisor() }

// AddVM creates a VM on hv with the given NICs (one ordinary NIC when none are
// given). Unless the topology uses DynamicARP, every VM gets permanent neighbour
// entries for every other VM's IP.
func (tp *Topology) AddVM(t testing.TB, hv *Hypervisor, name string, specs ...NICSpec) *VM {
	t.Helper()
	ctx := t.Context()
	if len(specs) == 0 {
		specs = []NICSpec{{}}
	}
	vm := &VM{Name: name, UUID: newUUID(), Netns: fmt.Sprintf("pm%s-%s", tp.Suffix, name), topo: tp}
	if err := createNetns(ctx, vm.Netns); err != nil {
		t.Fatal(err)
	}
	tp.mu.Lock()
	tp.vms = append(tp.vms, vm)
	for i, s := range specs {
		tp.nextNIC++
		n := &NIC{
			UUID: newUUID(), VM: vm, Index: i, Name: fmt.Sprintf("eth%d", i),
			MAC: s.MAC, IP: s.IP, IsDefault: i == 0, Capture: s.Capture,
			HostPort: fmt.Sprintf("vnet%d", tp.nextNIC), hv: hv,
		}
		if n.MAC == "" {
			n.MAC = fmt.Sprintf("02:00:c6:12:01:%02x", tp.nextNIC)
		}
		if n.IP == "" && !s.Capture {
			n.IP = fmt.Sprintf("%s%d", vmNetPrefix, tp.nextNIC)
		}
		if s.Isolate {
			tp.nextTag++
			n.Tag = tp.nextTag
		}
		vm.NICs = append(vm.NICs, n)
	}
	tp.mu.Unlock()
	for _, n := range vm.NICs {
		if err := n.plug(ctx, hv); err != nil {
			t.Fatal(err)
		}
	}
	if !tp.opts.DynamicARP {
		if err := tp.pinNeighbours(ctx, vm); err != nil {
			t.Fatal(err)
		}
	}
	return vm
}

// AddMonitorVM creates a monitoring VM: NIC 0 an ordinary default NIC, NIC 1 a
// capture NIC (no IP, an ordinary br-int port: isolating it is the product's job;
// use AddVM with NICSpec{Capture: true, Isolate: true} to have the harness do it).
func (tp *Topology) AddMonitorVM(t testing.TB, hv *Hypervisor, name string) *VM {
	t.Helper()
	return tp.AddVM(t, hv, name, NICSpec{}, NICSpec{Capture: true})
}

// plug creates the NIC's veth (VM end in the VM's namespace, host end in hv's) and
// adds the host end to hv's br-int.
func (n *NIC) plug(ctx context.Context, hv *Hypervisor) error {
	script := []string{
		fmt.Sprintf("ip link add %s netns %s address %s type veth peer name %s netns %s", n.Name, n.VM.Netns, n.MAC, n.HostPort, hv.Netns),
		fmt.Sprintf("ip -n %s link set %s up", n.VM.Netns, n.Name),
		fmt.Sprintf("ip -n %s link set %s up", hv.Netns, n.HostPort),
	}
	if n.IP != "" {
		script = append(script, fmt.Sprintf("ip -n %s addr add %s/%d dev %s", n.VM.Netns, n.IP, vmNetBits, n.Name))
	}
	if _, err := runCmd(ctx, nil, "sh", "-ec", strings.Join(script, "\n")); err != nil {
		return fmt.Errorf("VM %s NIC %s: %w", n.VM.Name, n.Name, err)
	}
	args := []string{"add-port", hv.Bridge, n.HostPort, "--", "set", "Interface", n.HostPort,
		"external_ids:iface-id=" + n.UUID, "external_ids:attached-mac=" + n.MAC, "external_ids:vm-uuid=" + n.VM.UUID}
	if n.Tag != 0 {
		args = append(args, "--", "set", "Port", n.HostPort, fmt.Sprintf("tag=%d", n.Tag))
	}
	if _, err := hv.Vsctl(ctx, args...); err != nil {
		return fmt.Errorf("VM %s NIC %s: %w", n.VM.Name, n.Name, err)
	}
	return nil
}

// unplug removes the NIC's port from its hypervisor's br-int and deletes its veth.
func (n *NIC) unplug(ctx context.Context) error {
	hv := n.Hypervisor()
	if _, err := hv.Vsctl(ctx, "--if-exists", "del-port", hv.Bridge, n.HostPort); err != nil {
		return err
	}
	_, err := runCmd(ctx, nil, "ip", "-n", n.VM.Netns, "link", "delete", n.Name)
	return err
}

// pinNeighbours adds permanent neighbour entries: in vm for every other VM's IPs,
// and in every other VM for vm's IPs.
func (tp *Topology) pinNeighbours(ctx context.Context, vm *VM) error {
	tp.mu.Lock()
	vms := append([]*VM(nil), tp.vms...)
	tp.mu.Unlock()
	var errs []error
	for _, other := range vms {
		if other == vm {
			continue
		}
		errs = append(errs, pin(ctx, vm, other), pin(ctx, other, vm))
	}
	return errors.Join(errs...)
}

// pin gives in's default NIC permanent neighbour entries for of's IPs.
func pin(ctx context.Context, in, of *VM) error {
	dev := in.DefaultNIC()
	if dev.IP == "" {
		return nil
	}
	var script []string
	for _, n := range of.NICs {
		if n.IP != "" {
			script = append(script, fmt.Sprintf("ip -n %s neigh replace %s lladdr %s dev %s nud permanent", in.Netns, n.IP, n.MAC, dev.Name))
		}
	}
	if len(script) == 0 {
		return nil
	}
	_, err := runCmd(ctx, nil, "sh", "-ec", strings.Join(script, "\n"))
	return err
}

// Migrate moves every NIC of the VM to another hypervisor, the way a live migration
// looks to OVS: the port leaves the old br-int (and its veth is deleted), a new veth
// with the same MAC and IP appears in the same VM namespace, and its host end joins
// the new br-int under the same port name and iface-id. Then each NIC with an IP
// announces itself with a gratuitous ARP (as QEMU does after migration) so the
// learning switches update; captures may see that frame.
func (v *VM) Migrate(t testing.TB, to *Hypervisor) {
	t.Helper()
	ctx := t.Context()
	start := time.Now()
	from := v.Hypervisor()
	for _, n := range v.NICs {
		if err := n.unplug(ctx); err != nil {
			t.Fatal(err)
		}
		v.topo.mu.Lock()
		n.hv = to
		v.topo.mu.Unlock()
		if err := n.plug(ctx, to); err != nil {
			t.Fatal(err)
		}
	}
	// The VM's own neighbour entries went with the deleted device.
	if !v.topo.opts.DynamicARP {
		if err := v.topo.pinNeighbours(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	// Announce the new location as a hypervisor does after a live migration (QEMU's self-announcement: several
	// gratuitous ARPs, 50 ms apart and then further): one frame can meet a switch whose learning table or datapath
	// cache still points at the old place.
	for round, gap := range []time.Duration{0, 50 * time.Millisecond, 150 * time.Millisecond} {
		if round > 0 {
			select {
			case <-ctx.Done():
				t.Fatal(ctx.Err())
			case <-time.After(gap):
			}
		}
		for _, n := range v.NICs {
			if n.IP != "" {
				v.SendFrame(t, n, GratuitousARP(n.MAC, n.IP))
			}
		}
	}
	t.Logf("e2e: VM %s migrated %s -> %s in %v", v.Name, from.Name, to.Name, time.Since(start).Round(time.Millisecond))
}

// Do runs fn inside the VM's network namespace (see inNetns: sockets opened in fn
// stay in the VM).
func (v *VM) Do(fn func() error) error { return inNetns(v.Netns, fn) }

// Exec runs a program inside the VM's network namespace.
func (v *VM) Exec(ctx context.Context, name string, args ...string) (string, error) {
	return runCmd(ctx, nil, "ip", append([]string{"netns", "exec", v.Netns, name}, args...)...)
}

// SendUDPRounds sends n rounds of one UDP datagram of payload zero bytes to each of dst's ports, in that order,
// gap apart (0: back to back), each from a new socket.
func (v *VM) SendUDPRounds(t testing.TB, dst string, ports []string, n, payload int, gap time.Duration) {
	t.Helper()
	err := v.Do(func() error {
		for range n {
			for _, port := range ports {
				c, err := net.Dial("udp", net.JoinHostPort(dst, port))
				if err != nil {
					return err
				}
				_, err = c.Write(make([]byte, payload))
				c.Close()
				if err != nil {
					return err
				}
				if gap > 0 {
					time.Sleep(gap)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("VM %s sending UDP to %s: %v", v.Name, dst, err)
	}
}

// SendFrame sends one raw Ethernet frame out of a NIC of the VM.
func (v *VM) SendFrame(t testing.TB, nic *NIC, frame []byte) {
	t.Helper()
	err := v.Do(func() error {
		ifi, err := net.InterfaceByName(nic.Name)
		if err != nil {
			return fmt.Errorf("VM %s: %w", v.Name, err)
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		if err != nil {
			return fmt.Errorf("VM %s: packet socket: %w", v.Name, err)
		}
		defer unix.Close(fd)
		if err := unix.Sendto(fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6}); err != nil {
			return fmt.Errorf("VM %s: send on %s: %w", v.Name, nic.Name, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// GratuitousARP builds a broadcast ARP request announcing ip at mac.
func GratuitousARP(mac, ip string) []byte {
	hw, err := net.ParseMAC(mac)
	if err != nil {
		panic(fmt.Sprintf("GratuitousARP: bad MAC %q", mac))
	}
	addr := netip.MustParseAddr(ip).As4()
	f := make([]byte, 0, 42)
	f = append(f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	f = append(f, hw...)
	f = binary.BigEndian.AppendUint16(f, 0x0806)
	f = append(f, 0, 1, 8, 0, 6, 4, 0, 1) // Ethernet, IPv4, request
	f = append(f, hw...)
	f = append(f, addr[:]...)
	f = append(f, 0, 0, 0, 0, 0, 0)
	f = append(f, addr[:]...)
	return f
}

// PingResult is what one run of Ping saw.
type PingResult struct {
	Src, Dst string // IPs
	ID       uint16 // ICMP identifier of every echo request of this run
	Sent     int
	Received int
	SentAt   []time.Time     // when each request (seq = index) was sent
	RTTs     []time.Duration // per request; 0 when no reply came
}

// PingN sends n ICMP echo requests from the VM to dst, one at a time, each waiting
// up to timeout for its reply, and reports what came back. Every request of one
// call has the same random ICMP id, so captures can tell runs apart.
func (v *VM) PingN(ctx context.Context, dst string, n int, timeout time.Duration) (PingResult, error) {
	res := PingResult{Src: v.DefaultNIC().IP, Dst: dst, ID: uint16(mrand.Uint32())}
	dstIP, err := netip.ParseAddr(dst)
	if err != nil {
		return res, fmt.Errorf("ping from VM %s: %w", v.Name, err)
	}
	var conn net.PacketConn
	if err := v.Do(func() (err error) {
		conn, err = net.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	}); err != nil {
		return res, fmt.Errorf("ping from VM %s: %w", v.Name, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, 1500)
	for seq := range n {
		msg := echoRequest(res.ID, uint16(seq))
		sent := time.Now()
		res.SentAt = append(res.SentAt, sent)
		res.RTTs = append(res.RTTs, 0)
		if _, err := conn.WriteTo(msg, &net.IPAddr{IP: net.IP(dstIP.AsSlice())}); err != nil {
			return res, fmt.Errorf("ping from VM %s to %s: %w", v.Name, dst, err)
		}
		res.Sent++
		_ = conn.SetReadDeadline(sent.Add(timeout))
		for {
			m, from, err := conn.ReadFrom(buf)
			if err != nil {
				if ctx.Err() != nil {
					return res, ctx.Err()
				}
				break // timeout: no reply for this one
			}
			ipa, _ := from.(*net.IPAddr)
			if m < 8 || buf[0] != 0 || ipa == nil || !ipa.IP.Equal(net.IP(dstIP.AsSlice())) ||
				binary.BigEndian.Uint16(buf[4:]) != res.ID || binary.BigEndian.Uint16(buf[6:]) != uint16(seq) {
				continue
			}
			res.Received++
			res.RTTs[seq] = time.Since(sent)
			break
		}
	}
	return res, nil
}

// Ping sends n echo requests to dst and fails the test unless every one is answered.
func (v *VM) Ping(t testing.TB, dst string, n int) PingResult {
	t.Helper()
	res, err := v.PingN(t.Context(), dst, n, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.Received != n {
		t.Fatalf("ping from VM %s (%s) to %s: %d of %d replies", v.Name, res.Src, dst, res.Received, n)
	}
	return res
}

// echoRequest builds an ICMP echo request with a 32-byte payload.
func echoRequest(id, seq uint16) []byte {
	m := make([]byte, 8, 40)
	m[0] = 8 // echo request
	binary.BigEndian.PutUint16(m[4:], id)
	binary.BigEndian.PutUint16(m[6:], seq)
	m = append(m, []byte("portmirror-e2e-ping-payload-0123")...)
	binary.BigEndian.PutUint16(m[2:], inetChecksum(m))
	return m
}

// inetChecksum is the Internet checksum (RFC 1071).
func inetChecksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
