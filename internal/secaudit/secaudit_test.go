package secaudit

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestRateLimitedLog: every refusal is counted; the log takes a burst, then one line per interval, and the line
// after a gap says how many were left out.
func TestRateLimitedLog(t *testing.T) {
	var buf bytes.Buffer
	reg := prometheus.NewRegistry()
	a, err := New(slog.New(slog.NewTextHandler(&buf, nil)), reg)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_000_000, 0)
	a.now = func() time.Time { return now }
	for i := range 100 {
		a.Refused("api", Authentication, "198.18.0.9:40000", "wrong token "+string(rune('a'+i%26)))
	}
	lines := strings.Count(buf.String(), "msg=refused")
	if lines != DefaultBurst {
		t.Fatalf("%d lines after 100 refusals at once, want the burst %d", lines, DefaultBurst)
	}
	if !strings.Contains(buf.String(), "remote=198.18.0.9:40000") || !strings.Contains(buf.String(), "listener=api") {
		t.Fatalf("a line lacks the source: %s", buf.String())
	}
	now = now.Add(DefaultInterval)
	a.Refused("openflow", Certificate, "198.18.0.10:5000", "unknown authority")
	last := buf.String()[strings.LastIndex(strings.TrimSpace(buf.String()), "\n")+1:]
	if !strings.Contains(last, "not_logged_before=80") || !strings.Contains(last, "kind=certificate") {
		t.Fatalf("the line after the gap: %s", last)
	}
	var m dto.Metric
	if err := a.counter.WithLabelValues("api", Authentication).Write(&m); err != nil {
		t.Fatal(err)
	}
	if got := m.GetCounter().GetValue(); got != 100 {
		t.Errorf("counted %v api authentication refusals, want 100", got)
	}
}
