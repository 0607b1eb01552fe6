package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// partDaemon measures part 5's memory (idle daemon; daemon holding the fleet) and part 6 (the API on the fleet).
func (b *bencher) partDaemon(ctx context.Context) {
	s5 := section{title: "5a. Memory of the daemon", command: b.command("daemon")}
	s6 := section{title: "6. API over HTTP", command: b.command("daemon")}
	if err := b.daemonParts(ctx, &s5, &s6); err != nil {
		b.fail("daemon", err)
	}
	b.res.sections = append(b.res.sections, s5, s6)
}

func (b *bencher) daemonParts(ctx context.Context, s5, s6 *section) error {
	if limit, err := raiseFileLimit(); err != nil || limit < uint64(b.scaled(10000))*2+1000 {
		b.log.Warn("the open-file limit may be too low for the bridge count", "limit", limit, "err", err)
	}
	tmp, err := os.MkdirTemp("", "pmbench-daemon")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin, err := b.daemonBinary(ctx)
	if err != nil {
		return err
	}

	// Idle: an empty data directory.
	d, err := startDaemon(ctx, bin, filepath.Join(tmp, "idle"))
	if err != nil {
		return err
	}
	idle, err := settledRSS(d.pid(), 2*time.Second)
	d.stop()
	if err != nil {
		return err
	}
	b.res.add(Figure{Name: "memory.daemon_idle_rss_mib", Value: mib(idle), Unit: "MiB", Command: s5.command})

	// Loaded: the fleet.
	hosts := b.scaled(10000)
	calls := 100
	if b.cfg.Quick {
		calls = 10
	}
	start := time.Now()
	f, err := populateFleet(ctx, filepath.Join(tmp, "fleet"), hosts, calls, b.quiet)
	if err != nil {
		return err
	}
	b.log.Info("fleet stored", "hosts", hosts, "nics", hosts*nicsPerHost, "sessions", hosts, "seconds", time.Since(start).Seconds())
	d, err = startDaemon(ctx, bin, filepath.Join(tmp, "fleet"))
	if err != nil {
		return err
	}
	defer d.stop()
	b.fleetDaemon = d
	b.fleet = f

	// The listing query, which also shows the daemon has every session.
	const listing = `{ portMirrors { sessions { sourceNic { uuid } destinationNic { uuid } } } }`
	var out struct {
		PortMirrors []struct {
			Sessions []struct {
				SourceNic struct{ UUID string } `json:"sourceNic"`
			} `json:"sessions"`
		} `json:"portMirrors"`
	}
	listN := 20
	if b.cfg.Quick {
		listN = 5
	}
	var lat []time.Duration
	for i := range listN + 1 {
		t0 := time.Now()
		if err := d.gql(ctx, listing, nil, &out); err != nil {
			return fmt.Errorf("listing sessions: %w", err)
		}
		if i > 0 { // the first call warms caches
			lat = append(lat, time.Since(t0))
		}
	}
	got := 0
	for _, pm := range out.PortMirrors {
		got += len(pm.Sessions)
	}
	if got != hosts {
		return fmt.Errorf("the listing shows %d sessions, want %d", got, hosts)
	}
	loaded, err := settledRSS(d.pid(), time.Second)
	if err != nil {
		return err
	}
	b.res.add(Figure{Name: "memory.daemon_fleet_rss_mib", Value: mib(loaded), Unit: "MiB", Goal: "≤ 1024", Met: met(mib(loaded) <= 1024), Command: s5.command})
	s5.how = fmt.Sprintf("`portmirrord` built from this tree, started on its own data directory and loopback ports; RSS is "+
		"VmRSS from /proc/PID/status, the lowest of five reads over a second after the load settles. The fleet is "+
		"%d hosts (ten clusters, one flow network and one port mirror each), %d VM NICs and %d BIDIRECTION sessions, each "+
		"from NIC 0 of a host to NIC 1 of the next host, stored on disk before the daemon starts (inventory in bulk, "+
		"flow networks and port mirrors through the service). Here no bridge is connected, so the sessions are PENDING: "+
		"part 5b connects the bridges.", hosts, hosts*nicsPerHost, hosts)
	s5.header = []string{"state", "RSS"}
	s5.rows = [][]string{{"idle (empty data directory)", fmt.Sprintf("%.1f MiB", mib(idle))},
		{fmt.Sprintf("%d NICs, %d sessions, after listing them over the API", hosts*nicsPerHost, hosts), fmt.Sprintf("%.1f MiB", mib(loaded))}}

	slices.Sort(lat)
	p50 := lat[len(lat)/2]
	b.res.add(Figure{Name: "api.list_sessions_p50_ms", Value: ms(p50), Unit: "ms", Goal: "≤ 100", Met: met(ms(p50) <= 100), Command: s6.command})
	b.res.add(Figure{Name: "api.list_sessions_max_ms", Value: ms(lat[len(lat)-1]), Unit: "ms", Command: s6.command})

	// createPortMirror with ten sessions, each call on a fresh flow network of the api cluster.
	const create = `mutation($in: PortMirrorInput!) { createPortMirror(input: $in) { uuid sessions { uuid tunnelKey } } }`
	var cl []time.Duration
	for i := range calls {
		var sess []any
		for j, src := range f.apiSrc {
			sess = append(sess, map[string]any{"name": fmt.Sprintf("s%d", j), "type": "BIDIRECTION", "sourceNicUuid": src, "destinationNicUuid": f.apiDst})
		}
		in := map[string]any{"name": fmt.Sprintf("api%d", i), "flowNetworkUuid": f.apiFN[i], "enable": true, "sessions": sess}
		t0 := time.Now()
		if err := d.gql(ctx, create, map[string]any{"in": in}, nil); err != nil {
			return fmt.Errorf("createPortMirror %d: %w", i, err)
		}
		cl = append(cl, time.Since(t0))
	}
	slices.Sort(cl)
	b.res.add(Figure{Name: "api.create_port_mirror_10_sessions_p50_ms", Value: ms(cl[len(cl)/2]), Unit: "ms", Command: s6.command})
	b.res.add(Figure{Name: "api.create_port_mirror_10_sessions_p99_ms", Value: ms(cl[len(cl)*99/100]), Unit: "ms", Command: s6.command})
	s6.how = fmt.Sprintf("The same daemon and fleet as 5a, over HTTP on loopback (one client, one request at a time). The listing is "+
		"`portMirrors { sessions { sourceNic { uuid } destinationNic { uuid } } }` over all %d sessions (%d calls after one "+
		"warm-up). `createPortMirror` is called %d times with `enable: true` and 10 BIDIRECTION sessions, each on a fresh flow "+
		"network (made beforehand): rules, tunnel keys, one synchronous Badger commit and the audit event, with the %d "+
		"sessions of the fleet in the store.", hosts, listN, calls, hosts)
	s6.header = []string{"call", "p50", "p99 / max", "goal"}
	s6.rows = [][]string{
		{fmt.Sprintf("list %d sessions with both NICs", hosts), fmt.Sprintf("%.1f ms", ms(p50)), fmt.Sprintf("max %.1f ms", ms(lat[len(lat)-1])), "p50 ≤ 100 ms"},
		{"createPortMirror, 10 sessions", fmt.Sprintf("%.1f ms", ms(cl[len(cl)/2])), fmt.Sprintf("p99 %.1f ms", ms(cl[len(cl)*99/100])), ""},
	}
	return b.connectFleet(ctx, d, f, s5)
}

// connectFleet is part 5b: one simulated bridge per fleet host connects to the daemon; every session must turn
// ACTIVE; then the daemon's RSS.
func (b *bencher) connectFleet(ctx context.Context, d *daemon, f *fleet, s5 *section) error {
	per := f.hosts / f.clusters
	t0 := time.Now()
	sims, err := startSimBridges(ctx, d.of, f.hosts, func(h int) string { return f.fns[h/per] })
	if err != nil {
		return err
	}
	defer sims.stop()
	if err := waitUntil(ctx, 5*time.Minute, "every simulated bridge to connect", func() bool { return sims.connected() == f.hosts }); err != nil {
		return fmt.Errorf("%w (%d of %d connected)", err, sims.connected(), f.hosts)
	}
	connected := time.Since(t0)
	const statusQuery = `{ portMirrors { name sessions { status } } }`
	active := 0
	err = waitUntil(ctx, 5*time.Minute, "every fleet session to turn ACTIVE", func() bool {
		var out struct {
			PortMirrors []struct {
				Name     string
				Sessions []struct{ Status string }
			} `json:"portMirrors"`
		}
		if err := d.gql(ctx, statusQuery, nil, &out); err != nil {
			return false
		}
		active = 0
		for _, pm := range out.PortMirrors {
			if !strings.HasPrefix(pm.Name, "fleet") {
				continue
			}
			for _, s := range pm.Sessions {
				if s.Status == "ACTIVE" {
					active++
				}
			}
		}
		time.Sleep(500 * time.Millisecond)
		return active == f.hosts
	})
	if err != nil {
		return fmt.Errorf("%w (%d of %d ACTIVE)", err, active, f.hosts)
	}
	allActive := time.Since(t0)
	rss, err := settledRSS(d.pid(), time.Second)
	if err != nil {
		return err
	}
	n := sims.connected()
	cmd := s5.command
	b.res.add(Figure{Name: "scale.bridges_connected", Value: float64(n), Unit: "bridges", Goal: fmt.Sprintf("≥ %d", f.hosts), Met: met(n >= f.hosts), Command: cmd})
	b.res.add(Figure{Name: "scale.connect_all_seconds", Value: connected.Seconds(), Unit: "s", Command: cmd})
	b.res.add(Figure{Name: "scale.all_sessions_active_seconds", Value: allActive.Seconds(), Unit: "s", Command: cmd})
	b.res.add(Figure{Name: "memory.daemon_fleet_connected_rss_mib", Value: mib(rss), Unit: "MiB", Goal: "≤ 1024", Met: met(mib(rss) <= 1024), Command: cmd})
	s5.rows = append(s5.rows, []string{fmt.Sprintf("the same with %d simulated bridges connected and all %d sessions ACTIVE", n, f.hosts), fmt.Sprintf("%.1f MiB", mib(rss))})
	s5.notes = append(s5.notes, fmt.Sprintf("5b. Bridges: %d simulated bridges (`simulator/ofsim`, one per host, ports nic0..nic9 and the "+
		"flow network's tunnel port, in the benchmark's process) dial the daemon's OpenFlow listener at once: all connected "+
		"after %.1f s, every session ACTIVE (read over GraphQL) after %.1f s. The benchmark raises its RLIMIT_NOFILE soft limit "+
		"to the hard limit before starting the daemon, which inherits it.", n, connected.Seconds(), allActive.Seconds()))
	return nil
}
