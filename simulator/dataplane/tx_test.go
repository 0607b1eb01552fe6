package dataplane

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func txBridge(t testing.TB) *Bridge {
	t.Helper()
	b := NewBridge("br0", MAC{2, 0, 0, 0, 0xff, 1})
	for i := uint32(1); i <= 4; i++ {
		if err := b.AddPort(Port{No: i, Name: fmt.Sprintf("p%d", i), Up: true, MAC: MAC{2, 0, 0, 0, 1, byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func mustFlow(t testing.TB, s string) Flow {
	t.Helper()
	f, err := ParseFlow(s)
	if err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	f.Installed = time.Unix(1700000000, 0)
	return f
}

// txOp is one random change, applied either to a Tx or straight to a Bridge.
type txOp struct {
	desc string
	tx   func(*Tx) error
	br   func(*Bridge) error
}

func randomOp(t testing.TB, r *rand.Rand) txOp {
	matches := []string{"", "in_port=1,", "in_port=2,", "dl_type=0x0800,", "in_port=1,dl_type=0x0800,"}
	flow := func() Flow {
		act := fmt.Sprintf("output:%d", 1+r.IntN(4))
		if r.IntN(4) == 0 {
			act = "group:1"
		}
		s := fmt.Sprintf("table=%d,priority=%d,cookie=%#x,%sactions=%s", r.IntN(2), 5+5*r.IntN(2), 1+r.IntN(2), matches[r.IntN(len(matches))], act)
		return mustFlow(t, s)
	}
	filter := func(f Flow) FlowFilter {
		ff := AllFlows()
		if r.IntN(2) == 0 {
			ff.Table = f.Table
		}
		ff.Match, ff.Priority, ff.Strict = f.Match, f.Priority, r.IntN(2) == 0
		if r.IntN(2) == 0 {
			ff.Cookie, ff.CookieMask = f.Cookie, ^uint64(0)
		}
		return ff
	}
	switch r.IntN(6) {
	case 0, 1:
		f, overlap := flow(), r.IntN(3) == 0
		return txOp{fmt.Sprintf("add %s overlap=%v", &f, overlap),
			func(tx *Tx) error { return tx.AddFlow(f, overlap) },
			func(b *Bridge) error { return b.AddFlow(f, overlap) }}
	case 2:
		f := flow()
		ff := filter(f)
		if r.IntN(2) == 0 {
			f.Actions = []Action{Output(1 + uint32(r.IntN(4)))}
		}
		return txOp{fmt.Sprintf("modify %s strict=%v", &f, ff.Strict),
			func(tx *Tx) error { _, err := tx.ModifyFlows(ff, f); return err },
			func(b *Bridge) error { _, err := b.ModifyFlows(ff, f); return err }}
	case 3:
		f := flow()
		ff := filter(f)
		return txOp{fmt.Sprintf("delete like %s strict=%v", &f, ff.Strict),
			func(tx *Tx) error { _, err := tx.DeleteFlows(ff); return err },
			func(b *Bridge) error { _, err := b.DeleteFlows(ff); return err }}
	case 4:
		g := Group{ID: 1, Buckets: [][]Action{{Output(1 + uint32(r.IntN(4)))}}}
		cmd := GroupAdd
		if r.IntN(2) == 0 {
			cmd = GroupModify
		}
		return txOp{fmt.Sprintf("group %d %v", cmd, g.Buckets),
			func(tx *Tx) error { return tx.ModGroup(cmd, g) },
			func(b *Bridge) error { return b.ModGroup(cmd, g) }}
	default:
		g := Group{ID: 1}
		return txOp{"group delete 1",
			func(tx *Tx) error { return tx.ModGroup(GroupDelete, g) },
			func(b *Bridge) error { return b.ModGroup(GroupDelete, g) }}
	}
}

type bridgeState struct {
	Flows  []Flow
	Groups []Group
}

func stateOf(b *Bridge) bridgeState { return bridgeState{b.Flows(AllFlows()), b.Groups()} }

// TestTxAgainstDirect applies random changes inside transactions and, as the oracle, one by one to a twin
// bridge: a transaction that commits leaves what the same changes leave applied directly, and one that fails,
// wherever it fails, leaves the bridge exactly as it was (flows, their counters, groups).
func TestTxAgainstDirect(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 300 {
		a, b := txBridge(t), txBridge(t)
		// A common starting state with moving counters.
		for range 4 + r.IntN(6) {
			op := randomOp(t, r)
			errA, errB := op.br(a), op.br(b)
			if (errA == nil) != (errB == nil) {
				t.Fatalf("setup %s: %v vs %v", op.desc, errA, errB)
			}
		}
		frame, err := ParseFrame(BuildUDP(MAC{2, 0, 0, 0, 0, 2}, MAC{2, 0, 0, 0, 0, 1}, ipA, ipB, 1, 2, nil))
		if err != nil {
			t.Fatal(err)
		}
		frame.InPort = 1
		a.Process(frame)
		b.Process(frame)
		before := stateOf(a)
		if !reflect.DeepEqual(before, stateOf(b)) {
			t.Fatalf("round %d: twins differ before the transaction", round)
		}

		ops := make([]txOp, 1+r.IntN(8))
		for i := range ops {
			ops[i] = randomOp(t, r)
		}
		fail := r.IntN(2) == 0
		var applied []string
		err = a.Atomically(func(tx *Tx) error {
			for _, op := range ops {
				if err := op.tx(tx); err != nil {
					return fmt.Errorf("%s: %w", op.desc, err)
				}
				applied = append(applied, op.desc)
			}
			if fail {
				return errors.New("caller gives up")
			}
			return nil
		})
		if err != nil {
			if got := stateOf(a); !reflect.DeepEqual(got, before) {
				t.Fatalf("round %d: the transaction failed (%v) after %q but the bridge changed:\n got %v\nwant %v", round, err, applied, got, before)
			}
			continue
		}
		for _, op := range ops {
			if err := op.br(b); err != nil {
				t.Fatalf("round %d: %s failed applied directly (%v) but not in the transaction", round, op.desc, err)
			}
		}
		if got, want := stateOf(a), stateOf(b); !reflect.DeepEqual(got, want) {
			t.Fatalf("round %d: after %q\n transaction: %v\n direct:      %v", round, applied, got, want)
		}
	}
}

func TestTxRollsBackOnFailure(t *testing.T) {
	b := txBridge(t)
	b.SetFlowLimit(1, 2)
	for _, s := range []string{"table=0,priority=10,in_port=1,actions=goto_table:1", "table=1,priority=5,actions=output:2"} {
		if err := b.AddFlow(mustFlow(t, s), false); err != nil {
			t.Fatal(err)
		}
	}
	before := stateOf(b)
	var ran bool
	err := b.Atomically(func(tx *Tx) error {
		if _, err := tx.ModifyFlows(AllFlows(), mustFlow(t, "table=255,actions=output:3")); err != nil {
			return err
		}
		if _, err := tx.DeleteFlows(FlowFilter{Table: 0, OutPort: PortAny, OutGroup: GroupAny}); err != nil {
			return err
		}
		if err := tx.AddFlow(mustFlow(t, "table=1,priority=6,actions=output:4"), false); err != nil {
			return err
		}
		if n := len(tx.Flows(AllFlows())); n != 2 {
			return fmt.Errorf("the transaction sees %d flows, want 2", n)
		}
		ran = true
		return tx.AddFlow(mustFlow(t, "table=1,priority=7,actions=output:1"), false) // the third flow of table 1
	})
	var oe *OFError
	if !ran || !errors.As(err, &oe) || oe.Type != ErrTypeFlowModFailed || oe.Code != FlowModTableFull {
		t.Fatalf("Atomically = %v (ran to the end: %v), want TABLE_FULL from the last add", err, ran)
	}
	if got := stateOf(b); !reflect.DeepEqual(got, before) {
		t.Fatalf("after a failed transaction:\n got %v\nwant %v", got, before)
	}
	// A Tx kept beyond its function does nothing.
	var kept *Tx
	if err := b.Atomically(func(tx *Tx) error { kept = tx; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := kept.AddFlow(mustFlow(t, "priority=1,actions=drop"), false); !errors.Is(err, ErrTxDone) {
		t.Fatalf("AddFlow on a finished Tx = %v, want ErrTxDone", err)
	}
	if got := stateOf(b); !reflect.DeepEqual(got, before) {
		t.Fatalf("a finished Tx changed the bridge: %v", got)
	}
}

// TestTxAtomicUnderTraffic swaps between two flow sets, flow by flow inside one transaction each time, while
// another goroutine sends frames: every frame must see one set or the other, never a mix of the two.
func TestTxAtomicUnderTraffic(t *testing.T) {
	b := txBridge(t)
	sets := [2][]string{
		{"table=0,priority=10,in_port=1,actions=goto_table:1", "table=1,priority=10,actions=output:2"},
		{"table=0,priority=10,in_port=1,actions=output:3,goto_table:1", "table=1,priority=10,actions=output:4"},
	}
	install := func(tx *Tx, set int) error {
		if _, err := tx.DeleteFlows(AllFlows()); err != nil {
			return err
		}
		// Table 1 first: in between, the old table 0 meets the new table 1.
		for _, s := range slices.Backward(sets[set]) {
			if err := tx.AddFlow(mustFlow(t, s), false); err != nil {
				return err
			}
		}
		return nil
	}
	if err := b.Atomically(func(tx *Tx) error { return install(tx, 0) }); err != nil {
		t.Fatal(err)
	}
	fr, err := ParseFrame(BuildUDP(MAC{2, 0, 0, 0, 0, 2}, MAC{2, 0, 0, 0, 0, 1}, ipA, ipB, 1, 2, nil))
	if err != nil {
		t.Fatal(err)
	}
	fr.InPort = 1
	outputs := func(r Result) string {
		var ports []uint32
		for _, e := range r.Emits {
			ports = append(ports, e.Port)
		}
		return fmt.Sprint(ports)
	}
	results := [2]string{"[2]", "[3 4]"}

	var stop atomic.Bool
	var seen [2]atomic.Int64
	var wg sync.WaitGroup
	var bad []string // written by the goroutine, read after wg.Wait
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			switch got := outputs(b.Process(fr)); got {
			case results[0]:
				seen[0].Add(1)
			case results[1]:
				seen[1].Add(1)
			default:
				if len(bad) < 5 {
					bad = append(bad, got)
				}
			}
		}
	}()
	// Swap at least 1000 times, and until the traffic has met both sets a good many times.
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; i < 1000 || seen[0].Load() < 100 || seen[1].Load() < 100; i++ {
		if time.Now().After(deadline) {
			break
		}
		if err := b.Atomically(func(tx *Tx) error { return install(tx, (i+1)%2) }); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if len(bad) > 0 {
		t.Fatalf("frames met a mix of the two flow sets: %q (%d and %d frames met one set or the other)", bad, seen[0].Load(), seen[1].Load())
	}
	if seen[0].Load() == 0 || seen[1].Load() == 0 {
		t.Fatalf("the traffic never met both flow sets (%d, %d): the test proves nothing", seen[0].Load(), seen[1].Load())
	}
}
