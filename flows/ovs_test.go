package flows

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"portmirror/internal/ovstest"
)

// startOVS starts Open vSwitch and a bridge br0 on the dummy datapath with the given ports; ports in tunnels are
// flow-based GRE tunnel ports. It skips the test when Open vSwitch is not installed.
func startOVS(t *testing.T, ports []uint32, tunnels []uint32) *ovstest.T {
	o := ovstest.Must(t, ovstest.Options{DirPrefix: "pmflows"})
	o.Vsctl("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=dummy", "fail_mode=secure",
		"protocols=OpenFlow13")
	for _, p := range ports {
		name := fmt.Sprintf("p%d", p)
		args := []string{"add-port", "br0", name, "--", "set", "interface", name, fmt.Sprintf("ofport_request=%d", p)}
		if slices.Contains(tunnels, p) {
			args = append(args, "type=gre", "options:remote_ip=flow", "options:key=flow",
				fmt.Sprintf("options:local_ip=198.18.1.%d", p))
		} else {
			args = append(args, "type=dummy")
		}
		o.Vsctl(args...)
	}
	return o
}

// replaceAndDump installs the flows with one bundle and reads back every flow of the bridge.
func replaceAndDump(ctx context.Context, o *ovstest.T, flows []Flow, meters []Meter) ([]Flow, error) {
	mgmt := o.Mgmt("br0")
	// The flows' meters first (a flow naming a missing meter is refused).
	if _, err := o.OVS.Ofctl(ctx, "del-flows", mgmt); err != nil {
		return nil, err
	}
	if _, err := o.OVS.Ofctl(ctx, "del-meters", mgmt); err != nil {
		return nil, err
	}
	for _, m := range meters {
		spec := fmt.Sprintf("meter=%d,kbps,burst,stats,bands=type=drop,rate=%d,burst_size=%d", m.ID, m.Kbps, m.BurstKb)
		if _, err := o.OVS.Ofctl(ctx, "add-meter", mgmt, spec); err != nil {
			return nil, err
		}
	}
	var file strings.Builder
	for _, f := range flows {
		file.WriteString(f.String())
		file.WriteByte('\n')
	}
	path := filepath.Join(o.Dir, "flows.txt")
	if err := os.WriteFile(path, []byte(file.String()), 0o644); err != nil {
		return nil, err
	}
	if _, err := o.OVS.Ofctl(ctx, "--bundle", "replace-flows", mgmt, path); err != nil {
		return nil, err
	}
	out, err := o.OVS.Ofctl(ctx, "--no-names", "dump-flows", mgmt)
	if err != nil {
		return nil, err
	}
	var got []Flow
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, "actions=") {
			continue
		}
		f, err := ParseFlow(line)
		if err != nil {
			return nil, fmt.Errorf("dump-flows: %w", err)
		}
		got = append(got, f)
	}
	slices.SortFunc(got, CompareFlows)
	return got, nil
}

// TestOVSAcceptsCompiledFlows feeds every golden bridge table, and the tables of random fleets, to a real
// ovs-vswitchd through ovs-ofctl, and checks that the switch holds exactly the flows that were compiled.
func TestOVSAcceptsCompiledFlows(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var ports []uint32
	for p := uint32(1); p <= 12; p++ {
		ports = append(ports, p)
	}
	tunnels := []uint32{10, 11, 20, 21, 100, 101}
	ports = append(ports, 20, 21, 50, 100, 101)
	o := startOVS(t, ports, tunnels)

	type table struct {
		name   string
		flows  []Flow
		meters []Meter
	}
	var tables []table
	cases := goldenCases()
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for n := range cases {
			if !yield(n) {
				return
			}
		}
	}) {
		for _, dp := range []string{br1, br2, br3} {
			in := cases[name].in
			tables = append(tables, table{name + "/" + dp, CompileBridge(&in, dp), Analyze(&in).Meters(dp)})
		}
	}
	for seed := range 20 {
		w := randomWorld(rand.New(rand.NewPCG(uint64(seed), 1)))
		for _, dp := range w.bridges {
			tables = append(tables, table{fmt.Sprintf("random %d/%s", seed, dp), CompileBridge(&w.in, dp), Analyze(&w.in).Meters(dp)})
		}
	}
	for _, tb := range tables {
		got, err := replaceAndDump(ctx, o, tb.flows, tb.meters)
		if err != nil {
			t.Fatalf("%s: %v", tb.name, err)
		}
		if g, w := dumpFlows(got), dumpFlows(tb.flows); g != w {
			t.Errorf("%s: the switch holds\n%s\nwant\n%s", tb.name, g, w)
		}
	}

	// One flow with add-flow too, as a person would paste it.
	f := CompileBridge(&cases["a_to_b_both_mirrored"].in, br1)[3]
	if _, err := o.OVS.Ofctl(ctx, "del-flows", o.Mgmt("br0")); err != nil {
		t.Fatal(err)
	}
	if _, err := o.OVS.Ofctl(ctx, "add-flow", o.Mgmt("br0"), f.String()); err != nil {
		t.Fatal(err)
	}
	out, err := o.OVS.Ofctl(ctx, "--no-names", "dump-flows", o.Mgmt("br0"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, f.Match.String()) {
		t.Errorf("add-flow %q: dump-flows shows %s", f, out)
	}
}
