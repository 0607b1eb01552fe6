package ofsim

import (
	"maps"
	"math"
	"testing"

	"portmirror/ofwire"
	"portmirror/simulator/dataplane"
)

// threeCtl runs a switch connected to three controllers and returns its connections in the order of addrs.
func threeCtl(t *testing.T) (*Switch, []*testCtl, []*ctlConn) {
	t.Helper()
	ctls := []*testCtl{newCtl(t), newCtl(t), newCtl(t)}
	sw := startSwitch(t, ctls[0].ln.Addr().String(), 1, 2, func(c *Config) {
		c.Controllers = []string{ctls[1].ln.Addr().String(), ctls[2].ln.Addr().String()}
	})
	var ccs []*ctlConn
	for _, c := range ctls {
		ccs = append(ccs, c.accept())
	}
	waitFor(t, "three connections", func() bool { return sw.ConnectedControllers() == 3 })
	return sw, ctls, ccs
}

// role asks for a role and returns the reply, or the error's type/code name.
func role(t *testing.T, cc *ctlConn, r ofwire.Role, gen uint64) (ofwire.RoleMsg, string) {
	t.Helper()
	xid := cc.nextXid()
	cc.send(ofwire.AppendRole(nil, ofwire.TypeRoleRequest, xid, r, gen))
	for _, m := range cc.barrier() {
		switch {
		case m.Xid != xid:
			t.Fatalf("unexpected %v xid %d", m.Type, m.Xid)
		case m.Type == ofwire.TypeRoleReply:
			rm, err := ofwire.DecodeRole(m.Body)
			if err != nil {
				t.Fatal(err)
			}
			return rm, ""
		case m.Type == ofwire.TypeError:
			e, _ := ofwire.DecodeError(m.Body)
			return ofwire.RoleMsg{}, ofwire.ErrorTypeName(e.Type) + "/" + ofwire.ErrorCodeName(e.Type, e.Code)
		}
	}
	t.Fatal("no answer to the role request")
	return ofwire.RoleMsg{}, ""
}

// TestRoleStateMachine plays role requests from three controllers of one switch, each step checked.
func TestRoleStateMachine(t *testing.T) {
	_, _, cc := threeCtl(t)
	type step struct {
		on      int
		role    ofwire.Role
		gen     uint64
		want    ofwire.RoleMsg // the reply
		err     string         // or the error
		demoted int            // the connection that gets a ROLE_STATUS, -1 none
	}
	M, S, E, N := ofwire.RoleMaster, ofwire.RoleSlave, ofwire.RoleEqual, ofwire.RoleNoChange
	steps := []step{
		{0, N, 0, ofwire.RoleMsg{Role: E, GenerationID: math.MaxUint64}, "", -1},
		{0, M, 1, ofwire.RoleMsg{Role: M, GenerationID: 1}, "", -1},
		{1, S, 1, ofwire.RoleMsg{Role: S, GenerationID: 1}, "", -1},
		{2, S, 0, ofwire.RoleMsg{}, "ROLE_REQUEST_FAILED/STALE", -1},
		{2, E, 0, ofwire.RoleMsg{Role: E, GenerationID: 1}, "", -1},
		{1, M, 2, ofwire.RoleMsg{Role: M, GenerationID: 2}, "", 0},
		{0, M, 1, ofwire.RoleMsg{}, "ROLE_REQUEST_FAILED/STALE", -1},
		{0, N, 9, ofwire.RoleMsg{Role: S, GenerationID: 2}, "", -1},
		{2, M, 2, ofwire.RoleMsg{Role: M, GenerationID: 2}, "", 1},
		{2, M, 3, ofwire.RoleMsg{Role: M, GenerationID: 3}, "", -1},
		{0, E, 0, ofwire.RoleMsg{Role: E, GenerationID: 3}, "", -1},
		{0, M, 1<<63 + 3, ofwire.RoleMsg{}, "ROLE_REQUEST_FAILED/STALE", -1}, // 2^63 ahead is behind
		{0, ofwire.Role(7), 9, ofwire.RoleMsg{}, "ROLE_REQUEST_FAILED/BAD_ROLE", -1},
	}
	for i, s := range steps {
		got, err := role(t, cc[s.on], s.role, s.gen)
		if got != s.want || err != s.err {
			t.Fatalf("step %d: connection %d asks %v gen %d: got %+v %q, want %+v %q", i, s.on, s.role, s.gen, got, err, s.want, s.err)
		}
		for j := range cc {
			if j == s.on {
				continue
			}
			ms := cc[j].barrier()
			if j != s.demoted {
				if len(ms) != 0 {
					t.Fatalf("step %d: connection %d got %v", i, j, ms[0].Type)
				}
				continue
			}
			if len(ms) != 1 || ms[0].Type != ofwire.TypeExperimenter || ms[0].Xid != 0 {
				t.Fatalf("step %d: connection %d got %d messages, want one ROLE_STATUS", i, j, len(ms))
			}
			exp, _ := ofwire.DecodeExperimenter(ms[0].Body)
			rs, err := ofwire.DecodeRoleStatus(exp.Data)
			if err != nil || exp.ExpType != ofwire.ONFRoleStatus || rs != (ofwire.RoleStatus{Role: S, Reason: ofwire.RoleReasonMasterRequest, GenerationID: s.want.GenerationID}) {
				t.Fatalf("step %d: connection %d got %+v (%v), want ROLE_STATUS SLAVE", i, j, rs, err)
			}
		}
	}
}

// TestSlaveChangesNothing: what a SLAVE sends to change the switch is refused and leaves its flows as they were,
// a bundle its connection opened as MASTER included; an EQUAL beside the master writes.
func TestSlaveChangesNothing(t *testing.T) {
	sw, _, cc := threeCtl(t)
	role(t, cc[0], ofwire.RoleMaster, 5)
	cc[0].send(flowModMsg(t, 1, "priority=5,cookie=0x1,actions=drop", fmOpts{}))
	cc[0].send(ctrlMsg(2, 9, ofwire.BundleOpenRequest))
	cc[0].send(bundleAddRaw(3, 9, atomicOrdered, flowModMsg(t, 3, "priority=6,cookie=0x2,actions=drop", fmOpts{})))
	if ms := cc[0].barrier(); len(ms) != 1 {
		t.Fatalf("master: %d replies, want the bundle's open reply", len(ms))
	}
	role(t, cc[1], ofwire.RoleMaster, 6) // cc[0] is a SLAVE now
	cc[0].barrier()                      // its ROLE_STATUS
	for i, msg := range [][]byte{
		flowModMsg(t, 10, "priority=7,cookie=0x3,actions=drop", fmOpts{}),
		flowModMsg(t, 11, "table=255,actions=drop", fmOpts{cmd: ofwire.FlowDelete}),
		ctrlMsg(12, 9, ofwire.BundleCommitRequest),
		packetOut(13),
	} {
		if got := replyFor(t, cc[0], msg); got != "BAD_REQUEST/IS_SLAVE" {
			t.Errorf("message %d from the slave: %q, want BAD_REQUEST/IS_SLAVE", i, got)
		}
	}
	if got := replyFor(t, cc[2], flowModMsg(t, 14, "priority=8,cookie=0x4,actions=drop", fmOpts{})); got != "" {
		t.Errorf("the equal's flow_mod: %q", got)
	}
	var cookies []uint64
	for _, f := range sw.Bridge().Flows(dataplane.AllFlows()) {
		cookies = append(cookies, f.Cookie)
	}
	if len(cookies) != 2 || cookies[0]+cookies[1] != 0x5 {
		t.Errorf("flows with cookies %#x, want 0x1 (the master's) and 0x4 (the equal's)", cookies)
	}
	if got := sw.Roles(); !maps.Equal(got, map[string]ofwire.Role{cc[0].nc.LocalAddr().String(): ofwire.RoleSlave,
		cc[1].nc.LocalAddr().String(): ofwire.RoleMaster, cc[2].nc.LocalAddr().String(): ofwire.RoleEqual}) {
		t.Errorf("roles %v", got)
	}
}

// TestAsyncByRole: PORT_STATUS reaches every connection, PACKET_IN only the MASTER and EQUAL ones.
func TestAsyncByRole(t *testing.T) {
	sw, _, cc := threeCtl(t)
	role(t, cc[0], ofwire.RoleMaster, 1)
	role(t, cc[1], ofwire.RoleSlave, 1)
	cc[0].send(flowModMsg(t, 1, "priority=5,cookie=0x9,in_port=1,actions=output:CONTROLLER", fmOpts{}))
	cc[0].barrier()
	if err := sw.SetPortUp(2, false); err != nil {
		t.Fatal(err)
	}
	fr, err := dataplane.ParseFrame(udpFrame())
	if err != nil {
		t.Fatal(err)
	}
	fr.InPort = 1
	if res := sw.Bridge().Process(fr); len(res.ToController) != 1 {
		t.Fatalf("the frame went to the controller %d times:\n%s", len(res.ToController), res.TraceString())
	}
	for i, want := range [][]ofwire.Type{
		{ofwire.TypePortStatus, ofwire.TypePacketIn}, {ofwire.TypePortStatus}, {ofwire.TypePortStatus, ofwire.TypePacketIn},
	} {
		var got []ofwire.Type
		for _, m := range drain(t, cc[i]) {
			got = append(got, m.Type)
		}
		if !equalTypes(got, want) {
			t.Errorf("connection %d got %v, want %v", i, got, want)
		}
	}
}

func equalTypes(a, b []ofwire.Type) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestRolesAcrossReconnects: each controller's connection comes and goes on its own; a new connection is EQUAL,
// the master election id outlives the connections but not a restart of the switch.
func TestRolesAcrossReconnects(t *testing.T) {
	sw, ctls, cc := threeCtl(t)
	role(t, cc[0], ofwire.RoleMaster, 7)
	addr0 := cc[0].nc.LocalAddr().String()

	sw.DisconnectFrom(addr0)
	waitFor(t, "two connections", func() bool { return sw.ConnectedControllers() == 2 })
	if sw.Master() != "" {
		t.Fatalf("master %q after its connection dropped", sw.Master())
	}
	cc0 := ctls[0].accept()
	waitFor(t, "three connections", func() bool { return sw.ConnectedControllers() == 3 })
	if got, _ := role(t, cc0, ofwire.RoleNoChange, 0); got != (ofwire.RoleMsg{Role: ofwire.RoleEqual, GenerationID: 7}) {
		t.Fatalf("reconnected: %+v, want EQUAL with the election id 7", got)
	}
	if _, err := role(t, cc[1], ofwire.RoleMaster, 6); err != "ROLE_REQUEST_FAILED/STALE" {
		t.Fatalf("generation 6 after 7 on another connection: %q, want STALE", err)
	}
	if got, _ := role(t, cc[2], ofwire.RoleNoChange, 0); got.Role != ofwire.RoleEqual {
		t.Fatalf("the third connection, untouched: %+v", got)
	}

	sw.Restart()
	for i, c := range ctls {
		cc[i] = c.accept()
	}
	waitFor(t, "three connections after the restart", func() bool { return sw.ConnectedControllers() == 3 })
	if got, _ := role(t, cc[1], ofwire.RoleSlave, 1); got != (ofwire.RoleMsg{Role: ofwire.RoleSlave, GenerationID: 1}) {
		t.Fatalf("after a restart: %+v, want SLAVE with generation 1 accepted", got)
	}
	if g, ok := sw.GenerationID(); g != 1 || !ok {
		t.Fatalf("GenerationID() = %d, %v", g, ok)
	}
}
