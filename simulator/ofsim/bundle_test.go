package ofsim

import (
	"slices"
	"testing"

	"portmirror/ofwire"
)

func TestNoBundlesRefusesExperimenter(t *testing.T) {
	ctl := newCtl(t)
	sw := startSwitch(t, ctl.ln.Addr().String(), 1, 2, func(c *Config) { c.NoBundles = true })
	cc := ctl.accept()
	got, _ := runBundleCase(t, cc, bundleCase{steps: []bundleStep{open(1), addFlow(1, "table=1,priority=10,in_port=1,actions=output:2"), commit(1)}}, 100)
	want := []string{"+0 ERROR BAD_REQUEST/BAD_EXPERIMENTER", "+1 ERROR BAD_REQUEST/BAD_EXPERIMENTER", "+2 ERROR BAD_REQUEST/BAD_EXPERIMENTER", "flows:"}
	if !slices.Equal(got, want) {
		t.Fatalf("with NoBundles:\n got %q\nwant %q", got, want)
	}
	if n := sw.Bridge().FlowCount(); n != 0 {
		t.Fatalf("%d flows installed, want none", n)
	}
}

// TestBundlesArePerConnection: a bundle left open when the connection drops is gone, its flows never applied,
// and another connection cannot commit it.
func TestBundlesArePerConnection(t *testing.T) {
	ctl := newCtl(t)
	sw := startSwitch(t, ctl.ln.Addr().String(), 1, 2, nil)
	cc := ctl.accept()
	got, _ := runBundleCase(t, cc, bundleCase{steps: []bundleStep{open(1), addFlow(1, "table=1,priority=10,cookie=0x11,in_port=1,actions=output:2")}}, 100)
	if want := []string{"+0 OPEN_REPLY id=1 flags=0", "flows:"}; !slices.Equal(got, want) {
		t.Fatalf("open and add:\n got %q\nwant %q", got, want)
	}
	waitFor(t, "connected", sw.Connected)
	sw.Disconnect()
	cc2 := ctl.accept()
	got, _ = runBundleCase(t, cc2, bundleCase{steps: []bundleStep{commit(1)}}, 200)
	if want := []string{"+0 ERROR EXPERIMENTER/BUNDLE_BAD_ID", "flows:"}; !slices.Equal(got, want) {
		t.Fatalf("commit on a new connection:\n got %q\nwant %q", got, want)
	}
	// Two connections' bundles of the same id are distinct.
	if got, _ = runBundleCase(t, cc2, bundleCase{steps: []bundleStep{open(1), commit(1)}}, 300); !slices.Equal(got, []string{"+0 OPEN_REPLY id=1 flags=0", "+1 COMMIT_REPLY id=1 flags=0", "flows:"}) {
		t.Fatalf("open and commit an empty bundle: %q", got)
	}
}

// TestBundleCommitIsOneChange: a commit's changes reach the flow tables together, and an error mid-bundle leaves
// the tables as before: no flow modified, deleted or added.
func TestBundleCommitIsOneChange(t *testing.T) {
	ctl := newCtl(t)
	sw := startSwitch(t, ctl.ln.Addr().String(), 1, 2, nil)
	sw.Bridge().SetFlowLimit(1, 3)
	cc := ctl.accept()
	pre := []string{"table=1,priority=5,cookie=0x1,actions=output:1", "table=0,priority=5,cookie=0x2,in_port=1,actions=output:1"}
	steps := []bundleStep{open(1),
		addFlowOpts(1, atomicOrdered, "table=0,priority=5,in_port=1,actions=output:2", fmOpts{cmd: ofwire.FlowModifyStrict}),
		addFlowOpts(1, atomicOrdered, "table=1,cookie=0x1,actions=drop", fmOpts{cmd: ofwire.FlowDelete}),
	}
	for i := range 4 { // the 4th flow of table 1 is one too many
		steps = append(steps, addFlow(1, "table=1,priority=10,cookie=0x10,dl_type=0x0800,nw_proto=6,tcp_dst="+string(rune('1'+i))+",actions=output:2"))
	}
	steps = append(steps, commit(1))
	got, _ := runBundleCase(t, cc, bundleCase{setup: pre, steps: steps}, 1000)
	wantErr := []string{"+0 OPEN_REPLY id=1 flags=0", "+6 ERROR FLOW_MOD_FAILED/TABLE_FULL", "+7 ERROR EXPERIMENTER/BUNDLE_MSG_FAILED",
		"flows: t0 p5 0x2 [output:1]; t1 p5 0x1 [output:1]"}
	if !slices.Equal(got, wantErr) {
		t.Fatalf("failing commit:\n got %q\nwant %q", got, wantErr)
	}
	// Without the 4th add the same bundle commits, all of it.
	steps = append(steps[:6], commit(1))
	got, _ = runBundleCase(t, cc, bundleCase{setup: pre, steps: steps}, 2000)
	wantOK := []string{"+0 OPEN_REPLY id=1 flags=0", "+6 COMMIT_REPLY id=1 flags=0",
		"flows: t0 p5 0x2 [output:2]; t1 p10 0x10 [output:2]; t1 p10 0x10 [output:2]; t1 p10 0x10 [output:2]"}
	if !slices.Equal(got, wantOK) {
		t.Fatalf("commit:\n got %q\nwant %q", got, wantOK)
	}
	if n := sw.Bridge().FlowCount(); n != 4 {
		t.Fatalf("%d flows, want 4", n)
	}
}
