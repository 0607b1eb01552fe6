package flows

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ovs is a private ovsdb-server + ovs-vswitchd in a temporary run directory.
type ovs struct {
	dir string
	t   *testing.T
}

func (o *ovs) run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "OVS_RUNDIR="+o.dir, "OVS_LOGDIR="+o.dir, "OVS_DBDIR="+o.dir, "OVS_SYSCONFDIR="+o.dir)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, stderr.String())
	}
	return out.String(), nil
}

func (o *ovs) vsctl(ctx context.Context, args ...string) {
	o.t.Helper()
	if _, err := o.run(ctx, "ovs-vsctl", append([]string{"--db=unix:" + o.dir + "/db.sock", "--timeout=10"}, args...)...); err != nil {
		o.t.Fatal(err)
	}
}

// stop ends a daemon by the pid in its pidfile and waits for it to go.
func (o *ovs) stop(pidfile string) {
	b, err := os.ReadFile(filepath.Join(o.dir, pidfile))
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	o.t.Errorf("%s (pid %d) did not stop within 10s", pidfile, pid)
}

// startOVS starts the daemons and a bridge br0 on the dummy datapath with the given ports; ports in tunnels are
// flow-based GRE tunnel ports. It skips the test when Open vSwitch is not installed.
func startOVS(t *testing.T, ctx context.Context, ports []uint32, tunnels []uint32) *ovs {
	for _, bin := range []string{"ovs-vswitchd", "ovsdb-server", "ovsdb-tool", "ovs-vsctl", "ovs-ofctl"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("Open vSwitch is not installed (%s not in PATH): the ovs-ofctl acceptance test needs it", bin)
		}
	}
	dir, err := os.MkdirTemp("", "pmflows") // short: unix socket paths are limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	o := &ovs{dir: dir, t: t}
	t.Cleanup(func() {
		o.stop("vswitchd.pid")
		o.stop("ovsdb.pid")
		if t.Failed() {
			for _, log := range []string{"vswitchd.log", "ovsdb.log"} {
				if b, err := os.ReadFile(filepath.Join(dir, log)); err == nil {
					t.Logf("%s:\n%s", log, b)
				}
			}
		}
		_ = os.RemoveAll(dir)
	})
	schema := "/usr/share/openvswitch/vswitch.ovsschema"
	steps := [][]string{
		{"ovsdb-tool", "create", dir + "/conf.db", schema},
		{"ovsdb-server", dir + "/conf.db", "--remote=punix:" + dir + "/db.sock", "--pidfile=" + dir + "/ovsdb.pid",
			"--unixctl=" + dir + "/ovsdb.ctl", "--log-file=" + dir + "/ovsdb.log", "--detach"},
		{"ovs-vswitchd", "unix:" + dir + "/db.sock", "--pidfile=" + dir + "/vswitchd.pid",
			"--unixctl=" + dir + "/vswitchd.ctl", "--log-file=" + dir + "/vswitchd.log", "--enable-dummy",
			"--disable-system", "--detach"},
	}
	for _, s := range steps {
		if _, err := o.run(ctx, s[0], s[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	o.vsctl(ctx, "add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=dummy", "fail_mode=secure",
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
		o.vsctl(ctx, args...)
	}
	return o
}

func (o *ovs) ofctl(ctx context.Context, args ...string) (string, error) {
	return o.run(ctx, "ovs-ofctl", append([]string{"-O", "OpenFlow13"}, args...)...)
}

// replaceAndDump installs the flows with one bundle and reads back every flow of the bridge.
func (o *ovs) replaceAndDump(ctx context.Context, flows []Flow) ([]Flow, error) {
	var file strings.Builder
	for _, f := range flows {
		file.WriteString(f.String())
		file.WriteByte('\n')
	}
	path := filepath.Join(o.dir, "flows.txt")
	if err := os.WriteFile(path, []byte(file.String()), 0o644); err != nil {
		return nil, err
	}
	mgmt := "unix:" + o.dir + "/br0.mgmt"
	if _, err := o.ofctl(ctx, "--bundle", "replace-flows", mgmt, path); err != nil {
		return nil, err
	}
	out, err := o.ofctl(ctx, "--no-names", "dump-flows", mgmt)
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
	o := startOVS(t, ctx, ports, tunnels)

	type table struct {
		name  string
		flows []Flow
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
			tables = append(tables, table{name + "/" + dp, CompileBridge(&cases[name].in, dp)})
		}
	}
	for seed := range 20 {
		w := randomWorld(rand.New(rand.NewPCG(uint64(seed), 1)))
		for _, dp := range w.bridges {
			tables = append(tables, table{fmt.Sprintf("random %d/%s", seed, dp), CompileBridge(&w.in, dp)})
		}
	}
	for _, tb := range tables {
		got, err := o.replaceAndDump(ctx, tb.flows)
		if err != nil {
			t.Fatalf("%s: %v", tb.name, err)
		}
		if g, w := flowLines(got), flowLines(tb.flows); g != w {
			t.Errorf("%s: the switch holds\n%s\nwant\n%s", tb.name, g, w)
		}
	}

	// One flow with add-flow too, as a person would paste it.
	f := CompileBridge(&cases["a_to_b_both_mirrored"].in, br1)[3]
	if _, err := o.ofctl(ctx, "del-flows", "unix:"+o.dir+"/br0.mgmt"); err != nil {
		t.Fatal(err)
	}
	if _, err := o.ofctl(ctx, "add-flow", "unix:"+o.dir+"/br0.mgmt", f.String()); err != nil {
		t.Fatal(err)
	}
	out, err := o.ofctl(ctx, "--no-names", "dump-flows", "unix:"+o.dir+"/br0.mgmt")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, f.Match.String()) {
		t.Errorf("add-flow %q: dump-flows shows %s", f, out)
	}
}

func flowLines(fs []Flow) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString(f.String())
		b.WriteByte('\n')
	}
	return b.String()
}
