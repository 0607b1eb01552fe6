// Package secaudit records refusals at the daemon's doors: failed authentications (a wrong or missing token, a
// TLS handshake without an acceptable certificate) and connections or requests over a bound. Every one is
// counted in a metric; the log gets one line per refusal, with its source address, as long as refusals stay
// under a rate, and beyond it a count of the lines left out, so that a flood cannot fill the disk.
package secaudit

import (
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Kinds of refusal.
const (
	Authentication = "authentication" // a token that is missing or wrong
	Certificate    = "certificate"    // a TLS handshake that failed (no certificate, another CA, plain text)
	ConnsPerAddr   = "conns_per_addr" // a connection over the per-address bound
	Requests       = "requests"       // a request over the concurrent-request bound
)

// Defaults of the log's rate: a burst of Burst lines, then one per Interval.
const (
	DefaultBurst    = 20
	DefaultInterval = time.Second
)

// Auditor records refusals. It is safe for concurrent use and starts no goroutine.
type Auditor struct {
	log      *slog.Logger
	counter  *prometheus.CounterVec
	burst    float64
	interval time.Duration
	now      func() time.Time

	mu         sync.Mutex
	tokens     float64
	last       time.Time
	suppressed int
}

// New returns an auditor logging to log and counting in portmirror_refusals_total{listener,kind} on reg.
func New(log *slog.Logger, reg prometheus.Registerer) (*Auditor, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portmirror_refusals_total",
		Help: "Connections and requests refused at a listener (api, openflow): failed authentication, certificate, or over a bound.",
	}, []string{"listener", "kind"})
	if err := reg.Register(c); err != nil {
		return nil, err
	}
	return &Auditor{log: log, counter: c, burst: DefaultBurst, interval: DefaultInterval, tokens: DefaultBurst, now: time.Now}, nil
}

// Refused records one refusal at listener ("api", "openflow") of kind from remote, and why.
func (a *Auditor) Refused(listener, kind, remote, reason string) {
	a.counter.WithLabelValues(listener, kind).Inc()
	a.mu.Lock()
	now := a.now()
	if !a.last.IsZero() {
		a.tokens = min(a.burst, a.tokens+float64(now.Sub(a.last))/float64(a.interval))
	}
	a.last = now
	if a.tokens < 1 {
		a.suppressed++
		a.mu.Unlock()
		return
	}
	a.tokens--
	left := a.suppressed
	a.suppressed = 0
	a.mu.Unlock()
	attrs := []any{"listener", listener, "kind", kind, "remote", remote, "reason", reason}
	if left > 0 {
		attrs = append(attrs, "not_logged_before", left)
	}
	a.log.Warn("refused", attrs...)
}
