package e2e

import (
	"context"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// createNetns creates a named network namespace (under /run/netns) with loopback up
// and IPv6 off, so that nothing in it sends router solicitations, MLD reports or
// DAD probes that would show up as stray frames in a capture.
func createNetns(ctx context.Context, name string) error {
	if _, err := runCmd(ctx, nil, "ip", "netns", "add", name); err != nil {
		return err
	}
	_, err := runCmd(ctx, nil, "ip", "netns", "exec", name, "sh", "-c",
		"ip link set lo up && sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1")
	return err
}

// deleteNetns removes a named network namespace; the veths in it go with it.
func deleteNetns(ctx context.Context, name string) error {
	_, err := runCmd(ctx, nil, "ip", "netns", "delete", name)
	return err
}

// inNetns runs fn on an OS thread switched into the named network namespace.
// Sockets fn creates stay in that namespace and may be used from any goroutine
// after fn returns. The thread is thrown away afterwards (the goroutine exits
// still locked), so no other goroutine ever runs in the namespace by accident.
func inNetns(name string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		f, err := os.Open("/run/netns/" + name)
		if err != nil {
			errc <- fmt.Errorf("open netns %s: %w", name, err)
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", name, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}
