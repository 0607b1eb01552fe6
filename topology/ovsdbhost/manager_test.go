package ovsdbhost

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/digitalocean/go-openvswitch/ovsdb"

	"portmirror/model"
	"portmirror/topology"
)

type ovsdbOp = ovsdb.TransactOp

func asTx(err error, tx **TxError) bool { return errors.As(err, tx) }

func ifaceByName(ifs []topology.Interface, name string) (topology.Interface, bool) {
	for _, i := range ifs {
		if i.Name == name {
			return i, true
		}
	}
	return topology.Interface{}, false
}

func TestManagerBridgeSettingsAndInterfaces(t *testing.T) {
	e := startOVSDB(t, false)
	e.vsctl("add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=netdev")
	e.vsctl("add-port", "br-int", "vnet0", "--", "set", "interface", "vnet0",
		"external_ids:iface-id=nic-1", "external_ids:attached-mac=02:AA:00:00:00:01")
	e.vsctl("add-port", "br-int", "vnet1")
	e.vsctl("set-controller", "br-int", "tcp:127.0.0.1:9") // someone else's controller

	m := startManager(t, HostConfig{Address: e.addr(), Bridge: "br-int", ControllerTargets: []string{"tcp:127.0.0.1:6653"}})
	waitApplied(t, m, 0)

	if got := e.get("bridge", "br-int", "fail_mode"); got != "secure" {
		t.Errorf("fail_mode = %q", got)
	}
	if got := e.get("bridge", "br-int", "protocols"); got != "[OpenFlow13]" {
		t.Errorf("protocols = %q", got)
	}
	ctls := strings.Fields(e.vsctl("get-controller", "br-int"))
	slices.Sort(ctls)
	if !slices.Equal(ctls, []string{"tcp:127.0.0.1:6653", "tcp:127.0.0.1:9"}) {
		t.Errorf("controllers = %v, want ours added and the other kept", ctls)
	}

	ifs := m.Interfaces()
	if len(ifs) != 3 {
		t.Fatalf("interfaces = %+v, want br-int, vnet0, vnet1", ifs)
	}
	v0, _ := ifaceByName(ifs, "vnet0")
	if v0.IfaceID != "nic-1" || v0.AttachedMAC != "02:aa:00:00:00:01" || v0.OFPort != -1 {
		t.Errorf("vnet0 = %+v", v0)
	}
	if br, _ := ifaceByName(ifs, "br-int"); br.Type != "internal" {
		t.Errorf("br-int interface = %+v", br)
	}

	// No vswitchd: no datapath id until one appears; the manager polls for it without being asked.
	if d := m.DatapathID(); d != "" {
		t.Errorf("datapath id = %q before vswitchd set one", d)
	}
	drain(m.Changed())
	e.vsctl("set", "bridge", "br-int", "datapath_id=00000000000000AB")
	eventually(t, 5*time.Second, func() (bool, string) {
		return m.DatapathID() == "00000000000000ab", "datapath id " + m.DatapathID()
	})
	expectSignal(t, m.Changed())

	// A new interface is seen on Refresh (the controller calls it on a port-status event).
	e.vsctl("add-port", "br-int", "vnet2", "--", "set", "interface", "vnet2", "external_ids:iface-id=nic-2")
	m.Refresh()
	eventually(t, 5*time.Second, func() (bool, string) {
		i, ok := ifaceByName(m.Interfaces(), "vnet2")
		return ok && i.IfaceID == "nic-2", fmt.Sprintf("interfaces %+v", m.Interfaces())
	})
	expectSignal(t, m.Changed())

	// The targets change at run time: ours are replaced (a duplicate collapses), the other controller's row is
	// the same row, unchanged.
	foreign := e.vsctl("--bare", "--columns=_uuid,external_ids", "find", "controller", "target=\"tcp:127.0.0.1:9\"")
	gen, err := m.SetControllerTargets([]string{"tcp:127.0.0.1:7000", "tcp:127.0.0.1:7000"})
	if err != nil {
		t.Fatal(err)
	}
	waitApplied(t, m, gen)
	ctls = strings.Fields(e.vsctl("get-controller", "br-int"))
	slices.Sort(ctls)
	if !slices.Equal(ctls, []string{"tcp:127.0.0.1:7000", "tcp:127.0.0.1:9"}) {
		t.Errorf("controllers = %v, want ours replaced and the other kept", ctls)
	}
	if n := strings.Count(e.vsctl("list", "controller"), "_uuid"); n != 2 {
		t.Errorf("%d Controller rows, want 2 (ours replaced, not added)", n)
	}
	if got := e.vsctl("--bare", "--columns=_uuid,external_ids", "find", "controller", "target=\"tcp:127.0.0.1:9\""); got != foreign {
		t.Errorf("the other controller's row was %q, is %q", foreign, got)
	}
	if got := m.Config().ControllerTargets; !slices.Equal(got, []string{"tcp:127.0.0.1:7000"}) {
		t.Errorf("Config().ControllerTargets = %q", got)
	}
}

func drain(c <-chan struct{}) {
	select {
	case <-c:
	default:
	}
}

func expectSignal(t *testing.T, c <-chan struct{}) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(5 * time.Second):
		t.Error("no change signal")
	}
}

func TestManagerLeavesControllersAloneWithoutTarget(t *testing.T) {
	e := startOVSDB(t, false)
	e.vsctl("add-br", "br-int")
	e.vsctl("set-controller", "br-int", "tcp:127.0.0.1:9")
	m := startManager(t, HostConfig{Address: e.addr()})
	waitApplied(t, m, 0)
	if got := e.vsctl("get-controller", "br-int"); got != "tcp:127.0.0.1:9" {
		t.Errorf("controllers = %q", got)
	}
	if got := e.get("bridge", "br-int", "fail_mode"); got != "secure" {
		t.Errorf("fail_mode = %q", got)
	}
}

func TestManagerCreatesMissingBridge(t *testing.T) {
	e := startOVSDB(t, false)
	e.vsctl("add-br", "br-ex", "--", "set", "bridge", "br-ex", "datapath_type=netdev")
	m := startManager(t, HostConfig{Address: e.addr(), Bridge: "br-int", ControllerTargets: []string{"tcp:127.0.0.1:6653"}})
	waitApplied(t, m, 0)
	if got := e.get("bridge", "br-int", "datapath_type"); got != "netdev" {
		t.Errorf("datapath_type = %q, want inherited netdev", got)
	}
	if got := e.get("interface", "br-int", "type"); got != "internal" {
		t.Errorf("br-int interface type = %q", got)
	}
	if got := e.get("bridge", "br-int", "fail_mode"); got != "secure" {
		t.Errorf("fail_mode = %q", got)
	}
	if got := e.vsctl("get-controller", "br-int"); got != "tcp:127.0.0.1:6653" {
		t.Errorf("controller = %q", got)
	}
	if got := e.vsctl("list-br"); got != "br-ex\nbr-int" {
		t.Errorf("bridges = %q", got)
	}
	if got := e.vsctl("get-controller", "br-ex"); got != "" {
		t.Errorf("br-ex controller changed: %q", got)
	}
}

func TestManagerCreatesBridgeWithGivenDatapathType(t *testing.T) {
	e := startOVSDB(t, false)
	m := startManager(t, HostConfig{Address: e.addr(), Bridge: "br-mon", DatapathType: "dummy"})
	waitApplied(t, m, 0)
	if got := e.get("bridge", "br-mon", "datapath_type"); got != "dummy" {
		t.Errorf("datapath_type = %q", got)
	}
}

func TestManagerOverTCP(t *testing.T) {
	e := startOVSDB(t, true)
	e.vsctl("add-br", "br-int")
	e.vsctl("add-port", "br-int", "tap9", "--", "set", "interface", "tap9", "external_ids:iface-id=nic-9")
	m := startManager(t, HostConfig{Address: e.addr()})
	waitApplied(t, m, 0)
	if i, ok := ifaceByName(m.Interfaces(), "tap9"); !ok || i.IfaceID != "nic-9" {
		t.Errorf("interfaces over %s: %+v", e.addr(), m.Interfaces())
	}
}

func TestNewManagerRejectsBadConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  HostConfig
		want string
	}{
		{HostConfig{Address: "unix:/x"}, "host uuid is empty"},
		{HostConfig{HostUUID: "h", Address: "/var/run/db.sock"}, "want unix:PATH, tcp:IP:PORT or ssl:IP:PORT"},
		{HostConfig{HostUUID: "h", Address: "tcp:127.0.0.1"}, "want tcp:IP:PORT"},
		{HostConfig{HostUUID: "h", Address: "unix:"}, "want unix:PATH"},
		{HostConfig{HostUUID: "h", Address: "unix:/x", ControllerTargets: []string{"tcp:127.0.0.1:6653", ""}}, `controller target ""`},
		{HostConfig{HostUUID: "h", Address: "unix:/x", ControllerTargets: []string{"127.0.0.1"}}, "want TYPE:ADDRESS"},
	} {
		_, err := NewManager(tc.cfg, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewManager(%+v) = %v, want error containing %q", tc.cfg, err, tc.want)
		}
	}
}

func TestTxErrorsAreReported(t *testing.T) {
	// A transaction the server refuses must come back as an error naming the operation, not be swallowed.
	e := startOVSDB(t, false)
	c, err := dial(t.Context(), e.addr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	_, err = c.transact(t.Context(), []ovsdbOp{
		opSelect{Table: "Bridge"},
		opInsert{Table: "Port", Row: map[string]any{"name": "x", "tag": 5000}},
	}, []string{"read", "insert a port with a bad tag"})
	var tx *TxError
	if !asTx(err, &tx) || tx.Op != 1 || !strings.Contains(err.Error(), "insert a port with a bad tag") {
		t.Fatalf("err = %v, want a TxError for op 1", err)
	}
	// A commit error (referential integrity: a Port without interfaces is invalid) is reported too.
	_, err = c.transact(t.Context(), []ovsdbOp{opInsert{Table: "Port", Row: map[string]any{"name": "y"}}}, []string{"insert an empty port"})
	if !asTx(err, &tx) {
		t.Fatalf("err = %v, want a TxError", err)
	}
	res, err := c.transact(t.Context(), []ovsdbOp{opSelect{Table: "Open_vSwitch", Columns: []string{"_uuid"}}}, []string{"read"})
	if err != nil || len(res) != 1 || len(res[0].Rows) != 1 {
		t.Fatalf("select after errors: %v %+v", err, res)
	}
	b, _ := json.Marshal(res[0].Rows[0])
	if !strings.Contains(string(b), "uuid") {
		t.Errorf("row %s", b)
	}
}

// TestFeedBindsThroughTheView: OVSDB's iface-id reaches the view, which binds the NIC once the bridge's switch
// is connected with that port, and the binding follows an attached-mac change.
func TestFeedBindsThroughTheView(t *testing.T) {
	e := startOVSDB(t, false)
	e.vsctl("add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_id=0000000000000042")
	v := topology.NewView()
	v.SetInventory(topology.Inventory{
		Hosts: []model.Host{{UUID: "host-1", Bridge: "br-int", OVSDBAddress: e.addr()}},
		VMs:   []model.VmInstance{{UUID: "vm-1", HostUUID: "host-1"}},
		Nics:  []model.VmNic{{UUID: "nic-1", VmUUID: "vm-1", MAC: "02:00:00:00:00:01"}},
	})
	m := startManager(t, HostConfig{HostUUID: "host-1", Address: e.addr()})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { m.Feed(ctx, v); close(done) }()
	defer func() { cancel(); <-done }()

	eventually(t, 5*time.Second, func() (bool, string) {
		return v.HostDatapathID("host-1") == "0000000000000042", "host datapath id " + v.HostDatapathID("host-1")
	})
	v.SwitchConnected("42", "127.0.0.1:1", time.Now(), []model.SwitchPort{{PortNo: 7, Name: "vnet0", Up: true}})
	if b, _ := v.Binding("nic-1"); b.Bound || !strings.Contains(b.Reason, "iface-id=nic-1") {
		t.Fatalf("before the interface exists: %+v", b)
	}
	e.vsctl("add-port", "br-int", "vnet0", "--", "set", "interface", "vnet0",
		"external_ids:iface-id=nic-1", "external_ids:attached-mac=02:00:00:00:00:01")
	m.Refresh()
	eventually(t, 5*time.Second, func() (bool, string) {
		b, _ := v.Binding("nic-1")
		return b.Bound && b.PortNo == 7, fmt.Sprintf("binding %+v", b)
	})
	e.vsctl("set", "interface", "vnet0", "external_ids:attached-mac=02:00:00:00:00:99")
	m.Refresh()
	eventually(t, 5*time.Second, func() (bool, string) {
		b, _ := v.Binding("nic-1")
		return !b.Bound && strings.Contains(b.Reason, "attached-mac"), fmt.Sprintf("binding %+v", b)
	})
}
