package cluster

import (
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

var (
	descState = prometheus.NewDesc("portmirror_raft_state",
		"This controller's Raft state: 1 for the state it is in (leader, follower, candidate, shutdown), 0 for the others.",
		[]string{"state"}, nil)
	descTerm    = prometheus.NewDesc("portmirror_raft_term", "The current Raft term (the switches' generation id when leading).", nil, nil)
	descCommit  = prometheus.NewDesc("portmirror_raft_commit_index", "The last log index known committed.", nil, nil)
	descApplied = prometheus.NewDesc("portmirror_raft_applied_index", "The last log index whose write set this controller's store applied (elections' no-ops and membership "+
		"entries never reach the store, so it may stay below portmirror_raft_commit_index by those).", nil, nil)
	descLastContact = prometheus.NewDesc("portmirror_raft_last_contact_seconds",
		"Seconds since this controller last heard from the leader (0 on the leader).", nil, nil)
	descLeaderChanges = prometheus.NewDesc("portmirror_raft_leader_changes_total",
		"Times this controller saw the leader change (including to none).", nil, nil)
	descMembers = prometheus.NewDesc("portmirror_raft_members", "Members of the cluster, by suffrage.", []string{"suffrage"}, nil)
)

// Collector is the node's Prometheus metrics.
func (n *Node) Collector() prometheus.Collector { return collector{n} }

type collector struct{ n *Node }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descState, descTerm, descCommit, descApplied, descLastContact, descLeaderChanges, descMembers} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	st := n.raft.State()
	for _, s := range []raft.RaftState{raft.Leader, raft.Follower, raft.Candidate, raft.Shutdown} {
		v := 0.0
		if s == st {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, v, s.String())
	}
	ch <- prometheus.MustNewConstMetric(descTerm, prometheus.GaugeValue, float64(n.raft.CurrentTerm()))
	ch <- prometheus.MustNewConstMetric(descCommit, prometheus.GaugeValue, float64(n.raft.CommitIndex()))
	ch <- prometheus.MustNewConstMetric(descApplied, prometheus.GaugeValue, float64(n.st.AppliedIndex()))
	lc := 0.0
	if st != raft.Leader {
		if t := n.raft.LastContact(); !t.IsZero() {
			lc = time.Since(t).Seconds()
		}
	}
	ch <- prometheus.MustNewConstMetric(descLastContact, prometheus.GaugeValue, lc)
	n.mu.Lock()
	changes := n.stats.leaderChanges
	n.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(descLeaderChanges, prometheus.CounterValue, float64(changes))
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		voters, others := 0, 0
		for _, s := range f.Configuration().Servers {
			if s.Suffrage == raft.Voter {
				voters++
			} else {
				others++
			}
		}
		ch <- prometheus.MustNewConstMetric(descMembers, prometheus.GaugeValue, float64(voters), "voter")
		ch <- prometheus.MustNewConstMetric(descMembers, prometheus.GaugeValue, float64(others), "nonvoter")
	}
}
