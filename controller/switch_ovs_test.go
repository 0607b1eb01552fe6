package controller

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"portmirror/flows"
	"portmirror/internal/ovstest"
	"portmirror/model"
	"portmirror/ofwire"
)

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

// addBridge creates a secure-mode OpenFlow 1.3 bridge on the dummy datapath, controlled by addr.
func addBridge(o *ovstest.T, name, dpid string, addr net.Addr) {
	o.Vsctl("add-br", name, "--", "set", "bridge", name, "datapath_type=dummy", "protocols=OpenFlow13",
		"fail_mode=secure", "other-config:datapath-id="+dpid, "--", "set-controller", name, "tcp:"+addr.String())
}

// ovsServer starts a controller server and an OVS bridge connected to it, and returns the switch.
func ovsServer(t *testing.T, dpid string) (*testServer, *ovstest.T, *Switch) {
	t.Helper()
	s := startServer(t, Config{})
	o := ovstest.Must(t, ovstest.Options{})
	addBridge(o, "br0", dpid, s.Addr())
	var sw *Switch
	waitFor(t, "OVS to connect", 15*time.Second, func() bool { sw = s.Switch(dpid); return sw != nil })
	return s, o, sw
}

func TestOVSHandshakePortDescAndPortStatus(t *testing.T) {
	s, o, sw := ovsServer(t, "00000000000000a1")
	ports := sw.Ports()
	if len(ports) != 1 || ports[0] != (model.SwitchPort{DatapathID: "00000000000000a1", PortNo: ofwire.PortLocal, Name: "br0", Up: ports[0].Up}) {
		t.Fatalf("ports %+v", ports)
	}
	o.Vsctl("add-port", "br0", "vm1", "--", "set", "interface", "vm1", "type=internal", "ofport_request=5")
	waitFor(t, "port-status ADD of vm1", 10*time.Second, func() bool {
		for _, e := range s.rec.snapshot() {
			if e.kind == "port" && e.reason == PortAdded && e.port.Name == "vm1" && e.port.PortNo == 5 && e.sw == sw {
				return true
			}
		}
		return false
	})
	if !slices.ContainsFunc(sw.Ports(), func(p model.SwitchPort) bool { return p.Name == "vm1" && p.PortNo == 5 }) {
		t.Fatalf("ports after add: %+v", sw.Ports())
	}
	o.Vsctl("del-port", "br0", "vm1")
	waitFor(t, "vm1 removed", 10*time.Second, func() bool {
		return !slices.ContainsFunc(sw.Ports(), func(p model.SwitchPort) bool { return p.Name == "vm1" })
	})
}

// ovsValidFlow returns a random flow OVS accepts and reports back unchanged.
func ovsValidFlow(r *rand.Rand, i int) flows.Flow {
	f := flows.Flow{Table: uint8(r.IntN(4)), Priority: uint16(i + 1), Cookie: flows.CookieOurs | uint64(i)}
	if r.IntN(2) == 0 {
		f.Match.InPort = 1 + r.Uint32N(1000)
	}
	switch r.IntN(3) {
	case 1:
		f.Match.EthDstMask = flows.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
		f.Match.EthDst = flows.MAC{2, 0, 0, byte(i >> 16), byte(i >> 8), byte(i)}
	case 2:
		f.Match.EthDstMask = flows.MAC{1}
		f.Match.EthDst = flows.MAC{byte(r.IntN(2))}
	}
	if r.IntN(2) == 0 {
		f.Match.HasTunID, f.Match.TunID = true, uint64(r.Uint32())
	}
	for range r.IntN(5) {
		switch r.IntN(5) {
		case 4:
			f.Actions = append(f.Actions, randomErspanSets(r)...)
		case 0:
			f.Actions = append(f.Actions, flows.Action{Type: flows.ActNormal})
		case 1:
			f.Actions = append(f.Actions, flows.Action{Type: flows.ActOutput, Port: 1 + r.Uint32N(1000)})
		case 2:
			f.Actions = append(f.Actions, flows.Action{Type: flows.ActSetTunID, Value: uint64(r.Uint32())})
		case 3:
			f.Actions = append(f.Actions, flows.Action{Type: flows.ActSetTunDst, IP: flows.IPv4{198, 18, byte(r.IntN(256)), byte(1 + r.IntN(254))}})
		}
	}
	return f
}

func sortFlows(fl []flows.Flow) {
	slices.SortFunc(fl, func(a, b flows.Flow) int { return cmp.Compare(a.Cookie, b.Cookie) })
}

func TestOVSFlowsInstalledAndReadBack(t *testing.T) {
	_, o, sw := ovsServer(t, "00000000000000a2")
	ctx := context.Background()
	// A flow of someone else's, which nothing of ours may touch.
	o.Ofctl("add-flow", "br0", "cookie=0x1234,table=0,priority=1,actions=drop")

	r := rand.New(rand.NewPCG(7, 8))
	want := make([]flows.Flow, 300)
	for i := range want {
		want[i] = ovsValidFlow(r, i)
	}
	// One flow with every feature, to compare against ovs-ofctl's text.
	want[0] = flows.Flow{Table: 0, Priority: 100, Cookie: flows.CookieOurs,
		Match: flows.Match{InPort: 3, EthDst: flows.MAC{2, 0, 0, 0, 0, 1}, EthDstMask: flows.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, HasTunID: true, TunID: 7},
		Actions: []flows.Action{{Type: flows.ActNormal}, {Type: flows.ActSetTunID, Value: 7},
			{Type: flows.ActSetTunDst, IP: flows.MustIPv4("198.18.0.2")}, {Type: flows.ActOutput, Port: 9}}}
	refused, err := sw.Apply(ctx, want, nil, nil)
	if err != nil || len(refused) != 0 {
		t.Fatalf("apply: %v, refused %v", err, refused)
	}
	text := o.Ofctl("dump-flows", "br0")
	if !strings.Contains(text, "cookie=0x504d000000000000,") ||
		!strings.Contains(text, "priority=100,tun_id=0x7,in_port=3,dl_dst=02:00:00:00:00:01 actions=NORMAL,set_field:0x7->tun_id,set_field:198.18.0.2->tun_dst,output:9") {
		t.Fatalf("ovs-ofctl dump-flows lacks our flow:\n%s", lastLines(text, 5))
	}
	if n := strings.Count(text, "cookie=0x504d"); n != len(want) {
		t.Fatalf("ovs-ofctl shows %d of our flows, want %d", n, len(want))
	}
	check := func(what string, want []flows.Flow) {
		t.Helper()
		got, err := sw.DumpFlows(ctx, flows.CookieOurs, flows.CookieMask)
		if err != nil {
			t.Fatal(err)
		}
		sortFlows(got)
		want = slices.Clone(want)
		sortFlows(want)
		if len(got) != len(want) {
			t.Fatalf("%s: read back %d flows, want %d", what, len(got), len(want))
		}
		for i := range got {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Fatalf("%s: flow %d read back as\n%+v\nwant\n%+v", what, i, got[i], want[i])
			}
		}
	}
	check("after add", want)
	// OVS gives our flows back encoded as we encode them: a bridge read back after a reconnect is compared as
	// bytes, with nothing decoded (Switch.ReadBack)
	entries, err := sw.ReadBack(ctx, flows.CookieOurs, flows.CookieMask)
	if err != nil {
		t.Fatal(err)
	}
	packed, err := ofwire.PackFlows(want)
	if err != nil {
		t.Fatal(err)
	}
	if same, err := ofwire.SameFlowEntries(entries, packed); err != nil || !same {
		t.Errorf("read back: %d bytes, not the %d bytes of the flows packed in any order (%v)", len(entries), len(packed), err)
	}

	// Modify a third (new actions), delete a third, in one Apply.
	var modifies, deletes, expect []flows.Flow
	for i, f := range want {
		switch i % 3 {
		case 0:
			f.Actions = []flows.Action{{Type: flows.ActOutput, Port: uint32(i + 1)}}
			modifies = append(modifies, f)
			expect = append(expect, f)
		case 1:
			deletes = append(deletes, f)
		default:
			expect = append(expect, f)
		}
	}
	if refused, err := sw.Apply(ctx, nil, modifies, deletes); err != nil || len(refused) != 0 {
		t.Fatalf("modify/delete: %v, refused %v", err, refused)
	}
	check("after modify and delete", expect)

	// A flow under our cookie with a match we cannot express is deleted by DumpFlows.
	o.Ofctl("add-flow", "br0", "cookie=0x504d0000ffffffff,table=1,priority=9,dl_vlan=9,actions=drop")
	check("after a foreign flow", expect)
	if strings.Contains(o.Ofctl("dump-flows", "br0"), "dl_vlan=9") {
		t.Fatal("foreign flow under our cookie still installed")
	}

	if err := sw.DeleteByCookie(ctx, flows.CookieOurs, flows.CookieMask); err != nil {
		t.Fatal(err)
	}
	check("after delete by cookie", nil)
	if text := o.Ofctl("dump-flows", "br0"); !strings.Contains(text, "cookie=0x1234") {
		t.Fatalf("someone else's flow was removed:\n%s", text)
	}
}

func TestOVSRefusedFlowsReported(t *testing.T) {
	_, o, sw := ovsServer(t, "00000000000000a3")
	good := flows.Flow{Priority: 10, Cookie: flows.CookieOurs | 1, Match: flows.Match{InPort: 1}, Actions: []flows.Action{{Type: flows.ActNormal}}}
	badTable := flows.Flow{Table: 255, Priority: 11, Cookie: flows.CookieOurs | 2, Actions: []flows.Action{{Type: flows.ActNormal}}}
	badPort := flows.Flow{Priority: 12, Cookie: flows.CookieOurs | 3, Actions: []flows.Action{{Type: flows.ActOutput, Port: ofwire.PortAny}}}
	refused, err := sw.Apply(context.Background(), []flows.Flow{badTable, good, badPort}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(refused) != 2 {
		t.Fatalf("refused %v, want 2", refused)
	}
	if !reflect.DeepEqual(refused[0].Flow, badTable) || refused[0].Err.Type != ofwire.ErrTypeFlowModFailed || ofwire.ErrorCodeName(refused[0].Err.Type, refused[0].Err.Code) != "BAD_TABLE_ID" {
		t.Errorf("table 255: %v", refused[0])
	}
	if !reflect.DeepEqual(refused[1].Flow, badPort) || refused[1].Err.Type != ofwire.ErrTypeBadAction || ofwire.ErrorCodeName(refused[1].Err.Type, refused[1].Err.Code) != "BAD_OUT_PORT" {
		t.Errorf("output:ANY: %v", refused[1])
	}
	t.Logf("OVS refused: %v; %v", refused[0], refused[1])
	if !sw.Atomic() {
		t.Error("OVS's refusal of single flow_mods made the controller give up bundles")
	}
	if text := o.Ofctl("dump-flows", "br0"); !strings.Contains(text, "priority=10,in_port=1 actions=NORMAL") || strings.Count(text, "cookie=") != 1 {
		t.Fatalf("flows after a partly refused batch:\n%s", text)
	}
}

// TestOVSAddReplacesCookie: what flows.Diff relies on for a flow of ours whose cookie changed: on OpenFlow 1.3 an
// ADD of the same match and priority replaces the installed flow, cookie included (a modify keeps the old cookie).
func TestOVSAddReplacesCookie(t *testing.T) {
	ctx := context.Background()
	_, _, sw := ovsServer(t, "00000000000000a4")
	old := flows.Flow{Priority: 10, Cookie: flows.CookieOurs | 9, Match: flows.Match{InPort: 1}, Actions: []flows.Action{{Type: flows.ActNormal}}}
	if refused, err := sw.Apply(ctx, []flows.Flow{old}, nil, nil); err != nil || len(refused) > 0 {
		t.Fatalf("install: %v %v", refused, err)
	}
	renewed := old
	renewed.Cookie = flows.CookieOurs | 3
	add, mod, del := flows.Diff([]flows.Flow{renewed}, []flows.Flow{old})
	if refused, err := sw.Apply(ctx, add, mod, del); err != nil || len(refused) > 0 {
		t.Fatalf("apply the diff: %v %v", refused, err)
	}
	got, err := sw.DumpFlows(ctx, flows.CookieOurs, flows.CookieMask)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Cookie != renewed.Cookie {
		t.Fatalf("after the diff the switch holds %v, want only %v", got, renewed)
	}
}

// TestOVSPipelineThroughput measures flow_mods/s for one pipelined batch and one barrier. It installs 20k flows
// by default; PORTMIRROR_OFBENCH_FLOWS raises the count (the report used 100000), and it compares with ovs-ofctl
// add-flows of the same flows.
func TestOVSPipelineThroughput(t *testing.T) {
	n := 20000
	if v := os.Getenv("PORTMIRROR_OFBENCH_FLOWS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			t.Fatal(err)
		}
	}
	if testing.Short() {
		n = 2000
	}
	_, o, sw := ovsServer(t, "00000000000000a4")
	fl := make([]flows.Flow, n)
	var file bytes.Buffer
	for i := range fl {
		mac := flows.MAC{2, 0, 0, byte(i >> 16), byte(i >> 8), byte(i)}
		fl[i] = flows.Flow{Priority: 100, Cookie: flows.CookieOurs | uint64(i),
			Match: flows.Match{InPort: uint32(1 + i%64), EthDst: mac, EthDstMask: flows.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
			Actions: []flows.Action{{Type: flows.ActNormal}, {Type: flows.ActSetTunID, Value: uint64(i)},
				{Type: flows.ActSetTunDst, IP: flows.MustIPv4("198.18.0.2")}, {Type: flows.ActOutput, Port: 9}}}
		fmt.Fprintf(&file, "cookie=0x%x,table=1,priority=100,in_port=%d,dl_dst=%s,actions=NORMAL,set_field:%d->tun_id,set_field:198.18.0.2->tun_dst,output:9\n",
			fl[i].Cookie, fl[i].Match.InPort, net.HardwareAddr(mac[:]), i)
	}
	start := time.Now()
	refused, err := sw.Apply(context.Background(), fl, nil, nil)
	d := time.Since(start)
	if err != nil || len(refused) != 0 {
		t.Fatalf("apply: %v, refused %d", err, len(refused))
	}
	t.Logf("controller: %d flow_mods + barrier in %s: %.0f flow_mods/s", n, d, float64(n)/d.Seconds())
	path := filepath.Join(o.Dir, "flows.txt")
	if err := os.WriteFile(path, file.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	o.Ofctl("add-flows", "br0", path)
	d2 := time.Since(start)
	t.Logf("ovs-ofctl add-flows: %d flows in %s: %.0f flows/s", n, d2, float64(n)/d2.Seconds())
	start = time.Now()
	got, err := sw.DumpFlows(context.Background(), flows.CookieOurs, flows.CookieMask)
	if err != nil || len(got) != 2*n {
		t.Fatalf("read back %d flows (%v), want %d", len(got), err, 2*n)
	}
	t.Logf("DumpFlows: %d flows in %s", len(got), time.Since(start))
	start = time.Now()
	if err := sw.DeleteByCookie(context.Background(), flows.CookieOurs, flows.CookieMask); err != nil {
		t.Fatal(err)
	}
	t.Logf("DeleteByCookie: %d flows in %s", len(got), time.Since(start))
}
