package controller

import (
	"container/heap"
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"portmirror/service"
	"portmirror/store"
)

// expiryMetrics count what the expiry goroutine did, for /metrics.
type expiryMetrics struct {
	expired, failed atomic.Uint64
	scheduled       atomic.Int64

	expiredDesc, failedDesc, scheduledDesc *prometheus.Desc
}

func newExpiryMetrics() *expiryMetrics {
	return &expiryMetrics{
		expiredDesc: prometheus.NewDesc("portmirror_sessions_expired_total",
			"Sessions this controller deleted because their expiresAt came (audited as expirePortMirrorSession by system).", nil, nil),
		failedDesc: prometheus.NewDesc("portmirror_session_expiry_failures_total",
			"Attempts to delete an expired session that failed (each is tried again).", nil, nil),
		scheduledDesc: prometheus.NewDesc("portmirror_session_expiries_scheduled",
			"Sessions with an expiresAt that this controller is waiting for (0 on a controller that does not lead).", nil, nil),
	}
}

func (m *expiryMetrics) describe(ch chan<- *prometheus.Desc) {
	ch <- m.expiredDesc
	ch <- m.failedDesc
	ch <- m.scheduledDesc
}

func (m *expiryMetrics) collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(m.expiredDesc, prometheus.CounterValue, float64(m.expired.Load()))
	ch <- prometheus.MustNewConstMetric(m.failedDesc, prometheus.CounterValue, float64(m.failed.Load()))
	ch <- prometheus.MustNewConstMetric(m.scheduledDesc, prometheus.GaugeValue, float64(m.scheduled.Load()))
}

// Sessions with an expiresAt are deleted at that time by the controller that leads (or runs alone), through the
// service like any deletion (audited as expirePortMirrorSession by "system"); the reconciliation then removes
// their flows like any deleted session's. The time is stored with the session, so a restart, or a new leader,
// finds every pending expiry in the store and deletes at once what is already due.
//
// One goroutine owns the schedule: a map of the sessions that expire and a heap ordered by when each is next
// tried, with one timer on the earliest. The store's change feed keeps the map current (one session re-read per
// change), so a change costs O(log n) and nothing polls.

// expiryEntry is one session's place in the schedule.
type expiryEntry struct {
	at   time.Time // the session's expiresAt
	next time.Time // when to try: at, or later after a failed attempt
}

// expiryItem is a heap element; it is stale when the map no longer holds the same next time for the session.
type expiryItem struct {
	uuid string
	next time.Time
}

type expiryHeap []expiryItem

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].next.Before(h[j].next) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiryItem)) }
func (h *expiryHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

// expiry is the schedule the expiry goroutine owns (no lock: nothing else touches it).
type expiry struct {
	svc     *service.Service
	entries map[string]expiryEntry
	queue   expiryHeap
}

func (e *expiry) set(uuid string, en expiryEntry) {
	e.entries[uuid] = en
	heap.Push(&e.queue, expiryItem{uuid: uuid, next: en.next})
	if len(e.queue) > 2*len(e.entries)+64 {
		e.rebuild() // stale items of changed or deleted sessions pile up below the top: drop them
	}
}

// rebuild makes the heap hold exactly one item per entry.
func (e *expiry) rebuild() {
	e.queue = e.queue[:0]
	for uuid, en := range e.entries {
		e.queue = append(e.queue, expiryItem{uuid: uuid, next: en.next})
	}
	heap.Init(&e.queue)
}

// reload rebuilds the schedule from the store.
func (e *expiry) reload(ctx context.Context) {
	e.entries = map[string]expiryEntry{}
	for _, x := range e.svc.Expiries(ctx) {
		e.entries[x.SessionUUID] = expiryEntry{at: x.At, next: x.At}
	}
	e.rebuild()
}

// refresh re-reads one session's expiry.
func (e *expiry) refresh(ctx context.Context, uuid string) {
	at, ok := e.svc.SessionExpiry(ctx, uuid)
	old, had := e.entries[uuid]
	switch {
	case !ok:
		delete(e.entries, uuid) // its heap item goes stale
	case !had || !old.at.Equal(at):
		e.set(uuid, expiryEntry{at: at, next: at})
	}
}

// earliest drops stale heap items and returns the next live one.
func (e *expiry) earliest() (expiryItem, bool) {
	for len(e.queue) > 0 {
		it := e.queue[0]
		if en, ok := e.entries[it.uuid]; ok && en.next.Equal(it.next) {
			return it, true
		}
		heap.Pop(&e.queue)
	}
	return expiryItem{}, false
}

// expiryLeading reports whether this controller may expire sessions: it runs alone, or leads the cluster.
func (c *Controller) expiryLeading() bool {
	if c.opts.Cluster == nil {
		return true
	}
	lead, _ := c.opts.Cluster.Leading()
	return lead
}

// runExpiry is the expiry goroutine; Run owns it and ctx stops it.
func (c *Controller) runExpiry(ctx context.Context) {
	feed, unsubscribe := c.svc.Subscribe(1024)
	defer unsubscribe()
	var leadership <-chan struct{}
	if c.opts.Cluster != nil {
		ch, stop := c.opts.Cluster.Subscribe()
		defer stop()
		leadership = ch
	}
	e := &expiry{svc: c.svc}
	e.reload(ctx)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	defer c.metrics.expiry.scheduled.Store(0)
	for {
		leading := c.expiryLeading()
		if leading {
			c.expireDue(ctx, e)
			c.metrics.expiry.scheduled.Store(int64(len(e.entries)))
		} else {
			c.metrics.expiry.scheduled.Store(0)
		}
		timer.Stop()
		if it, ok := e.earliest(); ok && leading {
			timer.Reset(max(time.Until(it.next), 0))
		}
		select {
		case <-ctx.Done():
			return
		case ch, ok := <-feed:
			if !ok {
				return
			}
			switch ch.Kind {
			case store.KindSession:
				e.refresh(ctx, ch.UUID)
			case store.KindAll:
				e.reload(ctx)
			}
		case <-leadership:
			// a new leader takes over what its predecessor had pending, from the store
			e.reload(ctx)
		case <-timer.C:
		}
	}
}

// expireDue deletes every session whose time has come. A failed deletion (the store unavailable, the lead just
// lost) is tried again later; one the service found not due (its expiry moved) is rescheduled from the store.
func (c *Controller) expireDue(ctx context.Context, e *expiry) {
	for ctx.Err() == nil {
		it, ok := e.earliest()
		now := time.Now()
		if !ok || it.next.After(now) {
			return
		}
		deleted, err := c.svc.ExpirePortMirrorSession(ctx, it.uuid)
		switch {
		case err != nil:
			c.metrics.expiry.failed.Add(1)
			en := e.entries[it.uuid]
			en.next = now.Add(c.opts.RetryMax)
			c.log.Warn("deleting an expired session failed; trying again", "session", it.uuid,
				"expires_at", en.at, "retry_in", c.opts.RetryMax, "err", err)
			e.set(it.uuid, en)
		case deleted:
			c.metrics.expiry.expired.Add(1)
			c.log.Info("session expired: deleted", "session", it.uuid, "expires_at", e.entries[it.uuid].at)
			delete(e.entries, it.uuid)
		default:
			e.refresh(ctx, it.uuid)
			if en, ok := e.entries[it.uuid]; ok && !en.next.After(now) {
				// the service's clock has not reached it yet: try again shortly
				en.next = now.Add(c.opts.RetryMin)
				e.set(it.uuid, en)
			}
		}
	}
}
