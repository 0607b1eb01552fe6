// Package ovstest runs a private Open vSwitch, an ovsdb-server and (unless asked not to) an ovs-vswitchd, in a
// run directory of its own, for the tests and the benchmark program that hold portmirror against real OVS.
//
// Every daemon gets its own --pidfile, --unixctl and punix: database socket inside that directory (OVS_RUNDIR,
// OVS_LOGDIR, OVS_DBDIR and OVS_SYSCONFDIR all point there), and is stopped by the pid in its pidfile, never by
// name. The API in this file returns errors and does not import testing, so that non-test code may use it;
// must.go adds a small layer for tests on top.
package ovstest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Schema is where Debian's openvswitch-common installs the Open_vSwitch database schema.
const Schema = "/usr/share/openvswitch/vswitch.ovsschema"

// ErrNotInstalled is wrapped by Start's error when an OVS program or the schema is missing.
var ErrNotInstalled = errors.New("open vswitch is not installed")

// Datapath selects the datapath types ovs-vswitchd offers.
type Datapath string

const (
	// Dummy runs ovs-vswitchd with --enable-dummy --disable-system: bridges use datapath_type=dummy and ports
	// type=dummy, and nothing touches the kernel. The default.
	Dummy Datapath = "dummy"
	// Netdev runs ovs-vswitchd with --disable-system only: bridges use the userspace datapath_type=netdev and
	// ports are real network devices (best inside a namespace: Options.InNetns).
	Netdev Datapath = "netdev"
)

// Options say what to start. The zero value is an ovsdb-server and an ovs-vswitchd on the dummy datapath.
type Options struct {
	Datapath Datapath // Dummy when empty
	// NoVswitchd starts only ovsdb-server (with an initialised database); StartVswitchd starts ovs-vswitchd later.
	NoVswitchd bool
	// TCP adds a ptcp remote on TCPHost to ovsdb-server, on a port the server picks (see TCPAddr). A restarted
	// server (StartDB) listens on the same port again.
	TCP bool
	// SSL makes that remote pssl (implies TCP): ovsdb-server presents SSL.Certificate and accepts only clients
	// whose certificate SSL.CACert signed; TCPAddr is then "ssl:<TCPHost>:<port>".
	SSL *SSLFiles
	// TCPHost is the IPv4 address the TCP remote listens on, 127.0.0.1 when empty; with Netns, an address that
	// namespace holds.
	TCPHost string
	// InNetns runs ovs-vswitchd in a network namespace of its own, created with lo up and deleted by Stop.
	InNetns bool
	// NetnsAddrs are IPv4 addresses (of 198.18.0.0/15) added as /32 to the namespace's lo, so that OVS's tunnel
	// routing finds them local: flow-based tunnel ports with options:local_ip=one of them really encapsulate.
	// Only with InNetns.
	NetnsAddrs []string
	// Netns runs both daemons, ovsdb-server too, in this existing network namespace, which the caller made and
	// deletes. Not with InNetns.
	Netns string
	// DirPrefix starts the name of the temporary run directory ("pmovs" when empty). Keep it short: unix socket
	// paths are limited to 108 bytes.
	DirPrefix string
	// Dir is a run directory of the caller's, created if need be and left in place by Stop; a new temporary
	// one (see DirPrefix), which Stop removes, when empty.
	Dir string
}

// SSLFiles are the PEM files of ovsdb-server's SSL remote (absolute paths: the daemons run in /).
type SSLFiles struct {
	PrivateKey, Certificate, CACert string
}

// binaries are the programs every instance runs.
var binaries = []string{"ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl", "ovs-appctl"}

// Missing names what Start with these options needs and does not find: programs not in PATH and the schema.
// It is empty when everything is installed.
func Missing(opts Options) []string {
	bins := binaries
	if opts.InNetns || opts.Netns != "" {
		bins = append(bins[:len(bins):len(bins)], "ip")
	}
	var missing []string
	for _, b := range bins {
		if _, err := exec.LookPath(b); err != nil {
			missing = append(missing, b)
		}
	}
	if _, err := os.Stat(Schema); err != nil {
		missing = append(missing, Schema)
	}
	return missing
}

// Available reports whether the OVS programs and the schema are installed.
func Available() bool { return len(Missing(Options{})) == 0 }

// Version is ovs-vswitchd's version line, or "not installed".
func Version() string {
	out, err := exec.Command("ovs-vswitchd", "--version").Output()
	if err != nil {
		return "not installed"
	}
	return strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0]
}

// OVS is one private Open vSwitch. Its methods may be called from several goroutines.
type OVS struct {
	Dir   string // the run directory: conf.db, db.sock, pidfiles, control sockets, logs, <bridge>.mgmt
	Netns string // the network namespace ovs-vswitchd runs in: Options.Netns, or with Options.InNetns its own

	opts Options
	env  []string

	mu      sync.Mutex // guards the fields below and serialises starting and stopping
	dbPid   int
	vsPid   int
	tcpPort int
	stopped bool
}

// Start creates a run directory and starts the daemons the options ask for. The caller must call Stop, also
// when a later step fails. An error wraps ErrNotInstalled when OVS is missing, and otherwise carries the tails
// of the daemons' logs.
func Start(ctx context.Context, opts Options) (*OVS, error) {
	if opts.Datapath == "" {
		opts.Datapath = Dummy
	}
	if opts.Datapath != Dummy && opts.Datapath != Netdev {
		return nil, fmt.Errorf("ovstest: datapath %q: must be %q or %q", opts.Datapath, Dummy, Netdev)
	}
	if len(opts.NetnsAddrs) > 0 && !opts.InNetns {
		return nil, fmt.Errorf("ovstest: NetnsAddrs %v: only with InNetns", opts.NetnsAddrs)
	}
	if opts.Netns != "" && opts.InNetns {
		return nil, fmt.Errorf("ovstest: Netns %q: not with InNetns", opts.Netns)
	}
	if opts.TCPHost == "" {
		opts.TCPHost = "127.0.0.1"
	}
	if opts.SSL != nil {
		opts.TCP = true
	}
	if m := Missing(opts); len(m) > 0 {
		return nil, fmt.Errorf("ovstest: %w: missing %s", ErrNotInstalled, strings.Join(m, ", "))
	}
	dir, err := runDir(opts)
	if err != nil {
		return nil, fmt.Errorf("ovstest: run directory: %w", err)
	}
	o := &OVS{Dir: dir, Netns: opts.Netns, opts: opts,
		env: append(os.Environ(), "OVS_RUNDIR="+dir, "OVS_LOGDIR="+dir, "OVS_DBDIR="+dir, "OVS_SYSCONFDIR="+dir)}
	if err := o.start(ctx); err != nil {
		err = fmt.Errorf("ovstest: %w\n%s", err, o.LogTails(20))
		if serr := o.Stop(); serr != nil {
			err = errors.Join(err, serr)
		}
		return nil, err
	}
	return o, nil
}

// runDir makes the run directory: Options.Dir, or a new temporary one.
func runDir(opts Options) (string, error) {
	if opts.Dir != "" {
		return opts.Dir, os.MkdirAll(opts.Dir, 0o755)
	}
	prefix := opts.DirPrefix
	if prefix == "" {
		prefix = "pmovs"
	}
	return os.MkdirTemp("", prefix)
}

func (o *OVS) start(ctx context.Context) error {
	if o.opts.InNetns {
		o.Netns = "pmovs-" + filepath.Base(o.Dir)
		if _, err := o.Run(ctx, "ip", "netns", "add", o.Netns); err != nil {
			o.Netns = ""
			return err
		}
		if _, err := o.Run(ctx, "ip", "-n", o.Netns, "link", "set", "lo", "up"); err != nil {
			return err
		}
		for _, a := range o.opts.NetnsAddrs {
			if _, err := o.Run(ctx, "ip", "-n", o.Netns, "addr", "add", a+"/32", "dev", "lo"); err != nil {
				return err
			}
		}
	}
	if _, err := o.Run(ctx, "ovsdb-tool", "create", o.path("conf.db"), Schema); err != nil {
		return err
	}
	if err := o.StartDB(ctx); err != nil {
		return err
	}
	if _, err := o.Vsctl(ctx, "--no-wait", "init"); err != nil {
		return err
	}
	if o.opts.NoVswitchd {
		return nil
	}
	return o.StartVswitchd(ctx)
}

func (o *OVS) path(name string) string { return filepath.Join(o.Dir, name) }

// DBSocket is the path of ovsdb-server's unix socket.
func (o *OVS) DBSocket() string { return o.path("db.sock") }

// DBAddr is the database's unix remote, "unix:<Dir>/db.sock".
func (o *OVS) DBAddr() string { return "unix:" + o.DBSocket() }

// TCPAddr is the database's TCP remote, "tcp:<TCPHost>:<port>" ("ssl:..." with Options.SSL), or "" without
// Options.TCP.
func (o *OVS) TCPAddr() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.tcpPort == 0 {
		return ""
	}
	proto := "tcp"
	if o.opts.SSL != nil {
		proto = "ssl"
	}
	return fmt.Sprintf("%s:%s:%d", proto, o.opts.TCPHost, o.tcpPort)
}

// Mgmt is the OpenFlow management socket of a bridge, "unix:<Dir>/<bridge>.mgmt". ovs-ofctl also finds it
// from the bare bridge name through OVS_RUNDIR, which Ofctl sets.
func (o *OVS) Mgmt(bridge string) string { return "unix:" + o.path(bridge+".mgmt") }

// StartDB starts ovsdb-server on the instance's database, again after StopDB: on the same unix socket, and
// with Options.TCP on the same TCP port.
func (o *OVS) StartDB(ctx context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	logStart := fileSize(o.path("ovsdb-server.log"))
	args := []string{"ovsdb-server", o.path("conf.db"), "--remote=punix:" + o.DBSocket()}
	switch {
	case o.opts.SSL != nil:
		args = append(args, fmt.Sprintf("--remote=pssl:%d:%s", o.tcpPort, o.opts.TCPHost),
			"--private-key="+o.opts.SSL.PrivateKey, "--certificate="+o.opts.SSL.Certificate, "--ca-cert="+o.opts.SSL.CACert)
	case o.opts.TCP:
		args = append(args, fmt.Sprintf("--remote=ptcp:%d:%s", o.tcpPort, o.opts.TCPHost))
	}
	if err := o.startDaemon(ctx, &o.dbPid, args); err != nil {
		return err
	}
	if !o.opts.TCP || o.tcpPort != 0 {
		return nil
	}
	// The port the server picked shows in its log once it listens.
	listeningRE := regexp.MustCompile(regexp.QuoteMeta(o.opts.TCPHost) + `: listening on port (\d+)`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b, err := os.ReadFile(o.path("ovsdb-server.log")); err == nil && int64(len(b)) >= logStart {
			if m := listeningRE.FindSubmatch(b[logStart:]); m != nil {
				o.tcpPort, _ = strconv.Atoi(string(m[1]))
				return nil
			}
		}
		if time.Now().After(deadline) {
			return errors.New("ovsdb-server: no TCP listening port in ovsdb-server.log after 10s")
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("ovsdb-server: waiting for its TCP port: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// StartVswitchd starts ovs-vswitchd (in the namespace, with Options.InNetns) on the database; with
// Options.NoVswitchd this is how it starts at all, and it starts again after StopVswitchd.
func (o *OVS) StartVswitchd(ctx context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	args := []string{"ovs-vswitchd", o.DBAddr(), "--disable-system"}
	if o.opts.Datapath == Dummy {
		args = append(args, "--enable-dummy")
	}
	return o.startDaemon(ctx, &o.vsPid, args)
}

// startDaemon runs args (a daemon and its own arguments) detached, with a pidfile, control socket and log file
// named after it in the run directory (inside the namespace for ovs-vswitchd, and with Options.Netns for both),
// and records its pid in *pid.
// o.mu is held.
func (o *OVS) startDaemon(ctx context.Context, pid *int, args []string) error {
	name := args[0]
	if o.stopped {
		return fmt.Errorf("%s: the instance is stopped", name)
	}
	if *pid != 0 {
		return fmt.Errorf("%s: already running (pid %d)", name, *pid)
	}
	args = append(args, "--pidfile="+o.path(name+".pid"), "--unixctl="+o.path(name+".ctl"),
		"--log-file="+o.path(name+".log"), "--detach")
	if o.Netns != "" && (name == "ovs-vswitchd" || o.opts.Netns != "") {
		args = append([]string{"ip", "netns", "exec", o.Netns}, args...)
	}
	if _, err := o.Run(ctx, args[0], args[1:]...); err != nil {
		return err
	}
	p, err := readPidfile(o.path(name + ".pid"))
	if err != nil {
		return err
	}
	*pid = p
	return nil
}

// StopDB stops ovsdb-server with sig (SIGTERM for a clean stop, SIGKILL for a crash) and waits until it is
// gone; after 5s it is killed.
func (o *OVS) StopDB(sig syscall.Signal) error { return o.stopDaemon("ovsdb-server", &o.dbPid, sig) }

// StopVswitchd stops ovs-vswitchd like StopDB stops ovsdb-server.
func (o *OVS) StopVswitchd(sig syscall.Signal) error {
	return o.stopDaemon("ovs-vswitchd", &o.vsPid, sig)
}

func (o *OVS) stopDaemon(name string, pid *int, sig syscall.Signal) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	p := *pid
	*pid = 0
	return stopPid(name, p, sig)
}

// VswitchdPid is the pid of the running ovs-vswitchd, 0 when it is not running.
func (o *OVS) VswitchdPid() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.vsPid
}

// Stop ends both daemons by pid, deletes the namespace it made (Options.InNetns) and removes the temporary run
// directory (not Options.Dir). It may be called more than once.
func (o *OVS) Stop() error {
	errVs := o.StopVswitchd(syscall.SIGTERM)
	errDB := o.StopDB(syscall.SIGTERM)
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.stopped {
		return errors.Join(errVs, errDB)
	}
	o.stopped = true
	var errNs error
	if o.opts.InNetns && o.Netns != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, errNs = o.Run(ctx, "ip", "netns", "del", o.Netns)
	}
	var errDir error
	if o.opts.Dir != "" {
		return errors.Join(errVs, errDB, errNs)
	}
	if err := os.RemoveAll(o.Dir); err != nil {
		errDir = fmt.Errorf("ovstest: remove %s: %w", o.Dir, err)
	}
	return errors.Join(errVs, errDB, errNs, errDir)
}

func readPidfile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read pidfile: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0, fmt.Errorf("pidfile %s holds %q, not a daemon's pid", path, b)
	}
	return pid, nil
}

// stopPid signals pid and waits until it is gone, killing it after 5s.
func stopPid(name string, pid int, sig syscall.Signal) error {
	if pid == 0 {
		return nil
	}
	if err := syscall.Kill(pid, sig); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return nil
		}
		return fmt.Errorf("ovstest: stop %s (pid %d): %w", name, pid, err)
	}
	if waitGone(pid, 5*time.Second) {
		return nil
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	if waitGone(pid, 5*time.Second) {
		return fmt.Errorf("ovstest: %s (pid %d) ignored %v for 5s and was killed", name, pid, sig)
	}
	return fmt.Errorf("ovstest: %s (pid %d) is still running after %v and SIGKILL", name, pid, sig)
}

// waitGone polls until pid has exited. A detached daemon is not our child; where no one reaps it, it stays a
// zombie, which counts as gone.
func waitGone(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if gone(pid) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func gone(pid int) bool {
	// Where the caller is a child subreaper, detached daemons are its children: reap them.
	var ws syscall.WaitStatus
	if got, _ := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil); got == pid {
		return true
	}
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return os.IsNotExist(err)
	}
	// pid (comm) state ...: comm may hold spaces and parentheses, the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && (s[i+2] == 'Z' || s[i+2] == 'X')
}

// Run runs a program with this instance's environment, in its run directory, and returns its standard output.
// The error names the command and carries the end of its standard error.
func (o *OVS) Run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = o.env
	cmd.Dir = o.Dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(shortArgs(args), " "), err,
			tail(strings.TrimSpace(stderr.String()), 10))
	}
	return stdout.String(), nil
}

func shortArgs(args []string) []string {
	if len(args) > 12 {
		return append(args[:12:12], fmt.Sprintf("... (%d more)", len(args)-12))
	}
	return args
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	l := strings.Split(s, "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

// Vsctl runs ovs-vsctl against the database. Without --no-wait among args, a change waits until ovs-vswitchd
// has applied it.
func (o *OVS) Vsctl(ctx context.Context, args ...string) (string, error) {
	return o.Run(ctx, "ovs-vsctl", append([]string{"--db=" + o.DBAddr(), "--timeout=30"}, args...)...)
}

// Ofctl runs ovs-ofctl -O OpenFlow13 ARGS...; a bare bridge name finds the bridge's management socket.
func (o *OVS) Ofctl(ctx context.Context, args ...string) (string, error) {
	return o.Run(ctx, "ovs-ofctl", append([]string{"-O", "OpenFlow13"}, args...)...)
}

// Appctl runs ovs-appctl against ovs-vswitchd.
func (o *OVS) Appctl(ctx context.Context, args ...string) (string, error) {
	return o.Run(ctx, "ovs-appctl", append([]string{"-t", o.path("ovs-vswitchd.ctl")}, args...)...)
}

// LogTails is the last n lines of each daemon's log, for a failure message.
func (o *OVS) LogTails(n int) string {
	var b strings.Builder
	for _, f := range []string{"ovsdb-server.log", "ovs-vswitchd.log"} {
		data, err := os.ReadFile(o.path(f))
		if err != nil {
			continue
		}
		fmt.Fprintf(&b, "--- %s (last %d lines)\n%s\n", f, n, tail(strings.TrimSpace(string(data)), n))
	}
	return b.String()
}
