package ovstest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

func needOVS(t *testing.T, opts Options) {
	t.Helper()
	if m := Missing(opts); len(m) > 0 {
		t.Skipf("missing %s", strings.Join(m, ", "))
	}
}

func alive(pid int) bool { return pid != 0 && !gone(pid) }

// TestDummyBridgeCarriesFlowsAndStopRemovesEverything: the default instance runs a dummy-datapath bridge that
// takes flows; Stop ends both daemons, removes the run directory, and may be called again.
func TestDummyBridgeCarriesFlowsAndStopRemovesEverything(t *testing.T) {
	needOVS(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = o.Stop() })
	if _, err := o.Vsctl(ctx, "add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=dummy",
		"protocols=OpenFlow13", "fail_mode=secure", "--", "add-port", "br0", "p1", "--", "set", "interface", "p1",
		"type=dummy", "ofport_request=7"); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Ofctl(ctx, "add-flow", "br0", "priority=5,in_port=7,actions=drop"); err != nil {
		t.Fatal(err)
	}
	out, err := o.Ofctl(ctx, "dump-flows", o.Mgmt("br0"))
	if err != nil || !strings.Contains(out, "priority=5,in_port=7 actions=drop") {
		t.Fatalf("dump-flows: %v\n%s", err, out)
	}
	out, err = o.Appctl(ctx, "dpif/show")
	if err != nil || !strings.Contains(out, "dummy@") || !strings.Contains(out, "p1 7/") {
		t.Fatalf("dpif/show: %v\n%s", err, out)
	}
	if _, err := o.Vsctl(ctx, "add-br", "bad", "--", "set", "bridge", "bad", "datapath_type=dummy",
		"--", "set", "bridge", "bad", "protocols=NoSuchProtocol"); err == nil || !strings.Contains(err.Error(), "ovs-vsctl") {
		t.Errorf("a refused ovs-vsctl returned %v, want an error naming the command", err)
	}
	if tails := o.LogTails(5); !strings.Contains(tails, "ovsdb-server.log") || !strings.Contains(tails, "ovs-vswitchd.log") {
		t.Errorf("LogTails lacks a log:\n%s", tails)
	}

	vs := o.VswitchdPid()
	o.mu.Lock()
	db := o.dbPid
	o.mu.Unlock()
	if !alive(vs) || !alive(db) {
		t.Fatalf("daemons not running: vswitchd %d, ovsdb-server %d", vs, db)
	}
	if err := o.Stop(); err != nil {
		t.Fatal(err)
	}
	if alive(vs) || alive(db) {
		t.Errorf("after Stop: vswitchd %d alive %v, ovsdb-server %d alive %v", vs, alive(vs), db, alive(db))
	}
	if _, err := os.Stat(o.Dir); !os.IsNotExist(err) {
		t.Errorf("run directory %s after Stop: %v", o.Dir, err)
	}
	if err := o.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if err := o.StartDB(ctx); err == nil {
		t.Error("StartDB after Stop succeeded")
	}
}

// TestDatabaseOnlyOverTCPSurvivesRestart: without vswitchd, the database answers on unix and TCP; killed and
// restarted, it listens on the same port with its data; ovs-vswitchd can be started afterwards.
func TestDatabaseOnlyOverTCPSurvivesRestart(t *testing.T) {
	needOVS(t, Options{})
	o := Must(t, Options{NoVswitchd: true, TCP: true})
	if o.VswitchdPid() != 0 {
		t.Fatalf("ovs-vswitchd runs (pid %d) with NoVswitchd", o.VswitchdPid())
	}
	addr := o.TCPAddr()
	if !strings.HasPrefix(addr, "tcp:127.0.0.1:") {
		t.Fatalf("TCPAddr %q", addr)
	}
	o.Vsctl("--no-wait", "add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=dummy")
	hostPort := strings.TrimPrefix(addr, "tcp:")
	if got := strings.TrimSpace(o.Run("ovs-vsctl", "--db="+addr, "--no-wait", "list-br")); got != "br0" {
		t.Fatalf("list-br over TCP: %q", got)
	}

	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		if err := o.StopDB(sig); err != nil {
			t.Fatal(err)
		}
		if c, err := net.DialTimeout("tcp", hostPort, time.Second); err == nil {
			c.Close()
			t.Fatalf("%s still accepts after StopDB(%v)", hostPort, sig)
		}
		if err := o.StartDB(context.Background()); err != nil {
			t.Fatal(err)
		}
		if o.TCPAddr() != addr {
			t.Fatalf("after restart TCPAddr %q, was %q", o.TCPAddr(), addr)
		}
		if got := strings.TrimSpace(o.Run("ovs-vsctl", "--db="+addr, "--no-wait", "list-br")); got != "br0" {
			t.Fatalf("list-br over TCP after StopDB(%v): %q", sig, got)
		}
	}
	if err := o.StartDB(context.Background()); err == nil {
		t.Error("a second StartDB while running succeeded")
	}

	if err := o.StartVswitchd(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Without --no-wait this waits for ovs-vswitchd to apply the change.
	o.Vsctl("add-port", "br0", "p1", "--", "set", "interface", "p1", "type=dummy", "ofport_request=3")
	if got := strings.TrimSpace(o.Vsctl("get", "interface", "p1", "ofport")); got != "3" {
		t.Errorf("ofport of p1 = %q, want 3", got)
	}
}

// TestNetdevInNetns: ovs-vswitchd on the userspace datapath inside its own namespace, whose lo holds the given
// address; the bridge's device appears there, not here, and Stop deletes the namespace.
func TestNetdevInNetns(t *testing.T) {
	opts := Options{Datapath: Netdev, InNetns: true, NetnsAddrs: []string{"198.18.0.77"}}
	needOVS(t, opts)
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o, err := Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = o.Stop() })
	br := "pmt" + o.Netns[len(o.Netns)-6:] // a device name nobody else uses
	if _, err := o.Vsctl(ctx, "add-br", br, "--", "set", "bridge", br, "datapath_type=netdev"); err != nil {
		t.Fatalf("%v\n%s", err, o.LogTails(20))
	}
	if out, err := exec.Command("ip", "-n", o.Netns, "addr", "show", "dev", "lo").CombinedOutput(); err != nil ||
		!strings.Contains(string(out), "198.18.0.77/32") {
		t.Errorf("lo in %s: %v\n%s", o.Netns, err, out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for exec.Command("ip", "-n", o.Netns, "link", "show", "dev", br).Run() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("no device %s in %s after 10s\n%s", br, o.Netns, o.LogTails(20))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if exec.Command("ip", "link", "show", "dev", br).Run() == nil {
		t.Errorf("device %s exists outside the namespace", br)
	}
	out, err := o.Appctl(ctx, "dpif/show")
	if err != nil || !strings.Contains(out, "netdev@") {
		t.Errorf("dpif/show: %v\n%s", err, out)
	}
	ns := o.Netns
	if err := o.Stop(); err != nil {
		t.Fatal(err)
	}
	if out, _ := exec.Command("ip", "netns", "list").Output(); strings.Contains(string(out), ns) {
		t.Errorf("namespace %s still exists after Stop", ns)
	}
}

// TestStartRefusesBadOptions: bad options get an error naming the option, and nothing is started.
func TestStartRefusesBadOptions(t *testing.T) {
	for _, c := range []struct {
		opts Options
		want string
	}{
		{Options{Datapath: "system"}, `datapath "system": must be "dummy" or "netdev"`},
		{Options{NetnsAddrs: []string{"198.18.0.1"}}, "NetnsAddrs [198.18.0.1]: only with InNetns"},
		{Options{Netns: "pmx", InNetns: true}, `Netns "pmx": not with InNetns`},
	} {
		o, err := Start(context.Background(), c.opts)
		if err == nil || !strings.Contains(err.Error(), c.want) || o != nil {
			t.Errorf("Start(%+v) = %v, %v; want an error with %q", c.opts, o, err, c.want)
		}
	}
}

// fakeTB records what Must does; Skipf and Fatalf end the calling goroutine's work by panicking.
type fakeTB struct {
	skipped, fatal string
	cleanups       []func()
}

type stopNow struct{}

func (f *fakeTB) Helper()             {}
func (f *fakeTB) Logf(string, ...any) {}
func (f *fakeTB) Failed() bool        { return f.fatal != "" }
func (f *fakeTB) Cleanup(fn func())   { f.cleanups = append(f.cleanups, fn) }
func (f *fakeTB) Skipf(format string, a ...any) {
	f.skipped = fmt.Sprintf(format, a...)
	panic(stopNow{})
}
func (f *fakeTB) Fatalf(format string, a ...any) {
	f.fatal = fmt.Sprintf(format, a...)
	panic(stopNow{})
}
func (f *fakeTB) must(opts Options) (o *T) { defer f.recover(); return Must(f, opts) }
func (f *fakeTB) recover() {
	if r := recover(); r != nil && r != (stopNow{}) {
		panic(r)
	}
}
func (f *fakeTB) cleanup() {
	for _, fn := range f.cleanups {
		fn()
	}
}

// TestMustSkipsOnlyWhenNotInstalled: Must skips, naming the missing programs, when OVS is not in PATH; a start
// that fails for another reason fails the test instead.
func TestMustSkipsOnlyWhenNotInstalled(t *testing.T) {
	t.Run("not installed", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		f := &fakeTB{}
		f.must(Options{})
		defer f.cleanup()
		if !strings.Contains(f.skipped, "missing ovsdb-tool, ovsdb-server, ovs-vswitchd") || f.fatal != "" {
			t.Errorf("skipped %q, fatal %q", f.skipped, f.fatal)
		}
	})
	t.Run("bad options", func(t *testing.T) {
		needOVS(t, Options{})
		f := &fakeTB{}
		f.must(Options{Datapath: "system"})
		defer f.cleanup()
		if f.skipped != "" || !strings.Contains(f.fatal, `datapath "system"`) {
			t.Errorf("skipped %q, fatal %q", f.skipped, f.fatal)
		}
	})
}
