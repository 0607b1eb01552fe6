package ofsim

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"portmirror/internal/ovstest"
	"portmirror/ofwire"
	"portmirror/simulator/dataplane"
)

// roleTarget is a switch with two controller connections, A (0) and B (1): the simulator or a real ovs-vswitchd.
type roleTarget struct {
	name    string
	ctls    [2]*testCtl
	conns   [2]*ctlConn
	packet  func(t *testing.T, port uint32, frame []byte) // a frame arrives on a port
	delPort func(t *testing.T, port uint32)               // a port is deleted (ovs-vsctl del-port)
	restart func(t *testing.T)                            // ovs-vswitchd restarts
}

// roleStep is one step of a role case: a message (msg) one connection sends, or an event on the switch (ev).
type roleStep struct {
	on     int // the connection that sends msg, or that must see what ev causes
	msg    func(t testing.TB, xid uint32) []byte
	ev     func(t *testing.T, tg *roleTarget)
	silent bool // ev causes no message
	// await: after msg, wait for an asynchronous message on connection on (OVS sends a FLOW_REMOVED after the
	// barrier reply that follows the flow_mod that deleted the flow).
	await bool
}

func roleReq(on int, role ofwire.Role, gen uint64) roleStep {
	return roleStep{on: on, msg: func(_ testing.TB, x uint32) []byte {
		return ofwire.AppendRole(nil, ofwire.TypeRoleRequest, x, role, gen)
	}}
}

func sendOn(on int, msg func(t testing.TB, xid uint32) []byte) roleStep {
	return roleStep{on: on, msg: msg}
}

// deleteOn sends a flow_mod that deletes flow (strictly) and awaits the FLOW_REMOVED it causes on the same
// connection.
func deleteOn(on int, flow string) roleStep {
	return roleStep{on: on, await: true, msg: func(t testing.TB, x uint32) []byte {
		return flowModMsg(t, x, flow, fmOpts{cmd: ofwire.FlowDeleteStrict})
	}}
}

func flowOn(on int, flow string) roleStep {
	return sendOn(on, func(t testing.TB, x uint32) []byte { return flowModMsg(t, x, flow, fmOpts{}) })
}

func bare(typ ofwire.Type, body ...byte) func(testing.TB, uint32) []byte {
	return func(_ testing.TB, x uint32) []byte { return finish(append(appendHeader(nil, typ, x), body...), 0) }
}

// udpFrame is a UDP datagram from 198.18.0.1 to 198.18.0.2; arpFrame an ARP request (neither matches the other's
// flows).
func udpFrame() []byte {
	return dataplane.BuildUDP(dataplane.MAC{2, 0, 0, 0, 0, 2}, dataplane.MAC{2, 0, 0, 0, 0, 1},
		netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2"), 4000, 4789, []byte("role test"))
}

func arpFrame() []byte {
	return dataplane.BuildARPRequest(dataplane.MAC{2, 0, 0, 0, 0, 1}, netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2"))
}

func packetOn(on int, port uint32, frame []byte) roleStep {
	return roleStep{on: on, ev: func(t *testing.T, tg *roleTarget) { tg.packet(t, port, frame) }}
}

// reconnect closes a connection from the controller's side and waits for the switch to connect again.
func reconnect(on int) roleStep {
	return roleStep{on: on, silent: true, ev: func(t *testing.T, tg *roleTarget) {
		tg.conns[on].nc.Close()
		tg.conns[on] = tg.ctls[on].accept()
	}}
}

// restartSwitch restarts the switch (ovs-vswitchd) and waits for both connections to come back.
func restartSwitch() roleStep {
	return roleStep{silent: true, ev: func(t *testing.T, tg *roleTarget) {
		tg.restart(t)
		for i := range tg.conns {
			tg.conns[i] = tg.ctls[i].accept()
		}
	}}
}

func delPortOn(on int, port uint32) roleStep {
	return roleStep{on: on, ev: func(t *testing.T, tg *roleTarget) { tg.delPort(t, port) }}
}

func packetOut(x uint32) []byte {
	b := appendHeader(nil, ofwire.TypePacketOut, x)
	b = binary.BigEndian.AppendUint32(b, ofwire.NoBuffer)
	b = binary.BigEndian.AppendUint32(b, dataplane.PortController)
	act := actOutput(2)
	b = binary.BigEndian.AppendUint16(b, uint16(len(act)))
	b = append(b, 0, 0, 0, 0, 0, 0)
	b = append(b, act...)
	return finish(append(b, udpFrame()...), 0)
}

func groupModMsg(x uint32) []byte {
	b := appendHeader(nil, ofwire.TypeGroupMod, x)
	b = append(b, 0, byte(dataplane.GroupAdd), dataplane.GroupTypeAll, 0)
	b = binary.BigEndian.AppendUint32(b, 7)
	bk := []byte{0, 0, 0, 0}
	bk = binary.BigEndian.AppendUint32(bk, ofwire.PortAny)
	bk = binary.BigEndian.AppendUint32(bk, ofwire.GroupAny)
	bk = append(bk, 0, 0, 0, 0)
	bk = append(bk, actOutput(2)...)
	binary.BigEndian.PutUint16(bk, uint16(len(bk)))
	return finish(append(b, bk...), 0)
}

func portModMsg(x uint32) []byte {
	b := appendHeader(nil, ofwire.TypePortMod, x)
	b = binary.BigEndian.AppendUint32(b, 2)
	b = append(b, 0, 0, 0, 0)
	b = append(b, 2, 0, 0, 0, 1, 2) // hw_addr (checked after the role)
	b = append(b, 0, 0)
	b = binary.BigEndian.AppendUint32(b, 1) // config PORT_DOWN
	b = binary.BigEndian.AppendUint32(b, 1) // mask
	b = binary.BigEndian.AppendUint32(b, 0) // advertise
	return finish(append(b, 0, 0, 0, 0), 0)
}

type roleCase struct {
	name  string
	setup []string // flows the case starts with (added by a connection that is EQUAL), after every flow is deleted
	steps []roleStep
	// want: what each connection received, in order, as "A +i DESCRIPTION" (i: the step whose xid it carries;
	// x0 for xid 0), then the flows.
	want []string
}

const maxGen = math.MaxUint64

func roleCases() []roleCase {
	const (
		A = 0
		B = 1
	)
	f1 := "table=0,priority=10,cookie=0x21,in_port=1,actions=output:2"
	toCtl := "table=0,priority=20,cookie=0x5,in_port=1,udp,actions=output:CONTROLLER"
	miss := "table=0,priority=0,cookie=0x6,actions=output:CONTROLLER"
	rem := "table=0,priority=9,cookie=0x31,in_port=2,actions=output:1"
	return []roleCase{
		{name: "no generation id yet", steps: []roleStep{roleReq(A, ofwire.RoleNoChange, 0), roleReq(A, ofwire.RoleEqual, 7),
			roleReq(B, ofwire.RoleNoChange, 3), flowOn(B, f1)},
			// The reply reports all ones while no MASTER or SLAVE request set the election id; EQUAL does not set it.
			want: []string{"A +0 ROLE_REPLY EQUAL gen=max", "A +1 ROLE_REPLY EQUAL gen=max", "B +2 ROLE_REPLY EQUAL gen=max",
				"flows: p10 0x21"}},
		{name: "master and slave", steps: []roleStep{roleReq(A, ofwire.RoleMaster, 10), roleReq(B, ofwire.RoleSlave, 10),
			roleReq(A, ofwire.RoleNoChange, 0), roleReq(B, ofwire.RoleNoChange, 99), flowOn(A, f1)},
			want: []string{"A +0 ROLE_REPLY MASTER gen=10", "B +1 ROLE_REPLY SLAVE gen=10", "A +2 ROLE_REPLY MASTER gen=10",
				"B +3 ROLE_REPLY SLAVE gen=10", "flows: p10 0x21"}},
		{name: "stale generation ids", steps: []roleStep{roleReq(A, ofwire.RoleMaster, 20), roleReq(B, ofwire.RoleMaster, 19),
			roleReq(B, ofwire.RoleSlave, 19), roleReq(B, ofwire.RoleNoChange, 0), roleReq(A, ofwire.RoleNoChange, 0)},
			want: []string{"A +0 ROLE_REPLY MASTER gen=20", "B +1 ERROR ROLE_REQUEST_FAILED/STALE", "B +2 ERROR ROLE_REQUEST_FAILED/STALE",
				"B +3 ROLE_REPLY EQUAL gen=20", "A +4 ROLE_REPLY MASTER gen=20", "flows:"}},
		{name: "takeover demotes the master", setup: []string{f1}, steps: []roleStep{roleReq(A, ofwire.RoleMaster, 30),
			roleReq(B, ofwire.RoleSlave, 30), roleReq(B, ofwire.RoleMaster, 31), roleReq(A, ofwire.RoleMaster, 30),
			flowOn(A, "table=0,priority=11,cookie=0x22,actions=drop"), flowOn(B, "table=0,priority=12,cookie=0x23,actions=drop"),
			roleReq(A, ofwire.RoleNoChange, 0)},
			want: []string{"A +0 ROLE_REPLY MASTER gen=30", "B +1 ROLE_REPLY SLAVE gen=30", "B +2 ROLE_REPLY MASTER gen=31",
				"A x0 ROLE_STATUS SLAVE reason=MASTER_REQUEST gen=31", "A +3 ERROR ROLE_REQUEST_FAILED/STALE",
				"A +4 ERROR BAD_REQUEST/IS_SLAVE", "A +6 ROLE_REPLY SLAVE gen=31", "flows: p10 0x21; p12 0x23"}},
		{name: "a master asking again, an equal beside it", steps: []roleStep{roleReq(A, ofwire.RoleMaster, 40),
			roleReq(A, ofwire.RoleMaster, 40), roleReq(B, ofwire.RoleEqual, 1), flowOn(B, f1), roleReq(A, ofwire.RoleSlave, 41),
			roleReq(B, ofwire.RoleMaster, 41), roleReq(A, ofwire.RoleMaster, 42)},
			// A MASTER asking for MASTER again, or becoming SLAVE on its own, gets no ROLE_STATUS; an EQUAL's
			// generation id is not checked.
			want: []string{"A +0 ROLE_REPLY MASTER gen=40", "A +1 ROLE_REPLY MASTER gen=40", "B +2 ROLE_REPLY EQUAL gen=40",
				"A +4 ROLE_REPLY SLAVE gen=41", "B +5 ROLE_REPLY MASTER gen=41", "A +6 ROLE_REPLY MASTER gen=42",
				"B x0 ROLE_STATUS SLAVE reason=MASTER_REQUEST gen=42", "flows: p10 0x21"}},
		{name: "what a slave may not send", setup: []string{f1}, steps: []roleStep{roleReq(A, ofwire.RoleMaster, 50),
			roleReq(B, ofwire.RoleSlave, 50),
			flowOn(B, "table=0,priority=13,cookie=0x24,actions=drop"),
			sendOn(B, func(t testing.TB, x uint32) []byte {
				return flowModMsg(t, x, "table=0,cookie=0x21,actions=drop", fmOpts{cmd: ofwire.FlowDelete})
			}),
			sendOn(B, func(_ testing.TB, x uint32) []byte { return groupModMsg(x) }),
			sendOn(B, func(_ testing.TB, x uint32) []byte { return portModMsg(x) }),
			sendOn(B, func(_ testing.TB, x uint32) []byte { return packetOut(x) }),
			sendOn(B, bare(ofwire.TypeTableMod, 0, 0, 0, 0, 0, 0, 0, 3)),
			sendOn(B, bare(ofwire.TypeMeterMod, 0, 0, 0, 1, 0, 0, 0, 1)),
			sendOn(B, func(_ testing.TB, x uint32) []byte { return ctrlMsg(x, 1, ofwire.BundleOpenRequest) }),
			sendOn(B, func(t testing.TB, x uint32) []byte {
				return bundleAddRaw(x, 1, atomicOrdered, flowModMsg(t, x, "table=0,priority=14,cookie=0x25,actions=drop", fmOpts{}))
			}),
			sendOn(B, func(_ testing.TB, x uint32) []byte { return ctrlMsg(x, 1, ofwire.BundleCommitRequest) }),
			sendOn(B, func(_ testing.TB, x uint32) []byte {
				return rawFlowMod(x, 0, ofwire.FlowAdd, 10, rawMatch(oxm(0x8000, 60, []byte{1}, nil)), nil)
			}),
			sendOn(B, bare(ofwire.TypeSetConfig, 0, 0, 0, 128)),
			sendOn(B, func(_ testing.TB, x uint32) []byte { return experimenterMsg(x, 0x00abcdef, 1, make([]byte, 8)) }),
			sendOn(B, bare(ofwire.TypeEchoRequest, 1, 2, 3, 4)),
		},
			// Every message that would change the switch is refused before anything else is checked; set_config is
			// ignored silently; an unknown experimenter is refused as such.
			want: []string{"A +0 ROLE_REPLY MASTER gen=50", "B +1 ROLE_REPLY SLAVE gen=50", "B +2 ERROR BAD_REQUEST/IS_SLAVE",
				"B +3 ERROR BAD_REQUEST/IS_SLAVE", "B +4 ERROR BAD_REQUEST/IS_SLAVE", "B +5 ERROR BAD_REQUEST/IS_SLAVE",
				"B +6 ERROR BAD_REQUEST/IS_SLAVE", "B +7 ERROR BAD_REQUEST/IS_SLAVE", "B +8 ERROR BAD_REQUEST/IS_SLAVE",
				"B +9 ERROR BAD_REQUEST/IS_SLAVE", "B +10 ERROR BAD_REQUEST/IS_SLAVE", "B +11 ERROR BAD_REQUEST/IS_SLAVE",
				"B +12 ERROR BAD_REQUEST/IS_SLAVE", "B +14 ERROR BAD_REQUEST/BAD_EXPERIMENTER", "B +15 ECHO_REPLY", "flows: p10 0x21"}},
		{name: "packet-in goes to the master and equals", setup: []string{toCtl, miss}, steps: []roleStep{
			roleReq(A, ofwire.RoleMaster, 60), roleReq(B, ofwire.RoleSlave, 60),
			packetOn(A, 1, udpFrame()), packetOn(A, 1, arpFrame()),
			roleReq(B, ofwire.RoleEqual, 0), packetOn(B, 1, udpFrame()),
			roleReq(B, ofwire.RoleMaster, 61), packetOn(B, 1, udpFrame())},
			want: []string{"A +0 ROLE_REPLY MASTER gen=60", "B +1 ROLE_REPLY SLAVE gen=60",
				"A x0 PACKET_IN reason=1 table=0 cookie=0x5 total=60", "A x0 PACKET_IN reason=0 table=0 cookie=0x6 total=60",
				"B +4 ROLE_REPLY EQUAL gen=60", "B x0 PACKET_IN reason=1 table=0 cookie=0x5 total=60", "A x0 PACKET_IN reason=1 table=0 cookie=0x5 total=60",
				"B +6 ROLE_REPLY MASTER gen=61", "A x0 ROLE_STATUS SLAVE reason=MASTER_REQUEST gen=61",
				"B x0 PACKET_IN reason=1 table=0 cookie=0x5 total=60", "flows: p0 0x6; p20 0x5"}},
		{name: "port status goes to every role", steps: []roleStep{roleReq(A, ofwire.RoleMaster, 70), roleReq(B, ofwire.RoleSlave, 70),
			delPortOn(B, 2)},
			// (Adding a port is not a case: OVS reports a new dummy port twice, ADD with no state bit and MODIFY
			// with LIVE, where the simulator sends one ADD.)
			want: []string{"A +0 ROLE_REPLY MASTER gen=70", "B +1 ROLE_REPLY SLAVE gen=70",
				"B x0 PORT_STATUS DELETE port=2", "A x0 PORT_STATUS DELETE port=2", "flows:"}},
		{name: "async config and role errors", steps: []roleStep{roleReq(A, ofwire.RoleMaster, 80), roleReq(B, ofwire.RoleSlave, 80),
			sendOn(A, bare(ofwire.TypeGetAsyncRequest)), sendOn(B, bare(ofwire.TypeGetAsyncRequest)),
			roleReq(A, 4, 81), roleReq(A, ofwire.RoleNoChange, 0),
			sendOn(A, bare(ofwire.TypeRoleRequest, 0, 0, 0, 2, 0, 0, 0, 0))},
			want: []string{"A +0 ROLE_REPLY MASTER gen=80", "B +1 ROLE_REPLY SLAVE gen=80",
				"A +2 GET_ASYNC_REPLY 00000003 00000000 00000007 00000007 0000000f 00000000",
				"B +3 GET_ASYNC_REPLY 00000003 00000000 00000007 00000007 0000000f 00000000",
				"A +4 ERROR ROLE_REQUEST_FAILED/BAD_ROLE", "A +5 ROLE_REPLY MASTER gen=80", "A +6 ERROR BAD_REQUEST/BAD_LEN", "flows:"}},
		{name: "flow removed goes to the master and equals", steps: []roleStep{roleReq(A, ofwire.RoleMaster, 85), roleReq(B, ofwire.RoleSlave, 85),
			sendOn(A, func(t testing.TB, x uint32) []byte { return flowModMsg(t, x, rem, fmOpts{flags: flagSendFlowRem}) }),
			deleteOn(A, rem),
			roleReq(B, ofwire.RoleEqual, 0),
			sendOn(A, func(t testing.TB, x uint32) []byte { return flowModMsg(t, x, rem, fmOpts{flags: flagSendFlowRem}) }),
			deleteOn(B, rem)},
			// OVS sends a FLOW_REMOVED after the barrier reply that follows the flow_mod that deleted the flow.
			want: []string{"A +0 ROLE_REPLY MASTER gen=85", "B +1 ROLE_REPLY SLAVE gen=85", "A x0 FLOW_REMOVED reason=2 table=0 cookie=0x31 priority=9",
				"B +4 ROLE_REPLY EQUAL gen=85", "B x0 FLOW_REMOVED reason=2 table=0 cookie=0x31 priority=9",
				"A x0 FLOW_REMOVED reason=2 table=0 cookie=0x31 priority=9", "flows:"}},
		{name: "a connection that comes back", steps: []roleStep{roleReq(A, ofwire.RoleMaster, 90), roleReq(B, ofwire.RoleSlave, 90),
			reconnect(A), roleReq(A, ofwire.RoleNoChange, 0), roleReq(B, ofwire.RoleMaster, 89), roleReq(B, ofwire.RoleNoChange, 0)},
			// The new connection is EQUAL, the switch has no master, and the election id outlives the connection.
			want: []string{"A +0 ROLE_REPLY MASTER gen=90", "B +1 ROLE_REPLY SLAVE gen=90", "A +3 ROLE_REPLY EQUAL gen=90",
				"B +4 ERROR ROLE_REQUEST_FAILED/STALE", "B +5 ROLE_REPLY SLAVE gen=90", "flows:"}},
		{name: "generation ids wrap around", steps: []roleStep{roleReq(A, ofwire.RoleMaster, 1<<63+79), roleReq(B, ofwire.RoleMaster, 1<<63+80),
			roleReq(A, ofwire.RoleMaster, 81), roleReq(B, ofwire.RoleMaster, 1<<63+81), roleReq(B, ofwire.RoleSlave, maxGen),
			roleReq(A, ofwire.RoleMaster, 5)},
			// Ids compare by their signed difference: 2^63+79 is newer than 80, 81 older than 2^63+80, and 5 newer
			// than 2^64-1 (which a reply shows as it shows no id).
			want: []string{"A +0 ROLE_REPLY MASTER gen=9223372036854775887", "B +1 ROLE_REPLY MASTER gen=9223372036854775888",
				"A x0 ROLE_STATUS SLAVE reason=MASTER_REQUEST gen=9223372036854775888", "A +2 ERROR ROLE_REQUEST_FAILED/STALE",
				"B +3 ROLE_REPLY MASTER gen=9223372036854775889", "B +4 ROLE_REPLY SLAVE gen=max", "A +5 ROLE_REPLY MASTER gen=5", "flows:"}},
		{name: "a restarted switch forgets the election id", steps: []roleStep{roleReq(A, ofwire.RoleMaster, 6), restartSwitch(),
			roleReq(B, ofwire.RoleNoChange, 0), roleReq(B, ofwire.RoleMaster, 2), roleReq(A, ofwire.RoleMaster, 1)},
			// After ovs-vswitchd restarts any generation id is accepted: a deposed leader asking first would be MASTER.
			want: []string{"A +0 ROLE_REPLY MASTER gen=6", "B +2 ROLE_REPLY EQUAL gen=max", "B +3 ROLE_REPLY MASTER gen=2",
				"A +4 ERROR ROLE_REQUEST_FAILED/STALE", "flows:"}},
	}
}

// describeRole names a message for the role cases.
func describeRole(t testing.TB, conn string, m ofwire.Message, base uint32) string {
	t.Helper()
	x := fmt.Sprintf("+%d", int64(m.Xid)-int64(base))
	if m.Xid == 0 {
		x = "x0"
	}
	gen := func(g uint64) string {
		if g == maxGen {
			return "max"
		}
		return fmt.Sprint(g)
	}
	s := conn + " " + x + " "
	switch m.Type {
	case ofwire.TypeRoleReply:
		r, err := ofwire.DecodeRole(m.Body)
		if err != nil {
			t.Fatal(err)
		}
		return s + fmt.Sprintf("ROLE_REPLY %v gen=%s", r.Role, gen(r.GenerationID))
	case ofwire.TypeExperimenter:
		exp, err := ofwire.DecodeExperimenter(m.Body)
		if err != nil {
			t.Fatal(err)
		}
		if exp.Experimenter == ofwire.ONFExperimenter && exp.ExpType == ofwire.ONFRoleStatus {
			rs, err := ofwire.DecodeRoleStatus(exp.Data)
			if err != nil {
				t.Fatal(err)
			}
			reason := map[uint8]string{ofwire.RoleReasonMasterRequest: "MASTER_REQUEST", ofwire.RoleReasonConfig: "CONFIG"}[rs.Reason]
			return s + fmt.Sprintf("ROLE_STATUS %v reason=%s gen=%s", rs.Role, reason, gen(rs.GenerationID))
		}
		return s + fmt.Sprintf("EXPERIMENTER % x", m.Body)
	case ofwire.TypePacketIn:
		if len(m.Body) < 16 {
			t.Fatalf("packet-in of %d bytes", len(m.Body))
		}
		return s + fmt.Sprintf("PACKET_IN reason=%d table=%d cookie=%#x total=%d", m.Body[6], m.Body[7], binary.BigEndian.Uint64(m.Body[8:]),
			binary.BigEndian.Uint16(m.Body[4:]))
	case ofwire.TypePortStatus:
		if len(m.Body) < 12 {
			t.Fatalf("port status of %d bytes", len(m.Body))
		}
		return s + fmt.Sprintf("PORT_STATUS %s port=%d", []string{"ADD", "DELETE", "MODIFY"}[m.Body[0]%3], binary.BigEndian.Uint32(m.Body[8:]))
	case ofwire.TypeFlowRemoved:
		if len(m.Body) < 12 {
			t.Fatalf("flow removed of %d bytes", len(m.Body))
		}
		return s + fmt.Sprintf("FLOW_REMOVED reason=%d table=%d cookie=%#x priority=%d", m.Body[10], m.Body[11],
			binary.BigEndian.Uint64(m.Body), binary.BigEndian.Uint16(m.Body[8:]))
	case ofwire.TypeGetAsyncReply:
		var w []string
		for b := m.Body; len(b) >= 4; b = b[4:] {
			w = append(w, hex.EncodeToString(b[:4]))
		}
		return s + "GET_ASYNC_REPLY " + strings.Join(w, " ")
	}
	if m.Type == ofwire.TypeError {
		e, err := ofwire.DecodeError(m.Body)
		if err != nil {
			t.Fatal(err)
		}
		return s + "ERROR " + ofwire.ErrorTypeName(e.Type) + "/" + ofwire.ErrorCodeName(e.Type, e.Code)
	}
	return s + m.Type.String()
}

// drain sends a barrier on c and returns everything before its reply, port status included.
func drain(t testing.TB, c *ctlConn) []ofwire.Message {
	t.Helper()
	xid := c.nextXid()
	c.send(ofwire.AppendEmpty(nil, ofwire.TypeBarrierRequest, xid))
	var before []ofwire.Message
	for {
		m, ok := c.next(10*time.Second, true)
		if !ok {
			t.Fatal("no barrier reply within 10s")
		}
		if m.Type == ofwire.TypeBarrierReply && m.Xid == xid {
			return before
		}
		before = append(before, m)
	}
}

// waitAsync reads c until a message with xid 0 (an asynchronous one) arrives, within 10s, and returns what it
// read.
func waitAsync(t testing.TB, c *ctlConn) []ofwire.Message {
	t.Helper()
	var got []ofwire.Message
	for {
		m, ok := c.next(10*time.Second, true)
		if !ok {
			t.Fatal("no asynchronous message within 10s")
		}
		got = append(got, m)
		if m.Xid == 0 {
			return got
		}
	}
}

func rawMsg(m ofwire.Message) []byte {
	return finish(append(appendHeader(nil, m.Type, m.Xid), m.Body...), 0)
}

// runRoleCase plays one case and returns the descriptions and the raw messages.
func runRoleCase(t *testing.T, tg *roleTarget, c roleCase, base uint32) ([]string, [][]byte) {
	t.Helper()
	// Both connections EQUAL, no flows, the case's flows.
	for i, cc := range tg.conns {
		cc.send(ofwire.AppendRole(nil, ofwire.TypeRoleRequest, base-20+uint32(i), ofwire.RoleEqual, 0))
	}
	a := tg.conns[0]
	a.send(flowModMsg(t, base-10, "table=255,actions=drop", fmOpts{cmd: ofwire.FlowDelete}))
	for i, f := range c.setup {
		a.send(flowModMsg(t, base-9+uint32(i), f, fmOpts{}))
	}
	for _, cc := range tg.conns {
		for _, m := range drain(t, cc) {
			if m.Type != ofwire.TypeRoleReply && m.Type != ofwire.TypePortStatus {
				t.Fatalf("%s: the reset before the case answered %s", tg.name, describeRole(t, "", m, base))
			}
		}
	}
	var desc []string
	var raw [][]byte
	names := [2]string{"A", "B"}
	record := func(i int, ms []ofwire.Message) {
		for _, m := range ms {
			desc = append(desc, describeRole(t, names[i], m, base))
			raw = append(raw, rawMsg(m))
		}
	}
	for i, st := range c.steps {
		var first []ofwire.Message // what connection st.on got while awaiting
		switch {
		case st.msg != nil:
			tg.conns[st.on].send(st.msg(t, base+uint32(i)))
			if st.await {
				first = waitAsync(t, tg.conns[st.on])
			}
		default:
			st.ev(t, tg)
			if !st.silent {
				first = waitAsync(t, tg.conns[st.on])
			}
		}
		// The connection the step concerns first, then the other: an asynchronous message the step caused on the
		// other was queued before the barrier that follows it.
		for _, on := range []int{st.on, 1 - st.on} {
			ms := drain(t, tg.conns[on])
			if on == st.on {
				ms = append(first, ms...)
			}
			record(on, ms)
		}
	}
	fs, _ := tg.conns[0].flowStats(0, 0) // a step may have replaced the connection
	var fl []string
	for _, f := range fs {
		fl = append(fl, fmt.Sprintf(" p%d %#x", f.Flow.Priority, f.Flow.Cookie))
	}
	slices.Sort(fl)
	return append(desc, "flows:"+strings.Join(fl, ";")), raw
}

// maskRole blanks what may differ between the simulator and OVS without being a difference in behaviour: a
// port's hardware description in a PORT_STATUS, its Ethernet address (OVS picks its own for a dummy port) and
// its features and speeds (zero on a dummy port, 10 Gb/s copper on a simulated one); a removed flow's age.
func maskRole(b []byte) []byte {
	b = slices.Clone(b)
	if len(b) >= 28 && ofwire.Type(b[1]) == ofwire.TypeFlowRemoved {
		clear(b[20:28])
	}
	if len(b) == 80 && ofwire.Type(b[1]) == ofwire.TypePortStatus {
		clear(b[24:30])
		clear(b[56:80])
	}
	return b
}

// simRoleTarget is a simulated switch connected to two controllers.
func simRoleTarget(t *testing.T) *roleTarget {
	a, b := newCtl(t), newCtl(t)
	sw := startSwitch(t, a.ln.Addr().String(), 1, 2, func(c *Config) { c.Controllers = []string{b.ln.Addr().String()} })
	tg := &roleTarget{name: "simulator", ctls: [2]*testCtl{a, b}, conns: [2]*ctlConn{a.accept(), b.accept()}}
	tg.packet = func(t *testing.T, port uint32, frame []byte) {
		fr, err := dataplane.ParseFrame(frame)
		if err != nil {
			t.Fatal(err)
		}
		fr.InPort = port
		sw.Bridge().Process(fr)
	}
	tg.delPort = func(t *testing.T, port uint32) {
		if err := sw.RemovePort(port); err != nil {
			t.Fatal(err)
		}
	}
	tg.restart = func(*testing.T) { sw.Restart() }
	return tg
}

// ovsRoleTarget is a real ovs-vswitchd bridge like the simulated one, with two controller targets; nil where OVS
// is not installed.
func ovsRoleTarget(t *testing.T) *roleTarget {
	if !ovstest.Available() {
		t.Log("ovs-vswitchd is not installed: checking the simulator against the recorded OVS answers only")
		return nil
	}
	a, b := newCtl(t), newCtl(t)
	o := ovstest.Must(t, ovstest.Options{})
	o.Vsctl("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=dummy", "fail_mode=secure", "protocols=OpenFlow13",
		"--", "add-port", "br0", "p1", "--", "set", "interface", "p1", "type=dummy", "ofport_request=1",
		"--", "add-port", "br0", "p2", "--", "set", "interface", "p2", "type=dummy", "ofport_request=2")
	o.Vsctl("set-controller", "br0", "tcp:"+a.ln.Addr().String(), "tcp:"+b.ln.Addr().String())
	tg := &roleTarget{name: "real OVS", ctls: [2]*testCtl{a, b}, conns: [2]*ctlConn{a.accept(), b.accept()}}
	tg.packet = func(t *testing.T, port uint32, frame []byte) {
		o.Appctl("netdev-dummy/receive", fmt.Sprintf("p%d", port), hex.EncodeToString(frame))
	}
	tg.delPort = func(t *testing.T, port uint32) { o.Vsctl("del-port", "br0", fmt.Sprintf("p%d", port)) }
	tg.restart = func(t *testing.T) {
		if err := o.StopVswitchd(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := o.StartVswitchd(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return tg
}

// TestRolesAsOVS plays role cases on a simulated switch and, where it runs, on a real ovs-vswitchd, each with two
// controller connections, and holds both to the table, which records what OVS 3.1 answers; the messages of the
// two must be equal byte for byte (but for a port's Ethernet address).
func TestRolesAsOVS(t *testing.T) {
	sim := simRoleTarget(t)
	ovs := ovsRoleTarget(t)
	for i, c := range roleCases() {
		t.Run(c.name, func(t *testing.T) {
			base := uint32(20000 + 1000*i)
			got, simRaw := runRoleCase(t, sim, c, base)
			if !slices.Equal(got, c.want) {
				t.Errorf("simulator:\n got %q\nwant %q", got, c.want)
			}
			if ovs == nil {
				return
			}
			got, ovsRaw := runRoleCase(t, ovs, c, base)
			if !slices.Equal(got, c.want) {
				t.Errorf("real OVS:\n got %q\nthe table says %q", got, c.want)
			}
			if len(simRaw) != len(ovsRaw) {
				t.Errorf("the simulator sent %d messages, real OVS %d", len(simRaw), len(ovsRaw))
				return
			}
			for j := range simRaw {
				if s, o := maskRole(simRaw[j]), maskRole(ovsRaw[j]); !bytes.Equal(s, o) {
					t.Errorf("message %d differs:\n simulator % x\n real OVS  % x", j, s, o)
				}
			}
		})
	}
}
