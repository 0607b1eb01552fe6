package ovsdbhost

// Test helpers: a real ovsdb-server (and optionally ovs-vswitchd) per test, in the test's own run directory,
// stopped by pid.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

type ovsEnv struct {
	t       *testing.T
	dir     string
	sock    string
	tcp     bool
	tcpPort int
	pid     int
	vsPid   int
}

func needOVS(t *testing.T, bins ...string) {
	t.Helper()
	for _, b := range append([]string{"ovsdb-server", "ovsdb-tool", "ovs-vsctl"}, bins...) {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("%s not installed", b)
		}
	}
}

func startOVSDB(t *testing.T, tcp bool) *ovsEnv {
	t.Helper()
	needOVS(t)
	dir, err := os.MkdirTemp("", "pmovs")
	if err != nil {
		t.Fatal(err)
	}
	e := &ovsEnv{t: t, dir: dir, sock: filepath.Join(dir, "db.sock"), tcp: tcp}
	t.Cleanup(func() {
		e.stopVswitchd()
		e.stopServer()
		if t.Failed() {
			for _, l := range []string{"ovsdb.log", "vs.log"} {
				if b, err := os.ReadFile(filepath.Join(dir, l)); err == nil {
					t.Logf("%s:\n%s", l, tail(string(b), 3000))
				}
			}
		}
		os.RemoveAll(dir)
	})
	e.run("ovsdb-tool", "create", filepath.Join(dir, "conf.db"), "/usr/share/openvswitch/vswitch.ovsschema")
	e.startServer()
	e.vsctl("init")
	return e
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func (e *ovsEnv) env() []string {
	return append(os.Environ(), "OVS_RUNDIR="+e.dir, "OVS_LOGDIR="+e.dir, "OVS_DBDIR="+e.dir)
}

func (e *ovsEnv) run(name string, args ...string) string {
	e.t.Helper()
	out, err := e.tryRun(name, args...)
	if err != nil {
		e.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func (e *ovsEnv) tryRun(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = e.env()
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func (e *ovsEnv) addr() string {
	if e.tcp {
		return fmt.Sprintf("tcp:127.0.0.1:%d", e.tcpPort)
	}
	return "unix:" + e.sock
}

var listenRE = regexp.MustCompile(`127\.0\.0\.1: listening on port (\d+)`)

func (e *ovsEnv) startServer() {
	e.t.Helper()
	logPath := filepath.Join(e.dir, "ovsdb.log")
	os.Remove(logPath)
	args := []string{filepath.Join(e.dir, "conf.db"), "--remote=punix:" + e.sock,
		"--pidfile=" + filepath.Join(e.dir, "ovsdb.pid"), "--unixctl=" + filepath.Join(e.dir, "ovsdb.ctl"),
		"--detach", "--log-file=" + logPath}
	if e.tcp {
		port := "0"
		if e.tcpPort != 0 {
			port = strconv.Itoa(e.tcpPort)
		}
		args = append(args, "--remote=ptcp:"+port+":127.0.0.1")
	}
	e.run("ovsdb-server", args...)
	e.pid = readPid(e.t, filepath.Join(e.dir, "ovsdb.pid"))
	if e.tcp && e.tcpPort == 0 {
		eventually(e.t, 5*time.Second, func() (bool, string) {
			b, _ := os.ReadFile(logPath)
			m := listenRE.FindStringSubmatch(string(b))
			if m == nil {
				return false, "no listening port in ovsdb.log"
			}
			e.tcpPort, _ = strconv.Atoi(m[1])
			return true, ""
		})
	}
}

func readPid(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pidfile %s: %v", path, err)
	}
	return pid
}

func stopPid(t *testing.T, pid int, sig syscall.Signal) {
	if pid == 0 {
		return
	}
	syscall.Kill(pid, sig)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	t.Logf("pid %d did not stop on %v; killed", pid, sig)
}

func (e *ovsEnv) stopServer() {
	stopPid(e.t, e.pid, syscall.SIGTERM)
	e.pid = 0
}

func (e *ovsEnv) startVswitchd() {
	e.t.Helper()
	needOVS(e.t, "ovs-vswitchd", "ovs-appctl", "ovs-ofctl")
	e.run("ovs-vswitchd", "unix:"+e.sock, "--enable-dummy", "--pidfile="+filepath.Join(e.dir, "vs.pid"),
		"--unixctl="+filepath.Join(e.dir, "vs.ctl"), "--detach", "--log-file="+filepath.Join(e.dir, "vs.log"))
	e.vsPid = readPid(e.t, filepath.Join(e.dir, "vs.pid"))
}

func (e *ovsEnv) stopVswitchd() {
	stopPid(e.t, e.vsPid, syscall.SIGTERM)
	e.vsPid = 0
}

func (e *ovsEnv) appctl(args ...string) string {
	e.t.Helper()
	return e.run("ovs-appctl", append([]string{"-t", filepath.Join(e.dir, "vs.ctl")}, args...)...)
}

func (e *ovsEnv) vsctl(args ...string) string {
	e.t.Helper()
	return e.run("ovs-vsctl", append([]string{"--db=unix:" + e.sock, "--no-wait", "--timeout=10"}, args...)...)
}

// get returns ovs-vsctl get's value with surrounding quotes removed.
func (e *ovsEnv) get(args ...string) string {
	e.t.Helper()
	return strings.Trim(e.vsctl(append([]string{"get"}, args...)...), `"`)
}

func eventually(t *testing.T, d time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, why)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func startManager(t *testing.T, cfg HostConfig) *Manager {
	t.Helper()
	if cfg.HostUUID == "" {
		cfg.HostUUID = "host-1"
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff, cfg.MaxBackoff = 20*time.Millisecond, 200*time.Millisecond
	}
	m, err := NewManager(cfg, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return m
}

// waitApplied waits until the manager has applied generation gen in a clean pass.
func waitApplied(t *testing.T, m *Manager, gen uint64) {
	t.Helper()
	eventually(t, 10*time.Second, func() (bool, string) {
		s := m.Status()
		return s.Applied >= gen && !s.LastSync.IsZero(), fmt.Sprintf("status %+v, want applied %d", s, gen)
	})
}
