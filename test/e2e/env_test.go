package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"portmirror/internal/ovstest"
)

func TestMain(m *testing.M) {
	// ovsdb-server and ovs-vswitchd --detach reparent to PID 1, which does not reap
	// here: as a child subreaper the test binary inherits them, and ovstest reaps them
	// when it stops them.
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
	missing := ovstest.Missing(ovstest.Options{Datapath: ovstest.Netdev, Netns: "any"})
	if _, err := exec.LookPath("tcpdump"); err != nil {
		missing = append(missing, "tcpdump")
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
