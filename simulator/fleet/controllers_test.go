package fleet

import (
	"context"
	"maps"
	"testing"
	"time"

	"portmirror/flows"
	"portmirror/ofwire"
	"portmirror/simulator/internal/testctl"
)

// TestSeveralControllers: with Options.Controllers every bridge connects to every controller; the one that asked
// for MASTER programs them all and is every bridge's master, the SLAVE and the EQUAL stay connected beside it.
func TestSeveralControllers(t *testing.T) {
	fl := flows.Flow{Table: 0, Priority: 7, Cookie: 0x77}
	program := func(uint64) []byte {
		b, err := ofwire.AppendFlowMod(nil, 10, ofwire.FlowAdd, fl)
		if err != nil {
			t.Error(err)
		}
		return b
	}
	master := testctl.StartAs(t, ofwire.RoleMaster, 3, program)
	slave := testctl.StartAs(t, ofwire.RoleSlave, 3, func(uint64) []byte { return nil })
	equal := testctl.Start(t, func(uint64) []byte { return nil })

	f, err := Build(Topology{}, Options{Logger: quiet(), Controllers: []string{master.Addr(), slave.Addr(), equal.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := f.Start(ctx, ""); err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := f.WaitFullyConnected(wctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*testctl.Controller{master, slave, equal} {
		c.WaitProgrammed(len(f.Hosts), 10*time.Second)
	}
	want := map[string]int{master.Addr(): len(f.Hosts)}
	deadline := time.Now().Add(10 * time.Second)
	for got := f.Masters(); !maps.Equal(got, want); got = f.Masters() {
		if time.Now().After(deadline) {
			t.Fatalf("masters %v, want %v", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, h := range f.Hosts {
		if n := h.Bridge.FlowCount(); n != 1 {
			t.Errorf("%s: %d flows, want the master's 1", h.Name, n)
		}
		if r := f.SwitchOf(h).Roles(); r[slave.Addr()] != ofwire.RoleSlave || r[equal.Addr()] != ofwire.RoleEqual {
			t.Errorf("%s: roles %v", h.Name, r)
		}
	}
	if err := (&Fleet{}).Start(ctx, ""); err == nil {
		t.Error("a fleet without any controller address started")
	}
}
