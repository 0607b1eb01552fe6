package fabric

import (
	"bufio"
	"context"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"portmirror/flows"
	"portmirror/ofwire"
	"portmirror/simulator/dataplane"
	"portmirror/simulator/ofsim"
)

// TestFlowsFromTheWireForwardAcrossHosts: a minimal controller programs two simulated bridges over TCP with
// the product's flow shapes (encoded by ofwire); a frame injected at the source NIC reaches the monitor NIC on
// the other host through the tunnel fabric.
func TestFlowsFromTheWireForwardAcrossHosts(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	perDPID := map[uint64][]flows.Flow{
		1: {
			{Priority: 0, Cookie: flows.CookieOurs, Actions: []flows.Action{{Type: flows.ActNormal}}},
			{Priority: 100, Cookie: flows.CookieOurs | 1, Match: flows.Match{InPort: 1}, Actions: []flows.Action{{Type: flows.ActNormal},
				{Type: flows.ActSetTunID, Value: 42}, {Type: flows.ActSetTunDst, IP: netip.MustParseAddr("198.18.0.2")}, {Type: flows.ActOutput, Port: 100}}},
		},
		2: {
			{Priority: 0, Cookie: flows.CookieOurs, Actions: []flows.Action{{Type: flows.ActNormal}}},
			{Priority: 100, Cookie: flows.CookieOurs | 2, Match: flows.Match{InPort: 100, TunID: 42, HasTunID: true}, Actions: []flows.Action{{Type: flows.ActOutput, Port: 2}}},
			{Priority: 90, Cookie: flows.CookieOurs | 3, Match: flows.Match{InPort: 100}},
		},
	}
	var wg sync.WaitGroup
	done := make(chan uint64, 2)
	var conns []net.Conn
	var mu sync.Mutex
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, nc)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := bufio.NewReader(nc)
				next := func(want ofwire.Type) (ofwire.Message, bool) {
					for {
						m, err := ofwire.ReadMessage(r, 0)
						if err != nil {
							return m, false
						}
						if m.Type == want {
							return m, true
						}
						if m.Type == ofwire.TypeEchoRequest {
							// answer the switch's keepalive, or a slow run makes it reconnect
							if _, err := nc.Write(ofwire.AppendEcho(nil, ofwire.TypeEchoReply, m.Xid, m.Body)); err != nil {
								return m, false
							}
						}
						if m.Type == ofwire.TypeError {
							t.Errorf("switch refused a flow: %x", m.Body)
						}
					}
				}
				if _, ok := next(ofwire.TypeHello); !ok {
					return
				}
				out := ofwire.AppendHello(nil, 1)
				out = ofwire.AppendEmpty(out, ofwire.TypeFeaturesRequest, 2)
				if _, err := nc.Write(out); err != nil {
					return
				}
				m, ok := next(ofwire.TypeFeaturesReply)
				if !ok {
					return
				}
				f, _ := ofwire.DecodeFeaturesReply(m.Body)
				out = nil
				for i, fl := range perDPID[f.DatapathID] {
					if out, err = ofwire.AppendFlowMod(out, uint32(10+i), ofwire.FlowAdd, fl); err != nil {
						t.Error(err)
						return
					}
				}
				out = ofwire.AppendEmpty(out, ofwire.TypeBarrierRequest, 99)
				if _, err := nc.Write(out); err != nil {
					return
				}
				if _, ok := next(ofwire.TypeBarrierReply); ok {
					select { // a reconnect programs the switch again; only the first confirmation is awaited
					case done <- f.DatapathID:
					default:
					}
				}
				next(255)
			}()
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	var swWG sync.WaitGroup
	defer func() {
		cancel()
		swWG.Wait()
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}()

	fab := New()
	for i, ip := range []string{"198.18.0.1", "198.18.0.2"} {
		name := []string{"h1", "h2"}[i]
		br := dataplane.NewBridge("br-int", dataplane.MAC{2, 0xff, 0, 0, 0, byte(i)})
		if _, err := fab.AddHost(name, br); err != nil {
			t.Fatal(err)
		}
		sw := ofsim.New(ofsim.Config{Controller: ln.Addr().String(), DatapathID: uint64(i + 1), Bridge: br})
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
	for range 2 {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("switches not programmed within 10s")
		}
	}
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
