package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"portmirror/model"
	"portmirror/service"
	simfleet "portmirror/simulator/fleet"
	"portmirror/store"
)

// partCluster is part 7: three controllers sharing one state through Raft against one controller, measured in
// the same run: a leader's SIGKILL, createPortMirror's latency, and session → ACTIVE on simulated bridges.
func (b *bencher) partCluster(ctx context.Context) {
	s := section{title: "8. Three controllers", command: b.command("cluster")}
	if err := b.cluster(ctx, &s); err != nil {
		b.fail("cluster", err)
	}
	b.res.sections = append(b.res.sections, s)
}

// member is one portmirrord of a rig, on its own data directory and fixed loopback ports (so that it restarts on
// the same addresses, as the bridges list them).
type member struct {
	id, dir         string
	api, of, raft   string // host:port
	extra           []string
	d               *daemon
	restarts, kills int
}

func (m *member) start(ctx context.Context, bin string) error {
	d, err := startDaemonArgs(ctx, bin, m.dir, m.api, m.of, m.extra...)
	if err != nil {
		return fmt.Errorf("node %s: %w", m.id, err)
	}
	m.d = d
	return nil
}

// ctlRig is one controller or a cluster of three, each node starting from a copy of the prepared store, with
// the simulated fleet connected to every node.
type ctlRig struct {
	*clusterState
	b       *bencher
	bin     string
	members []*member
	fleet   *simfleet.Fleet
	fleetOK bool // the fleet was started
}

// freePorts returns n distinct loopback addresses that were free a moment ago.
func freePorts(n int) ([]string, error) {
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			_ = l.Close()
		}
	}()
	var out []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, l)
		out = append(out, l.Addr().String())
	}
	return out, nil
}

// startCtlRig starts nodes portmirrord processes (1: a single controller without cluster flags; 3: a cluster),
// each on its own copy of the store prepared in seed, then connects one simulated bridge per host to every node and
// waits until every bridge is programmed (and, in a cluster, has the leader as MASTER and the others as SLAVE).
func (b *bencher) startCtlRig(ctx context.Context, dir, seed string, cs *clusterState, nodes, hosts int) (r *ctlRig, err error) {
	r = &ctlRig{b: b, clusterState: cs}
	if r.bin, err = b.daemonBinary(ctx); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			r.stop()
		}
	}()
	addrs, err := freePorts(3 * nodes)
	if err != nil {
		return nil, err
	}
	var peers, ofs []string
	for i := range nodes {
		m := &member{id: string(rune('a' + i)), api: addrs[3*i], of: addrs[3*i+1], raft: addrs[3*i+2]}
		m.dir = filepath.Join(dir, fmt.Sprintf("node-%s", m.id))
		if err := os.CopyFS(m.dir, os.DirFS(seed)); err != nil {
			return nil, fmt.Errorf("copy the prepared store: %w", err)
		}
		r.members = append(r.members, m)
		peers = append(peers, m.id+"="+m.raft)
		ofs = append(ofs, m.of)
	}
	for _, m := range r.members {
		if nodes > 1 {
			m.extra = []string{"--node-id", m.id, "--raft-listen", m.raft, "--peers", strings.Join(peers, ","),
				"--api-advertise", "http://" + m.api, "--openflow-advertise", "tcp:" + m.of}
		}
		if err := m.start(ctx, r.bin); err != nil {
			return nil, err
		}
	}
	if _, err := r.waitLeader(ctx, nil, time.Minute); err != nil {
		return nil, err
	}
	if r.fleet, err = b.fleetTopology(hosts, ofs); err != nil {
		return nil, err
	}
	if err := r.fleet.Start(ctx, ""); err != nil {
		return nil, err
	}
	r.fleetOK = true
	t0 := time.Now()
	if _, err := r.waitSettled(ctx, 3*time.Minute); err != nil {
		return nil, err
	}
	b.log.Info("bridges connected and programmed", "nodes", nodes, "bridges", hosts, "seconds", time.Since(t0).Seconds())
	return r, nil
}

func (r *ctlRig) stop() {
	if r.fleetOK {
		r.fleet.Stop()
	}
	for _, m := range r.members {
		if m.d != nil {
			m.d.stop()
		}
	}
}

// fleetTopology is the simulated fleet of part 7: hosts hosts of one cluster, each with one VM of one NIC and
// one monitor VM (a default and a capture NIC), one GRE flow network. Every rig builds it anew (fresh bridges)
// with the same seed, so the same uuids.
func (b *bencher) fleetTopology(hosts int, controllers []string) (*simfleet.Fleet, error) {
	return simfleet.Build(simfleet.Uniform(7, hosts, 1, 1), simfleet.Options{Controllers: controllers, Logger: b.quiet,
		ProbeInterval: 15 * time.Second})
}

// clusterState is what prepareStore stored: the uuids the measurements use.
type clusterState struct {
	pm     string   // the fleet's port mirror (enabled, no session yet)
	src    []string // per host: the source NIC (its VM's only NIC)
	capt   []string // per host: its monitor's capture NIC
	apiFN  []string // flow networks for the createPortMirror calls (api cluster only, no bridge)
	apiSrc []string // ten source NICs on api host 1
	apiDst string   // the capture NIC on api host 2
}

// prepareStore writes the state every node of part 7 starts from into an on-disk store at dir, which each node
// gets a copy of before its first start (as three members that replicated it hold it): the fleet's inventory in
// bulk; its flow network and an enabled port mirror with no session, a two-host cluster without bridges (ten
// source NICs, one capture NIC) and apiCalls flow networks for the createPortMirror calls, through the service.
// Registering 1,000 hosts through the API of three nodes would take minutes, and is not what is measured.
func (b *bencher) prepareStore(ctx context.Context, dir string, hosts, apiCalls int) (*clusterState, error) {
	f, err := b.fleetTopology(hosts, nil)
	if err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, store.Options{Dir: dir, Logger: b.quiet})
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	defer st.Close()
	svc := service.New(st, service.Options{Logger: b.quiet})
	ctx = service.WithActor(ctx, "bench")
	cs := &clusterState{src: make([]string, hosts), capt: make([]string, hosts)}
	now := time.Now().UTC()
	var objs []any
	for _, c := range f.Clusters {
		objs = append(objs, model.Cluster{UUID: c.UUID, Name: c.Name, CreatedAt: now})
	}
	for _, h := range f.Hosts {
		objs = append(objs, model.Host{UUID: h.UUID, Name: h.Name, ClusterUUID: h.Cluster.UUID, Bridge: model.DefaultBridge,
			DatapathID: h.DatapathIDString(), CreatedAt: now})
	}
	for _, vm := range f.VMs {
		h := f.HostOf(vm)
		objs = append(objs, model.VmInstance{UUID: vm.UUID, Name: vm.Name, HostUUID: h.UUID, CreatedAt: now})
		for j, n := range vm.NICs {
			objs = append(objs, model.VmNic{UUID: n.UUID, VmUUID: vm.UUID, Index: j, MAC: n.MAC.String(), IP: n.IP.String(),
				IsDefault: n.Default, PortName: n.PortName})
			switch {
			case n.Capture:
				cs.capt[h.Index] = n.UUID
			case !vm.Monitor:
				cs.src[h.Index] = n.UUID
			}
		}
	}
	if err := st.BulkPut(ctx, objs); err != nil {
		return nil, fmt.Errorf("bulk inventory: %w", err)
	}
	fn := f.FlowNetworks[0]
	if _, err := svc.CreateFlowNetwork(ctx, service.FlowNetworkInput{UUID: fn.UUID, Name: fn.Name, CIDR: fn.CIDR.String(),
		Encapsulation: fn.Encapsulation, ClusterUUIDs: []string{f.Clusters[0].UUID}}); err != nil {
		return nil, fmt.Errorf("createFlowNetwork: %w", err)
	}
	pm, err := svc.CreatePortMirror(ctx, service.PortMirrorInput{Name: "fleet", FlowNetworkUUID: fn.UUID, Enable: true})
	if err != nil {
		return nil, fmt.Errorf("createPortMirror: %w", err)
	}
	cs.pm = pm.UUID

	api, err := buildAPICluster(ctx, svc, apiCalls, func(i int) string { return fmt.Sprintf("198.19.%d.%d/28", i/16, i%16*16) })
	if err != nil {
		return nil, err
	}
	cs.apiSrc, cs.apiDst, cs.apiFN = api.src, api.dst, api.flowNetworks
	return cs, nil
}

// health is what GET /healthz says.
type health struct {
	Status string `json:"status"`
	Role   string `json:"role"`
	Leader string `json:"leader"`
	Term   uint64 `json:"term"`
}

func (d *daemon) get(ctx context.Context, path string, timeout time.Duration) ([]byte, int, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+d.api+path, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return b, resp.StatusCode, err
}

func (d *daemon) health(ctx context.Context) (health, error) {
	var h health
	b, _, err := d.get(ctx, "/healthz", time.Second)
	if err != nil {
		return h, err
	}
	return h, json.Unmarshal(b, &h)
}

// metric sums the samples of a Prometheus metric (every label set) in GET /metrics.
func (d *daemon) metric(ctx context.Context, name string) (float64, error) {
	b, code, err := d.get(ctx, "/metrics", 5*time.Second)
	if err != nil {
		return 0, err
	}
	if code != http.StatusOK {
		return 0, fmt.Errorf("GET /metrics: HTTP %d", code)
	}
	sum, found := 0.0, false
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		f := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return 0, fmt.Errorf("metric %s: %q: %w", name, line, err)
		}
		sum, found = sum+v, true
	}
	if !found {
		return 0, fmt.Errorf("GET /metrics: no %s", name)
	}
	return sum, nil
}

// waitLeader polls /healthz on every running member (except skip) until one leads and every other names it as
// leader; a single controller is its own leader.
func (r *ctlRig) waitLeader(ctx context.Context, skip *member, limit time.Duration) (*member, error) {
	if len(r.members) == 1 {
		return r.members[0], nil
	}
	var leader *member
	err := waitUntil(ctx, limit, "one leader that every node knows", func() bool {
		leader = nil
		var hs []health
		for _, m := range r.members {
			if m == skip {
				continue
			}
			h, err := m.d.health(ctx)
			if err != nil || h.Status != "ok" {
				return false
			}
			if h.Role == "LEADER" {
				leader = m
			}
			hs = append(hs, h)
		}
		if leader == nil {
			return false
		}
		for _, h := range hs {
			if h.Leader != leader.id {
				return false
			}
		}
		return true
	})
	return leader, err
}

// waitSettled waits until every bridge is connected to every running node and holds the baseline flow, and (in a
// cluster) one node, which /healthz says leads, is every bridge's MASTER and the others are SLAVE. It returns that
// node: the leadership may move while the bridges settle (a loaded machine misses heartbeats).
func (r *ctlRig) waitSettled(ctx context.Context, limit time.Duration) (*member, error) {
	n := len(r.fleet.Hosts)
	var bad string
	var master *member
	err := waitUntil(ctx, limit, "every bridge connected to every node, with the leader as master", func() bool {
		master = nil
		if len(r.members) == 1 {
			master = r.members[0]
		}
		for _, h := range r.fleet.Hosts {
			sw := r.fleet.SwitchOf(h)
			if sw.ConnectedControllers() != len(r.members) {
				bad = h.Name + " not connected to every node"
				return false
			}
			if h.Bridge.FlowCount() == 0 {
				bad = h.Name + " not programmed"
				return false
			}
			if len(r.members) == 1 {
				continue
			}
			roles := sw.Roles()
			if master == nil {
				for _, m := range r.members {
					if roles[m.of].String() == "MASTER" {
						master = m
					}
				}
				if master == nil {
					bad = h.Name + " has no master"
					return false
				}
			}
			for _, m := range r.members {
				want := "SLAVE"
				if m == master {
					want = "MASTER"
				}
				if got := roles[m.of].String(); got != want {
					bad = fmt.Sprintf("%s: node %s is %s", h.Name, m.id, got)
					return false
				}
			}
		}
		if len(r.members) > 1 {
			if h, err := master.d.health(ctx); err != nil || h.Role != "LEADER" {
				bad = fmt.Sprintf("node %s masters every bridge but does not lead (%+v, %v)", master.id, h, err)
				return false
			}
		}
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("%w (%d bridges; %s)", err, n, bad)
	}
	return master, nil
}

const createPortMirrorDoc = `mutation($in: PortMirrorInput!) { createPortMirror(input: $in) { uuid sessions { uuid tunnelKey } } }`

// createPortMirror times one createPortMirror call of ten enabled BIDIRECTION sessions on api flow network i.
func (r *ctlRig) createPortMirror(ctx context.Context, m *member, i int) (time.Duration, error) {
	var sess []any
	for j, src := range r.apiSrc {
		sess = append(sess, map[string]any{"name": fmt.Sprintf("s%d", j), "type": "BIDIRECTION", "sourceNicUuid": src, "destinationNicUuid": r.apiDst})
	}
	in := map[string]any{"name": fmt.Sprintf("api%d", i), "flowNetworkUuid": r.apiFN[i], "enable": true, "sessions": sess}
	t0 := time.Now()
	if err := m.d.gql(ctx, createPortMirrorDoc, map[string]any{"in": in}, nil); err != nil {
		return 0, fmt.Errorf("createPortMirror %d on node %s: %w", i, m.id, err)
	}
	return time.Since(t0), nil
}

const (
	addSessionDoc    = `mutation($pm: ID!, $in: SessionInput!) { addPortMirrorSession(portMirrorUuid: $pm, input: $in) { uuid } }`
	sessionStatusDoc = `query($u: ID!) { portMirrorSession(uuid: $u) { status statusReason } }`
)

// sessionActive adds the session from host h's VM to host h+1's capture NIC through node m and polls its status
// through the same node every millisecond until it is ACTIVE: the time to ACTIVE and of the mutation alone.
func (r *ctlRig) sessionActive(ctx context.Context, m *member, h int) (total, mutation time.Duration, err error) {
	n := len(r.fleet.Hosts)
	in := map[string]any{"name": fmt.Sprintf("hv%d", h), "type": "BIDIRECTION", "sourceNicUuid": r.src[h], "destinationNicUuid": r.capt[(h+1)%n]}
	var out struct {
		S struct{ UUID string } `json:"addPortMirrorSession"`
	}
	t0 := time.Now()
	if err := m.d.gql(ctx, addSessionDoc, map[string]any{"pm": r.pm, "in": in}, &out); err != nil {
		return 0, 0, fmt.Errorf("addPortMirrorSession on node %s: %w", m.id, err)
	}
	mutation = time.Since(t0)
	deadline := t0.Add(30 * time.Second)
	for {
		var st struct {
			S struct {
				Status string `json:"status"`
				Reason string `json:"statusReason"`
			} `json:"portMirrorSession"`
		}
		if err := m.d.gql(ctx, sessionStatusDoc, map[string]any{"u": out.S.UUID}, &st); err != nil {
			return 0, 0, fmt.Errorf("session status on node %s: %w", m.id, err)
		}
		switch st.S.Status {
		case "ACTIVE":
			return time.Since(t0), mutation, nil
		case "ERROR":
			return 0, 0, fmt.Errorf("session hv%d: ERROR: %s", h, st.S.Reason)
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("session hv%d still %s after 30 s: %s", h, st.S.Status, st.S.Reason)
		}
		time.Sleep(time.Millisecond)
	}
}

// allActive reports whether every session of the fleet's port mirror is ACTIVE, asked through m.
func (r *ctlRig) allActive(ctx context.Context, m *member, want int) bool {
	var out struct {
		PM struct {
			Sessions []struct{ Status string } `json:"sessions"`
		} `json:"portMirror"`
	}
	if err := m.d.gql(ctx, `query($u: ID!) { portMirror(uuid: $u) { sessions { status } } }`, map[string]any{"u": r.pm}, &out); err != nil {
		return false
	}
	n := 0
	for _, s := range out.PM.Sessions {
		if s.Status == "ACTIVE" {
			n++
		}
	}
	return n == want && len(out.PM.Sessions) == want
}

// failover is one leader kill: the times from the SIGKILL to the first mutation a survivor accepts and to every
// bridge having one survivor as MASTER, and the flow_mods the new leader sent until every session was ACTIVE again
// and while the killed node rejoined.
type failover struct {
	accepted, mastered, active time.Duration
	flowMods, rejoinFlowMods   float64
	from, to                   string
	movedOnRejoin              bool // the leadership moved again while the killed node rejoined
}

const flowModsMetric = "portmirror_flow_mods_sent_total"

func (r *ctlRig) killLeader(ctx context.Context, k, sessions int) (failover, error) {
	var fo failover
	leader, err := r.waitLeader(ctx, nil, time.Minute)
	if err != nil {
		return fo, err
	}
	var survivors []*member
	before := map[*member]float64{}
	for _, m := range r.members {
		if m == leader {
			continue
		}
		survivors = append(survivors, m)
		if before[m], err = m.d.metric(ctx, flowModsMetric); err != nil {
			return fo, fmt.Errorf("node %s: %w", m.id, err)
		}
	}
	// Mutations go to one survivor (alternating between kills): a new attempt every 20 ms, each waiting for its
	// answer, so that one held up by the election does not delay the detection.
	target := survivors[k%len(survivors)]
	pctx, stopPoll := context.WithCancel(ctx)
	defer stopPoll()
	acceptedAt := make(chan time.Time, 1)

	if err := syscall.Kill(leader.d.pid(), syscall.SIGKILL); err != nil {
		return fo, fmt.Errorf("SIGKILL node %s: %w", leader.id, err)
	}
	t0 := time.Now()
	leader.kills++
	var pollers sync.WaitGroup
	pollers.Add(1)
	go func() {
		defer pollers.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for attempt := 0; ; attempt++ {
			pollers.Add(1)
			go func() {
				defer pollers.Done()
				actx, cancel := context.WithTimeout(pctx, 15*time.Second)
				defer cancel()
				err := target.d.gql(actx, `mutation($in: ClusterInput!) { createCluster(input: $in) { uuid } }`,
					map[string]any{"in": map[string]any{"name": fmt.Sprintf("failover-%d-%d", k, attempt)}}, nil)
				if err == nil {
					select {
					case acceptedAt <- time.Now():
					default:
					}
				}
			}()
			select {
			case <-pctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	<-leader.d.exited

	// Every bridge mastered by one survivor.
	ofOf := map[string]*member{}
	for _, m := range survivors {
		ofOf[m.of] = m
	}
	var newLeader *member
	n := len(r.fleet.Hosts)
	if err := waitUntil(ctx, 30*time.Second, "every bridge mastered by a survivor", func() bool {
		ms := r.fleet.Masters()
		for addr, cnt := range ms {
			if m, ok := ofOf[addr]; ok && cnt == n {
				newLeader = m
				return true
			}
		}
		return false
	}); err != nil {
		stopPoll()
		pollers.Wait()
		return fo, fmt.Errorf("kill %d: %w (masters %v)", k, err, r.fleet.Masters())
	}
	fo.mastered = time.Since(t0)
	select {
	case at := <-acceptedAt:
		fo.accepted = at.Sub(t0)
	case <-time.After(30 * time.Second):
		stopPoll()
		pollers.Wait()
		return fo, fmt.Errorf("kill %d: no mutation accepted by node %s within 30 s of the kill", k, target.id)
	}
	stopPoll()
	pollers.Wait()
	if err := waitUntil(ctx, 30*time.Second, "every session ACTIVE again", func() bool {
		ok := r.allActive(ctx, newLeader, sessions)
		if !ok {
			time.Sleep(20 * time.Millisecond)
		}
		return ok
	}); err != nil {
		return fo, fmt.Errorf("kill %d: %w", k, err)
	}
	fo.active = time.Since(t0)
	after := map[*member]float64{}
	for _, m := range survivors {
		if after[m], err = m.d.metric(ctx, flowModsMetric); err != nil {
			return fo, fmt.Errorf("node %s: %w", m.id, err)
		}
	}
	fo.flowMods = after[newLeader] - before[newLeader]
	fo.from, fo.to = leader.id, newLeader.id

	// The killed node restarts on its data directory and rejoins as a follower; the next kill waits until it has
	// caught up with the leader's log and every bridge is connected to it again as SLAVE.
	if err := leader.start(ctx, r.bin); err != nil {
		return fo, err
	}
	leader.restarts++
	now, err := r.waitLeader(ctx, nil, time.Minute)
	if err != nil {
		return fo, fmt.Errorf("kill %d: after the restart of node %s: %w", k, leader.id, err)
	}
	// Caught up: it knows the leader's commit index and its store has applied what the leader's has (the store's
	// applied index counts only entries that write to it, not an election's no-op, so it is compared with the
	// leader's store, not with the commit index).
	if err := waitUntil(ctx, time.Minute, "the restarted node to catch up", func() bool {
		time.Sleep(20 * time.Millisecond)
		var idx [4]float64
		for i, q := range []struct {
			m    *member
			name string
		}{{now, "portmirror_raft_commit_index"}, {leader, "portmirror_raft_commit_index"},
			{now, "portmirror_raft_applied_index"}, {leader, "portmirror_raft_applied_index"}} {
			v, err := q.m.d.metric(ctx, q.name)
			if err != nil {
				return false
			}
			idx[i] = v
		}
		return idx[1] >= idx[0] && idx[3] >= idx[2]
	}); err != nil {
		return fo, fmt.Errorf("kill %d: %w", k, err)
	}
	settled, err := r.waitSettled(ctx, time.Minute)
	if err != nil {
		return fo, fmt.Errorf("kill %d: after node %s rejoined: %w", k, leader.id, err)
	}
	fo.movedOnRejoin = now != newLeader || settled != newLeader
	// Flow_mods sent by anyone while the killed node rejoined (its counter started at 0 with the restart).
	for _, m := range r.members {
		v, err := m.d.metric(ctx, flowModsMetric)
		if err != nil {
			return fo, fmt.Errorf("node %s: %w", m.id, err)
		}
		fo.rejoinFlowMods += v - after[m]
	}
	return fo, nil
}

// cluster measures part 7.
func (b *bencher) cluster(ctx context.Context, s *section) error {
	hosts := b.scaled(1000)
	calls, kills := 100, 20
	if b.cfg.Quick {
		calls, kills = 10, 3
	}
	if limit, err := raiseFileLimit(); err != nil || limit < uint64(hosts)*4+1000 {
		b.log.Warn("the open-file limit may be too low for the bridge count", "limit", limit, "err", err)
	}
	tmp, err := os.MkdirTemp("", "pmbench-cluster")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	seed := filepath.Join(tmp, "seed")
	cs, err := b.prepareStore(ctx, seed, hosts, 2*calls)
	if err != nil {
		return err
	}
	// One controller first, then three: never both at once on the same cores.
	one, err := b.startCtlRig(ctx, filepath.Join(tmp, "one"), seed, cs, 1, hosts)
	if err != nil {
		return fmt.Errorf("one node: %w", err)
	}
	oneCreate, oneTotal, oneMut, err := b.rigLatencies(ctx, one, calls, func(int) *member { return one.members[0] }, nil)
	one.stop()
	if err != nil {
		return fmt.Errorf("one node: %w", err)
	}

	three, err := b.startCtlRig(ctx, filepath.Join(tmp, "three"), seed, cs, 3, hosts)
	if err != nil {
		return fmt.Errorf("three nodes: %w", err)
	}
	defer three.stop()
	leader, err := three.waitLeader(ctx, nil, time.Minute)
	if err != nil {
		return err
	}
	var followers []*member
	for _, m := range three.members {
		if m != leader {
			followers = append(followers, m)
		}
	}
	// createPortMirror alternates between a follower (forwarded to the leader) and the leader; sessions go
	// round-robin to the three nodes, as from a client that does not know which one leads.
	createVia := func(i int) *member {
		if i%2 == 0 {
			return followers[i/2%2]
		}
		return leader
	}
	var byNode [][]time.Duration = make([][]time.Duration, 2) // leader, followers: session → ACTIVE
	threeCreate, threeTotal, threeMut, err := b.rigLatencies(ctx, three, 2*calls, createVia, func(h int) *member {
		return three.members[h%3]
	})
	if err != nil {
		return fmt.Errorf("three nodes: %w", err)
	}
	for h, d := range threeTotal.byHost {
		if three.members[h%3] == leader {
			byNode[0] = append(byNode[0], d)
		} else {
			byNode[1] = append(byNode[1], d)
		}
	}
	var createLeader, createFollower []time.Duration
	for i, d := range threeCreate {
		if createVia(i) == leader {
			createLeader = append(createLeader, d)
		} else {
			createFollower = append(createFollower, d)
		}
	}

	// Leader kills.
	var fos []failover
	var killErr error
	for k := range kills {
		fo, err := three.killLeader(ctx, k, hosts)
		if err != nil {
			killErr = err // the kills measured so far are still reported
			break
		}
		b.log.Info("leader killed", "kill", k+1, "from", fo.from, "to", fo.to, "accepted_ms", ms(fo.accepted),
			"mastered_ms", ms(fo.mastered), "active_ms", ms(fo.active), "flow_mods", fo.flowMods, "rejoin_flow_mods", fo.rejoinFlowMods,
			"leader_moved_on_rejoin", fo.movedOnRejoin)
		fos = append(fos, fo)
	}

	b.clusterFigures(s, clusterMeasured{hosts: hosts, calls: calls, kills: kills,
		oneCreate: oneCreate, createLeader: createLeader, createFollower: createFollower,
		oneActive: oneTotal.all, threeActive: threeTotal.all, activeLeader: byNode[0], activeFollower: byNode[1],
		oneMut: oneMut, threeMut: threeMut, failovers: fos})
	return killErr
}

type activeTimes struct {
	all    []time.Duration
	byHost []time.Duration
}

// rigLatencies times calls createPortMirror calls (through createVia(i)) and one session → ACTIVE per host
// (through sessionVia(h); nil: the first node).
func (b *bencher) rigLatencies(ctx context.Context, r *ctlRig, calls int, createVia, sessionVia func(int) *member) (
	create []time.Duration, total activeTimes, mut []time.Duration, err error) {
	if sessionVia == nil {
		sessionVia = func(int) *member { return r.members[0] }
	}
	for i := range calls {
		d, err := r.createPortMirror(ctx, createVia(i), i)
		if err != nil {
			return nil, total, nil, err
		}
		create = append(create, d)
	}
	for h := range r.fleet.Hosts {
		t, m, err := r.sessionActive(ctx, sessionVia(h), h)
		if err != nil {
			return nil, total, nil, err
		}
		total.byHost = append(total.byHost, t)
		mut = append(mut, m)
	}
	total.all = slices.Clone(total.byHost)
	return create, total, mut, nil
}

type clusterMeasured struct {
	hosts, calls, kills                                  int
	oneCreate, createLeader, createFollower              []time.Duration
	oneActive, threeActive, activeLeader, activeFollower []time.Duration
	oneMut, threeMut                                     []time.Duration
	failovers                                            []failover
}

// quantile is the p-quantile of ts (nearest rank, at least the first); ts is sorted in place.
func quantile(ts []time.Duration, p float64) time.Duration {
	if len(ts) == 0 {
		return 0
	}
	slices.Sort(ts)
	return ts[min(len(ts)-1, int(p*float64(len(ts))))]
}

func (b *bencher) clusterFigures(s *section, c clusterMeasured) {
	cmd := s.command
	add := func(name string, v float64, unit, goal string, ok *bool) {
		b.res.add(Figure{Name: "cluster." + name, Value: v, Unit: unit, Goal: goal, Met: ok, Command: cmd})
	}
	var accepted, mastered, active []time.Duration
	flowMods, rejoinFlowMods, moved := 0.0, 0.0, 0
	for _, fo := range c.failovers {
		if fo.movedOnRejoin {
			moved++
		}
		accepted = append(accepted, fo.accepted)
		mastered = append(mastered, fo.mastered)
		active = append(active, fo.active)
		flowMods += fo.flowMods
		rejoinFlowMods += fo.rejoinFlowMods
	}
	secs := func(d time.Duration) float64 { return d.Seconds() }
	acc50, acc99 := quantile(accepted, 0.5), quantile(accepted, 0.99)
	mas50, mas99 := quantile(mastered, 0.5), quantile(mastered, 0.99)
	act50, act99 := quantile(active, 0.5), quantile(active, 0.99)
	add("failover.kills", float64(len(c.failovers)), "kills", "", nil)
	add("failover.mutation_accepted_p50_s", secs(acc50), "s", "", nil)
	add("failover.mutation_accepted_p99_s", secs(acc99), "s", "≤ 3", met(acc99 <= 3*time.Second))
	add("failover.all_bridges_mastered_p50_s", secs(mas50), "s", "", nil)
	add("failover.all_bridges_mastered_p99_s", secs(mas99), "s", "≤ 3", met(mas99 <= 3*time.Second))
	add("failover.all_sessions_active_p99_s", secs(act99), "s", "", nil)
	add("failover.flow_mods_sent", flowMods, "flow_mods", "= 0", met(flowMods == 0))
	add("failover.rejoin_flow_mods_sent", rejoinFlowMods, "flow_mods", "", nil)
	add("failover.leader_moved_on_rejoin", float64(moved), "times", "", nil)

	one50, one99 := quantile(c.oneCreate, 0.5), quantile(c.oneCreate, 0.99)
	fol50, fol99 := quantile(c.createFollower, 0.5), quantile(c.createFollower, 0.99)
	lea50, lea99 := quantile(c.createLeader, 0.5), quantile(c.createLeader, 0.99)
	ratio := func(a, b time.Duration) float64 { return float64(a) / float64(max(b, time.Microsecond)) }
	add("create_port_mirror.one_node_p50_ms", ms(one50), "ms", "", nil)
	add("create_port_mirror.one_node_p99_ms", ms(one99), "ms", "", nil)
	add("create_port_mirror.three_nodes_leader_p50_ms", ms(lea50), "ms", "", nil)
	add("create_port_mirror.three_nodes_leader_p99_ms", ms(lea99), "ms", "", nil)
	add("create_port_mirror.three_nodes_follower_p50_ms", ms(fol50), "ms", "", nil)
	add("create_port_mirror.three_nodes_follower_p99_ms", ms(fol99), "ms", "", nil)
	add("create_port_mirror.follower_vs_one_p50", ratio(fol50, one50), "ratio", "≤ 3", met(ratio(fol50, one50) <= 3))
	add("create_port_mirror.follower_vs_one_p99", ratio(fol99, one99), "ratio", "≤ 3", met(ratio(fol99, one99) <= 3))
	add("create_port_mirror.leader_vs_one_p50", ratio(lea50, one50), "ratio", "", nil)
	add("create_port_mirror.leader_vs_one_p99", ratio(lea99, one99), "ratio", "", nil)

	oa50, oa99 := quantile(c.oneActive, 0.5), quantile(c.oneActive, 0.99)
	ta50, ta99 := quantile(c.threeActive, 0.5), quantile(c.threeActive, 0.99)
	add("status.one_node_active_p50_ms", ms(oa50), "ms", "", nil)
	add("status.one_node_active_p99_ms", ms(oa99), "ms", "", nil)
	add("status.three_nodes_active_p50_ms", ms(ta50), "ms", "", nil)
	add("status.three_nodes_active_p99_ms", ms(ta99), "ms", "", nil)
	add("status.three_vs_one_p99", ratio(ta99, oa99), "ratio", "≤ 2", met(ratio(ta99, oa99) <= 2))

	s.how = fmt.Sprintf("Three `portmirrord` processes built from this tree form one cluster on loopback (`--node-id`, "+
		"`--raft-listen`, `--peers`, `--api-advertise`, `--openflow-advertise`; each its own data directory and ports), and "+
		"in the same run, before them, one `portmirrord` alone (never both at once). Every node starts from a copy of one "+
		"store prepared beforehand (as three members that replicated it hold it): %d hosts of one cluster (one VM of one "+
		"NIC and one monitor VM each, in bulk), one flow network with an enabled port mirror, and a separate two-host "+
		"cluster without bridges for the createPortMirror calls (through the service). Then %d simulated bridges "+
		"(`simulator/fleet`, `Options.Controllers`) connect to every node; before each measurement every bridge is "+
		"programmed and, on three nodes, has the leader as MASTER and the "+
		"others SLAVE.", c.hosts, c.hosts)
	s.header = []string{"measurement", "one node", "three nodes", "ratio", "goal"}
	row := func(what string, a, b time.Duration, goal string) []string {
		return []string{what, fmt.Sprintf("%.2f ms", ms(a)), fmt.Sprintf("%.2f ms", ms(b)), fmt.Sprintf("%.2f", ratio(b, a)), goal}
	}
	ml99 := quantile(c.activeLeader, 0.99)
	mf99 := quantile(c.activeFollower, 0.99)
	s.rows = [][]string{
		row("createPortMirror (10 sessions) p50, sent to a follower", one50, fol50, "≤ 3×"),
		row("createPortMirror (10 sessions) p99, sent to a follower", one99, fol99, "≤ 3×"),
		row("createPortMirror (10 sessions) p50, sent to the leader", one50, lea50, ""),
		row("createPortMirror (10 sessions) p99, sent to the leader", one99, lea99, ""),
		row(fmt.Sprintf("session → ACTIVE on %d bridges p50, round-robin", c.hosts), oa50, ta50, ""),
		row(fmt.Sprintf("session → ACTIVE on %d bridges p99, round-robin", c.hosts), oa99, ta99, "≤ 2×"),
		row("session → ACTIVE p99, of those sent to the leader", oa99, ml99, ""),
		row("session → ACTIVE p99, of those sent to a follower", oa99, mf99, ""),
		row("addPortMirrorSession alone p50, round-robin", quantile(c.oneMut, 0.5), quantile(c.threeMut, 0.5), ""),
		row("addPortMirrorSession alone p99, round-robin", quantile(c.oneMut, 0.99), quantile(c.threeMut, 0.99), ""),
	}
	s.notes = append(s.notes,
		fmt.Sprintf("createPortMirror: %d calls on each setup, one request at a time, each with `enable: true` and 10 "+
			"BIDIRECTION sessions on a fresh flow network of the bridge-less cluster (as in part 6); on three nodes the "+
			"calls alternate between a follower (which forwards to the leader) and the leader, %d each.", c.calls, c.calls),
		fmt.Sprintf("Session → ACTIVE: one BIDIRECTION session per host added with `addPortMirrorSession` (from host h's "+
			"VM to host h+1's capture NIC, over the flow network's tunnels), one at a time; the time runs from the call to "+
			"`portMirrorSession(uuid:) { status }` answering ACTIVE, polled every millisecond through the node the mutation "+
			"went to. On three nodes the mutations go round-robin to the three nodes (a follower forwards every request, "+
			"queries included, to the leader, which alone knows the live status)."),
		fmt.Sprintf("Leader SIGKILL, %d times, with the %d bridges and %d ACTIVE sessions of the measurement above: find the "+
			"leader (GET /healthz on each node: `role`), SIGKILL it, then (a) a `createCluster` mutation is sent to one "+
			"survivor every 20 ms (each attempt waits for its own answer) until one succeeds; (b) every bridge "+
			"(`ofsim.Switch.Master`) has the same survivor as MASTER; (c) every session reads ACTIVE again; the flow_mods "+
			"are the new leader's `portmirror_flow_mods_sent_total` at (c) minus before the kill. The killed node then "+
			"restarts on its data directory, rejoins as a follower, and the next kill waits until its commit index and its "+
			"store's applied index have reached the leader's and every bridge has it as SLAVE again (flow_mods any node sent meanwhile: %s; the "+
			"leadership moved again while the killed node rejoined, without a kill, %d times).",
			len(c.failovers), c.hosts, c.hosts, fmtValue(rejoinFlowMods), moved))
	s.notes = append(s.notes, "What a commit costs on three nodes: the follower forwards the request to the leader over "+
		"HTTP; the leader appends to its Raft log (BoltDB, fsynced) and replicates it; at a majority every node applies the "+
		"entry to Badger without an fsync of its own (the Raft log is the durable record: a store that lost its tail replays "+
		"it from the log or restores the snapshot). The leader's controller runs a reconciliation pass per change; a "+
		"follower's at most one per second (`FollowerPassInterval`), which keeps its analysis warm for a takeover without "+
		"taking the shared cores from the leader. Before these two changes the same run gave createPortMirror p50 10.4× "+
		"and session → ACTIVE p99 2.1× one node.")
	s.notes = append(s.notes, fmt.Sprintf("Failover over %d kills: mutation accepted again p50 %.2f s / p99 %.2f s "+
		"(goal p99 ≤ 3 s); every bridge MASTERed by the new leader p50 %.2f s / p99 %.2f s (goal ≤ 3 s); every session ACTIVE "+
		"again p50 %.2f s / p99 %.2f s; flow_mods sent on failover: %s in all (goal 0).", len(c.failovers),
		secs(acc50), secs(acc99), secs(mas50), secs(mas99), secs(act50), secs(act99), fmtValue(flowMods)))
}
