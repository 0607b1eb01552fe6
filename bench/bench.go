// Package bench measures portmirror against Open vSwitch's own limits and a peer controller, and writes
// BENCHMARKS.md (for people) and bench/results.json (for tools). cmd/portmirror-bench runs it; `make bench` runs
// that. Quick mode (BENCH_QUICK=1) runs every part at a tenth of its size as a smoke test.
package bench

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// Parts are the measurements, in the order they run.
var Parts = []string{"bulk", "daemon", "status", "storm"}

// Config says what to run and where to write.
type Config struct {
	Quick    bool     // a tenth of every size
	Only     []string // parts to run; empty: all
	Markdown string   // BENCHMARKS.md path; "" writes none
	JSON     string   // results.json path; "" writes none
	Logger   *slog.Logger
	// Daemon is the path of a built portmirrord; "" builds one into a temporary directory.
	Daemon string
}

type bencher struct {
	cfg   Config
	log   *slog.Logger
	quiet *slog.Logger // for the product's own logs
	res   *Results

	fleetDaemon *daemon // while partDaemon runs
	fleet       *fleet
}

// Run measures every selected part and writes the report. A part that fails is recorded in Results.Failures and
// the others still run; Run's error is set when any part failed or a report could not be written.
func Run(ctx context.Context, cfg Config) (*Results, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	for _, p := range cfg.Only {
		if !slices.Contains(Parts, p) {
			return nil, fmt.Errorf("unknown part %q (the parts are %s)", p, strings.Join(Parts, ", "))
		}
	}
	b := &bencher{cfg: cfg, log: cfg.Logger, quiet: slog.New(slog.DiscardHandler),
		res: &Results{Machine: describeMachine(), Date: time.Now(), Quick: cfg.Quick}}
	steps := map[string]func(context.Context){
		"bulk":   b.partBulk,
		"daemon": b.partDaemon,
		"status": b.partStatus,
		"storm":  b.partStorm,
	}
	for _, p := range Parts {
		if len(cfg.Only) > 0 && !slices.Contains(cfg.Only, p) {
			continue
		}
		start := time.Now()
		b.log.Info("part starting", "part", p)
		steps[p](ctx)
		b.log.Info("part done", "part", p, "seconds", time.Since(start).Seconds())
		if ctx.Err() != nil {
			b.fail(p, ctx.Err())
			break
		}
	}
	var err error
	if cfg.JSON != "" {
		if werr := b.res.writeJSON(cfg.JSON); werr != nil {
			err = fmt.Errorf("write %s: %w", cfg.JSON, werr)
		}
	}
	if cfg.Markdown != "" {
		if werr := b.res.writeMarkdown(cfg.Markdown, remaining); werr != nil {
			err = fmt.Errorf("write %s: %w", cfg.Markdown, werr)
		}
	}
	if err == nil && len(b.res.Failures) > 0 {
		err = fmt.Errorf("%d part(s) failed: %s", len(b.res.Failures), strings.Join(b.res.Failures, "; "))
	}
	return b.res, err
}

func (b *bencher) fail(what string, err error) {
	b.log.Error("part failed", "part", what, "err", err)
	b.res.Failures = append(b.res.Failures, fmt.Sprintf("%s: %v", what, err))
}

// command is how to reproduce one part.
func (b *bencher) command(part string) string {
	c := "go run ./cmd/portmirror-bench -only " + part
	if b.cfg.Quick {
		c = "BENCH_QUICK=1 " + c
	}
	return c
}

// scaled divides a size by ten in quick mode.
func (b *bencher) scaled(n int) int {
	if b.cfg.Quick {
		return max(1, n/10)
	}
	return n
}

// remaining is the closing section of BENCHMARKS.md: what the figures leave open.
const remaining = ""
