package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// daemonBinary builds ./cmd/portmirrord once per test binary (the only
// package-level value of the harness: computed once, never changed). Set
// PORTMIRROR_E2E_RACE=1 to build it with -race.
var daemonBinary = sync.OnceValues(buildDaemon)

// daemonBuildDir is where the binary goes; TestMain removes it.
func daemonBuildDir() string {
	return filepath.Join(os.TempDir(), fmt.Sprintf("portmirror-e2e-bin-%d", os.Getpid()))
}

func cleanupDaemonBuild() { _ = os.RemoveAll(daemonBuildDir()) }

// errNoDaemon says the daemon's source is not in the tree.
var errNoDaemon = errors.New("cmd/portmirrord is not in the tree")

func buildDaemon() (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	gomod, err := runCmd(context.Background(), nil, goBin, "env", "GOMOD")
	if err != nil {
		return "", err
	}
	root := filepath.Dir(strings.TrimSpace(gomod))
	if _, err := os.Stat(filepath.Join(root, "cmd", "portmirrord")); err != nil {
		return "", fmt.Errorf("%w (%s)", errNoDaemon, root)
	}
	if err := os.MkdirAll(daemonBuildDir(), 0o755); err != nil {
		return "", err
	}
	bin := filepath.Join(daemonBuildDir(), "portmirrord")
	args := []string{"build", "-o", bin}
	if os.Getenv("PORTMIRROR_E2E_RACE") != "" {
		args = append(args, "-race")
	}
	cmd := exec.Command(goBin, append(args, "./cmd/portmirrord")...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/portmirrord: %w\n%s", err, out)
	}
	return bin, nil
}

// Daemon is a portmirrord process run by the test: API on a free 127.0.0.1 port,
// OpenFlow on the controller link (reachable from the hypervisor namespaces), data
// in a temp directory kept across Kill/Start.
type Daemon struct {
	Bin            string
	DataDir        string
	APIAddr        string // 127.0.0.1:PORT
	URL            string // http://127.0.0.1:PORT
	OpenFlowListen string // ControllerIP:PORT
	OpenFlowTarget string // tcp:ControllerIP:PORT, passed as --openflow-advertise
	ExtraArgs      []string
	LogPath        string // the daemon's stdout and stderr, appended across restarts
	// APIOnly makes Start wait only for /healthz to answer (any status), not for 200.
	APIOnly bool

	// A member of a cluster of controllers (see StartCluster) has a NodeID; the others are empty.
	NodeID       string // --node-id
	RaftListen   string // --raft-listen, 127.0.0.1:PORT
	Peers        string // --peers, ID=ADDR,... (the same on every member)
	APIAdvertise string // --api-advertise, http://127.0.0.1:PORT

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	exitErr error
}

// DaemonOptions tunes StartDaemon.
type DaemonOptions struct {
	ExtraArgs []string // more flags, e.g. --config FILE
	APIOnly   bool     // see Daemon.APIOnly
}

// StartDaemon builds (once) and starts portmirrord for the test and stops it at the
// end. With a topology, its OpenFlow listener is on tp.ControllerIP and it
// advertises tcp:ControllerIP:PORT; with tp nil, on 127.0.0.1. It skips the test
// when the daemon's source is absent, and fails when it does not build or start.
func StartDaemon(t testing.TB, tp *Topology, opts DaemonOptions) *Daemon {
	t.Helper()
	d := newDaemon(t, tp, opts)
	d.Start(t)
	return d
}

// newDaemon builds (once) portmirrord and prepares a Daemon for tp without starting
// it: free ports, a data directory, and its end when the test ends.
func newDaemon(t testing.TB, tp *Topology, opts DaemonOptions) *Daemon {
	t.Helper()
	bin, err := daemonBinary()
	if errors.Is(err, errNoDaemon) {
		t.Skipf("e2e: skipped: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	ofHost := "127.0.0.1"
	if tp != nil {
		ofHost = tp.ControllerIP
	}
	apiPort, err := freePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	ofPort, err := freePort(ofHost)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	d := &Daemon{
		Bin:            bin,
		DataDir:        filepath.Join(dir, "data"),
		APIAddr:        net.JoinHostPort("127.0.0.1", strconv.Itoa(apiPort)),
		OpenFlowListen: net.JoinHostPort(ofHost, strconv.Itoa(ofPort)),
		ExtraArgs:      opts.ExtraArgs,
		APIOnly:        opts.APIOnly,
		LogPath:        filepath.Join(dir, "portmirrord.log"),
	}
	d.URL = "http://" + d.APIAddr
	d.OpenFlowTarget = "tcp:" + d.OpenFlowListen
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("e2e: portmirrord %s log (tail):\n%s", d.NodeID, tailFile(d.LogPath, 60))
		}
		d.kill()
	})
	return d
}

// freePort returns a TCP port free on host right now.
func freePort(host string) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("free port on %s: %w", host, err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Args are the daemon's command line.
func (d *Daemon) Args() []string {
	args := []string{"--data-dir", d.DataDir, "--api-listen", d.APIAddr,
		"--openflow-listen", d.OpenFlowListen, "--openflow-advertise", d.OpenFlowTarget}
	if d.NodeID != "" {
		args = append(args, "--node-id", d.NodeID, "--raft-listen", d.RaftListen, "--peers", d.Peers,
			"--api-advertise", d.APIAdvertise)
	}
	return append(args, d.ExtraArgs...)
}

// Start starts the daemon (again, on the same data directory and addresses) and
// waits until /healthz answers 200 (or answers at all, with APIOnly).
func (d *Daemon) Start(t testing.TB) {
	t.Helper()
	d.start(t, !d.APIOnly)
}

// Running reports whether the daemon was started and not killed or stopped since.
func (d *Daemon) Running() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cmd != nil
}

// start starts the daemon and waits until /healthz answers: 200 when healthy is
// set, anything otherwise.
func (d *Daemon) start(t testing.TB, healthy bool) {
	t.Helper()
	d.mu.Lock()
	if d.cmd != nil {
		d.mu.Unlock()
		t.Fatal("portmirrord is already running")
	}
	logf, err := os.OpenFile(d.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		d.mu.Unlock()
		t.Fatal(err)
	}
	fmt.Fprintf(logf, "===== e2e: starting %s %s\n", d.Bin, strings.Join(d.Args(), " "))
	cmd := exec.Command(d.Bin, d.Args()...)
	cmd.Stdout, cmd.Stderr = logf, logf
	start := time.Now()
	if err := cmd.Start(); err != nil {
		logf.Close()
		d.mu.Unlock()
		t.Fatalf("start portmirrord: %v", err)
	}
	exited := make(chan struct{})
	d.cmd, d.exited, d.exitErr = cmd, exited, nil
	d.mu.Unlock()
	// Owned by the Daemon: ends when the process exits (Kill/Stop/cleanup wait for it).
	go func() {
		err := cmd.Wait()
		logf.Close()
		d.mu.Lock()
		d.exitErr = err
		d.mu.Unlock()
		close(exited)
	}()

	var last string
	err = poll(t.Context(), 30*time.Second, 20*time.Millisecond, func() (bool, error) {
		select {
		case <-exited:
			return false, errors.New("exited")
		default:
		}
		code, body, err := d.healthz(t.Context())
		if err != nil {
			last = err.Error()
			return false, nil
		}
		last = fmt.Sprintf("HTTP %d: %s", code, body)
		return code == http.StatusOK || !healthy, nil
	})
	if err != nil {
		t.Fatalf("portmirrord not healthy (%v; last /healthz: %s); log:\n%s", err, last, tailFile(d.LogPath, 40))
	}
	name := ""
	if d.NodeID != "" {
		name = " " + d.NodeID
	}
	t.Logf("e2e: portmirrord%s up in %v (api %s, openflow %s)", name, time.Since(start).Round(time.Millisecond), d.URL, d.OpenFlowTarget)
}

// Healthz returns the status code and body of GET /healthz.
func (d *Daemon) healthz(ctx context.Context) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.URL+"/healthz", nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, strings.TrimSpace(string(b)), nil
}

// Metrics reads GET /metrics into a map from each sample's name with its labels, as the text format writes them
// (e.g. `portmirror_sessions{status="ACTIVE"}`), to its value.
func (d *Daemon) Metrics(t testing.TB) map[string]float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.URL+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		i := strings.LastIndexByte(line, ' ')
		if line == "" || line[0] == '#' || i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("GET /metrics: line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// Healthz returns the status code and body of GET /healthz, failing the test when
// the request itself fails.
func (d *Daemon) Healthz(t testing.TB) (int, string) {
	t.Helper()
	code, body, err := d.healthz(t.Context())
	if err != nil {
		t.Fatalf("GET /healthz: %v", err)
	}
	return code, body
}

// Kill sends SIGKILL to the daemon and waits for it to exit: a crash, nothing flushed.
func (d *Daemon) Kill(t testing.TB) {
	t.Helper()
	if !d.kill() {
		t.Fatal("portmirrord is not running")
	}
}

func (d *Daemon) kill() bool {
	d.mu.Lock()
	cmd, exited := d.cmd, d.exited
	d.cmd = nil
	d.mu.Unlock()
	if cmd == nil {
		return false
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-exited
	return true
}

// Stop sends SIGTERM and waits for the daemon to exit; it fails the test unless the
// daemon exits with status 0 within 20 seconds.
func (d *Daemon) Stop(t testing.TB) {
	t.Helper()
	d.mu.Lock()
	cmd, exited := d.cmd, d.exited
	d.cmd = nil
	d.mu.Unlock()
	if cmd == nil {
		t.Fatal("portmirrord is not running")
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-exited
		t.Fatalf("portmirrord did not stop within 20s of SIGTERM; log:\n%s", tailFile(d.LogPath, 40))
	}
	d.mu.Lock()
	err := d.exitErr
	d.mu.Unlock()
	if err != nil {
		t.Fatalf("portmirrord stopped with %v after SIGTERM; log:\n%s", err, tailFile(d.LogPath, 40))
	}
}

// Restart kills the daemon (SIGKILL) and starts it again on the same data directory.
func (d *Daemon) Restart(t testing.TB) {
	t.Helper()
	d.Kill(t)
	d.Start(t)
}

// Client returns a GraphQL client for the daemon's API (no token).
func (d *Daemon) Client() *GraphQLClient {
	return &GraphQLClient{URL: d.URL + "/graphql"}
}

// Log returns everything the daemon has written so far.
func (d *Daemon) Log() string {
	b, _ := os.ReadFile(d.LogPath)
	return string(b)
}
