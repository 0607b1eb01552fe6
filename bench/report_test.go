package bench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestKeepEarlierParts checks that a run of one part (-only) keeps the other parts' figures, notes and sections
// from the files an earlier run wrote, replaces the part it measured, and says when each was measured.
func TestKeepEarlierParts(t *testing.T) {
	dir := t.TempDir()
	md, js := filepath.Join(dir, "BENCHMARKS.md"), filepath.Join(dir, "results.json")
	cmd := func(p string) string { return "go run ./cmd/portmirror-bench -only " + p }
	earlier := &Results{Date: time.Date(2026, 11, 24, 2, 28, 0, 0, time.UTC), Skipped: []string{"osken: not installed"},
		Failures: []string{"storm: it broke", "status: it broke too"}}
	earlier.add(Figure{Name: "bulk.flows", Value: 100986, Unit: "flows", Command: cmd("bulk")})
	earlier.add(Figure{Name: "status.active_p99_ms", Value: 8.9, Unit: "ms", Goal: "≤ 10", Met: met(true), Command: cmd("status")})
	earlier.add(Figure{Name: "storm.local.flow_mods_sent", Value: 0, Unit: "flow_mods", Command: cmd("storm")})
	earlier.sections = []section{
		{title: "1. Bulk programming", command: cmd("bulk"), how: "the bulk part's text"},
		{title: "3. Session → ACTIVE latency", command: cmd("status"), how: "the old status text"},
		{title: "4. Reconnect storm", command: cmd("storm"), how: "the storm part's text"},
	}
	if err := earlier.writeJSON(js); err != nil {
		t.Fatal(err)
	}
	if err := earlier.writeMarkdown(md, earlier.remaining()); err != nil {
		t.Fatal(err)
	}

	now := &Results{Date: time.Date(2026, 12, 3, 4, 0, 0, 0, time.UTC)}
	now.Measured = map[string]time.Time{"status": now.Date}
	now.add(Figure{Name: "status.active_p99_ms", Value: 7.5, Unit: "ms", Goal: "≤ 10", Met: met(true), Command: cmd("status")})
	now.sections = []section{{title: "3. Session → ACTIVE latency", command: cmd("status"), how: "the new status text"}}
	if err := now.keepEarlier(js, md, []string{"status"}); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range now.Figures {
		names = append(names, f.Name)
	}
	if got, want := strings.Join(names, " "), "bulk.flows status.active_p99_ms storm.local.flow_mods_sent"; got != want {
		t.Errorf("figures %q, want %q", got, want)
	}
	if f, _ := now.Figure("status.active_p99_ms"); f.Value != 7.5 {
		t.Errorf("status.active_p99_ms = %v, want this run's 7.5", f.Value)
	}
	if got := strings.Join(now.Failures, "; "); got != "storm: it broke" {
		t.Errorf("failures %q: want only the earlier storm failure", got)
	}
	if len(now.Skipped) != 1 {
		t.Errorf("skipped %q: want the earlier osken note", now.Skipped)
	}
	if !now.Measured["bulk"].Equal(earlier.Date) || !now.Measured["status"].Equal(now.Date) {
		t.Errorf("measured %v", now.Measured)
	}
	if err := now.writeMarkdown(md, ""); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for _, s := range []string{"the bulk part's text", "the new status text", "the storm part's text",
		"This run measured status; the figures of the other parts are kept from earlier runs (bulk on 2026-11-24 02:28 UTC; storm on 2026-11-24 02:28 UTC)"} {
		if !strings.Contains(text, s) {
			t.Errorf("BENCHMARKS.md lacks %q:\n%s", s, text)
		}
	}
	if strings.Contains(text, "the old status text") || strings.Count(text, "## Goals") != 1 || strings.Count(text, "## Machine") != 1 {
		t.Errorf("BENCHMARKS.md keeps what this run replaced:\n%s", text)
	}
	if i, j, k := strings.Index(text, "1. Bulk"), strings.Index(text, "3. Session"), strings.Index(text, "4. Reconnect"); !(i < j && j < k) {
		t.Errorf("sections out of the parts' order:\n%s", text)
	}

	// A quick run does not mix with a full one.
	quick := &Results{Quick: true}
	if err := quick.keepEarlier(js, md, []string{"status"}); err == nil || len(quick.Figures) != 0 {
		t.Errorf("a quick run merged a full run's figures (err %v)", err)
	}
}
