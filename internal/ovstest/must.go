package ovstest

import (
	"context"
	"errors"
	"strings"
	"time"
)

// TB is the part of testing.TB that Must and T use; *testing.T and *testing.B satisfy it. (This package does
// not import testing, so that the benchmark program can use it.)
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
	Logf(format string, args ...any)
	Cleanup(func())
	Failed() bool
}

// cmdTimeout bounds each command T runs.
const cmdTimeout = 30 * time.Second

// T is an instance for one test: its commands fail the test instead of returning an error. The embedded *OVS
// keeps the error-returning API (o.OVS.Vsctl(ctx, ...)) for commands that are meant to fail.
type T struct {
	*OVS
	t TB
}

// Must starts OVS for a test. It skips the test, naming what is missing, only when an OVS program or the
// schema is not installed; it fails the test when the daemons do not start. When the test ends the daemons
// are stopped, and the tails of their logs are logged if the test failed.
func Must(t TB, opts Options) *T {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*cmdTimeout)
	defer cancel()
	o, err := Start(ctx, opts)
	if errors.Is(err, ErrNotInstalled) {
		t.Skipf("skipped: needs Open vSwitch (install openvswitch-switch): missing %s", strings.Join(Missing(opts), ", "))
	}
	if err != nil {
		t.Fatalf("start Open vSwitch: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("Open vSwitch in %s:\n%s", o.Dir, o.LogTails(30))
		}
		if err := o.Stop(); err != nil {
			t.Logf("stop Open vSwitch: %v", err)
		}
	})
	return &T{OVS: o, t: t}
}

func (o *T) check(out string, err error) string {
	o.t.Helper()
	if err != nil {
		o.t.Fatalf("%v", err)
	}
	return out
}

// Run runs a program with the instance's environment and returns its standard output.
func (o *T) Run(name string, args ...string) string {
	o.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	return o.check(o.OVS.Run(ctx, name, args...))
}

// Vsctl runs ovs-vsctl against the database.
func (o *T) Vsctl(args ...string) string {
	o.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	return o.check(o.OVS.Vsctl(ctx, args...))
}

// Ofctl runs ovs-ofctl -O OpenFlow13 ARGS....
func (o *T) Ofctl(args ...string) string {
	o.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	return o.check(o.OVS.Ofctl(ctx, args...))
}

// Appctl runs ovs-appctl against ovs-vswitchd.
func (o *T) Appctl(args ...string) string {
	o.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	return o.check(o.OVS.Appctl(ctx, args...))
}

// WaitFor polls cond until it holds, and fails the test after 10s.
func (o *T) WaitFor(what string, cond func() bool) {
	o.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			o.t.Fatalf("timed out after 10s waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
