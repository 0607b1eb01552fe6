package fabric

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"portmirror/flows"
	"portmirror/ofwire"
	"portmirror/simulator/dataplane"
	"portmirror/simulator/internal/testctl"
	"portmirror/simulator/ofsim"
)

// TestFlowsFromTheWireForwardAcrossHosts: a minimal controller programs two simulated bridges over TCP with
// the product's flow shapes (encoded by ofwire); a frame injected at the source NIC reaches the monitor NIC on
// the other host through the tunnel fabric.
func TestFlowsFromTheWireForwardAcrossHosts(t *testing.T) {
	perDPID := map[uint64][]flows.Flow{
		1: {
			{Priority: 0, Cookie: flows.CookieOurs, Actions: []flows.Action{{Type: flows.ActNormal}}},
			{Priority: 100, Cookie: flows.CookieOurs | 1, Match: flows.Match{InPort: 1}, Actions: []flows.Action{{Type: flows.ActNormal},
				{Type: flows.ActSetTunID, Value: 42}, {Type: flows.ActSetTunDst, IP: flows.MustIPv4("198.18.0.2")}, {Type: flows.ActOutput, Port: 100}}},
		},
		2: {
			{Priority: 0, Cookie: flows.CookieOurs, Actions: []flows.Action{{Type: flows.ActNormal}}},
			{Priority: 100, Cookie: flows.CookieOurs | 2, Match: flows.Match{InPort: 100, TunID: 42, HasTunID: true}, Actions: []flows.Action{{Type: flows.ActOutput, Port: 2}}},
			{Priority: 90, Cookie: flows.CookieOurs | 3, Match: flows.Match{InPort: 100}},
		},
	}
	ctl := testctl.Start(t, func(dpid uint64) []byte {
		var out []byte
		for i, fl := range perDPID[dpid] {
			var err error
			if out, err = ofwire.AppendFlowMod(out, uint32(10+i), ofwire.FlowAdd, fl); err != nil {
				t.Error(err)
			}
		}
		return out
	})
	ctx, cancel := context.WithCancel(context.Background())
	var swWG sync.WaitGroup
	defer func() {
		cancel()
		swWG.Wait()
	}()

	fab := New()
	for i, ip := range []string{"198.18.0.1", "198.18.0.2"} {
		name := []string{"h1", "h2"}[i]
		br := dataplane.NewBridge("br-int", dataplane.MAC{2, 0xff, 0, 0, 0, byte(i)})
		if _, err := fab.AddHost(name, br); err != nil {
			t.Fatal(err)
		}
		sw := ofsim.New(ofsim.Config{Controller: ctl.Addr(), DatapathID: uint64(i + 1), Bridge: br})
		for no, pn := range []string{"vnet1", "vnet2"} {
			if err := sw.AddPort(dataplane.Port{No: uint32(no + 1), Name: pn, Up: true}); err != nil {
				t.Fatal(err)
			}
		}
		if err := sw.AddPort(dataplane.Port{No: 100, Name: "pm-gre", Up: true, Tunnel: &dataplane.TunnelConfig{Type: "gre", LocalIP: netip.MustParseAddr(ip)}}); err != nil {
			t.Fatal(err)
		}
		if err := fab.RegisterTunnelPort(name, 100); err != nil {
			t.Fatal(err)
		}
		swWG.Add(1)
		go func() { defer swWG.Done(); _ = sw.Run(ctx) }()
	}
	ctl.WaitProgrammed(2, 10*time.Second)
	d, err := fab.Inject("h1", 1, dataplane.BuildICMPEcho(macB, macA, ipA, ipB, 7, 1))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"h1:br-int", "h1:vnet2", "h2:vnet2"}
	if got := d.At(); !slices.Equal(got, want) {
		t.Fatalf("copies at %q, want %q\n%s", got, want, d.TraceString())
	}
	// A frame from the other NIC is not mirrored.
	d, err = fab.Inject("h1", 2, dataplane.BuildICMPEcho(macA, macB, ipB, ipA, 7, 1))
	if err != nil {
		t.Fatal(err)
	}
	if got := d.At(); !slices.Equal(got, []string{"h1:vnet1"}) {
		t.Fatalf("reply copies at %q, want only h1:vnet1 (A was learned on vnet1)\n%s", got, d.TraceString())
	}
}
