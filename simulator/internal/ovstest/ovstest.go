// Package ovstest runs a private ovsdb-server and ovs-vswitchd (dummy datapath) for tests that hold the
// simulator against real OVS. Daemons live in their own run directory and are stopped by pid.
package ovstest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// OVS is one running ovsdb-server + ovs-vswitchd pair.
type OVS struct {
	Dir   string
	Netns string // network namespace ovs-vswitchd runs in, when started with StartInNetns
	t     testing.TB
	env   []string
}

// Available reports whether the OVS binaries are installed.
func Available() bool {
	for _, b := range []string{"ovs-vswitchd", "ovsdb-server", "ovsdb-tool", "ovs-vsctl", "ovs-ofctl", "ovs-appctl"} {
		if _, err := exec.LookPath(b); err != nil {
			return false
		}
	}
	return true
}

// Start starts the daemons in a fresh directory and stops them when the test ends.
func Start(t testing.TB) *OVS { return start(t, "") }

// StartInNetns runs ovs-vswitchd inside a new network namespace whose loopback holds localIP/32 (an address of
// 198.18.0.0/15), so that OVS's tunnel routing finds localIP local: flow-based tunnel ports with
// options:local_ip=localIP then really encapsulate (tnl_push) in ofproto/trace.
func StartInNetns(t testing.TB, localIP string) *OVS { return start(t, localIP) }

func start(t testing.TB, localIP string) *OVS {
	t.Helper()
	if !Available() {
		t.Skip("ovs-vswitchd is not installed: skipping the live comparison with real OVS")
	}
	dir, err := os.MkdirTemp("", "ovs")
	if err != nil {
		t.Fatal(err)
	}
	o := &OVS{Dir: dir, t: t, env: append(os.Environ(), "OVS_RUNDIR="+dir, "OVS_LOGDIR="+dir, "OVS_DBDIR="+dir)}
	t.Cleanup(func() {
		o.stop()
		if o.Netns != "" {
			_, _ = o.Try("ip", "netns", "del", o.Netns)
		}
		os.RemoveAll(dir)
	})
	var prefix []string
	if localIP != "" {
		o.Netns = "pmsim-" + filepath.Base(dir)
		o.run("ip", "netns", "add", o.Netns)
		o.run("ip", "-n", o.Netns, "link", "set", "lo", "up")
		o.run("ip", "-n", o.Netns, "addr", "add", localIP+"/32", "dev", "lo")
		prefix = []string{"ip", "netns", "exec", o.Netns}
	}
	o.run("ovsdb-tool", "create", filepath.Join(dir, "conf.db"), "/usr/share/openvswitch/vswitch.ovsschema")
	o.run("ovsdb-server", "--remote=punix:"+dir+"/db.sock", "--pidfile="+dir+"/ovsdb.pid", "--unixctl="+dir+"/ovsdb.ctl",
		"--detach", "--log-file="+dir+"/ovsdb.log", dir+"/conf.db")
	args := append(prefix, "ovs-vswitchd", "unix:"+dir+"/db.sock", "--enable-dummy", "--pidfile="+dir+"/vswitchd.pid",
		"--unixctl="+dir+"/vswitchd.ctl", "--detach", "--log-file="+dir+"/vswitchd.log")
	o.run(args[0], args[1:]...)
	return o
}

func (o *OVS) stop() {
	for _, pf := range []string{"vswitchd.pid", "ovsdb.pid"} {
		b, err := os.ReadFile(filepath.Join(o.Dir, pf))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 1 {
			continue
		}
		_ = syscall.Kill(pid, syscall.SIGTERM)
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) && syscall.Kill(pid, 0) == nil {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func (o *OVS) run(name string, args ...string) string {
	o.t.Helper()
	out, err := o.Try(name, args...)
	if err != nil {
		o.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// Try runs an OVS command with this instance's environment and returns its combined output.
func (o *OVS) Try(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = o.env
	cmd.Dir = o.Dir
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("%s: %w", name, err)
	}
	return buf.String(), err
}

// Vsctl runs ovs-vsctl against this database.
func (o *OVS) Vsctl(args ...string) string {
	o.t.Helper()
	return o.run("ovs-vsctl", append([]string{"--db=unix:" + o.Dir + "/db.sock", "--timeout=10"}, args...)...)
}

// Ofctl runs ovs-ofctl -O OpenFlow13 COMMAND BRIDGE-SOCKET ARGS...
func (o *OVS) Ofctl(cmd, bridge string, args ...string) string {
	o.t.Helper()
	return o.run("ovs-ofctl", append([]string{"-O", "OpenFlow13", cmd, "unix:" + o.Dir + "/" + bridge + ".mgmt"}, args...)...)
}

// Appctl runs ovs-appctl against ovs-vswitchd.
func (o *OVS) Appctl(args ...string) string {
	o.t.Helper()
	return o.run("ovs-appctl", append([]string{"-t", o.Dir + "/vswitchd.ctl"}, args...)...)
}

// WaitFor polls cond until it holds or the deadline passes.
func (o *OVS) WaitFor(what string, cond func() bool) {
	o.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			o.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Log returns ovs-vswitchd's log.
func (o *OVS) Log() string {
	b, _ := os.ReadFile(filepath.Join(o.Dir, "vswitchd.log"))
	return string(b)
}
