package topology

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"portmirror/model"
)

const (
	dp1 = "0000000000000001"
	dp2 = "0000000000000002"
)

func baseInventory() Inventory {
	return Inventory{
		Hosts: []model.Host{
			{UUID: "h1", Bridge: "br-int", DatapathID: "1"},
			{UUID: "h2", Bridge: "br-int", DatapathID: "0x2"},
			{UUID: "h3", Bridge: "br-int", OVSDBAddress: "unix:/x"},
		},
		VMs: []model.VmInstance{{UUID: "vm1", HostUUID: "h1"}, {UUID: "vm2", HostUUID: "h1"}},
		Nics: []model.VmNic{
			{UUID: "n1", VmUUID: "vm1", MAC: "02:00:00:00:00:01"},
			{UUID: "n2", VmUUID: "vm2", MAC: "02:00:00:00:00:02", PortName: "tap2"},
		},
	}
}

func ports(dpid string, specs ...string) []model.SwitchPort {
	var out []model.SwitchPort
	for i, s := range specs {
		up := !strings.HasSuffix(s, "!")
		out = append(out, model.SwitchPort{DatapathID: dpid, PortNo: uint32(i + 1), Name: strings.TrimSuffix(s, "!"), Up: up})
	}
	return out
}

func TestBindings(t *testing.T) {
	now := time.Unix(1700000000, 0)
	cases := []struct {
		name       string
		setup      func(v *View)
		nic        string
		wantBound  bool
		wantDP     string
		wantPort   uint32
		wantReason []string // substrings of the reason when unbound
	}{
		{
			name: "iface-id binds on an OVSDB-managed host",
			setup: func(v *View) {
				v.SetHostOVSDB("h1", dp1, []Interface{{Name: "vnet7", OFPort: 3, IfaceID: "n1", AttachedMAC: "02:00:00:00:00:01"}})
				v.SwitchConnected(dp1, "127.0.0.1:1", now, ports(dp1, "a", "b", "vnet7"))
			},
			nic: "n1", wantBound: true, wantDP: dp1, wantPort: 3,
		},
		{
			name: "iface-id without attached-mac binds",
			setup: func(v *View) {
				v.SetHostOVSDB("h1", dp1, []Interface{{Name: "vnet7", IfaceID: "n1"}})
				v.SwitchConnected(dp1, "", now, ports(dp1, "vnet7"))
			},
			nic: "n1", wantBound: true, wantDP: dp1, wantPort: 1,
		},
		{
			name: "attached-mac upper case still matches",
			setup: func(v *View) {
				v.SetHostOVSDB("h1", dp1, []Interface{{Name: "vnet7", IfaceID: "n1", AttachedMAC: "02:00:00:00:00:01"}})
				v.SwitchConnected(dp1, "", now, ports(dp1, "vnet7"))
			},
			nic: "n1", wantBound: true, wantDP: dp1, wantPort: 1,
		},
		{
			name: "attached-mac mismatch is refused",
			setup: func(v *View) {
				v.SetHostOVSDB("h1", dp1, []Interface{{Name: "vnet7", IfaceID: "n1", AttachedMAC: "02:00:00:00:00:99"}})
				v.SwitchConnected(dp1, "", now, ports(dp1, "vnet7"))
			},
			nic: "n1", wantDP: dp1, wantReason: []string{"NIC n1", "vnet7", "attached-mac 02:00:00:00:00:99", "02:00:00:00:00:01"},
		},
		{
			name:  "port name binds",
			setup: func(v *View) { v.SwitchConnected(dp1, "", now, ports(dp1, "x", "tap2")) },
			nic:   "n2", wantBound: true, wantDP: dp1, wantPort: 2,
		},
		{
			name: "iface-id wins over port name",
			setup: func(v *View) {
				v.SetHostOVSDB("h1", dp1, []Interface{{Name: "vnet9", IfaceID: "n2"}})
				v.SwitchConnected(dp1, "", now, ports(dp1, "tap2", "vnet9"))
			},
			nic: "n2", wantBound: true, wantDP: dp1, wantPort: 2,
		},
		{
			name:  "port down",
			setup: func(v *View) { v.SwitchConnected(dp1, "", now, ports(dp1, "tap2!")) },
			nic:   "n2", wantDP: dp1, wantReason: []string{"NIC n2", "tap2", "is down"},
		},
		{
			name:  "port absent",
			setup: func(v *View) { v.SwitchConnected(dp1, "", now, ports(dp1, "other")) },
			nic:   "n2", wantDP: dp1, wantReason: []string{"NIC n2", "port tap2 is absent", dp1},
		},
		{
			name:  "host not connected",
			setup: func(v *View) {},
			nic:   "n2", wantDP: dp1, wantReason: []string{"NIC n2", "host h1", "never connected"},
		},
		{
			// fail_mode=secure: the bridge keeps forwarding while the controller is away, so the NIC stays bound
			// to its last known port and other bridges' flows towards it stay in place
			name: "switch disconnected keeps its last known ports",
			setup: func(v *View) {
				v.SwitchConnected(dp1, "", now, ports(dp1, "x", "tap2"))
				v.SwitchDisconnected(dp1)
			},
			nic: "n2", wantBound: true, wantDP: dp1, wantPort: 2,
		},
		{
			name:  "no iface-id and no port name",
			setup: func(v *View) { v.SwitchConnected(dp1, "", now, ports(dp1, "vnet7")) },
			nic:   "n1", wantDP: dp1, wantReason: []string{"NIC n1", "no portName"},
		},
		{
			name: "port deleted by port-status",
			setup: func(v *View) {
				v.SwitchConnected(dp1, "", now, ports(dp1, "tap2"))
				v.PortStatus(dp1, model.SwitchPort{PortNo: 1, Name: "tap2"}, true)
			},
			nic: "n2", wantDP: dp1, wantReason: []string{"absent"},
		},
		{
			name: "port comes up by port-status",
			setup: func(v *View) {
				v.SwitchConnected(dp1, "", now, ports(dp1, "tap2!"))
				v.PortStatus(dp1, model.SwitchPort{PortNo: 1, Name: "tap2", Up: true}, false)
			},
			nic: "n2", wantBound: true, wantDP: dp1, wantPort: 1,
		},
		{
			name: "OVSDB datapath id overrides registration",
			setup: func(v *View) {
				v.SetHostOVSDB("h1", "00000000000000aa", []Interface{{Name: "vnet7", IfaceID: "n1"}})
				v.SwitchConnected(dp1, "", now, ports(dp1, "vnet7"))
				v.SwitchConnected("aa", "", now, ports("00000000000000aa", "x", "vnet7"))
			},
			nic: "n1", wantBound: true, wantDP: "00000000000000aa", wantPort: 2,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := NewView()
			v.SetInventory(baseInventory())
			tc.setup(v)
			b, ok := v.Binding(tc.nic)
			if !ok {
				t.Fatalf("no binding for %s", tc.nic)
			}
			if b.Bound != tc.wantBound || b.DatapathID != tc.wantDP || (tc.wantBound && b.PortNo != tc.wantPort) {
				t.Fatalf("binding = %+v, want bound=%v dp=%s port=%d", b, tc.wantBound, tc.wantDP, tc.wantPort)
			}
			for _, s := range tc.wantReason {
				if !strings.Contains(b.Reason, s) {
					t.Errorf("reason %q does not mention %q", b.Reason, s)
				}
			}
			if tc.wantBound {
				p := v.NicPort(tc.nic)
				if p == nil || p.DatapathID != tc.wantDP || p.PortNo != tc.wantPort || !p.Up {
					t.Errorf("NicPort = %+v", p)
				}
			} else if p := v.NicPort(tc.nic); p != nil {
				t.Errorf("NicPort of unbound NIC = %+v", p)
			}
		})
	}
}

func dirtyDPs(d Dirty) []string {
	return slices.Sorted(maps.Keys(d.Datapaths))
}

func TestMigrationMovesBindingAndMarksBothBridges(t *testing.T) {
	v := NewView()
	inv := baseInventory()
	v.SetInventory(inv)
	v.SwitchConnected(dp1, "", time.Now(), ports(dp1, "tap2"))
	v.SwitchConnected(dp2, "", time.Now(), ports(dp2, "z"))
	if b, _ := v.Binding("n2"); !b.Bound || b.DatapathID != dp1 {
		t.Fatalf("before migration: %+v", b)
	}
	v.TakeDirty()

	// The VM moves to h2; its port is not on h2's bridge yet.
	inv.VMs[1].HostUUID = "h2"
	v.SetInventory(inv)
	b, _ := v.Binding("n2")
	if b.Bound || b.DatapathID != dp2 || !strings.Contains(b.Reason, "absent") {
		t.Fatalf("after migration, before the port appears: %+v", b)
	}
	d := v.TakeDirty()
	if got := dirtyDPs(d); !slices.Equal(got, []string{dp1}) {
		t.Errorf("dirty after the VM left h1 = %v, want [%s]", got, dp1)
	}
	if _, ok := d.Nics["n2"]; !ok {
		t.Errorf("n2 not in dirty NICs %v", d.Nics)
	}

	v.PortStatus(dp2, model.SwitchPort{PortNo: 9, Name: "tap2", Up: true}, false)
	b, _ = v.Binding("n2")
	if !b.Bound || b.DatapathID != dp2 || b.PortNo != 9 {
		t.Fatalf("after the port appeared on h2: %+v", b)
	}
	if got := dirtyDPs(v.TakeDirty()); !slices.Equal(got, []string{dp2}) {
		t.Errorf("dirty = %v, want [%s]", got, dp2)
	}

	// A migration where the port is already there moves the binding in one step and marks both bridges.
	inv.VMs[1].HostUUID = "h1"
	v.SetInventory(inv)
	b, _ = v.Binding("n2")
	if !b.Bound || b.DatapathID != dp1 || b.PortNo != 1 {
		t.Fatalf("back on h1: %+v", b)
	}
	if got := dirtyDPs(v.TakeDirty()); !slices.Equal(got, []string{dp1, dp2}) {
		t.Errorf("dirty = %v, want both bridges", got)
	}
}

func TestDirtyCoalescing(t *testing.T) {
	v := NewView()
	v.SetInventory(baseInventory())
	<-v.Changed() // the inventory made NICs dirty
	v.TakeDirty()
	select {
	case <-v.Changed():
		t.Fatal("notification with nothing dirty")
	default:
	}
	// A burst of events: one notification, one dirty set holding all of them.
	v.SwitchConnected(dp1, "", time.Now(), ports(dp1, "tap2"))
	v.SwitchConnected(dp2, "", time.Now(), nil)
	for i := range 50 {
		v.PortStatus(dp2, model.SwitchPort{PortNo: uint32(i + 1), Name: fmt.Sprint("p", i), Up: true}, false)
	}
	select {
	case <-v.Changed():
	default:
		t.Fatal("no notification after a burst")
	}
	select {
	case <-v.Changed():
		t.Fatal("a second notification for one burst")
	default:
	}
	d := v.TakeDirty()
	if got := dirtyDPs(d); !slices.Equal(got, []string{dp1, dp2}) {
		t.Errorf("dirty = %v", got)
	}
	if _, ok := d.Nics["n2"]; !ok {
		t.Errorf("n2 bound, but not in dirty NICs %v", d.Nics)
	}
	if d := v.TakeDirty(); !d.Empty() {
		t.Errorf("second take not empty: %+v", d)
	}
	// An event that changes nothing marks nothing.
	v.SetInventory(baseInventory())
	if d := v.TakeDirty(); !d.Empty() {
		t.Errorf("identical inventory made things dirty: %+v", d)
	}
}

func TestSwitchesAndHosts(t *testing.T) {
	v := NewView()
	v.SetInventory(baseInventory())
	at := time.Unix(1700000000, 0).UTC()
	v.SwitchConnected("00:00:00:00:00:00:00:02", "10.0.0.2:4444", at, ports(dp2, "b", "a!"))
	v.SwitchConnected("ff", "10.0.0.9:1", at, nil)
	if !v.HostConnected("h2") || v.HostConnected("h1") || v.HostConnected("h3") {
		t.Errorf("HostConnected wrong: h1=%v h2=%v h3=%v", v.HostConnected("h1"), v.HostConnected("h2"), v.HostConnected("h3"))
	}
	if got := v.HostOfDatapath(dp2); got != "h2" {
		t.Errorf("HostOfDatapath(dp2) = %q", got)
	}
	sws := v.Switches()
	if len(sws) != 2 || sws[0].DatapathID != dp2 || sws[0].HostUUID != "h2" || sws[0].RemoteAddress != "10.0.0.2:4444" ||
		!sws[0].ConnectedAt.Equal(at) || len(sws[0].Ports) != 2 || sws[0].Ports[1].Up || sws[1].HostUUID != "" {
		t.Errorf("Switches = %+v", sws)
	}
	// h3 learns its datapath id through OVSDB: the unknown switch becomes h3's.
	v.SetHostOVSDB("h3", "ff", nil)
	if got := v.HostOfDatapath("00000000000000ff"); got != "h3" || !v.HostConnected("h3") || v.HostDatapathID("h3") != "00000000000000ff" {
		t.Errorf("after OVSDB: host of ff = %q, connected=%v", got, v.HostConnected("h3"))
	}
	v.SwitchDisconnected(dp2)
	if v.HostConnected("h2") || !slices.ContainsFunc(v.Switches(), func(s model.Switch) bool { return s.DatapathID == dp2 && !s.Connected }) {
		t.Error("disconnected switch should be listed as not connected")
	}
}

type fakeSource struct{ inv Inventory }

func (f fakeSource) Hosts(context.Context) ([]model.Host, error)             { return f.inv.Hosts, nil }
func (f fakeSource) VmInstances(context.Context) ([]model.VmInstance, error) { return f.inv.VMs, nil }
func (f fakeSource) VmNics(_ context.Context, vm string) ([]model.VmNic, error) {
	var out []model.VmNic
	for _, n := range f.inv.Nics {
		if n.VmUUID == vm {
			out = append(out, n)
		}
	}
	return out, nil
}

func TestLoadInventory(t *testing.T) {
	inv, err := LoadInventory(context.Background(), fakeSource{baseInventory()})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Hosts) != 3 || len(inv.VMs) != 2 || len(inv.Nics) != 2 {
		t.Fatalf("loaded %+v", inv)
	}
}

// bigInventory is hosts*vmsPerHost VMs with one NIC each, bound by iface-id.
func bigInventory(hosts, nicsPerHost int) (Inventory, map[string][]Interface, map[string][]model.SwitchPort) {
	var inv Inventory
	ifaces := map[string][]Interface{}
	swPorts := map[string][]model.SwitchPort{}
	for h := range hosts {
		hid := fmt.Sprintf("host-%d", h)
		dp := fmt.Sprintf("%016x", h+1)
		inv.Hosts = append(inv.Hosts, model.Host{UUID: hid, Bridge: "br-int", DatapathID: dp})
		for n := range nicsPerHost {
			vm := fmt.Sprintf("vm-%d-%d", h, n)
			nic := fmt.Sprintf("nic-%d-%d", h, n)
			mac := fmt.Sprintf("02:00:00:%02x:%02x:%02x", h%256, n/256, n%256)
			inv.VMs = append(inv.VMs, model.VmInstance{UUID: vm, HostUUID: hid})
			inv.Nics = append(inv.Nics, model.VmNic{UUID: nic, VmUUID: vm, MAC: mac})
			name := fmt.Sprintf("tap%d", n)
			ifaces[hid] = append(ifaces[hid], Interface{Name: name, OFPort: n + 1, IfaceID: nic, AttachedMAC: mac})
			swPorts[dp] = append(swPorts[dp], model.SwitchPort{PortNo: uint32(n + 1), Name: name, Up: true})
		}
	}
	return inv, ifaces, swPorts
}

// boundView builds a view of inv with every host's OVSDB interfaces and every switch connected.
func boundView(inv Inventory, ifaces map[string][]Interface, swPorts map[string][]model.SwitchPort) *View {
	v := NewView()
	v.SetInventory(inv)
	for h, i := range ifaces {
		v.SetHostOVSDB(h, v.HostDatapathID(h), i)
	}
	for dp, p := range swPorts {
		v.SwitchConnected(dp, "", time.Now(), p)
	}
	return v
}

func TestHundredThousandNics(t *testing.T) {
	if testing.Short() {
		t.Skip("large")
	}
	inv, ifaces, swPorts := bigInventory(200, 500)
	start := time.Now()
	v := boundView(inv, ifaces, swPorts)
	build := time.Since(start)
	start = time.Now()
	v.SetInventory(inv)
	resync := time.Since(start)
	// Migrate 1% of the VMs, then resync: only the affected bridges are dirty.
	v.TakeDirty()
	for i := 0; i < len(inv.VMs); i += 100 {
		inv.VMs[i].HostUUID = "host-0"
	}
	start = time.Now()
	v.SetInventory(inv)
	migrate := time.Since(start)
	d := v.TakeDirty()
	t.Logf("100k NICs: build+bind %v, identical resync %v, 1%% migrated resync %v; dirty bridges %d, dirty NICs %d",
		build, resync, migrate, len(d.Datapaths), len(d.Nics))
	// VMs 0, 100, ..., 400 were on host-0 already; the 995 others moved, and their interfaces are not on
	// host-0's bridge, so they are unbound now.
	if len(d.Nics) != 995 || len(d.Datapaths) != 199 {
		t.Errorf("dirty NICs = %d, bridges %d; want 995 and 199", len(d.Nics), len(d.Datapaths))
	}
	bound := 0
	for _, n := range inv.Nics {
		if b, _ := v.Binding(n.UUID); b.Bound {
			bound++
		}
	}
	if bound != 100000-995 {
		t.Errorf("bound = %d, want %d", bound, 100000-995)
	}
}

func BenchmarkSetInventory100k(b *testing.B) {
	inv, ifaces, swPorts := bigInventory(200, 500)
	v := boundView(inv, ifaces, swPorts)
	b.ResetTimer()
	for b.Loop() {
		v.SetInventory(inv)
	}
}

func BenchmarkPortStatus(b *testing.B) {
	inv, ifaces, swPorts := bigInventory(200, 500)
	v := boundView(inv, ifaces, swPorts)
	b.ResetTimer()
	up := false
	for b.Loop() {
		v.PortStatus("0000000000000001", model.SwitchPort{PortNo: 1, Name: "tap0", Up: up}, false)
		up = !up
	}
}

// TestConcurrentAgainstOracle feeds random events from several goroutines while readers read, then checks that
// the final bindings equal a fresh view built from the final state (the oracle).
func TestConcurrentAgainstOracle(t *testing.T) {
	inv, ifaces, swPorts := bigInventory(4, 20)
	v := NewView()
	v.SetInventory(inv)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 4 {
		dp := fmt.Sprintf("%016x", w+1)
		host := fmt.Sprintf("host-%d", w)
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for range 300 {
				switch r.IntN(4) {
				case 0:
					v.SwitchConnected(dp, "", time.Now(), swPorts[dp])
				case 1:
					p := swPorts[dp][r.IntN(len(swPorts[dp]))]
					p.Up = r.IntN(2) == 0
					v.PortStatus(dp, p, false)
				case 2:
					v.SetHostOVSDB(host, dp, ifaces[host])
				case 3:
					v.SwitchDisconnected(dp)
				}
			}
			// Final state of each switch: connected with every port up.
			v.SwitchConnected(dp, "", time.Now(), swPorts[dp])
			v.SetHostOVSDB(host, dp, ifaces[host])
		})
	}
	var readers sync.WaitGroup
	readers.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-v.Changed():
				v.TakeDirty()
			default:
				_ = v.Switches()
				_ = v.NicPort("nic-1-1")
				_ = v.BindingsOnDatapath(dp1)
			}
		}
	})
	wg.Wait()
	close(stop)
	readers.Wait()

	oracle := NewView()
	oracle.SetInventory(inv)
	for h, i := range ifaces {
		oracle.SetHostOVSDB(h, oracle.HostDatapathID(h), i)
	}
	for dp, p := range swPorts {
		oracle.SwitchConnected(dp, "", time.Now(), p)
	}
	for _, n := range inv.Nics {
		got, _ := v.Binding(n.UUID)
		want, _ := oracle.Binding(n.UUID)
		if got != want {
			t.Errorf("%s: got %+v, want %+v", n.UUID, got, want)
		}
		if !got.Bound {
			t.Errorf("%s not bound at the end: %s", n.UUID, got.Reason)
		}
	}
}
