package ofsim

import (
	"encoding/binary"
	"testing"

	"portmirror/internal/ovstest"
	"portmirror/ofwire"
	"portmirror/simulator/dataplane"
)

func oxm(class uint16, field uint8, value, mask []byte) []byte {
	fb := field << 1
	l := len(value)
	if mask != nil {
		fb |= 1
		l += len(mask)
	}
	b := binary.BigEndian.AppendUint16(nil, class)
	b = append(b, fb, byte(l))
	b = append(b, value...)
	return append(b, mask...)
}

func rawMatch(fields ...[]byte) []byte {
	b := []byte{0, 1, 0, 0}
	for _, f := range fields {
		b = append(b, f...)
	}
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	for len(b)%8 != 0 {
		b = append(b, 0)
	}
	return b
}

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func u16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

func actOutput(port uint32) []byte {
	b := []byte{0, 0, 0, 16}
	b = append(b, u32(port)...)
	return append(b, 0xff, 0xff, 0, 0, 0, 0, 0, 0)
}

func apply(acts ...[]byte) []byte {
	b := []byte{0, 4, 0, 0, 0, 0, 0, 0}
	for _, a := range acts {
		b = append(b, a...)
	}
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	return b
}

func rawFlowMod(xid uint32, table uint8, cmd ofwire.FlowModCommand, priority uint16, match, insts []byte) []byte {
	b := appendHeader(nil, ofwire.TypeFlowMod, xid)
	b = append(b, make([]byte, 16)...) // cookie, cookie mask
	b = append(b, table, byte(cmd), 0, 0, 0, 0)
	b = append(b, u16(priority)...)
	b = append(b, u32(ofwire.NoBuffer)...)
	b = append(b, u32(ofwire.PortAny)...)
	b = append(b, u32(ofwire.GroupAny)...)
	b = append(b, 0, 0, 0, 0)
	b = append(b, match...)
	b = append(b, insts...)
	return finish(b, 0)
}

type errCase struct {
	name string
	msg  func(xid uint32) []byte
	want string // "" (accepted) or "TYPE/CODE" as ofwire names them
}

func errCases() []errCase {
	inPort1 := oxm(0x8000, 0, u32(1), nil)
	ethIP := oxm(0x8000, 5, u16(0x0800), nil)
	return []errCase{
		{"valid flow", func(x uint32) []byte {
			return rawFlowMod(x, 0, ofwire.FlowAdd, 10, rawMatch(inPort1), apply(actOutput(2)))
		}, ""},
		{"add to table 255", func(x uint32) []byte { return rawFlowMod(x, 255, ofwire.FlowAdd, 10, rawMatch(), apply(actOutput(2))) }, "FLOW_MOD_FAILED/BAD_TABLE_ID"},
		{"unknown match field", func(x uint32) []byte {
			return rawFlowMod(x, 0, ofwire.FlowAdd, 10, rawMatch(oxm(0x8000, 60, []byte{1}, nil)), apply(actOutput(2)))
		}, "BAD_MATCH/BAD_FIELD"},
		{"missing prerequisite", func(x uint32) []byte {
			return rawFlowMod(x, 0, ofwire.FlowAdd, 10, rawMatch(ethIP, oxm(0x8000, 14, u16(80), nil)), apply(actOutput(2)))
		}, "BAD_MATCH/BAD_PREREQ"},
		{"masked in_port", func(x uint32) []byte {
			return rawFlowMod(x, 0, ofwire.FlowAdd, 10, rawMatch(oxm(0x8000, 0, u32(1), u32(0xff))), apply(actOutput(2)))
		}, "BAD_MATCH/BAD_MASK"},
		{"duplicate field", func(x uint32) []byte {
			return rawFlowMod(x, 0, ofwire.FlowAdd, 10, rawMatch(inPort1, inPort1), apply(actOutput(2)))
		}, "BAD_MATCH/DUP_FIELD"},
		{"value outside its mask", func(x uint32) []byte {
			return rawFlowMod(x, 0, ofwire.FlowAdd, 10, rawMatch(oxm(0x8000, 3, []byte{2, 0, 0, 0, 0, 1}, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0})), apply(actOutput(2)))
		}, "BAD_MATCH/BAD_WILDCARDS"},
		{"output to port 0 (accepted by OVS)", func(x uint32) []byte { return rawFlowMod(x, 0, ofwire.FlowAdd, 13, rawMatch(), apply(actOutput(0))) }, ""},
		{"output to ANY", func(x uint32) []byte {
			return rawFlowMod(x, 0, ofwire.FlowAdd, 10, rawMatch(), apply(actOutput(ofwire.PortAny)))
		}, "BAD_ACTION/BAD_OUT_PORT"},
		{"output to reserved 0xfffffff0", func(x uint32) []byte {
			return rawFlowMod(x, 0, ofwire.FlowAdd, 10, rawMatch(), apply(actOutput(0xfffffff0)))
		}, "BAD_ACTION/BAD_OUT_PORT"},
		{"flow stats of table 255 with a bad match", func(x uint32) []byte {
			b := appendHeader(nil, ofwire.TypeMultipartRequest, x)
			b = append(b, 0, byte(ofwire.MultipartFlow), 0, 0, 0, 0, 0, 0)
			b = append(b, flowStatsRequest(0xff, ofwire.PortAny, 0, 0, dataplane.Match{})[:32]...)
			b = append(b, rawMatch(oxm(0x8000, 60, []byte{1}, nil))...)
			return finish(b, 0)
		}, "BAD_MATCH/BAD_FIELD"},
		{"unknown multipart type", func(x uint32) []byte {
			b := appendHeader(nil, ofwire.TypeMultipartRequest, x)
			b = append(b, 0x7f, 0, 0, 0, 0, 0, 0, 0)
			return finish(b, 0)
		}, "BAD_REQUEST/BAD_MULTIPART"},
		{"output to a port that does not exist (yet)", func(x uint32) []byte { return rawFlowMod(x, 0, ofwire.FlowAdd, 11, rawMatch(), apply(actOutput(99))) }, ""},
		{"unknown action type", func(x uint32) []byte {
			return rawFlowMod(x, 0, ofwire.FlowAdd, 10, rawMatch(), apply([]byte{0, 0xaa, 0, 8, 0, 0, 0, 0}))
		}, "BAD_ACTION/BAD_TYPE"},
		{"group that does not exist", func(x uint32) []byte {
			return rawFlowMod(x, 0, ofwire.FlowAdd, 10, rawMatch(), apply(append([]byte{0, 22, 0, 8}, u32(7)...)))
		}, "BAD_ACTION/BAD_OUT_GROUP"},
		{"meter that does not exist", func(x uint32) []byte {
			return rawFlowMod(x, 0, ofwire.FlowAdd, 10, rawMatch(), append([]byte{0, 6, 0, 8, 0, 0, 0, 5}, apply(actOutput(2))...))
		}, "METER_MOD_FAILED/CODE_2"}, // OFPMMFC_INVALID_METER,
		{"goto_table backwards", func(x uint32) []byte {
			return rawFlowMod(x, 1, ofwire.FlowAdd, 10, rawMatch(), []byte{0, 1, 0, 8, 0, 0, 0, 0})
		}, "BAD_INSTRUCTION/BAD_TABLE_ID"},
		{"set_field tun_dst (NXM)", func(x uint32) []byte {
			sf := append([]byte{0, 25, 0, 16}, oxm(0x0001, 32, []byte{198, 18, 0, 2}, nil)...)
			sf = append(sf, 0, 0, 0, 0)
			return rawFlowMod(x, 0, ofwire.FlowAdd, 12, rawMatch(inPort1), apply(sf, actOutput(2)))
		}, ""},
		{"unknown flow_mod command", func(x uint32) []byte { return rawFlowMod(x, 0, 9, 10, rawMatch(), nil) }, "FLOW_MOD_FAILED/BAD_COMMAND"},
		{"unknown message type", func(x uint32) []byte { return finish(appendHeader(nil, 40, x), 0) }, "BAD_REQUEST/BAD_TYPE"},
	}
}

// replyFor sends msg and returns "" or the error it caused, as "TYPE/CODE".
func replyFor(t *testing.T, cc *ctlConn, msg []byte) string {
	t.Helper()
	cc.send(msg)
	got := ""
	for _, m := range cc.barrier() {
		if m.Type == ofwire.TypeError {
			e, err := ofwire.DecodeError(m.Body)
			if err != nil {
				t.Fatal(err)
			}
			got = ofwire.ErrorTypeName(e.Type) + "/" + ofwire.ErrorCodeName(e.Type, e.Code)
		}
	}
	return got
}

// ovsLikeSim starts, where OVS is installed, a real ovs-vswitchd with one secure OpenFlow 1.3 bridge of two ports
// numbered as the simulated switch's, runs setup on it (ovs-vsctl arguments, e.g. a flow limit), and connects it
// to ctl; nil where OVS is not installed (the cases are then held to their recorded OVS answers only).
func ovsLikeSim(t *testing.T, ctl *testCtl, setup ...[]string) *ctlConn {
	t.Helper()
	if !ovstest.Available() {
		t.Log("ovs-vswitchd is not installed: checking the simulator against the recorded OVS answers only")
		return nil
	}
	o := ovstest.Must(t, ovstest.Options{})
	o.Vsctl("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=dummy", "fail_mode=secure", "protocols=OpenFlow13",
		"--", "add-port", "br0", "p1", "--", "set", "interface", "p1", "type=dummy", "ofport_request=1",
		"--", "add-port", "br0", "p2", "--", "set", "interface", "p2", "type=dummy", "ofport_request=2")
	for _, args := range setup {
		o.Vsctl(args...)
	}
	o.Vsctl("set-controller", "br0", "tcp:"+ctl.ln.Addr().String())
	return ctl.accept()
}

// TestErrorsAsOVS sends the same messages to the simulator and, where it runs, to a real ovs-vswitchd, and
// holds both to the table (which records what OVS 3.1 answers).
func TestErrorsAsOVS(t *testing.T) {
	ctl := newCtl(t)
	startSwitch(t, ctl.ln.Addr().String(), 1, 2, nil)
	sim := ctl.accept()
	ovs := ovsLikeSim(t, ctl)
	for i, c := range errCases() {
		t.Run(c.name, func(t *testing.T) {
			xid := uint32(5000 + i)
			if got := replyFor(t, sim, c.msg(xid)); got != c.want {
				t.Errorf("simulator answered %q, want %q", got, c.want)
			}
			if ovs != nil {
				if got := replyFor(t, ovs, c.msg(xid)); got != c.want {
					t.Errorf("real OVS answered %q, the table says %q", got, c.want)
				}
			}
		})
	}
}
