package bench

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestQuickSmoke runs every part at a tenth of its size (BENCH_QUICK) and checks that the report and the results
// file are written and hold the figures a reader looks for. Parts that need Open vSwitch are reported as skipped
// (with the reason) where it is not installed; every other part must succeed.
func TestQuickSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("the quick benchmark takes tens of seconds")
	}
	dir := t.TempDir()
	md, js := filepath.Join(dir, "BENCHMARKS.md"), filepath.Join(dir, "results.json")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	res, err := Run(ctx, Config{Quick: true, Markdown: md, JSON: js, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if m := ovsMissing(); m != "" {
		t.Logf("Open vSwitch is not installed (%s missing): the bulk parts were skipped", m)
	}
	want := []string{"memory.daemon_idle_rss_mib", "api.list_sessions_p50_ms", "api.create_port_mirror_10_sessions_p50_ms",
		"status.active_p99_ms", "storm.local.flow_mods_sent", "storm.remote.reconcile_seconds", "scale.bridges_connected",
		"tls.plain.storm_ms", "tls.tls_ecdsa.extra_cpu_ms_per_connect", "tls.tls_rsa2048.storm_ms",
		"cluster.failover.mutation_accepted_p99_s", "cluster.failover.all_bridges_mastered_p99_s", "cluster.failover.flow_mods_sent",
		"cluster.create_port_mirror.follower_vs_one_p50", "cluster.status.three_vs_one_p99",
		"scale.inventory_seconds", "scale.active_p99_ratio", "scale.pass_ratio", "scale.storm_seconds", "scale.storm_flow_mods",
		"scale.restart_seconds", "scale.restart_flow_mods", "scale.rss_mib", "api.page_p50_ms", "api.page_full_p50_ms",
		"sessions.active_p99_ratio", "sessions.counter_poll_cpu_percent", "sessions.counter_poll_requests_per_s"}
	if ovsMissing() == "" {
		want = append(want, "bulk.portmirror_vs_raw", "bulk.portmirror_vs_ofctl_bundle", "sessions.bulk_ratio")
	}
	for _, name := range want {
		f, ok := res.Figure(name)
		if !ok {
			t.Errorf("no figure %s", name)
			continue
		}
		if f.Command == "" || !strings.Contains(f.Command, "BENCH_QUICK=1") {
			t.Errorf("figure %s: command %q does not reproduce a quick run", name, f.Command)
		}
	}
	// Figures that are counts, not timings, hold exactly.
	if f, _ := res.Figure("storm.local.flow_mods_sent"); f.Value != 0 {
		t.Errorf("a reconnect storm with nothing changed sent %v flow_mods", f.Value)
	}
	if f, _ := res.Figure("scale.bridges_connected"); f.Value != 1000 {
		t.Errorf("%v of 1000 simulated bridges connected", f.Value)
	}
	for _, name := range []string{"scale.storm_flow_mods", "scale.restart_flow_mods"} {
		if f, _ := res.Figure(name); f.Value != 0 {
			t.Errorf("%s = %v: nothing changed, so nothing should be sent", name, f.Value)
		}
	}
	if f, _ := res.Figure("scale.sessions"); f.Value != 2000 {
		t.Errorf("the quick scale fleet holds %v sessions, want 2000", f.Value)
	}
	if f, _ := res.Figure("sessions.counter_poll_flow_stats_per_s"); f.Value < 50 {
		t.Errorf("100 bridges with a session each, read every second, got %.0f flow-stats requests/s", f.Value)
	}
	if f, _ := res.Figure("cluster.failover.kills"); f.Value != 3 {
		t.Errorf("%v leader kills, want 3", f.Value)
	}
	if f, _ := res.Figure("cluster.failover.flow_mods_sent"); f.Value != 0 {
		t.Errorf("a new leader sent %v flow_mods taking over bridges where nothing changed", f.Value)
	}

	b, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	var back Results
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("results.json: %v", err)
	}
	if len(back.Figures) != len(res.Figures) || back.Machine.NProc == 0 {
		t.Errorf("results.json holds %d figures (want %d), nproc %d", len(back.Figures), len(res.Figures), back.Machine.NProc)
	}
	text, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"quick mode", "## Machine", "## Goals", "Reproduce: `BENCH_QUICK=1 go run ./cmd/portmirror-bench -only",
		"3. Session → ACTIVE latency", "4. Reconnect storm", "6. API over HTTP", "7. TLS handshake cost per switch connect",
		"8. Three controllers", "9. Ten times the cloud", "10. Sessions with filters and caps"} {
		if !strings.Contains(string(text), s) {
			t.Errorf("BENCHMARKS.md lacks %q", s)
		}
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
