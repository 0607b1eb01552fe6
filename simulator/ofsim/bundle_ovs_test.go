package ofsim

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"testing"

	"portmirror/ofwire"
	"portmirror/simulator/dataplane"
)

const atomicOrdered = ofwire.BundleAtomic | ofwire.BundleOrdered

// bundleAddRaw wraps any inner message in a bundle add.
func bundleAddRaw(xid, id uint32, flags uint16, inner []byte) []byte {
	b := appendHeader(nil, ofwire.TypeExperimenter, xid)
	b = binary.BigEndian.AppendUint32(b, ofwire.ONFExperimenter)
	b = binary.BigEndian.AppendUint32(b, ofwire.ONFBundleAdd)
	b = binary.BigEndian.AppendUint32(b, id)
	b = append(b, 0, 0)
	b = binary.BigEndian.AppendUint16(b, flags)
	b = append(b, inner...)
	for len(b)%8 != 0 {
		b = append(b, 0)
	}
	return finish(b, 0)
}

func experimenterMsg(xid, experimenter, expType uint32, data []byte) []byte {
	b := appendHeader(nil, ofwire.TypeExperimenter, xid)
	b = binary.BigEndian.AppendUint32(b, experimenter)
	b = binary.BigEndian.AppendUint32(b, expType)
	return finish(append(b, data...), 0)
}

func ctrlMsg(xid, id uint32, typ uint16) []byte {
	return ofwire.AppendBundleControl(nil, xid, id, typ, atomicOrdered)
}

// bundleStep is one message of a bundle case; its xid is the case's base plus its index.
type bundleStep func(t testing.TB, xid uint32) []byte

func open(id uint32) bundleStep {
	return func(_ testing.TB, x uint32) []byte { return ctrlMsg(x, id, ofwire.BundleOpenRequest) }
}
func commit(id uint32) bundleStep {
	return func(_ testing.TB, x uint32) []byte { return ctrlMsg(x, id, ofwire.BundleCommitRequest) }
}
func ctrl(id uint32, typ, flags uint16) bundleStep {
	return func(_ testing.TB, x uint32) []byte { return ofwire.AppendBundleControl(nil, x, id, typ, flags) }
}
func addFlow(id uint32, flow string) bundleStep {
	return addFlowOpts(id, atomicOrdered, flow, fmOpts{})
}
func addFlowOpts(id uint32, flags uint16, flow string, o fmOpts) bundleStep {
	return func(t testing.TB, x uint32) []byte { return bundleAddRaw(x, id, flags, flowModMsg(t, x, flow, o)) }
}
func addRaw(id uint32, inner func(xid uint32) []byte) bundleStep {
	return func(_ testing.TB, x uint32) []byte { return bundleAddRaw(x, id, atomicOrdered, inner(x)) }
}
func plain(flow string, o fmOpts) bundleStep {
	return func(t testing.TB, x uint32) []byte { return flowModMsg(t, x, flow, o) }
}

type bundleCase struct {
	name  string
	setup []string // flows added (plain) before the case, after every flow and group is deleted
	steps []bundleStep
	want  []string // the replies before the barrier's (xids relative to the case's base), then the flows
}

func bundleCases() []bundleCase {
	f1 := "table=1,priority=10,cookie=0x11,in_port=1,actions=output:2"
	f2 := "table=2,priority=10,cookie=0x12,in_port=2,actions=output:1"
	pre := "table=1,priority=5,cookie=0x1,actions=output:1"
	return []bundleCase{
		{name: "open, add, commit", steps: []bundleStep{open(1), addFlow(1, f1), addFlow(1, f2), commit(1)},
			want: []string{"+0 OPEN_REPLY id=1 flags=0", "+3 COMMIT_REPLY id=1 flags=0",
				"flows: t1 p10 0x11 [output:2]; t2 p10 0x12 [output:1]"}},
		{name: "refused at add time, the rest committed", steps: []bundleStep{open(2), addFlow(2, f1),
			addRaw(2, func(x uint32) []byte { return ofwire.AppendEcho(nil, ofwire.TypeEchoRequest, x, nil) }),
			addRaw(2, func(x uint32) []byte {
				return rawFlowMod(x, 1, ofwire.FlowAdd, 10, rawMatch(), apply(actOutput(ofwire.PortAny)))
			}),
			addRaw(2, func(x uint32) []byte { return rawFlowMod(x, 255, ofwire.FlowAdd, 10, rawMatch(), apply(actOutput(2))) }),
			addRaw(2, func(x uint32) []byte { return rawFlowMod(x+1, 1, ofwire.FlowAdd, 11, rawMatch(), apply(actOutput(2))) }),
			addRaw(2, func(x uint32) []byte {
				m := rawFlowMod(x, 1, ofwire.FlowAdd, 12, rawMatch(), apply(actOutput(2)))
				binary.BigEndian.PutUint16(m[2:], uint16(len(m)+64))
				return m
			}),
			addFlow(2, f2), commit(2)},
			want: []string{"+0 OPEN_REPLY id=2 flags=0", "+2 ERROR EXPERIMENTER/BUNDLE_MSG_UNSUP", "+3 ERROR BAD_ACTION/BAD_OUT_PORT",
				"+4 ERROR FLOW_MOD_FAILED/BAD_TABLE_ID", "+5 ERROR EXPERIMENTER/BUNDLE_MSG_BAD_XID", "+6 ERROR EXPERIMENTER/BUNDLE_MSG_BAD_LEN",
				"+8 COMMIT_REPLY id=2 flags=0", "flows: t1 p10 0x11 [output:2]; t2 p10 0x12 [output:1]"}},
		{name: "table full at commit: nothing applied", setup: []string{pre},
			steps: []bundleStep{open(3), addFlow(3, f2), addFlow(3, "table=1,priority=5,cookie=0x1,actions=output:3"),
				addFlow(3, f1), addFlow(3, "table=1,priority=20,cookie=0x13,actions=output:2"), commit(3)},
			want: []string{"+0 OPEN_REPLY id=3 flags=0", "+4 ERROR FLOW_MOD_FAILED/TABLE_FULL", "+5 ERROR EXPERIMENTER/BUNDLE_MSG_FAILED",
				"flows: t1 p5 0x1 [output:1]"}},
		{name: "overlap at commit: nothing applied", setup: []string{"table=2,priority=10,cookie=0x2,actions=output:1"},
			steps: []bundleStep{open(4), addFlow(4, f1),
				addFlowOpts(4, atomicOrdered, "table=2,priority=10,cookie=0x14,in_port=1,actions=output:2", fmOpts{flags: flagCheckOverlap}), commit(4)},
			want: []string{"+0 OPEN_REPLY id=4 flags=0", "+2 ERROR FLOW_MOD_FAILED/OVERLAP", "+3 ERROR EXPERIMENTER/BUNDLE_MSG_FAILED",
				"flows: t2 p10 0x2 [output:1]"}},
		{name: "delete and add in one commit", setup: []string{pre},
			steps: []bundleStep{open(5), addFlowOpts(5, atomicOrdered, "table=1,cookie=0x1,actions=drop", fmOpts{cmd: ofwire.FlowDelete}),
				addFlow(5, f1), addFlowOpts(5, atomicOrdered, "table=1,priority=10,in_port=1,actions=output:3", fmOpts{cmd: ofwire.FlowModifyStrict}), commit(5)},
			want: []string{"+0 OPEN_REPLY id=5 flags=0", "+4 COMMIT_REPLY id=5 flags=0", "flows: t1 p10 0x11 [output:3]"}},
		{name: "discard", steps: []bundleStep{open(6), addFlow(6, f1), ctrl(6, ofwire.BundleDiscardRequest, atomicOrdered), commit(6)},
			want: []string{"+0 OPEN_REPLY id=6 flags=0", "+2 DISCARD_REPLY id=6 flags=0", "+3 ERROR EXPERIMENTER/BUNDLE_BAD_ID", "flows:"}},
		{name: "unknown bundle id", steps: []bundleStep{commit(99), ctrl(99, ofwire.BundleCloseRequest, atomicOrdered), ctrl(99, ofwire.BundleDiscardRequest, atomicOrdered)},
			want: []string{"+0 ERROR EXPERIMENTER/BUNDLE_BAD_ID", "+1 ERROR EXPERIMENTER/BUNDLE_BAD_ID", "+2 ERROR EXPERIMENTER/BUNDLE_BAD_ID", "flows:"}},
		{name: "open twice", steps: []bundleStep{open(7), addFlow(7, f1), open(7), commit(7)},
			// OVS 3.1 answers BAD_ID, not BUNDLE_EXIST, and discards the open bundle.
			want: []string{"+0 OPEN_REPLY id=7 flags=0", "+2 ERROR EXPERIMENTER/BUNDLE_BAD_ID", "+3 ERROR EXPERIMENTER/BUNDLE_BAD_ID", "flows:"}},
		{name: "closed bundle", steps: []bundleStep{open(8), addFlow(8, f1), ctrl(8, ofwire.BundleCloseRequest, atomicOrdered), addFlow(8, f2), commit(8)},
			// The refused add discards the bundle.
			want: []string{"+0 OPEN_REPLY id=8 flags=0", "+2 CLOSE_REPLY id=8 flags=0", "+3 ERROR EXPERIMENTER/BUNDLE_BUNDLE_CLOSED",
				"+4 ERROR EXPERIMENTER/BUNDLE_BAD_ID", "flows:"}},
		{name: "add opens the bundle", steps: []bundleStep{addFlow(9, f1), commit(9)},
			want: []string{"+1 COMMIT_REPLY id=9 flags=0", "flows: t1 p10 0x11 [output:2]"}},
		{name: "flags differ", steps: []bundleStep{open(10), addFlowOpts(10, ofwire.BundleAtomic, f1, fmOpts{}), addFlow(10, f2),
			ctrl(10, ofwire.BundleCommitRequest, ofwire.BundleAtomic), commit(10)},
			want: []string{"+0 OPEN_REPLY id=10 flags=0", "+1 ERROR EXPERIMENTER/BUNDLE_BAD_FLAGS", "+3 ERROR EXPERIMENTER/BUNDLE_BAD_FLAGS",
				"+4 ERROR EXPERIMENTER/BUNDLE_BAD_ID", "flows:"}},
		{name: "bad control type", steps: []bundleStep{ctrl(11, 9, atomicOrdered), ctrl(11, ofwire.BundleOpenReply, atomicOrdered), commit(11)},
			// OVS 3.1 answers a type it does not know with a control message of type 0 (OPEN_REQUEST), flags 0.
			want: []string{"+0 OPEN_REQUEST id=11 flags=0", "+1 ERROR EXPERIMENTER/BUNDLE_BAD_TYPE", "+2 ERROR EXPERIMENTER/BUNDLE_BAD_ID", "flows:"}},
		{name: "close then commit", steps: []bundleStep{open(13), addFlow(13, f1), ctrl(13, ofwire.BundleCloseRequest, atomicOrdered), commit(13)},
			want: []string{"+0 OPEN_REPLY id=13 flags=0", "+2 CLOSE_REPLY id=13 flags=0", "+3 COMMIT_REPLY id=13 flags=0", "flows: t1 p10 0x11 [output:2]"}},
		{name: "add with other flags", steps: []bundleStep{open(14), addFlow(14, f1), addFlowOpts(14, ofwire.BundleAtomic, f2, fmOpts{}), commit(14)},
			// The refused add discards the bundle.
			want: []string{"+0 OPEN_REPLY id=14 flags=0", "+2 ERROR EXPERIMENTER/BUNDLE_BAD_FLAGS", "+3 ERROR EXPERIMENTER/BUNDLE_BAD_ID", "flows:"}},
		{name: "other experimenters and types", steps: []bundleStep{
			func(_ testing.TB, x uint32) []byte { return experimenterMsg(x, 0x00abcdef, 1, make([]byte, 8)) },
			func(_ testing.TB, x uint32) []byte {
				return experimenterMsg(x, ofwire.ONFExperimenter, 2399, make([]byte, 8))
			}},
			want: []string{"+0 ERROR BAD_REQUEST/BAD_EXPERIMENTER", "+1 ERROR BAD_REQUEST/BAD_EXP_TYPE", "flows:"}},
		{name: "group that does not exist", steps: []bundleStep{open(12), addFlow(12, "table=1,priority=10,cookie=0x15,actions=group:7"), commit(12)},
			// Whether a group exists is checked at commit.
			want: []string{"+0 OPEN_REPLY id=12 flags=0", "+1 ERROR BAD_ACTION/BAD_OUT_GROUP", "+2 ERROR EXPERIMENTER/BUNDLE_MSG_FAILED", "flows:"}},
		{name: "meter that does not exist", steps: []bundleStep{open(15), addFlow(15, f1),
			addRaw(15, func(x uint32) []byte {
				return rawFlowMod(x, 1, ofwire.FlowAdd, 30, rawMatch(), append([]byte{0, 6, 0, 8, 0, 0, 0, 5}, apply(actOutput(2))...))
			}), addFlow(15, f2), commit(15)},
			// Whether a meter exists is checked at commit, too; OFPMMFC_INVALID_METER.
			want: []string{"+0 OPEN_REPLY id=15 flags=0", "+2 ERROR METER_MOD_FAILED/CODE_2", "+4 ERROR EXPERIMENTER/BUNDLE_MSG_FAILED", "flows:"}},
		{name: "identical flow with check_overlap replaces", steps: []bundleStep{
			plain(f1, fmOpts{flags: flagCheckOverlap}),
			plain("table=1,priority=10,cookie=0x16,in_port=1,actions=output:3", fmOpts{flags: flagCheckOverlap}),
			plain("table=1,priority=10,cookie=0x17,actions=output:3", fmOpts{flags: flagCheckOverlap})},
			want: []string{"+2 ERROR FLOW_MOD_FAILED/OVERLAP", "flows: t1 p10 0x16 [output:3]"}},
	}
}

// describe names a reply for the case tables.
func describe(t testing.TB, m ofwire.Message, base uint32) string {
	t.Helper()
	x := fmt.Sprintf("+%d ", int64(m.Xid)-int64(base))
	switch m.Type {
	case ofwire.TypeError:
		e, err := ofwire.DecodeError(m.Body)
		if err != nil {
			t.Fatal(err)
		}
		s := x + "ERROR " + ofwire.ErrorTypeName(e.Type) + "/" + ofwire.ErrorCodeName(e.Type, e.Code)
		if e.Type == ofwire.ErrTypeExperimenter && (len(e.Data) < 4 || binary.BigEndian.Uint32(e.Data) != ofwire.ONFExperimenter) {
			s += " (not ONF)"
		}
		return s
	case ofwire.TypeExperimenter:
		exp, err := ofwire.DecodeExperimenter(m.Body)
		if err != nil {
			t.Fatal(err)
		}
		bc, err := ofwire.DecodeBundleControl(exp.Data)
		if err != nil || exp.Experimenter != ofwire.ONFExperimenter || exp.ExpType != ofwire.ONFBundleControl {
			return x + fmt.Sprintf("EXPERIMENTER % x", m.Body)
		}
		names := []string{"OPEN_REQUEST", "OPEN_REPLY", "CLOSE_REQUEST", "CLOSE_REPLY", "COMMIT_REQUEST", "COMMIT_REPLY", "DISCARD_REQUEST", "DISCARD_REPLY"}
		name := fmt.Sprintf("TYPE_%d", bc.Type)
		if int(bc.Type) < len(names) {
			name = names[bc.Type]
		}
		return x + fmt.Sprintf("%s id=%d flags=%d", name, bc.BundleID, bc.Flags)
	default:
		return x + m.Type.String()
	}
}

// runBundleCase plays one case on a connection and returns the descriptions and the raw replies.
func runBundleCase(t *testing.T, cc *ctlConn, c bundleCase, base uint32) ([]string, [][]byte) {
	t.Helper()
	del := appendHeader(nil, ofwire.TypeGroupMod, base-2)
	del = append(del, 0, byte(dataplane.GroupDelete), 0, 0)
	del = binary.BigEndian.AppendUint32(del, dataplane.GroupAll)
	cc.send(finish(del, 0))
	cc.send(flowModMsg(t, base-1, "table=255,actions=drop", fmOpts{cmd: ofwire.FlowDelete}))
	for i, s := range c.setup {
		cc.send(flowModMsg(t, base-100+uint32(i), s, fmOpts{}))
	}
	if got := cc.barrier(); len(got) != 0 {
		t.Fatalf("setup answered %v", got)
	}
	var msgs []byte
	for i, st := range c.steps {
		msgs = append(msgs, st(t, base+uint32(i))...)
	}
	cc.send(msgs)
	var desc []string
	var raw [][]byte
	for _, m := range cc.barrier() {
		desc = append(desc, describe(t, m, base))
		raw = append(raw, finish(append(appendHeader(nil, m.Type, m.Xid), m.Body...), 0))
	}
	fs, _ := cc.flowStats(0, 0)
	var fl []string
	for _, f := range fs {
		fl = append(fl, fmt.Sprintf(" t%d p%d %#x %v", f.Flow.Table, f.Flow.Priority, f.Flow.Cookie, f.Flow.Actions))
	}
	slices.Sort(fl)
	return append(desc, "flows:"+strings.Join(fl, ";")), raw
}

// TestBundlesAsOVS plays bundle cases on the simulator and, where it runs, on a real ovs-vswitchd (table 1
// limited to 2 flows on both), and holds both to the table, which records what OVS 3.1 answers; the replies of
// the two must also be equal byte for byte.
func TestBundlesAsOVS(t *testing.T) {
	ctl := newCtl(t)
	sw := startSwitch(t, ctl.ln.Addr().String(), 1, 2, nil)
	sw.Bridge().SetFlowLimit(1, 2)
	sim := ctl.accept()
	ovs := ovsLikeSim(t, ctl, []string{"--", "--id=@ft", "create", "Flow_Table", "flow_limit=2", "overflow_policy=refuse", "--", "set", "Bridge", "br0", "flow_tables:1=@ft"})
	for i, c := range bundleCases() {
		t.Run(c.name, func(t *testing.T) {
			base := uint32(10000 + 1000*i)
			got, simRaw := runBundleCase(t, sim, c, base)
			if !slices.Equal(got, c.want) {
				t.Errorf("simulator:\n got %q\nwant %q", got, c.want)
			}
			if ovs == nil {
				return
			}
			got, ovsRaw := runBundleCase(t, ovs, c, base)
			if !slices.Equal(got, c.want) {
				t.Errorf("real OVS:\n got %q\nthe table says %q", got, c.want)
			}
			if len(simRaw) == len(ovsRaw) {
				for j := range simRaw {
					if !bytes.Equal(simRaw[j], ovsRaw[j]) {
						t.Errorf("reply %d differs:\n simulator % x\n real OVS  % x", j, simRaw[j], ovsRaw[j])
					}
				}
			}
		})
	}
}
