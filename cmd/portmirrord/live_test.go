package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"portmirror/simulator/dataplane"
	"portmirror/simulator/ofsim"
)

// TestDaemonLiveState: a simulated OVS bridge connects to the daemon's OpenFlow listener; the API then shows the
// switch, the host connected with its datapath id, the NICs bound to their ports, and the session ACTIVE.
func TestDaemonLiveState(t *testing.T) {
	d := startDaemon(t, t.TempDir())
	d.mu.Lock()
	ofAddr := d.ofAddr
	d.mu.Unlock()
	if ofAddr == "" {
		t.Skip("this build of portmirrord has no OpenFlow listener")
	}

	br := dataplane.NewBridge("br-int", dataplane.MAC{0x02, 0, 0, 0, 0, 0x01})
	for _, p := range []dataplane.Port{{No: 1, Name: "vnet-web", Up: true}, {No: 2, Name: "vnet-cap", Up: true}} {
		if err := br.AddPort(p); err != nil {
			t.Fatal(err)
		}
	}
	sw := ofsim.New(ofsim.Config{Controller: ofAddr, DatapathID: 0xabc1, Bridge: br})
	ctx, cancel := context.WithCancel(context.Background())
	swDone := make(chan struct{})
	go func() { defer close(swDone); _ = sw.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-swDone })

	d.gql(`mutation { createCluster(input: {uuid: "`+uuidN(0xc1)+`", name: "c"}) { uuid } }`, nil)
	d.gql(`mutation { registerHost(input: {uuid: "`+uuidN(0xa1)+`", name: "hv1", clusterUuid: "`+uuidN(0xc1)+`", datapathId: "abc1"}) { uuid } }`, nil)
	d.gql(`mutation($in: VmInstanceInput!) { createVmInstance(input: $in) { uuid } }`, map[string]any{"in": map[string]any{
		"name": "web", "hostUuid": uuidN(0xa1), "nics": []any{
			map[string]any{"uuid": uuidN(0xd1), "mac": "52:54:00:00:00:d1", "isDefault": true, "portName": "vnet-web"}}}})
	d.gql(`mutation($in: VmInstanceInput!) { createVmInstance(input: $in) { uuid } }`, map[string]any{"in": map[string]any{
		"name": "monitor", "hostUuid": uuidN(0xa1), "nics": []any{
			map[string]any{"mac": "52:54:00:00:00:d2", "isDefault": true},
			map[string]any{"uuid": uuidN(0xd3), "mac": "52:54:00:00:00:d3", "portName": "vnet-cap"}}}})
	d.gql(`mutation { createFlowNetwork(input: {uuid: "`+uuidN(0xf1)+`", name: "fn", cidr: "198.18.0.0/24", clusterUuids: ["`+uuidN(0xc1)+`"]}) { uuid } }`, nil)
	d.gql(`mutation($in: PortMirrorInput!) { createPortMirror(input: $in) { uuid } }`, map[string]any{"in": map[string]any{
		"name": "pm", "flowNetworkUuid": uuidN(0xf1), "enable": true, "sessions": []any{map[string]any{
			"name": "s", "type": "BIDIRECTION", "sourceNicUuid": uuidN(0xd1), "destinationNicUuid": uuidN(0xd3)}}}})

	const q = `query($n: ID!, $h: ID!) {
	  switches { datapathId connected remoteAddress connectedAt flowCount host { name } ports { portNo name up } }
	  host(uuid: $h) { connected datapathId }
	  vmNic(uuid: $n) { port { datapathId portNo name up } }
	  portMirrors { sessions { status statusReason } }
	}`
	var last string
	deadline := time.Now().Add(20 * time.Second)
	for {
		data := d.gql(q, map[string]any{"n": uuidN(0xd1), "h": uuidN(0xa1)})
		b, _ := json.Marshal(data)
		last = string(b)
		if strings.Contains(last, `"status":"ACTIVE"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the session is not ACTIVE after 20s: %s", last)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, want := range []string{
		`"datapathId":"000000000000abc1"`, `"connected":true`, `"host":{"name":"hv1"}`,
		`"port":{"datapathId":"000000000000abc1","name":"vnet-web","portNo":1,"up":true}`,
		`"name":"vnet-cap","portNo":2`, `"remoteAddress":"127.0.0.1:`,
	} {
		if !strings.Contains(last, want) {
			t.Errorf("the live state lacks %s: %s", want, last)
		}
	}
	if strings.Contains(last, `"flowCount":0`) {
		t.Errorf("no flows counted on the switch: %s", last)
	}
	// /healthz is 200 with the controller up
	if code, body := d.get("/healthz"); code != 200 {
		t.Errorf("/healthz: %d %s", code, body)
	}
}
