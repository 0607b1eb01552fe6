package dataplane

import (
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"portmirror/flows"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"portmirror/internal/ovstest"
)

var update = flag.Bool("update", false, "rewrite testdata/ovs_traces.json from live OVS")

var (
	macA = MAC{2, 0, 0, 0, 0, 0xa}
	macB = MAC{2, 0, 0, 0, 0, 0xb}
	macC = MAC{2, 0, 0, 0, 0, 0xc}
	ipA  = netip.MustParseAddr("10.0.0.1")
	ipB  = netip.MustParseAddr("10.0.0.2")
	ip6A = netip.MustParseAddr("fd00::1")
	ip6B = netip.MustParseAddr("fd00::2")
)

type step struct {
	Receive bool   // deliver the frame for real (MAC learning) instead of tracing it
	InPort  uint32 // 1..4 dummy ports, 10 the GRE port
	Tunnel  string // tunnel metadata for frames entering on port 10, ovs-ofctl syntax
	Frame   []byte
}

type ovsCase struct {
	Name   string
	Tags   map[uint32]uint16
	Flows  []string
	Groups []string
	Steps  []step
}

func trace(in uint32, frame []byte) step { return step{InPort: in, Frame: frame} }
func learn(in uint32, frame []byte) step { return step{Receive: true, InPort: in, Frame: frame} }

func bcast(src MAC) []byte      { return BuildARPRequest(src, ipA, ipB) }
func ucast(src, dst MAC) []byte { return BuildICMPEcho(dst, src, ipA, ipB, 1, 1) }
func udp4(src, dst MAC, dport uint16) []byte {
	return BuildUDP(dst, src, ipA, ipB, 5000, dport, []byte("x"))
}

const normal = "priority=0,actions=NORMAL"

func ovsCases() []ovsCase {
	mcast := MAC{0x01, 0x00, 0x5e, 0, 0, 1}
	stp := MAC{0x01, 0x80, 0xc2, 0, 0, 0}
	return append([]ovsCase{
		{Name: "normal floods broadcast", Flows: []string{normal}, Steps: []step{trace(1, bcast(macA))}},
		{Name: "normal floods unknown unicast", Flows: []string{normal}, Steps: []step{trace(2, ucast(macA, macB))}},
		{Name: "normal floods multicast", Flows: []string{normal}, Steps: []step{trace(1, ucast(macA, mcast))}},
		{Name: "normal drops reserved multicast", Flows: []string{normal}, Steps: []step{trace(1, ucast(macA, stp))}},
		{Name: "normal unicast to learned port", Flows: []string{normal},
			Steps: []step{learn(2, bcast(macB)), trace(1, ucast(macA, macB)), trace(3, ucast(macC, macB))}},
		{Name: "normal learned port is input port", Flows: []string{normal},
			Steps: []step{learn(1, bcast(macB)), trace(1, ucast(macA, macB))}},
		{Name: "normal relearns a moved MAC", Flows: []string{normal},
			Steps: []step{learn(2, bcast(macB)), learn(3, bcast(macB)), trace(1, ucast(macA, macB))}},
		{Name: "tunnel metadata set before NORMAL floods to the tunnel port",
			Flows: []string{"priority=100,in_port=1,actions=set_field:5->tun_id,set_field:198.18.0.2->tun_dst,NORMAL", normal},
			Steps: []step{trace(1, bcast(macA)), trace(2, bcast(macB))}},
		{Name: "NORMAL before tunnel metadata",
			Flows: []string{"priority=100,in_port=2,actions=NORMAL,set_field:7->tun_id,set_field:198.18.0.3->tun_dst,output:10", normal},
			Steps: []step{trace(2, bcast(macB)), trace(2, ucast(macB, macA))}},
		{Name: "mirror copy then NORMAL to learned port",
			Flows: []string{"priority=100,in_port=1,actions=NORMAL,set_field:9->tun_id,set_field:198.18.0.2->tun_dst,output:10,output:4", normal},
			Steps: []step{learn(2, bcast(macB)), trace(1, ucast(macA, macB))}},
		{Name: "tunnel metadata set twice before output",
			Flows: []string{"priority=100,in_port=3,actions=set_field:1->tun_id,set_field:198.18.0.2->tun_dst,output:10,set_field:2->tun_id,set_field:198.18.0.3->tun_dst,output:10"},
			Steps: []step{trace(3, bcast(macC)), trace(1, bcast(macA))}},
		{Name: "access ports and VLAN flooding", Tags: map[uint32]uint16{3: 10, 4: 20}, Flows: []string{normal},
			Steps: []step{trace(1, bcast(macA)), trace(3, bcast(macC)), trace(1, WithVLAN(bcast(macA), 10, 0)),
				trace(2, WithVLAN(bcast(macA), 20, 3)), trace(3, WithVLAN(bcast(macC), 10, 0)), trace(4, WithVLAN(bcast(macC), 0, 5))}},
		{Name: "learning is per VLAN", Tags: map[uint32]uint16{3: 10}, Flows: []string{normal},
			Steps: []step{learn(3, bcast(macB)), trace(1, ucast(macA, macB)), trace(1, WithVLAN(ucast(macA, macB), 10, 0)),
				learn(2, bcast(macB)), trace(1, ucast(macA, macB))}},
		{Name: "dead VLAN 4095", Tags: map[uint32]uint16{4: 4095}, Flows: []string{normal},
			Steps: []step{trace(4, bcast(macA)), trace(1, bcast(macA)), trace(1, WithVLAN(bcast(macA), 4095, 0))}},
		{Name: "goto_table and table miss",
			Flows: []string{"table=0,priority=10,in_port=1,actions=goto_table:1", "table=0,priority=5,actions=output:4",
				fmt.Sprintf("table=1,priority=10,dl_dst=%v,actions=output:2", macB)},
			Steps: []step{trace(1, ucast(macA, macB)), trace(1, ucast(macA, macC)), trace(2, ucast(macA, macC))}},
		{Name: "goto_table keeps set_field",
			Flows: []string{"table=0,priority=10,actions=set_field:0x42->tun_id,goto_table:3",
				"table=3,priority=10,tun_id=0x42,actions=set_field:198.18.0.9->tun_dst,output:10,output:1"},
			Steps: []step{trace(2, bcast(macB)), trace(1, bcast(macA))}},
		{Name: "priorities and MAC masks",
			Flows: []string{"priority=200,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00,actions=output:3",
				"priority=100,dl_src=02:00:00:00:00:00/ff:ff:ff:ff:ff:f0,actions=output:4", "priority=1,actions=output:2"},
			Steps: []step{trace(1, bcast(macA)), trace(1, ucast(macA, macB)), trace(1, ucast(MAC{4, 0, 0, 0, 0, 1}, macB))}},
		{Name: "IPv4 and L4 matches",
			Flows: []string{"priority=300,tcp,tp_dst=80,actions=output:3", "priority=200,udp,udp_dst=53,actions=output:4",
				"priority=100,ip,nw_src=10.0.0.0/8,actions=output:2", "priority=50,arp,arp_tpa=10.0.0.2,actions=LOCAL",
				"priority=40,icmp,icmp_type=8,actions=output:1"},
			Steps: []step{trace(1, BuildTCPSyn(macB, macA, ipA, ipB, 1234, 80)), trace(1, BuildTCPSyn(macB, macA, ipA, ipB, 1234, 81)),
				trace(1, udp4(macA, macB, 53)), trace(1, udp4(macA, macB, 54)), trace(2, bcast(macA)),
				trace(2, BuildICMPEcho(macB, macA, netip.MustParseAddr("192.0.2.1"), ipB, 1, 1)),
				trace(2, udp4(macA, macB, 53))}},
		{Name: "IPv6 matches",
			Flows: []string{"priority=100,ipv6,ipv6_dst=fd00::/16,actions=output:2", "priority=90,udp6,udp_dst=9,actions=output:3", "priority=0,actions=output:4"},
			Steps: []step{trace(1, BuildUDP(macB, macA, ip6A, ip6B, 1, 9, nil)),
				trace(1, BuildUDP(macB, macA, ip6A, netip.MustParseAddr("2001:db8::1"), 1, 9, nil)), trace(1, udp4(macA, macB, 9))}},
		{Name: "filter slots: reg0 and resubmit chains",
			Flows: []string{"priority=100,in_port=1,actions=NORMAL,set_field:0x2->reg0,resubmit(,1),set_field:0x3->reg0,resubmit(,1)",
				"table=1,priority=1000,reg0=0x1,tcp,tcp_dst=0x400/0xfc00,actions=output:3",
				"table=1,priority=999,reg0=0x1,ip,nw_src=10.0.0.0/8,actions=drop",
				"table=1,priority=998,reg0=0x1,ipv6,ipv6_dst=fd00::/16,actions=output:3",
				"table=1,priority=1000,reg0=0x2,udp,udp_dst=53,actions=drop",
				"table=1,priority=999,reg0=0x2,ip,actions=output:3",
				"table=1,priority=1,reg0=0x2,actions=set_field:0x1->reg0,resubmit(,1)",
				"table=1,priority=1000,reg0=0x3,udp6,actions=set_field:0x9->tun_id,set_field:198.18.0.2->tun_dst,output:10",
				normal},
			Steps: []step{trace(1, BuildTCPSyn(macB, macA, ipA, ipB, 1234, 1030)), trace(1, udp4(macA, macB, 53)),
				trace(1, udp4(macA, macB, 54)), trace(1, bcast(macA)), trace(1, BuildUDP(macB, macA, ip6A, ip6B, 1, 9, nil)),
				trace(1, BuildTCPSyn(macB, macA, ip6A, ip6B, 1234, 2000)), trace(2, udp4(macA, macB, 53))}},
		{Name: "output with max_len, locally and toward a tunnel",
			Flows: []string{"priority=100,in_port=1,actions=NORMAL,output(port=3,max_len=64),set_field:0x7->tun_id,set_field:198.18.0.2->tun_dst,output(port=10,max_len=96),output(port=4,max_len=2000)",
				"priority=90,in_port=2,actions=NORMAL,set_field:0x1->reg0,resubmit(,1)",
				"table=1,priority=10,reg0=0x1,udp,actions=output(port=3,max_len=70)", normal},
			Steps: []step{trace(1, BuildUDP(macB, macA, ipA, ipB, 1, 9, make([]byte, 200))), trace(1, bcast(macA)),
				trace(2, BuildUDP(macC, macB, ipB, ipA, 1, 9, make([]byte, 100))), trace(2, bcast(macB))}},
		{Name: "VLAN match", Flows: []string{"priority=100,dl_vlan=10,actions=output:2", "priority=90,vlan_tci=0x1000/0x1000,actions=output:3", "priority=0,actions=output:4"},
			Steps: []step{trace(1, WithVLAN(bcast(macA), 10, 0)), trace(1, WithVLAN(bcast(macA), 11, 0)), trace(1, bcast(macA))}},
		{Name: "reserved output ports",
			Flows: []string{"priority=10,in_port=1,actions=output:1", "priority=10,in_port=2,actions=IN_PORT",
				"priority=10,in_port=3,actions=ALL", "priority=10,in_port=4,actions=FLOOD,output:2"},
			Steps: []step{trace(1, bcast(macA)), trace(2, bcast(macA)), trace(3, bcast(macA)), trace(4, bcast(macA))}},
		{Name: "ALL with tunnel metadata",
			Flows: []string{"priority=10,actions=set_field:3->tun_id,set_field:198.18.0.5->tun_dst,ALL"},
			Steps: []step{trace(1, bcast(macA))}},
		{Name: "group of type all",
			Groups: []string{"group_id=1,type=all,bucket=output:2,bucket=set_field:0x11->tun_id,set_field:198.18.0.7->tun_dst,output:10,bucket=output:3"},
			Flows:  []string{"priority=10,in_port=1,actions=group:1", "priority=10,in_port=2,actions=set_field:0x22->tun_id,group:1,output:4"},
			Steps:  []step{trace(1, bcast(macA)), trace(2, bcast(macB))}},
		{Name: "frames arriving on the tunnel port",
			Flows: []string{"priority=100,in_port=10,tun_id=0x5,actions=output:2", "priority=90,in_port=10,tun_src=198.18.0.3,actions=output:3",
				"priority=80,in_port=10,actions=drop", normal},
			Steps: []step{
				{InPort: 10, Tunnel: "tun_id=0x5,tun_src=198.18.0.2,tun_dst=198.18.0.1", Frame: ucast(macA, macB)},
				{InPort: 10, Tunnel: "tun_id=0x6,tun_src=198.18.0.3,tun_dst=198.18.0.1", Frame: ucast(macA, macB)},
				{InPort: 10, Tunnel: "tun_id=0x6,tun_src=198.18.0.2,tun_dst=198.18.0.1", Frame: ucast(macA, macB)},
			}},
		{Name: "set_field of Ethernet addresses", Flows: []string{"priority=10,actions=set_field:02:00:00:00:00:99->eth_dst,output:2"},
			Steps: []step{trace(1, ucast(macA, macB))}},
	}, erspanOVSCases()...)
}

// simBridge is the evaluator's copy of the OVS bridge the test builds: p1..p4 (1..4), gre0 (10), LOCAL.
func simBridge(t *testing.T, c ovsCase) *Bridge {
	t.Helper()
	b := NewBridge("br0", MAC{2, 0xff, 0, 0, 0, 1})
	for i := uint32(1); i <= 4; i++ {
		p := Port{No: i, Name: fmt.Sprintf("p%d", i), Up: true, MAC: MAC{0xaa, 0x55, 0, 0, 0, byte(i)}}
		if tag, ok := c.Tags[i]; ok {
			p.Tag, p.Tagged = tag, true
		}
		if err := b.AddPort(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.AddPort(Port{No: 10, Name: "gre0", Up: true, Tunnel: &TunnelConfig{Type: "gre", LocalIP: netip.MustParseAddr("198.18.0.1")}}); err != nil {
		t.Fatal(err)
	}
	if err := b.AddPort(Port{No: 11, Name: "erspan0", Up: true, Tunnel: &TunnelConfig{Type: "erspan", LocalIP: netip.MustParseAddr("198.18.0.1")}}); err != nil {
		t.Fatal(err)
	}
	for _, g := range c.Groups {
		if err := b.ModGroup(GroupAdd, parseGroup(t, g)); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range c.Flows {
		f, err := ParseFlow(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.AddFlow(f, false); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	return b
}

func parseGroup(t *testing.T, s string) Group {
	t.Helper()
	head, rest, _ := strings.Cut(s, ",bucket=")
	id, err := strconv.ParseUint(strings.TrimPrefix(strings.Split(head, ",")[0], "group_id="), 10, 32)
	if err != nil {
		t.Fatalf("group %q: %v", s, err)
	}
	g := Group{ID: uint32(id), Type: GroupTypeAll}
	for _, bk := range strings.Split(rest, ",bucket=") {
		f, err := ParseFlow("actions=" + bk)
		if err != nil {
			t.Fatal(err)
		}
		g.Buckets = append(g.Buckets, f.Actions)
	}
	return g
}

func parseTunnel(t *testing.T, s string) Tunnel {
	var tn Tunnel
	for _, kv := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "tun_id":
			tn.ID, _ = strconv.ParseUint(v, 0, 64)
		case "tun_src":
			tn.Src = netip.MustParseAddr(v)
		case "tun_dst":
			tn.Dst = netip.MustParseAddr(v)
		default:
			parseErspanTunnel(&tn, k, v)
		}
	}
	return tn
}

// emitKeys renders what left the bridge the way the OVS side is rendered: one string per copy, sorted.
// A copy cut shorter than the frame sent carries " len=N".
func emitKeys(r Result, sent int, tagged bool) []string {
	keys := []string{}
	for _, e := range r.Emits {
		k := PortString(e.Port)
		if e.Port == 11 {
			k += " " + erspanKey(e.Frame.Tunnel)
		} else if e.Frame.Tunnel.IsSet() {
			k += fmt.Sprintf(" tun_id=%#x tun_dst=%v", e.Frame.Tunnel.ID, e.Frame.Tunnel.Dst)
		} else if e.Frame.HasVLAN {
			k += fmt.Sprintf(" vlan=%d", e.Frame.VID)
		}
		whole := sent
		switch {
		case tagged && !e.Frame.HasVLAN:
			whole -= 4
		case !tagged && e.Frame.HasVLAN:
			whole += 4
		}
		if len(e.Frame.Raw) < whole {
			k += fmt.Sprintf(" len=%d", len(e.Frame.Raw))
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func runSim(t *testing.T, c ovsCase) [][]string {
	b := simBridge(t, c)
	var out [][]string
	for _, s := range c.Steps {
		fr, err := ParseFrame(s.Frame)
		if err != nil {
			t.Fatal(err)
		}
		fr.InPort = s.InPort
		if s.Tunnel != "" {
			fr.Tunnel = parseTunnel(t, s.Tunnel)
		}
		if s.Receive {
			b.Process(fr)
			continue
		}
		r := b.Trace(fr)
		out = append(out, emitKeys(r, len(s.Frame), fr.HasVLAN))
		t.Logf("sim trace:\n%s", r.TraceString())
	}
	return out
}

const tracesFile = "testdata/ovs_traces.json"

func TestEvaluatorAgainstOVS(t *testing.T) {
	recorded := map[string][][]string{}
	if b, err := os.ReadFile(tracesFile); err == nil {
		if err := json.Unmarshal(b, &recorded); err != nil {
			t.Fatalf("%s: %v", tracesFile, err)
		}
	}
	cases := ovsCases()
	var live map[string][][]string
	if ovstest.Available() {
		live = captureOVS(t, cases)
	} else {
		t.Log("ovs-vswitchd is not installed: comparing with the OVS outputs recorded in " + tracesFile)
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			want, ok := recorded[c.Name]
			if live != nil {
				if ok && !*update && !equalTraces(want, live[c.Name]) {
					t.Errorf("live OVS disagrees with %s (run with -update to re-record):\nrecorded %q\nlive     %q", tracesFile, want, live[c.Name])
				}
				want, ok = live[c.Name], true
			}
			if !ok {
				t.Fatalf("no OVS output recorded for %q: run with OVS installed and -update", c.Name)
			}
			got := runSim(t, c)
			if !equalTraces(got, want) {
				t.Errorf("evaluator and OVS disagree:\n sim %q\n ovs %q", got, want)
			}
		})
	}
	if live != nil && (*update || len(recorded) == 0) {
		b, _ := json.MarshalIndent(live, "", "  ")
		if err := os.MkdirAll(filepath.Dir(tracesFile), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(tracesFile, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func equalTraces(a, b [][]string) bool {
	return slices.EqualFunc(a, b, func(x, y []string) bool { return slices.Equal(x, y) })
}

var dpifLine = regexp.MustCompile(`^\s+(\S+) (\d+)/(\d+):`)

// captureOVS builds the same bridge in real OVS, replays every case and renders each trace's outputs.
func captureOVS(t *testing.T, cases []ovsCase) map[string][][]string {
	o := ovstest.Must(t, ovstest.Options{InNetns: true, NetnsAddrs: []string{"198.18.0.1"}})
	o.Vsctl("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=dummy", "fail_mode=secure", "protocols=OpenFlow13")
	for i := 1; i <= 4; i++ {
		o.Vsctl("add-port", "br0", fmt.Sprintf("p%d", i), "--", "set", "interface", fmt.Sprintf("p%d", i), "type=dummy", fmt.Sprintf("ofport_request=%d", i))
	}
	o.Vsctl("add-port", "br0", "gre0", "--", "set", "interface", "gre0", "type=gre", "options:remote_ip=flow",
		"options:key=flow", "options:local_ip=198.18.0.1", "ofport_request=10")
	o.Vsctl(append([]string{"add-port", "br0", "erspan0", "--", "set", "interface", "erspan0"}, erspanPortOptions...)...)
	// The underlay: a bridge holding the flow network's route, with neighbours for every endpoint the cases
	// use, so that tunnel outputs show up as tnl_push(...) in the datapath actions.
	o.Vsctl("add-br", "bru", "--", "set", "bridge", "bru", "datapath_type=dummy", "--", "add-port", "bru", "u0", "--", "set", "interface", "u0", "type=dummy")
	o.Appctl("netdev-dummy/ip4addr", "bru", "198.18.0.1/15")
	o.Appctl("ovs/route/add", "198.18.0.0/15", "bru")
	for i := 2; i <= 9; i++ {
		o.Appctl("tnl/arp/set", "bru", fmt.Sprintf("198.18.0.%d", i), fmt.Sprintf("02:00:00:00:ff:%02x", i))
	}
	odp := map[string]string{}
	o.WaitFor("ports in the datapath", func() bool {
		clear(odp)
		inBr0 := false
		for _, l := range strings.Split(o.Appctl("dpif/show"), "\n") {
			if strings.HasPrefix(l, "  ") && !strings.HasPrefix(l, "    ") {
				inBr0 = strings.TrimSpace(l) == "br0:"
				continue
			}
			if m := dpifLine.FindStringSubmatch(l); m != nil && inBr0 {
				of := m[2]
				if of == "65534" {
					of = "LOCAL"
				}
				odp[m[3]] = of
			}
		}
		return len(odp) == 7
	})
	out := map[string][][]string{}
	for _, c := range cases {
		o.Ofctl("del-flows", "br0")
		o.Ofctl("del-groups", "br0")
		for i := uint32(1); i <= 4; i++ {
			if tag, ok := c.Tags[i]; ok {
				o.Vsctl("set", "port", fmt.Sprintf("p%d", i), fmt.Sprintf("tag=%d", tag))
			} else {
				o.Vsctl("clear", "port", fmt.Sprintf("p%d", i), "tag")
			}
		}
		o.Appctl("fdb/flush", "br0")
		for _, g := range c.Groups {
			o.Ofctl("add-group", "br0", g)
		}
		for _, f := range c.Flows {
			o.Ofctl("add-flow", "br0", f)
		}
		var res [][]string
		for _, s := range c.Steps {
			pkt := hex.EncodeToString(s.Frame)
			if s.Receive {
				src, _ := ParseFrame(s.Frame)
				o.Appctl("netdev-dummy/receive", fmt.Sprintf("p%d", s.InPort), pkt)
				o.WaitFor("MAC "+src.EthSrc.String()+" learned", func() bool {
					for _, l := range strings.Split(o.Appctl("fdb/show", "br0"), "\n") {
						if f := strings.Fields(l); len(f) >= 3 && f[2] == src.EthSrc.String() && f[0] == strconv.Itoa(int(s.InPort)) {
							return true
						}
					}
					return false
				})
				continue
			}
			flow := fmt.Sprintf("in_port=%d", s.InPort)
			if s.Tunnel != "" {
				flow += "," + s.Tunnel
			}
			tr := o.Appctl("ofproto/trace", "br0", flow, pkt)
			res = append(res, ovsOutputs(t, tr, odp, s.Frame))
			t.Logf("%s: ovs trace:\n%s", c.Name, tr)
		}
		out[c.Name] = res
	}
	return out
}

var (
	pushVLAN = regexp.MustCompile(`^push_vlan\(vid=(\d+)`)
	tnlPush  = regexp.MustCompile(`^tnl_push\(.*ipv4\(src=[0-9.]+,dst=([0-9.]+),.*key=(0x[0-9a-f]+)`)
)

// ovsOutputs renders the datapath actions of a trace: one key per copy that leaves br0.
func ovsOutputs(t *testing.T, trace string, odp map[string]string, frame []byte) []string {
	t.Helper()
	fr, _ := ParseFrame(frame)
	dp, _ := ovstest.DatapathActions(trace)
	vlan := -1
	if fr.HasVLAN {
		vlan = int(fr.VID)
	}
	keys := []string{}
	// trunc(N) cuts the packet for the output (or tunnel push) that follows it.
	cut := func(k string, trunc *int) string {
		if *trunc > 0 && *trunc < len(frame) {
			k += fmt.Sprintf(" len=%d", *trunc)
		}
		*trunc = 0
		return k
	}
	var walk func(acts string, vlan int, underlay bool, trunc int)
	walk = func(acts string, vlan int, underlay bool, trunc int) {
		for _, a := range flows.SplitActions(acts) {
			switch {
			case strings.HasPrefix(a, "trunc(") && strings.HasSuffix(a, ")"):
				trunc, _ = strconv.Atoi(a[len("trunc(") : len(a)-1])
			case a == "drop" || a == "" || strings.HasPrefix(a, "set(eth("):
			case strings.HasPrefix(a, "clone(") && strings.HasSuffix(a, ")"):
				walk(a[len("clone("):len(a)-1], vlan, underlay, trunc) // a trunc before clone() cuts what the clone outputs
				trunc = 0
			case a == "pop_vlan":
				vlan = -1
			case pushVLAN.MatchString(a):
				vlan, _ = strconv.Atoi(pushVLAN.FindStringSubmatch(a)[1])
			case erspanPush.MatchString(a):
				m := erspanPush.FindStringSubmatch(a)
				keys = append(keys, cut(fmt.Sprintf("11 erspan %s->%s", m[2], m[1]), &trunc))
				underlay = true
			case tnlPush.MatchString(a):
				m := tnlPush.FindStringSubmatch(a)
				id, _ := strconv.ParseUint(m[2], 0, 64)
				keys = append(keys, cut(fmt.Sprintf("10 tun_id=%#x tun_dst=%s", id, m[1]), &trunc))
				underlay = true // what follows in this list is the encapsulated copy leaving the underlay bridge
			case underlay:
			default:
				of, ok := odp[a]
				if !ok {
					t.Fatalf("datapath action %q not understood in %q", a, dp)
				}
				k := of
				if vlan >= 0 {
					k += fmt.Sprintf(" vlan=%d", vlan)
				}
				keys = append(keys, cut(k, &trunc))
			}
		}
	}
	walk(dp, vlan, false, 0)
	slices.Sort(keys)
	return keys
}
