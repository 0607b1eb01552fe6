package ovsdbhost

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"portmirror/model"
)

// TestReconnectAndResync restarts ovsdb-server under a running manager (once cleanly, once killed): the manager
// reconnects by itself, and its periodic resync repairs what changed behind its back.
func TestReconnectAndResync(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			e := startOVSDB(t, false)
			e.vsctl("add-br", "br-int")
			e.vsctl("add-port", "br-int", "vnet0", "--", "set", "interface", "vnet0", "external_ids:iface-id=nic-0")
			m := startManager(t, HostConfig{Address: e.addr(), ResyncInterval: 300 * time.Millisecond, CallTimeout: 2 * time.Second})
			gen, err := m.SetDesired([]TunnelSpec{{FlowNetworkUUID: fn1, LocalIP: "198.18.0.1"}}, []string{"vnet0"})
			if err != nil {
				t.Fatal(err)
			}
			waitApplied(t, m, gen)

			if err := e.StopDB(sig); err != nil {
				t.Log(err)
			}
			eventually(t, 5*time.Second, func() (bool, string) {
				s := m.Status()
				return !s.Connected && s.LastError != "", fmt.Sprintf("status %+v after ovsdb-server stopped", s)
			})
			// Failing reconnects while the server is down must not spin or pile up.
			time.Sleep(300 * time.Millisecond)
			if s := m.Status(); s.Connected || s.Connects != 1 {
				t.Fatalf("status %+v while the server is down", s)
			}

			if err := e.StartDB(context.Background()); err != nil {
				t.Fatal(err)
			}
			eventually(t, 10*time.Second, func() (bool, string) {
				s := m.Status()
				return s.Connected && s.Connects == 2, fmt.Sprintf("status %+v after restart", s)
			})
			// Someone deletes our tunnel port and un-isolates the port; the periodic resync (no Refresh) repairs it.
			tun := model.TunnelPortName(fn1)
			e.vsctl("del-port", "br-int", tun)
			e.vsctl("clear", "port", "vnet0", "tag")
			eventually(t, 10*time.Second, func() (bool, string) {
				ports := e.vsctl("list-ports", "br-int")
				tag := e.get("port", "vnet0", "tag")
				return strings.Contains(ports, tun) && tag == "4095", fmt.Sprintf("ports %q, vnet0 tag %s", ports, tag)
			})
			if i, ok := ifaceByName(m.Interfaces(), "vnet0"); !ok || i.IfaceID != "nic-0" {
				t.Errorf("interfaces after reconnect: %+v", m.Interfaces())
			}
		})
	}
}

// TestRunStopsWhileServerIsAbsent: Run returns promptly on cancel even when it never connected.
func TestRunStopsWhileServerIsAbsent(t *testing.T) {
	dir := t.TempDir()
	m := startManager(t, HostConfig{Address: "unix:" + dir + "/nothing.sock"})
	eventually(t, 5*time.Second, func() (bool, string) {
		s := m.Status()
		return strings.Contains(s.LastError, "nothing.sock"), fmt.Sprintf("status %+v", s)
	})
}
