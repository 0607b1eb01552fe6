package cluster_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"portmirror/cluster"
	"portmirror/graphql"
	"portmirror/model"
	"portmirror/service"
	"portmirror/store"
)

// apiNode is a controller without OpenFlow: store, Raft node, service and the HTTP API, on loopback.
type apiNode struct {
	id, dir, raftAddr string
	ln                net.Listener
	url               string
	st                *store.Store
	node              *cluster.Node
	srv               *http.Server
	stop              func()
}

var tokens = []graphql.Token{
	{Name: "ops-admin", Secret: "admin-token-0123456789", Role: graphql.RoleAdmin},
	{Name: "ops-viewer", Secret: "viewer-token-0123456789", Role: graphql.RoleViewer},
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startAPICluster starts three members n1..n3 behind their APIs; each is stopped at the end of the test (unless
// the test stopped it).
func startAPICluster(t *testing.T) []*apiNode {
	t.Helper()
	var peers []cluster.Peer
	var lns []net.Listener
	for i := range 3 {
		raftLn := listen(t)
		addr := raftLn.Addr().String()
		raftLn.Close()
		peers = append(peers, cluster.Peer{ID: fmt.Sprintf("n%d", i+1), Addr: addr})
		lns = append(lns, listen(t))
	}
	var nodes []*apiNode
	for i, p := range peers {
		n := startAPINode(t, p.ID, t.TempDir(), p.Addr, lns[i], peers)
		t.Cleanup(func() {
			if n.stop != nil {
				n.stop()
			}
		})
		nodes = append(nodes, n)
	}
	return nodes
}

func startAPINode(t *testing.T, id, dir, raftAddr string, ln net.Listener, peers []cluster.Peer) *apiNode {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	a := &apiNode{id: id, dir: dir, raftAddr: raftAddr, ln: ln, url: "http://" + ln.Addr().String()}
	st, err := store.Open(ctx, store.Options{Dir: filepath.Join(dir, "store"), Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	node, err := cluster.Open(ctx, cluster.Options{NodeID: id, RaftListen: raftAddr, Peers: peers, Dir: filepath.Join(dir, "raft"),
		Store: st, Logger: quietLog(), APIAdvertise: a.url, OpenFlowAdvertise: "tcp:127.0.0.1:6653", ApplyTimeout: 4 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	st.SetReplicator(node)
	svc := service.New(st, service.Options{Logger: quietLog()})
	svc.SetMembership(node)
	h, err := graphql.New(graphql.Options{Backend: svc, Tokens: tokens, Cluster: node, HealthDetail: node.Health,
		Health: []graphql.HealthCheck{{Name: "cluster", Check: node.HealthCheck}}, Extra: map[string]http.Handler{"/cluster/": node}})
	if err != nil {
		t.Fatal(err)
	}
	a.st, a.node = st, node
	a.srv = &http.Server{Handler: h}
	runDone, srvDone := make(chan struct{}), make(chan struct{})
	go func() { defer close(runDone); _ = node.Run(ctx) }()
	go func() { defer close(srvDone); _ = a.srv.Serve(ln) }()
	a.stop = func() {
		_ = a.srv.Close()
		<-srvDone
		cancel()
		<-runDone
		_ = node.Close()
		_ = st.Close()
	}
	return a
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

type gqlResult struct {
	Data       map[string]any   `json:"data"`
	Errors     []map[string]any `json:"errors"`
	Extensions map[string]any   `json:"extensions"`
}

func call(t *testing.T, url, token, query string, vars map[string]any) (int, gqlResult) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, url+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	var r gqlResult
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("decode answer of %s: %v", url, err)
	}
	return resp.StatusCode, r
}

func code(r gqlResult) string {
	if len(r.Errors) == 0 {
		return ""
	}
	ext, _ := r.Errors[0]["extensions"].(map[string]any)
	c, _ := ext["code"].(string)
	return c
}

// TestAnyNodeTakesAnyRequest: three controllers behind their APIs. Mutations sent round-robin (and concurrently)
// to every node succeed; every node reads them; the audit trail names the caller's token, not the forwarding node;
// a viewer's mutation through a follower is FORBIDDEN; controllerNodes names the node asked as self and one
// leader; tunnel keys allocated under concurrent mutations through all nodes are unique; without a majority,
// queries answer marked stale and mutations are UNAVAILABLE and change nothing.
func TestAnyNodeTakesAnyRequest(t *testing.T) {
	nodes := startAPICluster(t)
	// Wait for a leader that every node can forward to.
	deadline := time.Now().Add(15 * time.Second)
	for {
		ok := true
		for _, n := range nodes {
			st, r := call(t, n.url, "admin-token-0123456789", `{ controllerNodes { id } }`, nil)
			if st != 200 || len(r.Errors) > 0 || r.Extensions["stale"] != nil {
				ok = false
			}
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the cluster did not serve every node within 15s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	admin := "admin-token-0123456789"

	// Inventory through node 1, the port mirror through node 2, sessions round-robin and concurrently.
	mustOK := func(n *apiNode, q string, vars map[string]any) gqlResult {
		t.Helper()
		st, r := call(t, n.url, admin, q, vars)
		if st != 200 || len(r.Errors) > 0 {
			t.Fatalf("%s on %s: HTTP %d %v", q, n.id, st, r.Errors)
		}
		return r
	}
	mustOK(nodes[0], `mutation { createCluster(input: {uuid: "00000000-0000-4000-8000-0000000000c1", name: "c"}) { uuid } }`, nil)
	mustOK(nodes[1], `mutation { registerHost(input: {uuid: "00000000-0000-4000-8000-0000000000a1", name: "hv1", clusterUuid: "00000000-0000-4000-8000-0000000000c1", datapathId: "00000000000000a1"}) { uuid } }`, nil)
	var nics []string
	for i := range 12 {
		nics = append(nics, fmt.Sprintf(`{uuid: "00000000-0000-4000-8000-%012d", mac: "52:54:00:00:01:%02x", portName: "p%d"}`, 100+i, i, i))
	}
	mustOK(nodes[2], `mutation { createVmInstance(input: {uuid: "00000000-0000-4000-8000-0000000000b1", name: "vm", hostUuid: "00000000-0000-4000-8000-0000000000a1", nics: [{mac: "52:54:00:00:00:01", isDefault: true}, `+strings.Join(nics, ",")+`]}) { uuid } }`, nil)
	mustOK(nodes[0], `mutation { createFlowNetwork(input: {uuid: "00000000-0000-4000-8000-0000000000f1", name: "fn", cidr: "198.18.0.0/24", clusterUuids: ["00000000-0000-4000-8000-0000000000c1"]}) { uuid } }`, nil)
	mustOK(nodes[1], `mutation { createPortMirror(input: {name: "pm", flowNetworkUuid: "00000000-0000-4000-8000-0000000000f1", enable: true}) { uuid } }`, nil)
	pmR := mustOK(nodes[2], `{ portMirrors { uuid } }`, nil)
	pm := pmR.Data["portMirrors"].([]any)[0].(map[string]any)["uuid"].(string)

	// 6 sessions (sources p0..p5, each to its own destination p6..p11: one tunnel key each), each through a
	// random node, concurrently.
	var wg sync.WaitGroup
	errs := make(chan string, 6)
	for i := range 6 {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			n := nodes[rand.IntN(3)]
			st, r := call(t, n.url, admin, `mutation($pm: ID!, $in: SessionInput!) { addPortMirrorSession(portMirrorUuid: $pm, input: $in) { tunnelKey } }`,
				map[string]any{"pm": pm, "in": map[string]any{"name": fmt.Sprint("s", i), "type": "EGRESS",
					"sourceNicUuid": fmt.Sprintf("00000000-0000-4000-8000-%012d", 100+i), "destinationNicUuid": fmt.Sprintf("00000000-0000-4000-8000-%012d", 106+i)}})
			if st != 200 || len(r.Errors) > 0 {
				errs <- fmt.Sprintf("session %d via %s: HTTP %d %v", i, n.id, st, r.Errors)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	// Every node holds them (its own copy, read directly), with the same unique tunnel keys.
	for _, n := range nodes {
		deadline := time.Now().Add(5 * time.Second)
		for {
			if store.Count[model.Session](n.st) == 6 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %s holds %d sessions, want 6", n.id, store.Count[model.Session](n.st))
			}
			time.Sleep(10 * time.Millisecond)
		}
		keys := map[uint32]bool{}
		for _, s := range store.List[model.Session](n.st) {
			if keys[s.TunnelKey] {
				t.Fatalf("node %s: tunnel key %d given twice", n.id, s.TunnelKey)
			}
			keys[s.TunnelKey] = true
		}
	}
	// The audit trail names the token, whichever node took the call.
	r := mustOK(nodes[1], `{ audits(first: 6, operation: "addPortMirrorSession") { actor success } }`, nil)
	for _, e := range r.Data["audits"].([]any) {
		if a := e.(map[string]any)["actor"]; a != "ops-admin" {
			t.Fatalf("audit actor %v, want ops-admin", a)
		}
	}
	// A viewer's mutation through any node is FORBIDDEN, audited with the viewer as actor.
	for _, n := range nodes {
		st, r := call(t, n.url, "viewer-token-0123456789", `mutation { createCluster(input: {name: "nope"}) { uuid } }`, nil)
		if st != http.StatusForbidden || code(r) != "FORBIDDEN" {
			t.Fatalf("viewer mutation via %s: HTTP %d %v", n.id, st, r.Errors)
		}
	}
	// controllerNodes: self is the node asked, one LEADER.
	for _, n := range nodes {
		r := mustOK(n, `{ controllerNodes { id role self apiAddress } }`, nil)
		leaders, self := 0, ""
		for _, e := range r.Data["controllerNodes"].([]any) {
			m := e.(map[string]any)
			if m["role"] == "LEADER" {
				leaders++
			}
			if m["self"] == true {
				self = m["id"].(string)
			}
		}
		if leaders != 1 || self != n.id {
			t.Fatalf("controllerNodes asked of %s: %d leaders, self %q: %v", n.id, leaders, self, r.Data)
		}
	}
	// A forged member request is refused.
	req, _ := http.NewRequest(http.MethodPost, nodes[0].url+"/graphql", strings.NewReader(`{"query":"{ clusters { uuid } }"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(graphql.HeaderClusterSecret, "guess")
	req.Header.Set(graphql.HeaderForwardedFor, "127.0.0.1:1")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a request with a wrong cluster secret: %v %v", resp.Status, err)
	}

	// Stop two nodes: the survivor answers queries marked stale and refuses mutations, changing nothing.
	survivor := nodes[0]
	for _, n := range nodes[1:] {
		n.stop()
		n.stop = nil
	}
	start := time.Now()
	st, rr := call(t, survivor.url, admin, `mutation { createCluster(input: {uuid: "00000000-0000-4000-8000-0000000000c9", name: "lost"}) { uuid } }`, nil)
	if st != http.StatusServiceUnavailable || code(rr) != "UNAVAILABLE" {
		t.Fatalf("mutation without a majority: HTTP %d %v", st, rr.Errors)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("the refusal took %s, want within 10s", d)
	}
	st, rr = call(t, survivor.url, admin, `{ clusters { uuid } }`, nil)
	if st != 200 || rr.Extensions["stale"] != true || len(rr.Data["clusters"].([]any)) != 1 {
		t.Fatalf("query without a majority: HTTP %d, extensions %v, data %v", st, rr.Extensions, rr.Data)
	}
	resp, err := http.Get(survivor.url + "/healthz")
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("healthz without a majority: %v %v", resp.Status, err)
	}
	resp.Body.Close()
}

// TestMembershipChanges: a fourth controller started without peers waits; addControllerNode (sent to any member)
// adds it, it catches up and publishes its API address; removeControllerNode removes it; both are audited with
// the caller; a viewer may do neither.
func TestMembershipChanges(t *testing.T) {
	nodes := startAPICluster(t)
	admin := "admin-token-0123456789"
	members := func(n *apiNode) []map[string]any {
		t.Helper()
		st, r := call(t, n.url, admin, `{ controllerNodes { id role self apiAddress raftAddress } }`, nil)
		if st != 200 || len(r.Errors) > 0 || r.Extensions["stale"] != nil {
			return nil
		}
		var out []map[string]any
		for _, e := range r.Data["controllerNodes"].([]any) {
			out = append(out, e.(map[string]any))
		}
		return out
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor("three members served by every node", func() bool {
		for _, n := range nodes {
			if len(members(n)) != 3 {
				return false
			}
		}
		return true
	})
	st, r := call(t, nodes[0].url, admin, `mutation { createCluster(input: {uuid: "00000000-0000-4000-8000-0000000000c1", name: "before-join"}) { uuid } }`, nil)
	if st != 200 || len(r.Errors) > 0 {
		t.Fatalf("createCluster: %d %v", st, r.Errors)
	}

	// A fourth controller, new, with no peers: it waits to be added.
	raftLn := listen(t)
	addr4 := raftLn.Addr().String()
	raftLn.Close()
	n4 := startAPINode(t, "n4", t.TempDir(), addr4, listen(t), nil)
	t.Cleanup(func() {
		if n4.stop != nil {
			n4.stop()
		}
	})
	nodes = append(nodes, n4)
	st, r = call(t, nodes[1].url, "viewer-token-0123456789", `mutation($a: String!) { addControllerNode(id: "n4", raftAddress: $a) { id } }`, map[string]any{"a": addr4})
	if st != http.StatusForbidden {
		t.Fatalf("a viewer's addControllerNode: HTTP %d %v", st, r.Errors)
	}
	st, r = call(t, nodes[1].url, admin, `mutation($a: String!) { addControllerNode(id: "n4", raftAddress: $a) { id raftAddress } }`, map[string]any{"a": addr4})
	if st != 200 || len(r.Errors) > 0 {
		t.Fatalf("addControllerNode: HTTP %d %v", st, r.Errors)
	}
	waitFor("the new controller to catch up", func() bool {
		_, ok := store.Get[model.Cluster](n4.st, "00000000-0000-4000-8000-0000000000c1")
		return ok
	})
	waitFor("four members, the new one with its API address, served by the new one too", func() bool {
		ms := members(n4)
		if len(ms) != 4 {
			return false
		}
		for _, m := range ms {
			if m["id"] == "n4" {
				return m["apiAddress"] == n4.url && m["self"] == true
			}
		}
		return false
	})

	// Remove it again, through another member.
	st, r = call(t, nodes[2].url, admin, `mutation { removeControllerNode(id: "n4") }`, nil)
	if st != 200 || len(r.Errors) > 0 {
		t.Fatalf("removeControllerNode: HTTP %d %v", st, r.Errors)
	}
	waitFor("three members again", func() bool { return len(members(nodes[0])) == 3 })
	st, r = call(t, nodes[0].url, admin, `mutation { removeControllerNode(id: "n9") }`, nil)
	if code(r) == "" {
		t.Fatalf("removing an unknown controller: HTTP %d, no error", st)
	}
	_, r = call(t, nodes[0].url, admin, `{ audits(first: 10, resourceType: "ControllerNode") { actor operation success resourceUuid } }`, nil)
	var got []string
	for _, e := range r.Data["audits"].([]any) {
		m := e.(map[string]any)
		got = append(got, fmt.Sprintf("%v %v %v %v", m["actor"], m["operation"], m["resourceUuid"], m["success"]))
	}
	want := []string{"ops-admin removeControllerNode n9 false", "ops-admin removeControllerNode n4 true",
		"ops-admin addControllerNode n4 true", "ops-viewer addControllerNode n4 false"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("membership audit trail:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
