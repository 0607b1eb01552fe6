package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Controllers is a cluster of portmirrord processes on loopback, as API.md's "Several
// controllers, one leader" runs them: each its own data directory, API
// (127.0.0.1), Raft (127.0.0.1) and OpenFlow (the topology's controller link) ports,
// the same --peers on every one.
type Controllers struct {
	Nodes []*Daemon // c1, c2, ...
}

// StartControllers starts n cluster members for tp (a nil tp puts OpenFlow on
// 127.0.0.1) and waits until every one answers /healthz 200 naming one leader.
func StartControllers(t testing.TB, tp *Topology, n int) *Controllers {
	t.Helper()
	cs := &Controllers{}
	var peers []string
	for i := range n {
		d := newDaemon(t, tp, DaemonOptions{})
		port, err := freePort("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		d.NodeID = fmt.Sprintf("c%d", i+1)
		d.RaftListen = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		d.APIAdvertise = d.URL
		peers = append(peers, d.NodeID+"="+d.RaftListen)
		cs.Nodes = append(cs.Nodes, d)
	}
	start := time.Now()
	for _, d := range cs.Nodes {
		d.Peers = strings.Join(peers, ",")
		// No leader before a majority runs: wait for the API only.
		d.start(t, false)
	}
	l := cs.WaitLeader(t, 30*time.Second)
	t.Logf("e2e: %d controllers up, %s leads, %v after the first start", n, l.NodeID, time.Since(start).Round(time.Millisecond))
	return cs
}

// Node returns the member with the id.
func (cs *Controllers) Node(id string) *Daemon {
	for _, d := range cs.Nodes {
		if d.NodeID == id {
			return d
		}
	}
	return nil
}

// Running returns the members that run now.
func (cs *Controllers) Running() []*Daemon {
	var out []*Daemon
	for _, d := range cs.Nodes {
		if d.Running() {
			out = append(out, d)
		}
	}
	return out
}

// Others returns the members other than d.
func (cs *Controllers) Others(d *Daemon) []*Daemon {
	var out []*Daemon
	for _, o := range cs.Nodes {
		if o != d {
			out = append(out, o)
		}
	}
	return out
}

// NodeHealth is what a member's GET /healthz says.
type NodeHealth struct {
	Code   int
	NodeID string `json:"nodeId"`
	Role   string `json:"role"`
	Leader string `json:"leader"`
	Term   uint64 `json:"term"`
	Status string `json:"status"`
}

// Health reads the member's /healthz.
func (d *Daemon) Health(ctx context.Context) (NodeHealth, error) {
	code, body, err := d.healthz(ctx)
	if err != nil {
		return NodeHealth{}, err
	}
	h := NodeHealth{}
	if err := json.Unmarshal([]byte(body), &h); err != nil {
		return NodeHealth{}, fmt.Errorf("%s /healthz: %w: %q", d.NodeID, err, body)
	}
	h.Code = code
	return h, nil
}

// agreedLeader returns the leader every running member names, answering 200, with
// the leader itself saying LEADER; nil (and why) when they do not agree yet.
func (cs *Controllers) agreedLeader(ctx context.Context) (*Daemon, string) {
	running := cs.Running()
	if len(running) == 0 {
		return nil, "no member runs"
	}
	leader := ""
	for _, d := range running {
		h, err := d.Health(ctx)
		if err != nil {
			return nil, err.Error()
		}
		if h.Code != 200 || h.Leader == "" {
			return nil, fmt.Sprintf("%s: HTTP %d, role %s, no leader", d.NodeID, h.Code, h.Role)
		}
		if leader != "" && h.Leader != leader {
			return nil, fmt.Sprintf("%s names %s, another names %s", d.NodeID, h.Leader, leader)
		}
		leader = h.Leader
		if d.NodeID == leader && h.Role != "LEADER" {
			return nil, fmt.Sprintf("%s is named leader but says %s", d.NodeID, h.Role)
		}
	}
	l := cs.Node(leader)
	if l == nil || !l.Running() {
		return nil, fmt.Sprintf("the members name %q, which does not run", leader)
	}
	return l, ""
}

// WaitLeader polls until every running member names the same running leader, and returns it.
func (cs *Controllers) WaitLeader(t testing.TB, timeout time.Duration) *Daemon {
	t.Helper()
	var l *Daemon
	why := ""
	err := poll(t.Context(), timeout, 20*time.Millisecond, func() (bool, error) {
		l, why = cs.agreedLeader(t.Context())
		return l != nil, nil
	})
	if err != nil {
		t.Fatalf("no agreed leader: %v (%s)", err, why)
	}
	return l
}

// Targets returns every member's OpenFlow target, sorted.
func (cs *Controllers) Targets() []string {
	var out []string
	for _, d := range cs.Nodes {
		out = append(out, d.OpenFlowTarget)
	}
	slices.Sort(out)
	return out
}

// Metric sums every sample of the metric name (any labels) in m.
func Metric(m map[string]float64, name string) float64 {
	sum := 0.0
	for k, v := range m {
		if k == name || strings.HasPrefix(k, name+"{") {
			sum += v
		}
	}
	return sum
}

// FlowModsSent is portmirror_flow_mods_sent_total over every command, from the member's /metrics.
func (d *Daemon) FlowModsSent(t testing.TB) float64 {
	t.Helper()
	return Metric(d.Metrics(t), "portmirror_flow_mods_sent_total")
}

// WaitCaughtUp polls until every running member has applied to its store what the
// leader has (the store counts the log's write sets, not Raft's own entries), and
// knows the leader's commit index.
func (cs *Controllers) WaitCaughtUp(t testing.TB, timeout time.Duration) {
	t.Helper()
	why := ""
	err := poll(t.Context(), timeout, 50*time.Millisecond, func() (bool, error) {
		l, w := cs.agreedLeader(t.Context())
		if l == nil {
			why = w
			return false, nil
		}
		lm := l.Metrics(t)
		applied, commit := Metric(lm, "portmirror_raft_applied_index"), Metric(lm, "portmirror_raft_commit_index")
		for _, d := range cs.Running() {
			m := d.Metrics(t)
			if a, c := Metric(m, "portmirror_raft_applied_index"), Metric(m, "portmirror_raft_commit_index"); a != applied || c < commit {
				why = fmt.Sprintf("%s applied %v, commit index %v; the leader (%s) %v and %v", d.NodeID, a, c, l.NodeID, applied, commit)
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("members not caught up: %v (%s)", err, why)
	}
}

// LogEntry is one line of a member's log (slog text).
type LogEntry struct {
	Time time.Time
	Line string
}

// Attr returns the value of key=value in the line ("" when absent).
func (e LogEntry) Attr(key string) string {
	_, v, ok := strings.Cut(e.Line+" ", " "+key+"=")
	if !ok {
		return ""
	}
	v, _, _ = strings.Cut(v, " ")
	return v
}

// LogEntries returns the member's log lines whose message is msg and that hold
// every one of attrs ("key=value"), after the member's last start when sinceStart
// is set.
func (d *Daemon) LogEntries(t testing.TB, msg string, sinceStart bool, attrs ...string) []LogEntry {
	t.Helper()
	f, err := os.Open(d.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []LogEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	want := "msg=" + strconv.Quote(msg)
	if !strings.ContainsAny(msg, " =\"") {
		want = "msg=" + msg
	}
line:
	for sc.Scan() {
		line := sc.Text()
		if sinceStart && strings.HasPrefix(line, "===== e2e: starting") {
			out = nil
			continue
		}
		if !strings.Contains(line+" ", " "+want+" ") {
			continue
		}
		for _, a := range attrs {
			if !strings.Contains(line+" ", " "+a+" ") {
				continue line
			}
		}
		ts, ok := strings.CutPrefix(line, "time=")
		if !ok {
			continue
		}
		ts, _, _ = strings.Cut(ts, " ")
		tm, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			t.Fatalf("%s log: time of %q: %v", d.NodeID, line, err)
		}
		out = append(out, LogEntry{Time: tm, Line: line})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// LogTimes returns the times of LogEntries.
func (d *Daemon) LogTimes(t testing.TB, msg string, sinceStart bool, attrs ...string) []time.Time {
	t.Helper()
	var out []time.Time
	for _, e := range d.LogEntries(t, msg, sinceStart, attrs...) {
		out = append(out, e.Time)
	}
	return out
}

// CheckMasterOnlyWhenLeading fails unless every switch the member became MASTER of
// since its last start was taken in a term it led: its generation id is a term in
// which the member's log says it caught up as leader. Raft elects at most one leader
// per term, so a member passing this was never MASTER while another led.
func (d *Daemon) CheckMasterOnlyWhenLeading(t testing.TB) int {
	t.Helper()
	led := map[string]bool{}
	for _, e := range d.LogEntries(t, "leading: caught up with the log; taking over the switches", true) {
		led[e.Attr("term")] = true
	}
	masters := d.LogEntries(t, "MASTER of switch", true)
	for _, e := range masters {
		if g := e.Attr("generation"); !led[g] {
			t.Errorf("%s became MASTER of %s with generation %q, a term it did not lead (it led %v)", d.NodeID, e.Attr("datapath"), g, led)
		}
	}
	return len(masters)
}

// ControllerRow is one row of a hypervisor's OVSDB Controller table.
type ControllerRow struct {
	Target, Role string // role: master, slave, other (EQUAL), or "" before OVS filled it in
	Connected    bool
}

// ControllerRows lists h's Controller table (every row belongs to br-int here).
func ControllerRows(ctx context.Context, h *Hypervisor) ([]ControllerRow, error) {
	out, err := h.Vsctl(ctx, "--format=csv", "--data=bare", "--no-headings", "--columns=target,role,is_connected", "list", "Controller")
	if err != nil {
		return nil, err
	}
	var rows []ControllerRow
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		f := strings.Split(strings.TrimSpace(line), ",")
		if len(f) != 3 {
			continue
		}
		rows = append(rows, ControllerRow{Target: strings.Trim(f[0], `"`), Role: f[1], Connected: f[2] == "true"})
	}
	return rows, nil
}

// WaitMasterIsLeader polls until OVS on h reports exactly one MASTER among br-int's
// controllers, the cluster's leader at that moment, every other connected
// controller SLAVE, and exactly the targets connected connected. It returns the
// leader. ovs-vswitchd refreshes the Controller table's role column every few
// seconds, hence the long deadline; a leader that changes meanwhile (a loaded
// machine may see one step down) is followed.
func (cs *Controllers) WaitMasterIsLeader(t testing.TB, h *Hypervisor, connected []string) *Daemon {
	t.Helper()
	var rows []ControllerRow
	var l *Daemon
	why := ""
	err := poll(t.Context(), 25*time.Second, 100*time.Millisecond, func() (bool, error) {
		if l, why = cs.agreedLeader(t.Context()); l == nil {
			return false, nil
		}
		var err error
		if rows, err = ControllerRows(t.Context(), h); err != nil {
			return false, err
		}
		why = rolesProblem(rows, l.OpenFlowTarget, connected)
		if why == "" {
			// the leader did not change while OVS was read
			if l2, _ := cs.agreedLeader(t.Context()); l2 != l {
				why = "the leader changed"
			}
		}
		return why == "", nil
	})
	if err != nil {
		t.Fatalf("%s: roles: %v: %s; Controller table: %+v", h.Name, err, why, rows)
	}
	return l
}

func rolesProblem(rows []ControllerRow, master string, connected []string) string {
	masters := 0
	var conn []string
	for _, r := range rows {
		if r.Role == "master" {
			masters++
			if r.Target != master {
				return fmt.Sprintf("%s is MASTER, want %s", r.Target, master)
			}
		}
		if r.Connected {
			conn = append(conn, r.Target)
			if r.Target != master && r.Role != "slave" {
				return fmt.Sprintf("%s is connected as %q, want slave", r.Target, r.Role)
			}
		}
	}
	if masters != 1 {
		return fmt.Sprintf("%d MASTERs", masters)
	}
	slices.Sort(conn)
	want := slices.Sorted(slices.Values(connected))
	if !slices.Equal(conn, want) {
		return fmt.Sprintf("connected %v, want %v", conn, want)
	}
	return ""
}

// Traffic is pings from one VM to an address, one request at a time, paced, until stopped.
type Traffic struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	runs   []PingResult
	err    error
}

// StartTraffic pings dst from src every interval (one request per run, each run its
// own random ICMP id) until Stop or the end of the test. A run under way when Stop
// is called completes: every request sent is in the results.
func StartTraffic(t testing.TB, src *VM, dst string, interval time.Duration) *Traffic {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tr := &Traffic{cancel: cancel, done: make(chan struct{})}
	t.Cleanup(func() { cancel(); <-tr.done })
	// Owned by tr: ends when Stop or the cleanup cancels ctx.
	go func() {
		defer close(tr.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for ctx.Err() == nil {
			p, err := src.PingN(context.Background(), dst, 1, time.Second)
			tr.mu.Lock()
			tr.runs = append(tr.runs, p)
			if err != nil && tr.err == nil {
				tr.err = err
			}
			tr.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-tick.C:
			}
		}
	}()
	return tr
}

// Stop ends the traffic and returns every run; it fails the test unless every
// request was answered.
func (tr *Traffic) Stop(t testing.TB) []PingResult {
	t.Helper()
	tr.cancel()
	<-tr.done
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.err != nil {
		t.Fatalf("traffic: %v", tr.err)
	}
	lost := 0
	for _, p := range tr.runs {
		lost += p.Sent - p.Received
	}
	if lost > 0 {
		t.Errorf("traffic: %d of %d pings unanswered", lost, len(tr.runs))
	}
	return tr.runs
}

// ExpectEachCopied waits until the capture holds want of every run, stops it, and
// fails unless it holds exactly that: want of each run and no other frame. Runs
// that drew the same random ICMP id are counted together.
func ExpectEachCopied(t testing.TB, c *Capture, runs []PingResult, want PingCount) {
	t.Helper()
	type key struct{ src, dst string }
	byID := map[uint16]key{}
	wantBy := map[uint16]PingCount{}
	for _, p := range runs {
		if k, ok := byID[p.ID]; ok && k != (key{p.Src, p.Dst}) {
			t.Fatalf("ping runs %s->%s and %s->%s share ICMP id %d", k.src, k.dst, p.Src, p.Dst, p.ID)
		}
		byID[p.ID] = key{p.Src, p.Dst}
		w := wantBy[p.ID]
		w.Requests += want.Requests * p.Sent
		w.Replies += want.Replies * p.Sent
		wantBy[p.ID] = w
	}
	count := func(fs []Frame) (map[uint16]PingCount, int) {
		got := map[uint16]PingCount{}
		other := 0
		for _, f := range fs {
			k, ok := byID[f.ICMPID]
			switch {
			case ok && f.Proto == 1 && f.IsEcho(ICMPEchoRequest, k.src, k.dst):
				pc := got[f.ICMPID]
				pc.Requests++
				got[f.ICMPID] = pc
			case ok && f.Proto == 1 && f.IsEcho(ICMPEchoReply, k.dst, k.src):
				pc := got[f.ICMPID]
				pc.Replies++
				got[f.ICMPID] = pc
			default:
				other++
			}
		}
		return got, other
	}
	c.WaitFor(t, 5*time.Second, fmt.Sprintf("%+v of each of %d pings", want, len(runs)), func(fs []Frame) bool {
		got, _ := count(fs)
		for id, w := range wantBy {
			if g := got[id]; g.Requests < w.Requests || g.Replies < w.Replies {
				return false
			}
		}
		return true
	})
	frames := c.Stop(t)
	got, other := count(frames)
	var bad []string
	for id, w := range wantBy {
		if g := got[id]; g != w {
			bad = append(bad, fmt.Sprintf("ping id %d: %+v, want %+v", id, g, w))
		}
	}
	if len(bad) > 0 || other != 0 {
		t.Fatalf("capture on VM %s %s: %d pings, want %+v of each: %d wrong, %d other frames:\n%s\ncaptured:\n%s",
			c.NIC.VM.Name, c.NIC.Name, len(runs), want, len(bad), other, strings.Join(bad, "\n"), FramesString(frames))
	}
}

// notSent reports whether err says the request was not sent: the connection was refused.
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
