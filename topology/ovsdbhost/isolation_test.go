package ovsdbhost

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"portmirror/flows"
	"portmirror/internal/ovstest"
	"portmirror/model"
)

func TestIsolationSavesAndRestoresVLANSettings(t *testing.T) {
	e := startOVSDB(t, false)
	e.vsctl("add-br", "br-int")
	e.vsctl("add-port", "br-int", "vnet1", "tag=10")
	e.vsctl("add-port", "br-int", "vnet2")
	e.vsctl("add-port", "br-int", "vnet3", "vlan_mode=trunk", "trunks=1,2")
	e.vsctl("add-port", "br-int", "vnet4", "tag=7")
	m := startManager(t, HostConfig{Address: e.addr()})

	gen, err := m.SetDesired(nil, []string{"vnet1", "vnet2", "vnet3", "absent0"})
	if err != nil {
		t.Fatal(err)
	}
	waitApplied(t, m, gen)
	for _, p := range []string{"vnet1", "vnet2", "vnet3"} {
		if got := e.get("port", p, "tag") + " " + e.get("port", p, "vlan_mode"); got != "4095 access" {
			t.Errorf("%s tag/vlan_mode = %q, want 4095 access", p, got)
		}
		if got := e.get("port", p, "external_ids:"+KeyIsolated); got != "true" {
			t.Errorf("%s not marked isolated: %q", p, got)
		}
	}
	if got := e.get("port", "vnet4", "tag"); got != "7" {
		t.Errorf("vnet4 (not asked) tag = %q", got)
	}

	// Someone changes an isolated port's tag: it is isolated again, and the tag saved first is kept.
	e.vsctl("set", "port", "vnet1", "tag=5")
	m.Refresh()
	eventually(t, 5*time.Second, func() (bool, string) {
		got := e.get("port", "vnet1", "tag")
		return got == "4095", "vnet1 tag " + got
	})

	gen, err = m.SetDesired(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitApplied(t, m, gen)
	for _, tc := range []struct{ port, tag, mode, trunks string }{
		{"vnet1", "10", "[]", "[]"},
		{"vnet2", "[]", "[]", "[]"},
		{"vnet3", "[]", "trunk", "[1, 2]"},
		{"vnet4", "7", "[]", "[]"},
	} {
		got := [3]string{e.get("port", tc.port, "tag"), e.get("port", tc.port, "vlan_mode"), e.get("port", tc.port, "trunks")}
		if got != [3]string{tc.tag, tc.mode, tc.trunks} {
			t.Errorf("%s restored to tag/vlan_mode/trunks %v, want %s %s %s", tc.port, got, tc.tag, tc.mode, tc.trunks)
		}
		if ext := e.get("port", tc.port, "external_ids"); strings.Contains(ext, "portmirror") {
			t.Errorf("%s keeps our marks: %s", tc.port, ext)
		}
	}
}

// datapathActions runs ofproto/trace for a broadcast from inPort and returns the datapath actions.
func datapathActions(t *testing.T, e *ovsEnv, inPort string) []string {
	t.Helper()
	out := e.Appctl("ofproto/trace", "br-int", "in_port="+inPort+",dl_src=02:00:00:00:00:aa,dl_dst=ff:ff:ff:ff:ff:ff")
	line, ok := ovstest.DatapathActions(out)
	if !ok {
		t.Fatalf("no datapath actions in trace:\n%s", out)
	}
	return flows.SplitActions(line)
}

var dpifPortRE = regexp.MustCompile(`(?m)^\s+(\S+) (\d+)/(\d+):`)

// odpPorts maps port names to datapath port numbers (ovs-appctl dpif/show).
func odpPorts(t *testing.T, e *ovsEnv) map[string]string {
	out := e.Appctl("dpif/show")
	m := map[string]string{}
	for _, s := range dpifPortRE.FindAllStringSubmatch(out, -1) {
		m[s[1]] = s[3]
	}
	return m
}

// TestIsolationOnVswitchd runs a real ovs-vswitchd (dummy datapath): the manager reads the datapath id and
// ofports, creates a working tunnel port, and an isolated port gets no flooded broadcast while an explicit
// output: still reaches it.
func TestIsolationOnVswitchd(t *testing.T) {
	e := startOVSDB(t, false)
	e.vsctl("add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=dummy")
	for _, p := range []string{"p1", "p2", "p3"} {
		e.vsctl("add-port", "br-int", p, "--", "set", "interface", p, "type=dummy", "external_ids:iface-id=nic-"+p)
	}
	if err := e.StartVswitchd(context.Background()); err != nil {
		t.Fatal(err)
	}
	m := startManager(t, HostConfig{Address: e.addr()})
	gen, err := m.SetDesired([]TunnelSpec{{FlowNetworkUUID: fn1, LocalIP: "198.18.0.1"}}, []string{"p3"})
	if err != nil {
		t.Fatal(err)
	}
	waitApplied(t, m, gen)
	eventually(t, 10*time.Second, func() (bool, string) {
		return m.DatapathID() != "", "no datapath id"
	})
	if want := e.get("bridge", "br-int", "datapath_id"); m.DatapathID() != want {
		t.Errorf("datapath id %q, vswitchd says %q", m.DatapathID(), want)
	}
	if _, ok := model.NormalizeDatapathID(m.DatapathID()); !ok || len(m.DatapathID()) != 16 {
		t.Errorf("datapath id %q is not 16 hex digits", m.DatapathID())
	}
	tun := model.TunnelPortName(fn1)
	eventually(t, 10*time.Second, func() (bool, string) {
		m.Refresh()
		for _, name := range []string{"p1", "p2", "p3", tun} {
			i, ok := ifaceByName(m.Interfaces(), name)
			if !ok || i.OFPort <= 0 || i.OFPort == 65534 {
				return false, fmt.Sprintf("%s: %+v", name, m.Interfaces())
			}
		}
		return true, ""
	})
	if i, _ := ifaceByName(m.Interfaces(), "p1"); i.IfaceID != "nic-p1" || i.AdminState != "up" || i.LinkState != "up" {
		t.Errorf("p1 = %+v", i)
	}

	// A baseline NORMAL flow, and a mirror-like flow that copies what p1 sends to p3.
	e.Run("ovs-ofctl", "-O", "OpenFlow13", "add-flow", "br-int", "priority=0,actions=NORMAL")
	e.Run("ovs-ofctl", "-O", "OpenFlow13", "add-flow", "br-int", "priority=100,in_port=p1,actions=NORMAL,output:p3")
	odp := odpPorts(t, e)
	p1, p2, p3 := odp["p1"], odp["p2"], odp["p3"]
	if p1 == "" || p2 == "" || p3 == "" {
		t.Fatalf("datapath ports %v", odp)
	}

	acts := datapathActions(t, e, "p2")
	t.Logf("datapath ports %v; broadcast from p2 with p3 isolated: %v", odp, acts)
	if !slices.Contains(acts, p1) || slices.Contains(acts, p3) {
		t.Errorf("broadcast from p2 with p3 isolated: datapath actions %v, want %s (p1) and not %s (p3)", acts, p1, p3)
	}
	// p2 is a trunk (no tag): a broadcast it sends tagged with the parking VLAN itself stays away from p3.
	out := e.Appctl("ofproto/trace", "br-int", "in_port=p2,dl_vlan=4095,dl_src=02:00:00:00:00:aa,dl_dst=ff:ff:ff:ff:ff:ff")
	line, _ := ovstest.DatapathActions(out)
	if acts := flows.SplitActions(line); !slices.Contains(acts, p1) || slices.Contains(acts, p3) || slices.ContainsFunc(acts, func(a string) bool { return strings.HasSuffix(a, ","+p3) }) {
		t.Errorf("VLAN 4095 broadcast from trunk p2 with p3 isolated: datapath actions %v, want %s and not %s", acts, p1, p3)
	}
	acts = datapathActions(t, e, "p1")
	t.Logf("broadcast from p1 (flow NORMAL,output:p3): %v", acts)
	if !slices.Contains(acts, p2) || !slices.Contains(acts, p3) {
		t.Errorf("broadcast from p1 with output:p3: datapath actions %v, want %s (p2, flooded) and %s (p3, explicit)", acts, p2, p3)
	}
	if slices.ContainsFunc(acts, func(a string) bool { return strings.Contains(a, "push_vlan") }) {
		t.Errorf("explicit output to the isolated port pushes a VLAN: %v", acts)
	}

	// Restored: p3 gets flooded frames again.
	gen, err = m.SetDesired([]TunnelSpec{{FlowNetworkUUID: fn1, LocalIP: "198.18.0.1"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitApplied(t, m, gen)
	eventually(t, 5*time.Second, func() (bool, string) {
		acts := datapathActions(t, e, "p2")
		return slices.Contains(acts, p3), fmt.Sprint("broadcast from p2 after restore: ", acts)
	})
}

// mirrorsOf lists the bridge's Mirror rows as "name output-port-name external_ids", read in one transaction so
// that a pass of the manager under way cannot make it fail.
func mirrorsOf(t *testing.T, e *ovsEnv) []string {
	t.Helper()
	out, err := e.OVS.Vsctl(context.Background(), "--no-wait", "--format=csv", "--data=bare", "--no-headings",
		"--columns=name,output_port,external_ids", "list", "Mirror", "--", "--columns=_uuid,name", "list", "Port")
	if err != nil {
		return []string{"error: " + err.Error()}
	}
	ports := map[string]string{}
	var rows [][]string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(l, ",")
		if len(f) == 2 {
			ports[f[0]] = f[1]
		} else if len(f) >= 3 {
			rows = append(rows, f)
		}
	}
	var list []string
	for _, f := range rows {
		list = append(list, fmt.Sprintf("%s %s {%s}", f[0], ports[f[1]], strings.Join(f[2:], ",")))
	}
	slices.Sort(list)
	return list
}

// TestIsolationReservesPorts: an isolated port is the output port of a Mirror row of ours that selects nothing,
// written with its VLAN parking; a reservation someone removed comes back, one someone changed is replaced,
// others' mirrors are left alone, and releasing the port removes ours.
func TestIsolationReservesPorts(t *testing.T) {
	e := startOVSDB(t, false)
	e.vsctl("add-br", "br-int")
	for _, p := range []string{"vnet1", "vnet2", "vnet3"} {
		e.vsctl("add-port", "br-int", p)
	}
	e.vsctl("--", "--id=@p", "get", "Port", "vnet3", "--", "--id=@m", "create", "Mirror", "name=theirs", "select-all=true", "output-port=@p",
		"--", "add", "Bridge", "br-int", "mirrors", "@m")
	m := startManager(t, HostConfig{Address: e.addr()})
	gen, err := m.SetDesired(nil, []string{"vnet1", "vnet2"})
	if err != nil {
		t.Fatal(err)
	}
	waitApplied(t, m, gen)
	want := []string{
		`portmirror-isolate-vnet1 vnet1 {portmirror-isolation=vnet1}`,
		`portmirror-isolate-vnet2 vnet2 {portmirror-isolation=vnet2}`,
		`theirs vnet3 {}`,
	}
	if got := mirrorsOf(t, e); !slices.Equal(got, want) {
		t.Errorf("mirrors %q, want %q", got, want)
	}
	for _, u := range strings.Fields(e.vsctl("--bare", "--columns=_uuid", "find", "Mirror", "external_ids:portmirror-isolation=vnet1")) {
		if got := e.get("Mirror", u, "select_all") + e.get("Mirror", u, "select_src_port") + e.get("Mirror", u, "select_dst_port") + e.get("Mirror", u, "select_vlan"); got != "false[][][]" {
			t.Errorf("our mirror selects %q, want nothing", got)
		}
	}

	// Someone removes one reservation and widens the other: both come back as they were.
	u1 := strings.TrimSpace(e.vsctl("--bare", "--columns=_uuid", "find", "Mirror", "name=portmirror-isolate-vnet1"))
	e.vsctl("remove", "Bridge", "br-int", "mirrors", u1)
	e.vsctl("set", "Mirror", "portmirror-isolate-vnet2", "select-all=true")
	m.Refresh()
	eventually(t, 5*time.Second, func() (bool, string) {
		got := mirrorsOf(t, e)
		sel := e.get("Mirror", "portmirror-isolate-vnet2", "select_all")
		tag := e.get("Port", "vnet1", "tag")
		return slices.Equal(got, want) && sel == "false" && tag == "4095", fmt.Sprintf("mirrors %q, select_all %s, vnet1 tag %s", got, sel, tag)
	})

	// Released: ours go, theirs stays.
	gen, err = m.SetDesired(nil, []string{"vnet2"})
	if err != nil {
		t.Fatal(err)
	}
	waitApplied(t, m, gen)
	if got := mirrorsOf(t, e); !slices.Equal(got, want[1:]) {
		t.Errorf("after releasing vnet1: mirrors %q, want %q", got, want[1:])
	}
	gen, err = m.SetDesired(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitApplied(t, m, gen)
	if got := mirrorsOf(t, e); !slices.Equal(got, want[2:]) {
		t.Errorf("after releasing both: mirrors %q, want %q", got, want[2:])
	}
}

// TestIsolationBeyondMirrorBudget: with the bridge's 32 mirrors taken, a destination port is still parked on VLAN
// 4095 and the pass completes (the missing reservation is logged, not an error that blocks the bridge).
func TestIsolationBeyondMirrorBudget(t *testing.T) {
	e := startOVSDB(t, false)
	e.vsctl("add-br", "br-int")
	e.vsctl("add-port", "br-int", "vnet1")
	e.vsctl("add-port", "br-int", "vnet2")
	args := []string{}
	for i := range maxMirrors - 1 {
		args = append(args, "--", fmt.Sprintf("--id=@m%d", i), "create", "Mirror", fmt.Sprintf("name=theirs%d", i),
			"--", "add", "Bridge", "br-int", "mirrors", fmt.Sprintf("@m%d", i))
	}
	e.vsctl(args...)
	m := startManager(t, HostConfig{Address: e.addr()})
	gen, err := m.SetDesired(nil, []string{"vnet1", "vnet2"})
	if err != nil {
		t.Fatal(err)
	}
	waitApplied(t, m, gen)
	if n := len(strings.Fields(e.vsctl("--bare", "--columns=_uuid", "find", "Mirror", "external_ids:portmirror-isolation!=x"))); n != 1 {
		t.Errorf("%d reservations, want 1 (the 32nd mirror)", n)
	}
	for _, p := range []string{"vnet1", "vnet2"} {
		if got := e.get("Port", p, "tag"); got != "4095" {
			t.Errorf("%s tag %s, want 4095", p, got)
		}
	}
}
