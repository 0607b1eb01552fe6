package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMeasure reports the daemon's idle RSS and the latency of createPortMirror with 10 sessions over HTTP.
// It runs only with PORTMIRROR_MEASURE=1 (it takes a while and its numbers are for people); it fails when a
// number is far outside what the design allows.
func TestMeasure(t *testing.T) {
	if os.Getenv("PORTMIRROR_MEASURE") != "1" {
		t.Skip("set PORTMIRROR_MEASURE=1 to measure")
	}
	d := startDaemon(t, t.TempDir())
	time.Sleep(2 * time.Second) // let start-up allocations settle before reading the idle RSS
	rss := vmRSS(t, d.cmd.Process.Pid)
	t.Logf("idle RSS after start: %d KiB", rss)
	if rss > 200*1024 {
		t.Errorf("idle RSS %d KiB is over 200 MiB", rss)
	}

	const calls, sessions = 200, 10
	populate(d, sessions) // cluster, hosts, monitor VM with capture NIC uuidN(0xdd), 10 source NICs, one port mirror
	var sess []any
	for i := range sessions {
		sess = append(sess, map[string]any{"name": fmt.Sprintf("s%d", i), "type": "BIDIRECTION",
			"sourceNicUuid": uuidN(0x1000 + i), "destinationNicUuid": uuidN(0xdd)})
	}
	client := &http.Client{}
	var lat []time.Duration
	for i := range calls {
		fn := uuidN(0x10000 + i)
		d.gql(`mutation($u: ID!, $c: String!) { createFlowNetwork(input: {uuid: $u, name: "fn", cidr: $c, clusterUuids: ["`+uuidN(0xc1)+`"]}) { uuid } }`,
			map[string]any{"u": fn, "c": fmt.Sprintf("198.18.%d.0/24", i%250+1)})
		body, _ := json.Marshal(map[string]any{
			"query":     `mutation($in: PortMirrorInput!) { createPortMirror(input: $in) { uuid sessions { uuid tunnelKey } } }`,
			"variables": map[string]any{"in": map[string]any{"name": fmt.Sprintf("pm%d", i), "flowNetworkUuid": fn, "enable": true, "sessions": sess}},
		})
		start := time.Now()
		resp, err := client.Post("http://"+d.addr+"/graphql", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var r struct {
			Errors []any `json:"errors"`
		}
		err = json.NewDecoder(resp.Body).Decode(&r)
		resp.Body.Close()
		lat = append(lat, time.Since(start))
		if err != nil || resp.StatusCode != 200 || len(r.Errors) > 0 {
			t.Fatalf("createPortMirror %d: %d %v %v", i, resp.StatusCode, err, r.Errors)
		}
	}
	slices.Sort(lat)
	p := func(q float64) time.Duration { return lat[int(q*float64(len(lat)-1))] }
	t.Logf("createPortMirror with %d sessions over HTTP, %d calls: p50 %v, p90 %v, p99 %v, max %v",
		sessions, calls, p(0.5), p(0.9), p(0.99), lat[len(lat)-1])
	t.Logf("RSS after the calls: %d KiB", vmRSS(t, d.cmd.Process.Pid))
	if p(0.5) > time.Second {
		t.Errorf("p50 %v is over a second", p(0.5))
	}
}

func vmRSS(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			if err != nil {
				t.Fatalf("VmRSS %q: %v", rest, err)
			}
			return n
		}
	}
	t.Fatal("no VmRSS in /proc/PID/status")
	return 0
}
