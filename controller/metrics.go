package controller

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"portmirror/model"
	"portmirror/ofwire"
)

// metrics are the controller's own counters; the rest of what Collector exports is read when scraped.
type metrics struct {
	passes       prometheus.Histogram
	passFailures atomic.Uint64
	applyFailed  atomic.Uint64

	switches, sessions, flowMods, changes, barriers, passFailed, applyFailures *prometheus.Desc
	counterDescs                                                               counterDescs

	expiry *expiryMetrics // expiry.go
}

func newMetrics() *metrics {
	return &metrics{
		counterDescs: newCounterDescs(),
		expiry:       newExpiryMetrics(),
		passes: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "portmirror_reconcile_pass_seconds",
			Help:    "Duration of reconciliation passes (read the state, analyse every session, hand changed bridges to their workers).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		switches: prometheus.NewDesc("portmirror_openflow_switches_connected",
			"OpenFlow switches (bridges) connected to the controller.", nil, nil),
		sessions: prometheus.NewDesc("portmirror_sessions",
			"Sessions of enabled port mirrors, by status as of the last reconciliation pass.", []string{"status"}, nil),
		flowMods: prometheus.NewDesc("portmirror_flow_mods_sent_total",
			"Flow_mods sent to switches, by command (inside bundles or plain).", []string{"command"}, nil),
		changes: prometheus.NewDesc("portmirror_flow_changes_total",
			"Changes of a bridge's flows, by how they went: committed as one atomic bundle, a bundle refused at commit "+
				"(each attempt), sent again as a new bundle without the flow_mods the switch named, sent plain after "+
				"a refused bundle, or sent as plain flow_mods and a barrier.", []string{"way"}, nil),
		barriers: prometheus.NewDesc("portmirror_openflow_barriers_total",
			"Barrier requests sent to switches, and bundles confirmed by their commit reply alone (skipped: the "+
				"switch had proved on the connection that it honours bundles).", []string{"outcome"}, nil),
		passFailed: prometheus.NewDesc("portmirror_reconcile_pass_failures_total",
			"Reconciliation passes that failed (and were retried).", nil, nil),
		applyFailures: prometheus.NewDesc("portmirror_bridge_programming_failures_total",
			"Attempts to program a bridge that failed: refused flows, lost connections, timeouts (each is retried with backoff).", nil, nil),
	}
}

func (m *metrics) observePass(start time.Time, err error) {
	m.passes.Observe(time.Since(start).Seconds())
	if err != nil {
		m.passFailures.Add(1)
	}
}

// Collector exports the controller's state and counters to Prometheus: connected switches, sessions by status
// (all 0 on a controller that does not lead), flow_mods sent, how flow changes went (bundles or plain), reconciliation passes and failures.
func (c *Controller) Collector() prometheus.Collector { return collector{c} }

type collector struct{ c *Controller }

func (k collector) Describe(ch chan<- *prometheus.Desc) {
	m := k.c.metrics
	for _, d := range []*prometheus.Desc{m.switches, m.sessions, m.flowMods, m.changes, m.barriers, m.passFailed, m.applyFailures} {
		ch <- d
	}
	m.passes.Describe(ch)
	m.counterDescs.describe(ch)
	m.expiry.describe(ch)
}

func (k collector) Collect(ch chan<- prometheus.Metric) {
	c, m := k.c, k.c.metrics
	st := c.srv.Stats()
	ch <- prometheus.MustNewConstMetric(m.switches, prometheus.GaugeValue, float64(len(c.srv.Switches())))
	counts := map[model.SessionStatus]int{model.StatusActive: 0, model.StatusPending: 0, model.StatusError: 0}
	var uuids []string
	c.mu.Lock()
	if c.plan != nil {
		uuids = make([]string, 0, len(c.plan.fp))
		for uuid := range c.plan.fp {
			uuids = append(uuids, uuid)
		}
	}
	c.mu.Unlock()
	if lead, _, _ := c.leading(); !lead {
		uuids = nil // a follower programs nothing: the sessions' status is the leader's to tell
	}
	for _, uuid := range uuids {
		s, _ := c.SessionStatus(uuid)
		counts[s]++
	}
	for s, n := range counts {
		ch <- prometheus.MustNewConstMetric(m.sessions, prometheus.GaugeValue, float64(n), string(s))
	}
	for _, cmd := range []struct {
		c    ofwire.FlowModCommand
		name string
	}{{ofwire.FlowAdd, "add"}, {ofwire.FlowModifyStrict, "modify"}, {ofwire.FlowDeleteStrict, "delete"}} {
		ch <- prometheus.MustNewConstMetric(m.flowMods, prometheus.CounterValue, float64(st.FlowMods[cmd.c].Load()), cmd.name)
	}
	ch <- prometheus.MustNewConstMetric(m.changes, prometheus.CounterValue, float64(st.BundlesCommitted.Load()), "bundle")
	ch <- prometheus.MustNewConstMetric(m.changes, prometheus.CounterValue, float64(st.BundlesRefused.Load()), "bundle_refused")
	ch <- prometheus.MustNewConstMetric(m.changes, prometheus.CounterValue, float64(st.BundleRetries.Load()), "bundle_retried")
	ch <- prometheus.MustNewConstMetric(m.changes, prometheus.CounterValue, float64(st.BundleFallbacks.Load()), "bundle_fallback")
	ch <- prometheus.MustNewConstMetric(m.changes, prometheus.CounterValue, float64(st.PlainRuns.Load()), "plain")
	ch <- prometheus.MustNewConstMetric(m.barriers, prometheus.CounterValue, float64(st.BarriersSent.Load()), "sent")
	ch <- prometheus.MustNewConstMetric(m.barriers, prometheus.CounterValue, float64(st.BarriersSkipped.Load()), "skipped")
	ch <- prometheus.MustNewConstMetric(m.passFailed, prometheus.CounterValue, float64(m.passFailures.Load()))
	ch <- prometheus.MustNewConstMetric(m.applyFailures, prometheus.CounterValue, float64(m.applyFailed.Load()))
	m.passes.Collect(ch)
	c.collectCounters(ch, m.counterDescs)
	m.expiry.collect(ch)
}
