package controller

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"portmirror/model"
)

// counterDescs are the per-port-mirror counter metrics (labelled by port mirror only: bounded cardinality).
type counterDescs struct {
	packets, bytes, dropped, reads *prometheus.Desc
}

func newCounterDescs() counterDescs {
	return counterDescs{
		packets: prometheus.NewDesc("portmirror_port_mirror_copied_packets_total",
			"Frames the port mirror's sessions selected (each frame once per selecting session), as counted on the switches; exported by the leader.",
			[]string{"port_mirror"}, nil),
		bytes: prometheus.NewDesc("portmirror_port_mirror_copied_bytes_total",
			"Bytes of those frames, before truncation.", []string{"port_mirror"}, nil),
		dropped: prometheus.NewDesc("portmirror_port_mirror_copies_dropped_by_limit_total",
			"Copies dropped by the sessions' bandwidth caps.", []string{"port_mirror"}, nil),
		reads: prometheus.NewDesc("portmirror_counter_reads_total",
			"Flow-stats and meter-stats reads of session counters answered by switches.", nil, nil),
	}
}

func (d counterDescs) describe(ch chan<- *prometheus.Desc) {
	for _, x := range []*prometheus.Desc{d.packets, d.bytes, d.dropped, d.reads} {
		ch <- x
	}
}

// collectCounters exports the sums per port mirror of what this controller read (nothing on a follower).
func (c *Controller) collectCounters(ch chan<- prometheus.Metric, d counterDescs) {
	cs := c.counters
	cs.mu.Lock()
	reads := cs.reads
	empty := len(cs.totals) == 0
	cs.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(d.reads, prometheus.CounterValue, float64(reads))
	if empty {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sessions, err := c.svc.AllSessions(ctx)
	if err != nil {
		return
	}
	sums := map[string]model.SessionCounters{}
	cs.mu.Lock()
	for _, s := range sessions {
		if t := cs.totals[s.UUID]; t != nil {
			sums[s.PortMirrorUUID] = sums[s.PortMirrorUUID].Add(*t)
		}
	}
	cs.mu.Unlock()
	for pm, t := range sums {
		ch <- prometheus.MustNewConstMetric(d.packets, prometheus.CounterValue, float64(t.Packets), pm)
		ch <- prometheus.MustNewConstMetric(d.bytes, prometheus.CounterValue, float64(t.Bytes), pm)
		ch <- prometheus.MustNewConstMetric(d.dropped, prometheus.CounterValue, float64(t.DroppedByLimit), pm)
	}
}
