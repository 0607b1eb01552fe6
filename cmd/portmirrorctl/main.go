// Command portmirrorctl is the command line of portmirror: the operations of the product guide (port mirrors
// and their sessions, the audit trail) and the views an operator needs beside them (switches, inventory, flow
// networks), over the daemon's GraphQL API. Tables for people, -o json for scripts; the exit status says what
// failed (see --help).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one command line and returns its exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "portmirrorctl: %v\n", err)
	code := exitStatus(err)
	if code == exitFailure && isCobraUsage(err) {
		return exitUsage
	}
	return code
}
