package graphql

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"portmirror/service"
	"portmirror/store"
)

// env is the API over the real service and a real Badger store in a temporary directory.
type env struct {
	t   *testing.T
	st  *store.Store
	svc *service.Service
	h   *Handler
	srv *httptest.Server
}

func newEnv(t *testing.T, configure func(*Options)) *env {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	st, err := store.Open(context.Background(), store.Options{Dir: t.TempDir(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	svc := service.New(st, service.Options{Logger: log})
	opts := Options{Backend: svc, Logger: log}
	if configure != nil {
		configure(&opts)
	}
	h, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		_ = st.Close()
	})
	return &env{t: t, st: st, svc: svc, h: h, srv: srv}
}

// gqlError is one error of a response.
type gqlError struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

type result struct {
	status int
	Data   map[string]any `json:"data"`
	Errors []gqlError     `json:"errors"`
	raw    string
}

func (r result) code() string {
	if len(r.Errors) == 0 {
		return ""
	}
	c, _ := r.Errors[0].Extensions["code"].(string)
	return c
}

func (r result) rule() string {
	if len(r.Errors) == 0 {
		return ""
	}
	c, _ := r.Errors[0].Extensions["rule"].(string)
	return c
}

// post sends a GraphQL request with a bearer token ("" for none).
func (e *env) post(token, query string, vars map[string]any) result {
	e.t.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		e.t.Fatal(err)
	}
	return e.postRaw(token, "application/json", body)
}

func (e *env) postRaw(token, contentType string, body []byte) result {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/graphql", bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return e.do(req)
}

func (e *env) do(req *http.Request) result {
	e.t.Helper()
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	r := result{status: resp.StatusCode, raw: string(raw)}
	if ct := resp.Header.Get("Content-Type"); strings.HasPrefix(ct, "application/json") || strings.HasPrefix(ct, "application/graphql-response+json") {
		if err := json.Unmarshal(raw, &r); err != nil {
			e.t.Fatalf("response is not JSON: %v\n%s", err, raw)
		}
	}
	return r
}

// ok sends a request as the local actor and fails the test on any error.
func (e *env) ok(query string, vars map[string]any) map[string]any {
	e.t.Helper()
	r := e.post("", query, vars)
	if r.status != http.StatusOK || len(r.Errors) > 0 {
		e.t.Fatalf("%s\nvariables %v\nstatus %d: %s", query, vars, r.status, r.raw)
	}
	return r.Data
}

// get follows a dotted path (numbers index lists) in decoded JSON.
func get(v any, path string) any {
	for _, p := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			v = x[p]
		case []any:
			var i int
			if _, err := fmt.Sscan(p, &i); err != nil || i < 0 || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

func str(v any, path string) string {
	s, _ := get(v, path).(string)
	return s
}

// world is a small inventory: a cluster with two hosts, a watched VM on each host (web1, web2) with a default NIC,
// a monitoring VM with a default NIC and two capture NICs, a flow network attached to the cluster; plus a second
// cluster, not attached, with a host and a VM.
type world struct {
	cluster, cluster2, host1, host2, host3                     string
	web1, web2, monitor, other                                 string
	web1Nic, web2Nic, monDefault, capture1, capture2, otherNic string
	flowNet                                                    string
}

const (
	mCreateCluster = `mutation($in: ClusterInput!) { createCluster(input: $in) { uuid name } }`
	mRegisterHost  = `mutation($in: HostInput!) { registerHost(input: $in) { uuid name bridge } }`
	mCreateVM      = `mutation($in: VmInstanceInput!) { createVmInstance(input: $in) { uuid nics { uuid mac isDefault } } }`
	mCreateFN      = `mutation($in: FlowNetworkInput!) { createFlowNetwork(input: $in) { uuid encapsulation endpoints { ip host { uuid } } } }`
	mCreatePM      = `mutation($in: PortMirrorInput!) { createPortMirror(input: $in) { uuid name state sessions { uuid name type tunnelKey status } } }`
)

func uuidN(n int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012x", n) }

func (e *env) world() world {
	e.t.Helper()
	w := world{
		cluster: uuidN(0xc1), cluster2: uuidN(0xc2),
		host1: uuidN(0xa1), host2: uuidN(0xa2), host3: uuidN(0xa3),
		web1: uuidN(0xb1), web2: uuidN(0xb2), monitor: uuidN(0xb3), other: uuidN(0xb4),
		web1Nic: uuidN(0xd1), web2Nic: uuidN(0xd2), monDefault: uuidN(0xd3), capture1: uuidN(0xd4), capture2: uuidN(0xd5),
		otherNic: uuidN(0xd6), flowNet: uuidN(0xf1),
	}
	e.ok(mCreateCluster, map[string]any{"in": map[string]any{"uuid": w.cluster, "name": "cluster-a"}})
	e.ok(mCreateCluster, map[string]any{"in": map[string]any{"uuid": w.cluster2, "name": "cluster-b"}})
	for _, h := range []struct{ uuid, name, cluster string }{{w.host1, "hv1", w.cluster}, {w.host2, "hv2", w.cluster}, {w.host3, "hv3", w.cluster2}} {
		e.ok(mRegisterHost, map[string]any{"in": map[string]any{"uuid": h.uuid, "name": h.name, "clusterUuid": h.cluster}})
	}
	nic := func(uuid, mac string, def bool) map[string]any {
		return map[string]any{"uuid": uuid, "mac": mac, "isDefault": def}
	}
	for _, v := range []struct {
		uuid, name, host string
		nics             []any
	}{
		{w.web1, "web1", w.host1, []any{nic(w.web1Nic, "52:54:00:00:00:d1", true)}},
		{w.web2, "web2", w.host2, []any{nic(w.web2Nic, "52:54:00:00:00:d2", true)}},
		{w.monitor, "monitor", w.host2, []any{nic(w.monDefault, "52:54:00:00:00:d3", true),
			nic(w.capture1, "52:54:00:00:00:d4", false), nic(w.capture2, "52:54:00:00:00:d5", false)}},
		{w.other, "other", w.host3, []any{nic(w.otherNic, "52:54:00:00:00:d6", true)}},
	} {
		e.ok(mCreateVM, map[string]any{"in": map[string]any{"uuid": v.uuid, "name": v.name, "hostUuid": v.host, "nics": v.nics}})
	}
	e.ok(mCreateFN, map[string]any{"in": map[string]any{"uuid": w.flowNet, "name": "mirror-net", "cidr": "198.18.0.0/24",
		"clusterUuids": []any{w.cluster}}})
	return w
}

// snapshotQuery reads every stored object (not the audit log).
const snapshotQuery = `{
  clusters { uuid name hosts { uuid name bridge managementIp ovsdbAddress datapathId
    vmInstances { uuid name nics { uuid mac ip l3NetworkUuid isDefault portName qos { inboundBandwidthBps outboundBandwidthBps } } }
    flowEndpoints { ip flowNetwork { uuid } } }
    flowNetworks { uuid } }
  flowNetworks { uuid name description cidr encapsulation clusters { uuid } endpoints { ip host { uuid } }
    portMirror { uuid } }
  portMirrors { uuid name description state createdAt updatedAt flowNetwork { uuid }
    sessions { uuid name type tunnelKey createdAt sourceNic { uuid } destinationNic { uuid } } }
}`

func (e *env) snapshot() string {
	e.t.Helper()
	b, err := json.Marshal(e.ok(snapshotQuery, nil))
	if err != nil {
		e.t.Fatal(err)
	}
	return string(b)
}

// audits returns the newest n audit events.
func (e *env) audits(n int) []any {
	e.t.Helper()
	d := e.ok(`query($n: Int) { audits(first: $n) { id actor operation resourceType resourceUuid success error detail } }`,
		map[string]any{"n": n})
	l, _ := d["audits"].([]any)
	return l
}

func (e *env) auditCount() int {
	e.t.Helper()
	return len(e.audits(1000))
}
