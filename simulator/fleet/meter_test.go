package fleet

import (
	"context"
	"testing"
	"time"

	"portmirror/flows"
	"portmirror/ofwire"
	"portmirror/simulator/dataplane"
	"portmirror/simulator/internal/testctl"
	"portmirror/simulator/ofsim"
)

// TestMeterCountsBundledFlowMods: the meter counts the flow_mods a bundle carries as flow_mods, by command, and
// counts the commits; a switch that applied them confirms they were real.
func TestMeterCountsBundledFlowMods(t *testing.T) {
	const dpid = 0x77
	const bundle, flags = 5, ofwire.BundleAtomic | ofwire.BundleOrdered
	f1 := flows.Flow{Table: 1, Priority: 10, Cookie: 0x11, Actions: []flows.Action{{Type: flows.ActOutput, Port: 1}}}
	f2 := flows.Flow{Table: 2, Priority: 10, Cookie: 0x12, Actions: []flows.Action{{Type: flows.ActOutput, Port: 2}}}
	f3 := flows.Flow{Table: 3, Priority: 10, Cookie: 0x13}
	program := func(uint64) []byte {
		var b []byte
		var err error
		must := func(out []byte, e error) []byte {
			if e != nil && err == nil {
				err = e
			}
			return out
		}
		// Two plain flow_mods, then a bundle of four and its commit.
		b = must(ofwire.AppendFlowMod(b, 10, ofwire.FlowAdd, f3))
		b = must(ofwire.AppendFlowMod(b, 11, ofwire.FlowDeleteStrict, f3))
		b = ofwire.AppendBundleControl(b, 20, bundle, ofwire.BundleOpenRequest, flags)
		b = must(ofwire.AppendBundleFlowMod(b, 21, bundle, flags, ofwire.FlowAdd, f1))
		b = must(ofwire.AppendBundleFlowMod(b, 22, bundle, flags, ofwire.FlowAdd, f2))
		b = must(ofwire.AppendBundleFlowMod(b, 23, bundle, flags, ofwire.FlowModifyStrict, f2))
		b = must(ofwire.AppendBundleFlowMod(b, 24, bundle, flags, ofwire.FlowDelete, f1))
		b = ofwire.AppendBundleControl(b, 25, bundle, ofwire.BundleCommitRequest, flags)
		if err != nil {
			t.Errorf("encoding: %v", err)
		}
		return b
	}
	ctl := testctl.Start(t, program)
	m, err := NewMeter(ctl.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })

	br := dataplane.NewBridge("br-int", dataplane.MAC{2, 0, 0, 0, 0xff, 1})
	for i := uint32(1); i <= 2; i++ {
		if err := br.AddPort(dataplane.Port{No: i, Name: "p" + string(rune('0'+i)), Up: true}); err != nil {
			t.Fatal(err)
		}
	}
	sw := ofsim.New(ofsim.Config{Controller: m.Addr(), DatapathID: dpid, Bridge: br, Logger: quiet()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = sw.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	ctl.WaitProgrammed(1, 10*time.Second)

	got := m.Of(dpid)
	want := Counts{FlowMods: 6, ByCommand: [5]int64{3, 0, 1, 1, 1}, Bundled: 4, Commits: 1, Barriers: 1}
	got.Messages, got.FlowStats = 0, 0 // the handshake's
	if got != want {
		t.Fatalf("meter counted %+v, want %+v", got, want)
	}
	// The bundle was applied: f2 modified, f1 added then deleted, f3 added then deleted.
	fl := br.Flows(dataplane.AllFlows())
	if len(fl) != 1 || fl[0].Table != 2 || fl[0].Cookie != 0x12 {
		t.Fatalf("the bridge holds %v, want only the flow of table 2", fl)
	}
}
