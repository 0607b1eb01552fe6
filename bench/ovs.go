package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ovsBinaries are the programs the OVS parts need.
var ovsBinaries = []string{"ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl"}

// ovsMissing names the first OVS program that is not installed, "" when all are.
func ovsMissing() string {
	for _, b := range ovsBinaries {
		if _, err := exec.LookPath(b); err != nil {
			return b
		}
	}
	return ""
}

// ovs is an ovsdb-server and an ovs-vswitchd (dummy datapath) of our own, in a private run directory, stopped by
// the pids in their pidfiles.
type ovs struct {
	dir string
	env []string
}

func startOVS(ctx context.Context) (*ovs, error) {
	if b := ovsMissing(); b != "" {
		return nil, fmt.Errorf("%s is not installed", b)
	}
	dir, err := os.MkdirTemp("", "pmbench") // unix socket paths must stay short
	if err != nil {
		return nil, err
	}
	o := &ovs{dir: dir, env: append(os.Environ(), "OVS_RUNDIR="+dir, "OVS_LOGDIR="+dir, "OVS_DBDIR="+dir, "OVS_SYSCONFDIR="+dir)}
	steps := [][]string{
		{"ovsdb-tool", "create", filepath.Join(dir, "conf.db"), "/usr/share/openvswitch/vswitch.ovsschema"},
		{"ovsdb-server", filepath.Join(dir, "conf.db"), "--remote=punix:" + o.db(), "--pidfile=" + o.pidfile("ovsdb-server"),
			"--unixctl=" + filepath.Join(dir, "ovsdb-server.ctl"), "--log-file=" + filepath.Join(dir, "ovsdb-server.log"), "--detach"},
		{"ovs-vsctl", "--db=unix:" + o.db(), "--no-wait", "init"},
		{"ovs-vswitchd", "unix:" + o.db(), "--enable-dummy", "--disable-system", "--pidfile=" + o.pidfile("ovs-vswitchd"),
			"--unixctl=" + filepath.Join(dir, "ovs-vswitchd.ctl"), "--log-file=" + filepath.Join(dir, "ovs-vswitchd.log"), "--detach"},
	}
	for _, s := range steps {
		if _, err := o.run(ctx, s[0], s[1:]...); err != nil {
			o.stop()
			return nil, err
		}
	}
	return o, nil
}

func (o *ovs) db() string                 { return filepath.Join(o.dir, "db.sock") }
func (o *ovs) pidfile(name string) string { return filepath.Join(o.dir, name+".pid") }

func (o *ovs) run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = o.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(trimArgs(args), " "), err, lastLines(string(out), 5))
	}
	return string(out), nil
}

func trimArgs(args []string) []string {
	if len(args) > 12 {
		return append(args[:12:12], fmt.Sprintf("... (%d more)", len(args)-12))
	}
	return args
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

func (o *ovs) vsctl(ctx context.Context, args ...string) (string, error) {
	return o.run(ctx, "ovs-vsctl", append([]string{"--db=unix:" + o.db(), "--timeout=30"}, args...)...)
}

func (o *ovs) ofctl(ctx context.Context, args ...string) (string, error) {
	return o.run(ctx, "ovs-ofctl", append([]string{"-O", "OpenFlow13"}, args...)...)
}

// version is ovs-vswitchd's version line.
func ovsVersion() string {
	out, err := exec.Command("ovs-vswitchd", "--version").Output()
	if err != nil {
		return "not installed"
	}
	return strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0]
}

// stop ends both daemons by pid and removes the run directory.
func (o *ovs) stop() {
	for _, name := range []string{"ovs-vswitchd", "ovsdb-server"} {
		b, err := os.ReadFile(o.pidfile(name))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 1 {
			continue
		}
		_ = syscall.Kill(pid, syscall.SIGTERM)
		deadline := time.Now().Add(5 * time.Second)
		for syscall.Kill(pid, 0) == nil {
			if time.Now().After(deadline) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	_ = os.RemoveAll(o.dir)
}

// addBridge creates a secure-mode OpenFlow 1.3 bridge on the dummy datapath with the given ports (name -> ofport),
// without a controller.
func (o *ovs) addBridge(ctx context.Context, name, dpid string, ports map[string]uint32) error {
	args := []string{"add-br", name, "--", "set", "bridge", name, "datapath_type=dummy", "protocols=OpenFlow13",
		"fail_mode=secure", "other-config:datapath-id=" + dpid}
	for p, no := range ports {
		args = append(args, "--", "add-port", name, p, "--", "set", "interface", p, "type=internal", fmt.Sprintf("ofport_request=%d", no))
	}
	_, err := o.vsctl(ctx, args...)
	return err
}

// setController points the bridge at one controller target, or none when target is "".
func (o *ovs) setController(ctx context.Context, br, target string) error {
	if target == "" {
		_, err := o.vsctl(ctx, "del-controller", br)
		return err
	}
	_, err := o.vsctl(ctx, "set-controller", br, target)
	return err
}

// flowCount is the number of flows in every table of the bridge (ovs-ofctl dump-aggregate).
func (o *ovs) flowCount(ctx context.Context, br string) (int, error) {
	out, err := o.ofctl(ctx, "dump-aggregate", br)
	if err != nil {
		return 0, err
	}
	i := strings.Index(out, "flow_count=")
	if i < 0 {
		return 0, fmt.Errorf("dump-aggregate %s: no flow_count in %q", br, out)
	}
	f := strings.Fields(out[i+len("flow_count="):])
	if len(f) == 0 {
		return 0, fmt.Errorf("dump-aggregate %s: no flow_count in %q", br, out)
	}
	return strconv.Atoi(f[0])
}

// clear deletes every flow of the bridge and checks it is empty.
func (o *ovs) clear(ctx context.Context, br string) error {
	if _, err := o.ofctl(ctx, "del-flows", br); err != nil {
		return err
	}
	n, err := o.flowCount(ctx, br)
	if err != nil {
		return err
	}
	if n != 0 {
		return fmt.Errorf("bridge %s still holds %d flows after del-flows", br, n)
	}
	return nil
}
