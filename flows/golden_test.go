package flows

import (
	"flag"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"portmirror/model"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the compiler's output")

const (
	br1 = "0000000000000001"
	br2 = "0000000000000002"
	br3 = "0000000000000003"
	fnA = "f1000000-0000-4000-8000-00000000000a"
	fnB = "f2000000-0000-4000-8000-00000000000b"
)

// topo builds an Input tersely for the golden cases.
type topo struct{ in Input }

func newTopo() *topo {
	return &topo{in: Input{NICs: map[string]NIC{}, Endpoints: map[EndpointKey]Endpoint{}, Bridges: map[string]Bridge{}}}
}

// bridge declares a connected bridge with ports.
func (t *topo) bridge(dp string, ports ...uint32) *topo {
	t.in.Bridges[dp] = Bridge{Ports: ports}
	return t
}

// nic declares a NIC; dp "" leaves it unbound.
func (t *topo) nic(uuid, mac, dp string, port uint32) *topo {
	t.in.NICs[uuid] = NIC{MAC: mac, DatapathID: dp, Port: port}
	return t
}

// ep declares a flow endpoint: ip "" for none, tun 0 for no tunnel port.
func (t *topo) ep(fn, dp, ip string, tun uint32) *topo {
	e := Endpoint{TunnelPort: tun}
	if ip != "" {
		e.IP = netip.MustParseAddr(ip)
	}
	t.in.Endpoints[EndpointKey{FlowNetwork: fn, DatapathID: dp}] = e
	return t
}

// filter sets the filter of the last session declared.
func (t *topo) filter(rules ...model.FilterRule) *topo {
	for i, r := range rules {
		c, err := r.Canonical()
		if err != nil {
			panic(err)
		}
		rules[i] = c
	}
	t.in.Sessions[len(t.in.Sessions)-1].Filters = rules
	return t
}

// snap sets the snap length of the last session declared.
func (t *topo) snap(n uint16) *topo {
	t.in.Sessions[len(t.in.Sessions)-1].SnapLength = n
	return t
}

func (t *topo) session(uuid string, dir model.Direction, src, dst string, key uint32, fn string) *topo {
	t.in.Sessions = append(t.in.Sessions, Session{UUID: uuid, Type: dir, SourceNIC: src, DestinationNIC: dst,
		TunnelKey: key, FlowNetwork: fn, Encapsulation: model.GRE})
	return t
}

// dump renders every bridge's table and every session's report, as the golden files hold them.
func dump(in *Input) string {
	var b strings.Builder
	p := Analyze(in)
	for _, r := range p.Reports() {
		fmt.Fprintf(&b, "session %s on [%s]: ", r.SessionUUID, strings.Join(r.Bridges, " "))
		if r.Ready() {
			b.WriteString("ready\n")
		} else {
			fmt.Fprintf(&b, "pending: %s\n", r.Reason())
		}
	}
	for _, dp := range slices.Sorted(maps.Keys(in.Bridges)) {
		fmt.Fprintf(&b, "\nbridge %s (sessions: %s)\n", dp, strings.Join(p.SessionsOn(dp), " "))
		b.WriteString(dumpFlows(p.Bridge(dp)))
		// The one-bridge entry point must agree with the fleet-wide plan.
		if got, want := fmt.Sprint(CompileBridge(in, dp)), fmt.Sprint(p.Bridge(dp)); got != want {
			fmt.Fprintf(&b, "MISMATCH: CompileBridge gives %s\n", got)
		}
	}
	return b.String()
}

func goldenCases() map[string]*topo {
	const (
		macA = "02:00:00:00:00:0a"
		macB = "02:00:00:00:00:0b"
		macC = "02:00:00:00:00:0c"
		macM = "02:00:00:00:00:e1"
		macN = "02:00:00:00:00:e2"
	)
	twoHosts := func() *topo {
		return newTopo().
			bridge(br1, 1, 2, 3, 4, 10).bridge(br2, 1, 2, 5, 6, 10).
			ep(fnA, br1, "198.18.0.1", 10).ep(fnA, br2, "198.18.0.2", 10)
	}
	return map[string]*topo{
		// A mirrored leaving the VM, monitor on the same bridge.
		"egress_local": newTopo().bridge(br1, 1, 2, 3).
			nic("nic-a", macA, br1, 1).nic("nic-m", macM, br1, 3).
			session("s1", model.Egress, "nic-a", "nic-m", 1, fnA),
		// A mirrored entering the VM, monitor on another host.
		"ingress_remote": twoHosts().
			nic("nic-a", macA, br1, 1).nic("nic-m", macM, br2, 5).
			session("s1", model.Ingress, "nic-a", "nic-m", 7, fnA),
		// Both directions, to one local and one remote monitor.
		"bidirection": twoHosts().
			nic("nic-a", macA, br1, 1).nic("nic-m", macM, br1, 4).nic("nic-n", macN, br2, 6).
			session("s1", model.Bidirection, "nic-a", "nic-m", 1, fnA).
			session("s2", model.Bidirection, "nic-a", "nic-n", 2, fnA),
		// Two sessions, one destination: A's egress and B's ingress both go to M (remote): A→B is copied once.
		"same_destination": twoHosts().
			nic("nic-a", macA, br1, 1).nic("nic-b", macB, br1, 2).nic("nic-m", macM, br2, 5).
			session("s1", model.Egress, "nic-a", "nic-m", 9, fnA).
			session("s2", model.Ingress, "nic-b", "nic-m", 9, fnA),
		// A egress to M, B ingress to N, on one bridge: A→B carries both copies in one flow.
		"a_to_b_both_mirrored": newTopo().bridge(br1, 1, 2, 3, 4).
			nic("nic-a", macA, br1, 1).nic("nic-b", macB, br1, 2).nic("nic-m", macM, br1, 3).nic("nic-n", macN, br1, 4).
			session("s1", model.Egress, "nic-a", "nic-m", 1, fnA).
			session("s2", model.Ingress, "nic-b", "nic-n", 2, fnA),
		// The destination host: two sources on two other hosts to M, one to N; each key delivered to its NIC.
		"destination_host": newTopo().
			bridge(br1, 1, 10).bridge(br2, 5, 6, 10).bridge(br3, 1, 11).
			ep(fnA, br1, "198.18.0.1", 10).ep(fnA, br2, "198.18.0.2", 10).ep(fnA, br3, "198.18.0.3", 11).
			nic("nic-a", macA, br1, 1).nic("nic-c", macC, br3, 1).nic("nic-m", macM, br2, 5).nic("nic-n", macN, br2, 6).
			session("s1", model.Egress, "nic-a", "nic-m", 3, fnA).
			session("s2", model.Ingress, "nic-c", "nic-m", 3, fnA).
			session("s3", model.Egress, "nic-c", "nic-n", 4, fnA),
		// Two flow networks (two port mirrors) sharing a bridge; the same key means different NICs on each.
		"two_flow_networks": newTopo().
			bridge(br1, 1, 2, 10, 20).bridge(br2, 5, 6, 11, 21).
			ep(fnA, br1, "198.18.0.1", 10).ep(fnA, br2, "198.18.0.2", 11).
			ep(fnB, br1, "198.19.0.1", 20).ep(fnB, br2, "198.19.0.2", 21).
			nic("nic-a", macA, br1, 1).nic("nic-b", macB, br1, 2).nic("nic-m", macM, br2, 5).nic("nic-n", macN, br2, 6).
			session("s1", model.Egress, "nic-a", "nic-m", 1, fnA).
			session("s2", model.Bidirection, "nic-b", "nic-n", 1, fnB),
		// Filters: web traffic of A to M (local) and, overlapping, DNS and web from one subnet to N (remote);
		// a third session to M copies all of B's egress except SSH. A→B web frames reach M once.
		"filters": twoHosts().
			nic("nic-a", macA, br1, 1).nic("nic-b", macB, br1, 2).nic("nic-m", macM, br1, 4).nic("nic-n", macN, br2, 6).
			session("s1", model.Egress, "nic-a", "nic-m", 1, fnA).
			filter(model.FilterRule{Protocol: "tcp", DestinationPorts: "80"}, model.FilterRule{Protocol: "tcp", DestinationPorts: "443"}).
			session("s2", model.Bidirection, "nic-a", "nic-n", 2, fnA).
			filter(model.FilterRule{Action: model.FilterReject, SourceCIDR: "198.18.9.0/24"},
				model.FilterRule{Protocol: "udp", DestinationPorts: "53"},
				model.FilterRule{Protocol: "tcp", SourceCIDR: "198.18.0.0/16", DestinationPorts: "1024-65535"},
				model.FilterRule{DestinationCIDR: "2001:db8::/32"}).
			session("s3", model.Ingress, "nic-b", "nic-m", 1, fnA).
			filter(model.FilterRule{Action: model.FilterReject, Protocol: "tcp", DestinationPorts: "22"},
				model.FilterRule{}).
			session("s4", model.Egress, "nic-a", "nic-m", 1, fnA).
			filter(model.FilterRule{Protocol: "arp"}),
		// Snap lengths: A's egress to M cut to 64 bytes, and whole when it is web traffic (another session); to N
		// (remote) cut to 128 before encapsulation. B's ingress to M is cut to 96 unless A's web session keeps it
		// whole.
		"snap_lengths": twoHosts().
			nic("nic-a", macA, br1, 1).nic("nic-b", macB, br1, 2).nic("nic-m", macM, br1, 4).nic("nic-n", macN, br2, 6).
			session("s1", model.Egress, "nic-a", "nic-m", 1, fnA).snap(64).
			session("s2", model.Egress, "nic-a", "nic-m", 1, fnA).filter(model.FilterRule{Protocol: "tcp", DestinationPorts: "80"}).
			session("s3", model.Egress, "nic-a", "nic-n", 2, fnA).snap(128).
			session("s4", model.Ingress, "nic-b", "nic-m", 1, fnA).snap(96),
		// Everything that keeps a session pending; each says why, and what can be installed is.
		"unrealisable": newTopo().
			bridge(br1, 1, 2, 10).bridge(br2, 5, 6).
			ep(fnA, br1, "198.18.0.1", 10).ep(fnA, br2, "198.18.0.2", 0).
			nic("nic-a", macA, br1, 1).nic("nic-b", macB, "", 0).nic("nic-c", macC, br1, 3).
			nic("nic-m", macM, br2, 5).nic("nic-n", macN, br3, 1).nic("nic-x", "02:00:00:00:00:f0", br1, 2).
			session("s-unbound-src", model.Egress, "nic-b", "nic-m", 1, fnA).
			session("s-missing-port", model.Egress, "nic-c", "nic-x", 2, fnA).
			session("s-no-tunnel-at-dst", model.Ingress, "nic-a", "nic-m", 1, fnA).
			session("s-switch-down", model.Egress, "nic-a", "nic-n", 3, fnA).
			session("s-unknown", model.Egress, "nic-zz", "nic-x", 2, fnA).
			session("s-no-endpoint", model.Egress, "nic-a", "nic-m", 1, fnB),
		"erspan_v1":          erspanGoldenCases()["erspan_v1"],
		"erspan_v2":          erspanGoldenCases()["erspan_v2"],
		"erspan_key_too_big": erspanGoldenCases()["erspan_key_too_big"],
	}
}

func TestGolden(t *testing.T) {
	for name, tp := range goldenCases() {
		t.Run(name, func(t *testing.T) {
			got := dump(&tp.in)
			path := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./flows -run TestGolden -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("compiled flows differ from %s\n--- got\n%s\n--- want\n%s", path, got, want)
			}
		})
	}
}
