package ovsdbhost

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"portmirror/internal/ovstest"
	"portmirror/model"
	"portmirror/topology"
)

// controllerWatch follows one bridge's controller targets through an OVSDB monitor: ovsdb-server sends one update
// per committed transaction that changed the bridge's controller column, so every state the bridge went through is
// recorded, however briefly it lasted.
type controllerWatch struct {
	mu      sync.Mutex
	states  [][]string // the bridge's controller targets, sorted, one entry per committed change
	readErr error
}

func watchControllers(t *testing.T, addr, bridge string) *controllerWatch {
	t.Helper()
	network, address, _, err := ParseAddress(addr)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial(network, address)
	if err != nil {
		t.Fatal(err)
	}
	w := &controllerWatch{}
	done := make(chan struct{})
	t.Cleanup(func() { conn.Close(); <-done })
	enc := json.NewEncoder(conn)
	req := map[string]any{"id": "watch", "method": "monitor", "params": []any{database, nil, map[string]any{
		"Bridge":     map[string]any{"columns": []string{"name", "controller"}},
		"Controller": map[string]any{"columns": []string{"target"}},
	}}}
	if err := enc.Encode(req); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(done)
		type rowUpdate struct {
			New row `json:"new"`
		}
		type tableUpdates map[string]map[string]rowUpdate
		bridges := map[string]row{}
		targets := map[string]string{} // controller uuid -> target; never forgotten (uuids are not reused)
		dec := json.NewDecoder(conn)
		for {
			var msg struct {
				ID     any               `json:"id"`
				Method string            `json:"method"`
				Params []json.RawMessage `json:"params"`
				Result json.RawMessage   `json:"result"`
				Error  any               `json:"error"`
			}
			if err := dec.Decode(&msg); err != nil {
				if !errors.Is(err, net.ErrClosed) {
					w.mu.Lock()
					w.readErr = err
					w.mu.Unlock()
				}
				return
			}
			var upd tableUpdates
			switch {
			case msg.Method == "echo":
				_ = enc.Encode(map[string]any{"id": msg.ID, "result": msg.Params, "error": nil})
				continue
			case msg.Method == "update" && len(msg.Params) == 2:
				_ = json.Unmarshal(msg.Params[1], &upd)
			case msg.ID == "watch":
				if msg.Error != nil {
					w.mu.Lock()
					w.readErr = fmt.Errorf("monitor refused: %v", msg.Error)
					w.mu.Unlock()
					return
				}
				_ = json.Unmarshal(msg.Result, &upd)
			default:
				continue
			}
			for u, ru := range upd["Controller"] {
				if ru.New != nil {
					targets[u] = ru.New.str("target")
				}
			}
			touched := false
			for u, ru := range upd["Bridge"] {
				if ru.New == nil {
					delete(bridges, u)
				} else {
					bridges[u] = ru.New
				}
				touched = true
			}
			if !touched {
				continue
			}
			for _, br := range bridges {
				if br.str("name") != bridge {
					continue
				}
				var ts []string
				for _, cu := range br.uuidSet("controller") {
					ts = append(ts, targets[cu])
				}
				slices.Sort(ts)
				w.mu.Lock()
				if len(w.states) == 0 || !slices.Equal(ts, w.states[len(w.states)-1]) {
					w.states = append(w.states, ts)
				}
				w.mu.Unlock()
			}
		}
	}()
	return w
}

func (w *controllerWatch) history() ([][]string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.states), w.readErr
}

// waitHistory waits until the watch has recorded exactly want (no more states are expected).
func (w *controllerWatch) waitHistory(t *testing.T, want [][]string) {
	t.Helper()
	eventually(t, 5*time.Second, func() (bool, string) {
		got, err := w.history()
		if err != nil {
			t.Fatalf("controller watch: %v", err)
		}
		return slices.EqualFunc(got, want, slices.Equal), fmt.Sprintf("controller states %q, want %q (an empty state is the bridge without controllers: OVS flushes its flows)", got, want)
	})
}

// settle returns once ovs-vswitchd has applied every database change made so far (ovs-vsctl without --no-wait
// waits for the reconfiguration its own change causes, which includes all earlier ones).
func (e *ovsEnv) settle(n int) {
	e.t.Helper()
	e.Vsctl("set", "Open_vSwitch", ".", "external_ids:portmirror-test-settle="+strconv.Itoa(n))
}

const canary = "cookie=0x5eed,priority=77,in_port=1,dl_type=0x88b5,actions=drop"

// canaryPresent reports whether the flow added before the changes is still in the bridge's table.
func (e *ovsEnv) canaryPresent() bool {
	e.t.Helper()
	return strings.Contains(e.Ofctl("dump-flows", e.Mgmt("br-int")), "cookie=0x5eed")
}

// TestControllerTargetsNeverThroughZero: the bridge's controllers change A -> {A,B,C} -> {B} -> {C} under a
// running ovs-vswitchd. Every committed state of the bridge's controller column has at least one controller,
// additions come before removals (replacing B by C goes through {B,C}), and a flow installed before the changes
// survives all of them: OVS deletes every flow when a bridge goes through zero controllers, as the last step shows.
func TestControllerTargetsNeverThroughZero(t *testing.T) {
	const a, b, c = "tcp:127.0.0.1:1", "tcp:127.0.0.1:2", "tcp:127.0.0.1:3"
	e := &ovsEnv{T: ovstest.Must(t, ovstest.Options{}), t: t}
	e.Vsctl("add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=dummy")
	m := startManager(t, HostConfig{Address: e.addr(), ControllerTargets: []string{a}})
	waitApplied(t, m, 0)
	e.settle(0)
	e.Ofctl("add-flow", e.Mgmt("br-int"), canary)
	if !e.canaryPresent() {
		t.Fatal("the canary flow was not installed")
	}
	w := watchControllers(t, e.addr(), "br-int")
	w.waitHistory(t, [][]string{{a}})

	for i, step := range [][]string{{a, b, c}, {b}, {c}} {
		gen, err := m.SetControllerTargets(step)
		if err != nil {
			t.Fatal(err)
		}
		waitApplied(t, m, gen)
		e.settle(i + 1)
		ctls := strings.Fields(e.vsctl("get-controller", "br-int"))
		slices.Sort(ctls)
		if !slices.Equal(ctls, step) {
			t.Errorf("step %d: controllers %q, want %q", i+1, ctls, step)
		}
		if !e.canaryPresent() {
			t.Fatalf("step %d (to %q): the bridge's flows were flushed", i+1, step)
		}
	}
	w.waitHistory(t, [][]string{{a}, {a, b, c}, {b}, {b, c}, {c}})
	if n := strings.Count(e.vsctl("list", "controller"), "_uuid"); n != 1 {
		t.Errorf("%d Controller rows, want 1", n)
	}

	// The check above can fail: taking the bridge through zero controllers (as a delete-then-add would) flushes.
	e.Vsctl("del-controller", "br-int")
	e.Vsctl("set-controller", "br-int", c)
	if e.canaryPresent() {
		t.Error("the canary flow survived a pass through zero controllers: the flow check proves nothing")
	}
}

// TestCreatedBridgeGetsAllTargetsAtOnce: a bridge the manager creates lists every target from its first state.
func TestCreatedBridgeGetsAllTargetsAtOnce(t *testing.T) {
	const a, b = "tcp:127.0.0.1:1", "tcp:127.0.0.1:2"
	e := startOVSDB(t, false)
	w := watchControllers(t, e.addr(), "br-int")
	m := startManager(t, HostConfig{Address: e.addr(), DatapathType: "dummy", ControllerTargets: []string{b, a, b}})
	waitApplied(t, m, 0)
	w.waitHistory(t, [][]string{{a, b}})
}

// TestReadOnlyManagerReadsAndWritesNothing: a read-only manager (a cluster follower) publishes the bridge's
// interfaces and datapath id through Feed but changes nothing: a standalone bridge stays standalone, without our
// controller or tunnel port. Made writable, it applies everything at once; made read-only again, it stops.
func TestReadOnlyManagerReadsAndWritesNothing(t *testing.T) {
	const a, b = "tcp:127.0.0.1:1", "tcp:127.0.0.1:2"
	e := startOVSDB(t, false)
	e.vsctl("add-br", "br-int", "--", "set", "bridge", "br-int", "fail_mode=standalone", "datapath_id=0000000000000042")
	e.vsctl("add-port", "br-int", "vnet0", "--", "set", "interface", "vnet0", "external_ids:iface-id=nic-1")
	m := newManager(t, HostConfig{HostUUID: "host-1", Address: e.addr(), ControllerTargets: []string{a}})
	m.SetWritable(false)
	gen, err := m.SetDesired([]TunnelSpec{{FlowNetworkUUID: fn1, LocalIP: "198.18.0.1"}}, []string{"vnet0"})
	if err != nil {
		t.Fatal(err)
	}
	v := topology.NewView()
	feedDone := make(chan struct{})
	t.Cleanup(func() { <-feedDone })
	go func() { m.Feed(t.Context(), v); close(feedDone) }()
	runManager(t, m)

	eventually(t, 5*time.Second, func() (bool, string) {
		ifs, _ := v.HostInterfaces("host-1")
		i, ok := ifaceByName(ifs, "vnet0")
		return ok && i.IfaceID == "nic-1" && v.HostDatapathID("host-1") == "0000000000000042",
			fmt.Sprintf("view: datapath %q interfaces %+v", v.HostDatapathID("host-1"), ifs)
	})
	// A pass that read after this point has made whatever decision it makes about writing.
	since := time.Now()
	m.Refresh()
	eventually(t, 5*time.Second, func() (bool, string) {
		s := m.Status()
		return s.LastRead.After(since), fmt.Sprintf("status %+v", s)
	})
	s := m.Status()
	if !s.ReadOnly || !s.Connected || s.Pending == 0 || s.Applied == gen || !s.LastSync.IsZero() || s.LastError != "" {
		t.Errorf("read-only status %+v: want ReadOnly, Connected, changes pending, nothing applied", s)
	}
	unchanged := func(when string) {
		t.Helper()
		if got := e.get("bridge", "br-int", "fail_mode"); got != "standalone" {
			t.Errorf("%s: fail_mode = %q, want standalone", when, got)
		}
		if got := e.vsctl("get-controller", "br-int"); got != "" {
			t.Errorf("%s: controllers %q, want none", when, got)
		}
		if got := e.vsctl("list-ports", "br-int"); got != "vnet0" {
			t.Errorf("%s: ports %q, want vnet0 only", when, got)
		}
		if got := e.get("port", "vnet0", "tag"); got != "[]" {
			t.Errorf("%s: vnet0 tag %q, want none", when, got)
		}
	}
	unchanged("read-only")

	m.SetWritable(true)
	waitApplied(t, m, gen)
	if got := e.get("bridge", "br-int", "fail_mode"); got != "secure" {
		t.Errorf("writable: fail_mode = %q", got)
	}
	if got := e.vsctl("get-controller", "br-int"); got != a {
		t.Errorf("writable: controllers %q, want %s", got, a)
	}
	if got := e.vsctl("list-ports", "br-int"); !strings.Contains(got, model.TunnelPortName(fn1)) {
		t.Errorf("writable: ports %q lack the tunnel port", got)
	}
	if s := m.Status(); s.ReadOnly || s.Pending != 0 {
		t.Errorf("writable status %+v", s)
	}

	// Read-only again (deposed): a new target is not written.
	m.SetWritable(false)
	since = time.Now()
	gen, err = m.SetControllerTargets([]string{b})
	if err != nil {
		t.Fatal(err)
	}
	// A pass saw the new target and did not add it.
	eventually(t, 5*time.Second, func() (bool, string) {
		s := m.Status()
		return s.LastRead.After(since) && s.Pending > 0, fmt.Sprintf("status %+v", s)
	})
	if got := e.vsctl("get-controller", "br-int"); got != a {
		t.Errorf("read-only again: controllers %q, want %s kept", got, a)
	}
	if s := m.Status(); !s.ReadOnly || s.Applied >= gen {
		t.Errorf("read-only again: status %+v", s)
	}
}
