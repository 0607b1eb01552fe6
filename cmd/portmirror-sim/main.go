// Command portmirror-sim runs a simulated fleet against a running portmirrord: it builds simulated OVS bridges
// (one per host, with VMs and monitor VMs), registers them through the GraphQL API, connects them to the
// controller's OpenFlow listener, creates a port mirror with sessions, waits until every session is ACTIVE, then
// sends frames between the VMs and checks every copy that reaches a monitor's capture NIC against the rule of
// API.md. On exit it prints a JSON summary on stdout; it exits 1 when a copy was missing or duplicated (or the
// run could not be set up), 2 on bad flags.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"portmirror/model"
	"portmirror/simulator/fleet"
)

type config struct {
	api, token, openflow string
	controllers          []string // --openflow, split
	hosts, vms, monitors int
	sessions             int
	seed                 uint64
	duration             time.Duration
	frames               int
	show                 int
	activeTimeout        time.Duration
	keep                 bool
	verbose              bool
}

// Summary is the JSON printed on exit.
type Summary struct {
	Bridges          int `json:"bridges"`
	BridgesConnected int `json:"bridgesConnected"`
	// Masters counts, with several controllers, the bridges each one is OpenFlow MASTER of ("": of none).
	Masters            map[string]int `json:"masters,omitempty"`
	Sessions           int            `json:"sessions"`
	SessionsActive     int            `json:"sessionsActive"`
	TimeToAllActiveSec float64        `json:"timeToAllActiveSeconds"` // from the port mirror's creation; -1 if never
	FramesInjected     int            `json:"framesInjected"`
	CopiesExpected     int            `json:"copiesExpected"`
	CopiesDelivered    int            `json:"copiesDelivered"`
	Duplicates         int            `json:"duplicates"` // copies beyond what the rule expects (an unexpected copy included)
	Misses             int            `json:"misses"`     // expected copies that did not arrive
	Error              string         `json:"error,omitempty"`
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func parse(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("portmirror-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.api, "api", "http://127.0.0.1:8080/graphql", "the daemon's GraphQL URL")
	fs.StringVar(&c.token, "token", "", "API bearer token (an admin token); none for a daemon without tokens, from loopback")
	fs.StringVar(&c.openflow, "openflow", "127.0.0.1:6653", "the controllers' OpenFlow addresses (host:port, comma-separated) every simulated bridge dials")
	fs.IntVar(&c.hosts, "hosts", 3, "simulated hosts (one bridge each)")
	fs.IntVar(&c.vms, "vms-per-host", 2, "VMs per host (one NIC each)")
	fs.IntVar(&c.monitors, "monitors-per-host", 1, "monitor VMs per host (a default NIC and a capture NIC each)")
	fs.IntVar(&c.sessions, "sessions", 2, "sessions of the port mirror (sources among the VMs, destinations among the capture NICs)")
	fs.Uint64Var(&c.seed, "seed", 1, "seed of every uuid, MAC, datapath id and session choice; use another one to register a second fleet with the same daemon")
	fs.DurationVar(&c.duration, "duration", 0, "send traffic for this long (instead of --frames)")
	fs.IntVar(&c.frames, "frames", 0, "send this many frames (default: one round: every VM's unicasts, a broadcast and a multicast)")
	fs.IntVar(&c.show, "show", 20, "print the first N copies that arrive at capture NICs (stderr)")
	fs.DurationVar(&c.activeTimeout, "active-timeout", 30*time.Second, "how long to wait for every session to be ACTIVE")
	fs.BoolVar(&c.keep, "keep", false, "leave the port mirror in place on exit (default: delete it, which removes its flows)")
	fs.BoolVar(&c.verbose, "v", false, "log the simulated switches' events (stderr)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	for _, a := range strings.Split(c.openflow, ",") {
		a = strings.TrimSpace(a)
		if _, _, err := net.SplitHostPort(a); err != nil {
			return c, fmt.Errorf("--openflow %q: %q is not host:port", c.openflow, a)
		}
		if !slices.Contains(c.controllers, a) {
			c.controllers = append(c.controllers, a)
		}
	}
	switch {
	case fs.NArg() > 0:
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case c.hosts < 1 || c.hosts > fleet.MaxHosts:
		return c, fmt.Errorf("--hosts %d: want 1 to %d", c.hosts, fleet.MaxHosts)
	case c.vms < 0 || c.monitors < 0 || c.sessions < 0 || c.frames < 0 || c.duration < 0:
		return c, fmt.Errorf("--vms-per-host, --monitors-per-host, --sessions, --frames and --duration cannot be negative")
	case c.frames > 0 && c.duration > 0:
		return c, fmt.Errorf("give --frames or --duration, not both")
	case c.sessions > 0 && (c.vms == 0 || c.monitors == 0):
		return c, fmt.Errorf("--sessions %d needs VMs (--vms-per-host) and monitors (--monitors-per-host)", c.sessions)
	}
	return c, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := parse(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "portmirror-sim:", err)
		}
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	level := slog.LevelWarn
	if cfg.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	sum, err := simulate(ctx, cfg, log, stderr)
	if err != nil {
		sum.Error = err.Error()
		fmt.Fprintln(stderr, "portmirror-sim:", err)
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(sum)
	if err != nil || sum.Duplicates > 0 || sum.Misses > 0 {
		return 1
	}
	return 0
}

func simulate(ctx context.Context, cfg config, log *slog.Logger, out io.Writer) (Summary, error) {
	sum := Summary{TimeToAllActiveSec: -1}
	f, err := fleet.Build(fleet.Uniform(cfg.seed, cfg.hosts, cfg.vms, cfg.monitors), fleet.Options{Logger: log, Controllers: cfg.controllers})
	if err != nil {
		return sum, err
	}
	sum.Bridges = len(f.Hosts)
	api := fleet.NewClient(cfg.api, cfg.token)

	fmt.Fprintf(out, "registering %d hosts, %d VMs (%d monitors), flow network %s with %s\n",
		len(f.Hosts), len(f.VMs), len(f.Monitors()), f.FlowNetworks[0].CIDR, cfg.api)
	if err := f.Register(ctx, api); err != nil {
		return sum, fmt.Errorf("%w (a fleet with this --seed may already be registered: try another --seed)", err)
	}
	fmt.Fprintf(out, "connecting %d simulated bridges to %s\n", len(f.Hosts), strings.Join(cfg.controllers, ", "))
	if err := f.Start(ctx, ""); err != nil {
		return sum, err
	}
	defer f.Stop()
	snapshot := func() {
		sum.BridgesConnected = f.Connected()
		if len(cfg.controllers) > 1 {
			sum.Masters = f.Masters()
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = f.WaitFullyConnected(wctx)
	cancel()
	snapshot()
	if err != nil {
		return sum, err
	}

	planned := f.PlanSessions(cfg.sessions)
	sum.Sessions = len(planned)
	start := time.Now()
	pm, sessions, err := f.CreatePortMirror(ctx, api, f.FlowNetworks[0], fmt.Sprintf("sim-%d", cfg.seed), true, planned)
	if err != nil {
		return sum, err
	}
	if !cfg.keep {
		defer func() {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if err := api.DeletePortMirror(dctx, pm.UUID); err != nil {
				log.Warn("deleting the port mirror", "uuid", pm.UUID, "err", err)
			}
		}()
	}
	for _, s := range sessions {
		fmt.Fprintf(out, "session %s: %s %s (on %s) -> %s (on %s)\n", s.Name, s.Direction, s.Source, f.HostOf(s.Source.VM).Name,
			s.Destination, f.HostOf(s.Destination.VM).Name)
	}
	if err := waitActive(ctx, api, sessions, cfg.activeTimeout, &sum); err != nil {
		return sum, err
	}
	sum.TimeToAllActiveSec = time.Since(start).Seconds()
	fmt.Fprintf(out, "all %d sessions ACTIVE after %.3fs\n", len(sessions), sum.TimeToAllActiveSec)
	snapshot()

	// MAC learning: every VM announces itself, as a booting VM does
	for _, n := range f.Senders() {
		if _, err := f.Send(f.Announce(n)); err != nil {
			return sum, err
		}
	}
	traffic(ctx, cfg, f, sessions, out, &sum)
	snapshot()
	return sum, nil
}

// waitActive polls the API until every session is ACTIVE.
func waitActive(ctx context.Context, api *fleet.Client, sessions []fleet.Session, within time.Duration, sum *Summary) error {
	want := map[string]bool{}
	for _, s := range sessions {
		want[s.UUID] = true
	}
	deadline := time.Now().Add(within)
	for {
		all, err := api.SessionStatuses(ctx)
		if err != nil {
			return err
		}
		active := 0
		var pending string
		for _, s := range all {
			if !want[s.UUID] {
				continue
			}
			if s.Status == model.StatusActive {
				active++
			} else if pending == "" {
				pending = fmt.Sprintf("%s is %s: %s", s.Name, s.Status, s.Reason)
			}
		}
		sum.SessionsActive = active
		if active == len(sessions) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d sessions ACTIVE after %v; %s", active, len(sessions), within, pending)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// traffic sends frames round-robin over every sender's frames (its unicasts, a broadcast, a multicast) and
// compares what reaches each capture NIC with fleet.Expect.
func traffic(ctx context.Context, cfg config, f *fleet.Fleet, sessions []fleet.Session, out io.Writer, sum *Summary) {
	var all []fleet.Frame
	for _, n := range f.Senders() {
		all = append(all, f.Frames(n)...)
	}
	if len(all) == 0 {
		return
	}
	limit := cfg.frames
	if limit == 0 && cfg.duration == 0 {
		limit = len(all)
	}
	end := time.Now().Add(cfg.duration)
	shown := 0
	for i := 0; ; i++ {
		if limit > 0 && i >= limit || cfg.duration > 0 && time.Now().After(end) || ctx.Err() != nil {
			return
		}
		fr := all[i%len(all)]
		d, err := f.Send(fr)
		if err != nil {
			fmt.Fprintln(out, "send:", err)
			continue
		}
		sum.FramesInjected++
		want := f.Expect(fr, sessions)
		got := d.Captured()
		for _, c := range f.Monitors() {
			sum.CopiesExpected += want[c]
			sum.CopiesDelivered += got[c]
			if got[c] > want[c] {
				sum.Duplicates += got[c] - want[c]
				fmt.Fprintf(out, "UNEXPECTED: %d copies of %s from %s at %s, want %d\n", got[c], fr.Describe(), fr.From, c, want[c])
			} else if got[c] < want[c] {
				sum.Misses += want[c] - got[c]
				fmt.Fprintf(out, "MISSING: %d copies of %s from %s at %s, want %d\n", got[c], fr.Describe(), fr.From, c, want[c])
			}
		}
		for _, a := range d.Arrivals {
			if a.NIC == nil || !a.NIC.Capture || shown >= cfg.show {
				continue
			}
			shown++
			via := "copied on the same host"
			if a.Via.IsSet() {
				via = fmt.Sprintf("via %s key %d from %v", f.FlowNetworks[0].Encapsulation, a.Via.ID, a.Via.Src)
			}
			fmt.Fprintf(out, "copy of %s (%s, sent by %s) arrived at %s on %s %s\n", fr.Describe(), fr.Kind, fr.From, a.NIC, a.Host.Name, via)
		}
	}
}
