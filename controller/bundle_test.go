package controller

import (
	"context"
	"fmt"
	"reflect"
	"strconv"
	"testing"
	"time"

	"portmirror/flows"
	"portmirror/internal/ovstest"
	"portmirror/ofwire"
	"portmirror/simulator/dataplane"
	"portmirror/simulator/fleet"
	"portmirror/simulator/ofsim"
)

// bundleRig is one bridge, real OVS or the simulator, connected to a test server through a meter that counts
// what the controller sends it on the wire.
type bundleRig struct {
	srv   *testServer
	sw    *Switch
	meter *fleet.Meter
	dpid  uint64
	// limit caps how many flows table holds (OVSDB Flow_Table flow_limit, overflow_policy=refuse).
	limit func(table uint8, n int)
}

func (r *bundleRig) wire() fleet.Counts { return r.meter.Of(r.dpid) }

// bundleTargets are the two bridges the bundle tests run on.
var bundleTargets = []struct {
	name  string
	start func(t *testing.T, dpid uint64) *bundleRig
}{
	{"ovs", func(t *testing.T, dpid uint64) *bundleRig {
		s := startServer(t, Config{})
		m := newTestMeter(t, s)
		o := ovstest.Must(t, ovstest.Options{})
		addBridgeAt(o, "br0", fmt.Sprintf("%016x", dpid), m.Addr())
		return connectRig(t, s, m, dpid, func(table uint8, n int) {
			o.Vsctl("--", "--id=@ft", "create", "Flow_Table", "flow_limit="+strconv.Itoa(n), "overflow_policy=refuse",
				"--", "set", "Bridge", "br0", fmt.Sprintf("flow_tables:%d=@ft", table))
		})
	}},
	{"sim", func(t *testing.T, dpid uint64) *bundleRig {
		s := startServer(t, Config{})
		m := newTestMeter(t, s)
		br := dataplane.NewBridge("br0", dataplane.MAC{2, 0, 0, 0, 0xff, 1})
		sim := ofsim.New(ofsim.Config{Controller: m.Addr(), DatapathID: dpid, Bridge: br})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = sim.Run(ctx)
		}()
		t.Cleanup(func() {
			cancel()
			<-done
		})
		return connectRig(t, s, m, dpid, br.SetFlowLimit)
	}},
}

func newTestMeter(t *testing.T, s *testServer) *fleet.Meter {
	t.Helper()
	m, err := fleet.NewMeter(s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// addBridgeAt is addBridge with the controller given as host:port.
func addBridgeAt(o *ovstest.T, name, dpid, addr string) {
	o.Vsctl("add-br", name, "--", "set", "bridge", name, "datapath_type=dummy", "protocols=OpenFlow13",
		"fail_mode=secure", "other-config:datapath-id="+dpid, "--", "set-controller", name, "tcp:"+addr)
}

func connectRig(t *testing.T, s *testServer, m *fleet.Meter, dpid uint64, limit func(uint8, int)) *bundleRig {
	t.Helper()
	r := &bundleRig{srv: s, meter: m, dpid: dpid, limit: limit}
	waitFor(t, "the bridge to connect", 15*time.Second, func() bool { r.sw = s.Switch(fmt.Sprintf("%016x", dpid)); return r.sw != nil })
	if !r.sw.Atomic() {
		t.Fatal("a fresh connection does not use bundles")
	}
	return r
}

// bundleStats are the server's counters that tell how flow changes went.
type bundleStats struct {
	Committed, Refused, Retries, Fallbacks, Plain, BarriersSent, BarriersSkipped uint64
}

func statsOf(s *Server) bundleStats {
	st := s.Stats()
	return bundleStats{st.BundlesCommitted.Load(), st.BundlesRefused.Load(), st.BundleRetries.Load(), st.BundleFallbacks.Load(),
		st.PlainRuns.Load(), st.BarriersSent.Load(), st.BarriersSkipped.Load()}
}

func (a bundleStats) sub(b bundleStats) bundleStats {
	return bundleStats{a.Committed - b.Committed, a.Refused - b.Refused, a.Retries - b.Retries, a.Fallbacks - b.Fallbacks,
		a.Plain - b.Plain, a.BarriersSent - b.BarriersSent, a.BarriersSkipped - b.BarriersSkipped}
}

func normalFlow(table uint8, prio uint16, port uint32) flows.Flow {
	return flows.Flow{Table: table, Priority: prio, Cookie: flows.CookieOurs | uint64(table)<<16 | uint64(port),
		Match: flows.Match{InPort: port}, Actions: []flows.Action{{Type: flows.ActNormal}}}
}

// checkFlows reads the switch's flows back and compares them with want.
func checkFlows(t *testing.T, sw *Switch, want []flows.Flow) {
	t.Helper()
	got, err := sw.DumpFlows(context.Background(), flows.CookieOurs, flows.CookieMask)
	if err != nil {
		t.Fatal(err)
	}
	want = append([]flows.Flow(nil), want...)
	sortFlows(got)
	sortFlows(want)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("the switch holds\n%v\nwant\n%v", got, want)
	}
}

// TestBundleBarrierOnlyUntilProven: the first bundle of a connection is followed by a barrier (the proof that the
// switch answers commits in order); once it is committed, later bundles go without one, on the wire, and are still
// confirmed: their flows are installed when Apply returns and a flow_mod refused when added is still reported.
func TestBundleBarrierOnlyUntilProven(t *testing.T) {
	for i, tg := range bundleTargets {
		t.Run(tg.name, func(t *testing.T) {
			ctx := context.Background()
			r := tg.start(t, 0xb0+uint64(i))
			first := []flows.Flow{normalFlow(0, 10, 1), normalFlow(1, 10, 2)}
			w0, s0 := r.wire(), statsOf(r.srv.Server)
			if refused, err := r.sw.Apply(ctx, first, nil, nil); err != nil || len(refused) > 0 {
				t.Fatalf("first bundle: %v %v", refused, err)
			}
			w1, s1 := r.wire(), statsOf(r.srv.Server)
			if d, st := w1.Sub(w0), s1.sub(s0); d.Commits != 1 || d.Barriers != 1 || st != (bundleStats{Committed: 1, BarriersSent: 1}) {
				t.Errorf("first bundle: on the wire %d commits and %d barriers, want 1 and 1; stats %+v", d.Commits, d.Barriers, st)
			}
			// The second change: a modify, a delete, adds, and an add the switch refuses when it is added.
			mod := first[0]
			mod.Actions = []flows.Action{{Type: flows.ActOutput, Port: 7}}
			badTable := normalFlow(0, 12, 3)
			badTable.Table = 255
			adds := []flows.Flow{normalFlow(2, 10, 4), badTable, normalFlow(0, 11, 5)}
			refused, err := r.sw.Apply(ctx, adds, []flows.Flow{mod}, []flows.Flow{first[1]})
			if err != nil {
				t.Fatal(err)
			}
			if len(refused) != 1 || !reflect.DeepEqual(refused[0].Flow, badTable) || ofwire.ErrorCodeName(refused[0].Err.Type, refused[0].Err.Code) != "BAD_TABLE_ID" {
				t.Errorf("refused %v, want only the flow for table 255, BAD_TABLE_ID", refused)
			}
			w2, s2 := r.wire(), statsOf(r.srv.Server)
			if d, st := w2.Sub(w1), s2.sub(s1); d.Commits != 1 || d.Barriers != 0 || d.Bundled != 5 || st != (bundleStats{Committed: 1, BarriersSkipped: 1}) {
				t.Errorf("second bundle: on the wire %d commits, %d barriers, %d flow_mods in bundles, want 1, 0, 5; stats %+v", d.Commits, d.Barriers, d.Bundled, st)
			}
			checkFlows(t, r.sw, []flows.Flow{mod, adds[0], adds[2]})
			t.Logf("%s: first bundle %d messages, second %d messages (no barrier)", tg.name, w1.Sub(w0).Messages, w2.Sub(w1).Messages)
		})
	}
}

// TestBundleRefusedAtCommitRetried: a commit the switch refuses because of one flow_mod (OVS sends that flow_mod's
// error, then BUNDLE_MSG_FAILED; nothing is applied) is sent again without it as a new atomic bundle: the other
// flow_mods end up applied, in one commit, and the bad one is reported. A switch that keeps refusing gets, after
// maxBundleRetries new bundles, the rest plain, one by one. Each case runs on a fresh connection (the bundles
// carry a barrier) and on a proven one (they do not).
func TestBundleRefusedAtCommitRetried(t *testing.T) {
	metered := normalFlow(0, 30, 9)
	metered.Meter = 5 // no such meter: OVS checks it only at commit
	t1 := func(port uint32) flows.Flow { return normalFlow(1, uint16(10+port), port) }
	baseline := normalFlow(2, 1, 99) // installed first on a proven connection
	cases := []struct {
		name    string
		limit   int // flow_limit of table 1 (0: none)
		adds    []flows.Flow
		refused map[int]string // by index in adds: TYPE/CODE
		applied []int          // indexes in adds
		// retries: bundles sent again; fallback: the last refused bundle went plain
		retries  uint64
		fallback bool
	}{
		{name: "table full", limit: 2, adds: []flows.Flow{t1(1), t1(2), t1(3), normalFlow(0, 10, 4)},
			refused: map[int]string{2: "FLOW_MOD_FAILED/TABLE_FULL"}, applied: []int{0, 1, 3}, retries: 1},
		{name: "meter that does not exist", adds: []flows.Flow{normalFlow(0, 10, 1), metered, normalFlow(3, 10, 2)},
			refused: map[int]string{1: "METER_MOD_FAILED/CODE_2"}, applied: []int{0, 2}, retries: 1},
		{name: "two at commit and one when added", limit: 2, adds: []flows.Flow{t1(1), {Table: 255, Priority: 1, Cookie: flows.CookieOurs | 77},
			t1(2), t1(3), metered, normalFlow(0, 10, 4)},
			refused: map[int]string{1: "FLOW_MOD_FAILED/BAD_TABLE_ID", 3: "FLOW_MOD_FAILED/TABLE_FULL", 4: "METER_MOD_FAILED/CODE_2"},
			applied: []int{0, 2, 5}, retries: 2},
		{name: "too many: the rest goes plain", limit: 1, adds: []flows.Flow{t1(1), t1(2), t1(3), t1(4), t1(5), t1(6), t1(7), normalFlow(0, 10, 4)},
			refused: map[int]string{1: "FLOW_MOD_FAILED/TABLE_FULL", 2: "FLOW_MOD_FAILED/TABLE_FULL", 3: "FLOW_MOD_FAILED/TABLE_FULL",
				4: "FLOW_MOD_FAILED/TABLE_FULL", 5: "FLOW_MOD_FAILED/TABLE_FULL", 6: "FLOW_MOD_FAILED/TABLE_FULL"},
			applied: []int{0, 7}, retries: maxBundleRetries, fallback: true},
	}
	for i, tg := range bundleTargets {
		for j, c := range cases {
			for _, proven := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/%s/proven=%v", tg.name, c.name, proven), func(t *testing.T) {
					ctx := context.Background()
					r := tg.start(t, 0xc000+uint64(i)<<8+uint64(j)<<1+map[bool]uint64{false: 0, true: 1}[proven])
					var want []flows.Flow
					if proven {
						if refused, err := r.sw.Apply(ctx, []flows.Flow{baseline}, nil, nil); err != nil || len(refused) > 0 {
							t.Fatalf("baseline: %v %v", refused, err)
						}
						want = append(want, baseline)
					}
					if c.limit > 0 {
						r.limit(1, c.limit)
					}
					w0, s0 := r.wire(), statsOf(r.srv.Server)
					refused, err := r.sw.Apply(ctx, c.adds, nil, nil)
					if err != nil {
						t.Fatal(err)
					}
					got := map[int]string{}
					for _, fe := range refused {
						k := -1
						for x, f := range c.adds {
							if reflect.DeepEqual(f, fe.Flow) {
								k = x
							}
						}
						if _, dup := got[k]; dup || k < 0 {
							t.Errorf("refused %v: not one of the flows, or twice", fe)
						}
						got[k] = ofwire.ErrorTypeName(fe.Err.Type) + "/" + ofwire.ErrorCodeName(fe.Err.Type, fe.Err.Code)
					}
					if !reflect.DeepEqual(got, c.refused) {
						t.Errorf("refused %v, want %v", got, c.refused)
					}
					for _, x := range c.applied {
						want = append(want, c.adds[x])
					}
					checkFlows(t, r.sw, want)
					// How it went: each refused commit is followed by a new bundle (a retry) or, the last time, by
					// plain flow_mods; a fresh connection's bundles each carry a barrier, a proven one's none.
					attempts := c.retries + 1
					wantSt := bundleStats{Refused: attempts, Retries: c.retries}
					if c.fallback {
						wantSt.Fallbacks, wantSt.Plain, wantSt.BarriersSent = 1, 1, 1
					} else {
						wantSt.Refused--
						wantSt.Committed = 1
					}
					if proven {
						if !c.fallback {
							wantSt.BarriersSkipped = 1
						}
					} else {
						wantSt.BarriersSent += attempts
					}
					s1, d := statsOf(r.srv.Server), r.wire().Sub(w0)
					if st := s1.sub(s0); st != wantSt {
						t.Errorf("stats %+v, want %+v", st, wantSt)
					}
					if d.Commits != int64(attempts) || d.Barriers != int64(wantSt.BarriersSent) {
						t.Errorf("on the wire %d commits and %d barriers, want %d and %d", d.Commits, d.Barriers, attempts, wantSt.BarriersSent)
					}
					if !r.sw.Atomic() {
						t.Error("a refused commit made the controller give up bundles")
					}
				})
			}
		}
	}
}
