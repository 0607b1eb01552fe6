package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// requiredBinaries are the programs the harness runs.
var requiredBinaries = []string{"ip", "ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl", "ovs-appctl", "tcpdump"}

// vswitchSchema is where Debian's openvswitch-common installs the schema.
const vswitchSchema = "/usr/share/openvswitch/vswitch.ovsschema"

func TestMain(m *testing.M) {
	// ovsdb-server and ovs-vswitchd --detach reparent to PID 1, which does not reap
	// here: as a child subreaper the test binary inherits them and reaps them itself.
	if os.Geteuid() == 0 {
		_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	}
	code := m.Run()
	cleanupDaemonBuild()
	os.Exit(code)
}

// requireEnv skips the test, saying why, unless it runs as root with every binary
// the harness needs.
func requireEnv(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("e2e: skipped: needs root (network namespaces, veth pairs, OVS); run the tests as root")
	}
	var missing []string
	for _, b := range requiredBinaries {
		if _, err := exec.LookPath(b); err != nil {
			missing = append(missing, b)
		}
	}
	if _, err := os.Stat(vswitchSchema); err != nil {
		missing = append(missing, vswitchSchema)
	}
	if len(missing) > 0 {
		t.Skipf("e2e: skipped: missing %s (install openvswitch-switch, tcpdump, iproute2)", strings.Join(missing, ", "))
	}
}

// randSuffix returns n random characters from [a-z0-9], for names unique per run.
func randSuffix(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// newUUID returns a random RFC 4122 version 4 UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// runCmd runs a program with extra environment and returns its combined output; the
// error names the command and carries its output.
func runCmd(ctx context.Context, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// readPidfile reads an OVS pidfile.
func readPidfile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read pidfile: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pidfile %s holds %q, not a pid", path, b)
	}
	return pid, nil
}

// processGone reports whether pid has exited, reaping it when it is our child
// (the test binary is a child subreaper, so detached OVS daemons are).
func processGone(pid int) bool {
	var ws unix.WaitStatus
	got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
	if got == pid {
		return true
	}
	if err == nil {
		return false // our child, still running
	}
	// Not our child: look at /proc; a zombie has exited.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] == 'Z'
	}
	return false
}

// stopPid sends sig to pid (a process this harness started) and waits until it
// exits; after grace it sends SIGKILL.
func stopPid(pid int, sig syscall.Signal, grace time.Duration) error {
	if err := syscall.Kill(pid, sig); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			processGone(pid)
			return nil
		}
		return fmt.Errorf("signal %d: %w", pid, err)
	}
	deadline := time.Now().Add(grace)
	for !processGone(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			deadline = time.Now().Add(5 * time.Second)
			grace = 0
			if !waitGone(pid, deadline) {
				return fmt.Errorf("process %d did not exit after SIGKILL", pid)
			}
			return fmt.Errorf("process %d ignored signal %d, killed", pid, sig)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

func waitGone(pid int, deadline time.Time) bool {
	for !processGone(pid) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// poll calls cond every interval until it returns true or the timeout passes; it
// returns the last error cond gave (or a timeout error).
func poll(ctx context.Context, timeout, interval time.Duration, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("after %v: %w", timeout, last)
			}
			return fmt.Errorf("condition not met after %v", timeout)
		case <-time.After(interval):
		}
	}
}
