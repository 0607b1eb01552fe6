// Command portmirrord is the port mirroring controller: the GraphQL management API over the store, and the
// OpenFlow 1.3 controller that programs the hosts' OVS bridges. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(mainStatus(os.Args[1:]))
}

// mainStatus runs the daemon and returns its exit status: 0 after a clean stop (SIGTERM, SIGINT), 2 for a bad
// command line or config file, 1 for a failure while running.
func mainStatus(args []string) int {
	cfg, err := parseConfig(args, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "portmirrord: %v\n", err)
		return 2
	}
	var level slog.LevelVar
	log := cfg.logger(os.Stderr, &level)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// After the first signal, a second one stops the process at once (the default action).
	context.AfterFunc(ctx, stop)

	// SIGHUP re-reads the flags' config file and the TLS files (see reload).
	reread := func() (Config, error) { return parseConfig(args, io.Discard) }
	if err := run(ctx, cfg, log, reloader{reread: reread, level: &level}); err != nil {
		log.Error("portmirrord stopped on an error", "error", err)
		return 1
	}
	return 0
}
