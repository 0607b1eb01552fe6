package fabric

import (
	"bytes"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"portmirror/simulator/dataplane"
)

var (
	macA = dataplane.MAC{2, 0, 0, 0, 0, 0xa}
	macB = dataplane.MAC{2, 0, 0, 0, 0, 0xb}
	ipA  = netip.MustParseAddr("10.0.0.1")
	ipB  = netip.MustParseAddr("10.0.0.2")
)

func host(t *testing.T, f *Fabric, name, typ, local string, flows ...string) *Host {
	t.Helper()
	br := dataplane.NewBridge("br-int", dataplane.MAC{2, 0xff, 0, 0, 0, byte(len(name))})
	for i, n := range []string{"vnet1", "vnet2"} {
		if err := br.AddPort(dataplane.Port{No: uint32(i + 1), Name: n, Up: true}); err != nil {
			t.Fatal(err)
		}
	}
	if err := br.AddPort(dataplane.Port{No: 100, Name: "pm-tun", Up: true, Tunnel: &dataplane.TunnelConfig{Type: typ, LocalIP: netip.MustParseAddr(local)}}); err != nil {
		t.Fatal(err)
	}
	for _, s := range flows {
		fl, err := dataplane.ParseFlow(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := br.AddFlow(fl, false); err != nil {
			t.Fatal(err)
		}
	}
	h, err := f.AddHost(name, br)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestMirrorCopyCrossesTheFabric(t *testing.T) {
	for _, tc := range []struct {
		typ     string
		key     string
		arrives string
	}{
		{"gre", "0x12345678", "0x12345678"},
		{"vxlan", "0x1234567", "0x234567"}, // a VXLAN VNI is 24 bits
	} {
		t.Run(tc.typ, func(t *testing.T) {
			f := New()
			host(t, f, "h1", tc.typ, "198.18.0.1",
				"priority=100,in_port=1,actions=NORMAL,set_field:"+tc.key+"->tun_id,set_field:198.18.0.2->tun_dst,output:100",
				"priority=0,actions=NORMAL")
			host(t, f, "h2", tc.typ, "198.18.0.2",
				"priority=100,in_port=100,tun_id="+tc.arrives+",tun_src=198.18.0.1,actions=output:1",
				"priority=90,in_port=100,actions=drop", "priority=0,actions=NORMAL")

			arp := dataplane.BuildARPRequest(macA, ipA, ipB)
			d, err := f.Inject("h1", 1, arp)
			if err != nil {
				t.Fatal(err)
			}
			want := []string{"h1:br-int", "h1:vnet2", "h2:vnet1"}
			if got := d.At(); !slices.Equal(got, want) {
				t.Fatalf("copies at %q, want %q\n%s", got, want, d.TraceString())
			}
			var tun, mon *Copy
			for i := range d.Copies {
				c := &d.Copies[i]
				switch {
				case c.Tunnel.IsSet():
					tun = c
				case c.Host == "h2":
					mon = c
				}
			}
			if tun == nil || tun.Tunnel.Dst != netip.MustParseAddr("198.18.0.2") || tun.Tunnel.Src != netip.MustParseAddr("198.18.0.1") {
				t.Fatalf("tunnel copy %+v", tun)
			}
			if !bytes.Equal(mon.Frame, arp) {
				t.Fatalf("the monitor got different bytes than were sent")
			}
			if !strings.Contains(d.TraceString(), "to host h2 port 100") {
				t.Fatalf("trace does not show the tunnel hop:\n%s", d.TraceString())
			}
		})
	}
}

func TestUnownedEndpointIsDroppedAndCounted(t *testing.T) {
	f := New()
	host(t, f, "h1", "gre", "198.18.0.1", "priority=0,actions=set_field:9->tun_id,set_field:198.18.0.99->tun_dst,output:100")
	host(t, f, "h2", "gre", "198.18.0.2")
	d, err := f.Inject("h1", 2, dataplane.BuildICMPEcho(macB, macA, ipA, ipB, 1, 1))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.At()) != 0 || f.UnownedDrops() != 1 {
		t.Fatalf("copies %q, unowned drops %d; want none and 1", d.At(), f.UnownedDrops())
	}
	// A VXLAN packet to a GRE endpoint's IP is not delivered either: the endpoint is per encapsulation.
	if _, err := f.AddHost("h1", dataplane.NewBridge("x", dataplane.MAC{})); err == nil {
		t.Fatal("a second host named h1 was accepted")
	}
	if err := f.AddTunnelPort("h2", dataplane.Port{No: 101, Name: "dup", Up: true, Tunnel: &dataplane.TunnelConfig{Type: "gre", LocalIP: netip.MustParseAddr("198.18.0.1")}}); err == nil {
		t.Fatal("h2 took over h1's endpoint")
	}
}

func TestLearningAcrossInjections(t *testing.T) {
	f := New()
	h := host(t, f, "h1", "gre", "198.18.0.1", "priority=0,actions=NORMAL")
	h.AttachNIC(2, macB)
	if _, err := f.Inject("h1", 2, dataplane.BuildARPRequest(macB, ipB, ipA)); err != nil {
		t.Fatal(err)
	}
	d, err := f.Inject("h1", 1, dataplane.BuildICMPEcho(macB, macA, ipA, ipB, 1, 1))
	if err != nil {
		t.Fatal(err)
	}
	if got := d.At(); !slices.Equal(got, []string{"h1:vnet2"}) {
		t.Fatalf("unicast to a learned MAC went to %q\n%s", got, d.TraceString())
	}
	if _, err := f.Inject("h9", 1, nil); err == nil {
		t.Fatal("inject at an unknown host succeeded")
	}
	if _, err := f.Inject("h1", 1, []byte{1, 2, 3}); err == nil {
		t.Fatal("a 3-byte frame was accepted")
	}
}
