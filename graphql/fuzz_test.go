package graphql

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"portmirror/service"
	"portmirror/store"
)

// FuzzRequest sends random documents with random variables through the whole request path (authentication,
// body decoding, parsing, the depth and field bounds, validation, the fast query executor and graphql-go's,
// the service over a real store). Nothing may panic, every answer is one JSON object with data or errors, every
// error carries extensions.code, and the status is one the API documents.
func FuzzRequest(f *testing.F) {
	for _, s := range []struct{ doc, vars string }{
		{`{ clusters { uuid name hosts { name } } }`, ``},
		{`query($u: ID!) { portMirror(uuid: $u) { name sessions { status } } }`, `{"u": "00000000-0000-4000-8000-000000000001"}`},
		{`mutation($in: ClusterInput!) { createCluster(input: $in) { uuid } }`, `{"in": {"name": "c1"}}`},
		{`mutation($in: ClusterInput!) { createCluster(input: $in) { uuid } }`, `{"in": {"name": 7}}`},
		{`mutation($in: PortMirrorInput!) { createPortMirror(input: $in) { uuid } }`, `{"in": {"name": "p", "flowNetworkUuid": "x", "sessions": [{}]}}`},
		{`mutation { createFlowNetwork(input: {name: "f", cidr: "198.18.0.0/30"}) { uuid endpoints { ip } } }`, ``},
		{`{ a: clusters { ...F } b: switches { datapathId ports { portNo } } } fragment F on Cluster { uuid flowNetworks { name } }`, ``},
		{`query Q { audits(first: 3, since: "2026-01-01T00:00:00Z") { id detail } } query R { switches { connected } }`, `null`},
		{`{ __schema { types { name fields { name } } } }`, ``},
		{`{ clusters { hosts { cluster { hosts { cluster { hosts { cluster { hosts { cluster { hosts { cluster { name } } } } } } } } } } } }`, ``},
		{`{ vmNic(uuid: "") { uuid } }`, `{"x": [1, 2, {"y": null}]}`},
		{`mutation { deletePortMirror(uuid: "nope") }`, `[]`},
		{`{`, `{`},
		{``, ``},
	} {
		f.Add(s.doc, []byte(s.vars))
	}
	log := slog.New(slog.DiscardHandler)
	st, err := store.Open(context.Background(), store.Options{Dir: f.TempDir(), Logger: log})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = st.Close() })
	h, err := New(Options{Backend: service.New(st, service.Options{Logger: log}), Logger: log})
	if err != nil {
		f.Fatal(err)
	}
	documented := map[int]bool{200: true, 400: true, 403: true, 405: true, 413: true, 415: true}
	f.Fuzz(func(t *testing.T, doc string, vars []byte) {
		req := map[string]any{"query": doc}
		if json.Valid(vars) {
			req["variables"] = json.RawMessage(vars)
		}
		body, err := json.Marshal(req)
		if err != nil {
			t.Skip() // not a string JSON can carry
		}
		// Also the body as bytes that are not JSON at all, some of the time.
		if len(vars) > 0 && vars[0] == '!' {
			body = vars
		}
		r := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
		r.RemoteAddr = "127.0.0.1:40000"
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if !documented[w.Code] {
			t.Fatalf("status %d for %q %q: %s", w.Code, doc, vars, w.Body.Bytes())
		}
		var resp struct {
			Data   json.RawMessage `json:"data"`
			Errors []struct {
				Message    string         `json:"message"`
				Extensions map[string]any `json:"extensions"`
			} `json:"errors"`
		}
		dec := json.NewDecoder(bytes.NewReader(w.Body.Bytes()))
		if err := dec.Decode(&resp); err != nil || dec.More() {
			t.Fatalf("answer is not one JSON object (%v) for %q: %q", err, doc, w.Body.Bytes())
		}
		if len(resp.Errors) == 0 && (len(resp.Data) == 0 || string(resp.Data) == "null") {
			t.Fatalf("neither data nor errors for %q: %s", doc, w.Body.Bytes())
		}
		for _, e := range resp.Errors {
			if c, _ := e.Extensions["code"].(string); c == "" || e.Message == "" {
				t.Fatalf("an error without code or message for %q %q: %s", doc, vars, w.Body.Bytes())
			}
			if e.Extensions["code"] == "INTERNAL" {
				t.Fatalf("INTERNAL for %q %q: %s", doc, vars, w.Body.Bytes())
			}
		}
	})
}
