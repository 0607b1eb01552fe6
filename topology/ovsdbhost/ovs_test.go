package ovsdbhost

// Test helpers: a real ovsdb-server (and optionally ovs-vswitchd) per test, in the test's own run directory,
// stopped by pid.

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"portmirror/internal/ovstest"
)

// ovsEnv is a real ovsdb-server for one test, reached over unix or TCP; a test that needs ovs-vswitchd starts it
// (StartVswitchd).
type ovsEnv struct {
	*ovstest.T
	t   *testing.T
	tcp bool
}

func startOVSDB(t *testing.T, tcp bool) *ovsEnv {
	t.Helper()
	return &ovsEnv{T: ovstest.Must(t, ovstest.Options{NoVswitchd: true, TCP: tcp}), t: t, tcp: tcp}
}

// addr is the database address the manager dials.
func (e *ovsEnv) addr() string {
	if e.tcp {
		return e.TCPAddr()
	}
	return e.DBAddr()
}

// vsctl runs ovs-vsctl --no-wait (most tests run no ovs-vswitchd) and returns its trimmed output.
func (e *ovsEnv) vsctl(args ...string) string {
	e.t.Helper()
	return strings.TrimSpace(e.Vsctl(append([]string{"--no-wait"}, args...)...))
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
	m := newManager(t, cfg)
	runManager(t, m)
	return m
}

// newManager returns a manager with test defaults, not running yet (see runManager).
func newManager(t *testing.T, cfg HostConfig) *Manager {
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
	return m
}

// runManager runs m until the test ends.
func runManager(t *testing.T, m *Manager) {
	t.Helper()
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
}

// waitApplied waits until the manager has applied generation gen in a clean pass.
func waitApplied(t *testing.T, m *Manager, gen uint64) {
	t.Helper()
	eventually(t, 10*time.Second, func() (bool, string) {
		s := m.Status()
		return s.Applied >= gen && !s.LastSync.IsZero(), fmt.Sprintf("status %+v, want applied %d", s, gen)
	})
}
