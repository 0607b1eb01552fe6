// Command portmirror-bench measures portmirror (bulk programming of a real OVS bridge against ovs-ofctl, a raw
// client and os-ken; session latency, reconnect storms and scale on simulated bridges; memory; the API) and writes
// BENCHMARKS.md and bench/results.json. `make bench` runs it from the repository root; BENCH_QUICK=1 runs every part
// at a tenth of its size.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"

	"portmirror/bench"
)

func main() {
	bench.MaybeFleetChild() // the scale part's simulated bridges run in a second copy of this program
	quick := flag.Bool("quick", os.Getenv("BENCH_QUICK") == "1", "run every part at a tenth of its size (also BENCH_QUICK=1)")
	only := flag.String("only", "", "comma-separated parts to run ("+strings.Join(bench.Parts, ",")+"); default all")
	md := flag.String("markdown", "BENCHMARKS.md", "where to write the report for people")
	js := flag.String("json", "bench/results.json", "where to write every figure by name")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file (go tool pprof)")
	pprofAddr := flag.String("pprof", "", "serve net/http/pprof on this loopback address while the run lasts (e.g. 127.0.0.1:6060), to profile one phase")
	flag.Parse()

	if *pprofAddr != "" {
		stop, err := bench.ServePprof(*pprofAddr)
		if err != nil {
			fmt.Fprintln(os.Stderr, "portmirror-bench:", err)
			os.Exit(2)
		}
		defer stop()
	}

	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "portmirror-bench:", err)
			os.Exit(2)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "portmirror-bench:", err)
			os.Exit(2)
		}
		defer pprof.StopCPUProfile()
	}

	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := bench.Config{Quick: *quick, Markdown: *md, JSON: *js, Logger: log}
	if *only != "" {
		cfg.Only = strings.Split(*only, ",")
	}
	res, err := bench.Run(ctx, cfg)
	if res != nil {
		for _, f := range res.Figures {
			goal := ""
			if f.Goal != "" {
				ok := "missed"
				if f.Met != nil && *f.Met {
					ok = "met"
				}
				goal = fmt.Sprintf("  (goal %s: %s)", f.Goal, ok)
			}
			fmt.Printf("%-48s %14.3f %s%s\n", f.Name, f.Value, f.Unit, goal)
		}
	}
	if err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "portmirror-bench:", err)
		os.Exit(1)
	}
}
