package graphql

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestGraphQLOverHTTP: the endpoint answers as the GraphQL-over-HTTP specification asks, in both media types.
func TestGraphQLOverHTTP(t *testing.T) {
	e := newEnv(t, nil)
	const (
		gqlResp = "application/graphql-response+json"
		appJSON = "application/json"
		browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
	)
	get := func(params map[string]string) string {
		v := url.Values{}
		for k, p := range params {
			v.Set(k, p)
		}
		return "?" + v.Encode()
	}
	type tc struct {
		name        string
		method      string
		query       string // the URL's query string
		accept      string
		contentType string
		body        string
		status      int
		media       string // the response's media type; "text/html" for GraphiQL
		data        bool   // the body has a data entry
		errors      bool
	}
	ok := `{"query": "{ __typename }"}`
	cases := []tc{
		{name: "accept graphql-response+json", accept: gqlResp, body: ok, status: 200, media: gqlResp, data: true},
		{name: "accept application/json", accept: appJSON, body: ok, status: 200, media: appJSON, data: true},
		{name: "accept */*", accept: "*/*", body: ok, status: 200, media: appJSON, data: true},
		{name: "no accept", body: ok, status: 200, media: appJSON, data: true},
		{name: "quality decides", accept: "application/json;q=0.5, application/graphql-response+json", body: ok, status: 200, media: gqlResp, data: true},
		{name: "quality decides the other way", accept: "application/json, application/graphql-response+json;q=0.2", body: ok, status: 200, media: appJSON, data: true},
		{name: "neither acceptable", accept: "text/html", body: ok, status: 406, media: appJSON, errors: true},
		{name: "utf-8 charset", contentType: "application/json; charset=utf-8", body: ok, status: 200, media: appJSON, data: true},
		{name: "another charset", contentType: "application/json; charset=iso-8859-1", body: ok, status: 415, media: appJSON, errors: true},
		{name: "no content type", contentType: "-", status: 415, media: appJSON, errors: true},
		{name: "no body", status: 400, media: appJSON, errors: true},
		{name: "no query", accept: gqlResp, body: `{"notquery": "{ __typename }"}`, status: 400, media: gqlResp, errors: true},
		{name: "no query, json", accept: appJSON, body: `{"qeury": "{ __typename }"}`, status: 400, media: appJSON, errors: true},
		{name: "query a number", accept: gqlResp, body: `{"query": 0}`, status: 400, media: gqlResp, errors: true},
		{name: "variables a string", accept: gqlResp, body: `{"query": "{ __typename }", "variables": "x"}`, status: 400, media: gqlResp, errors: true},
		{name: "extensions an array", accept: gqlResp, body: `{"query": "{ __typename }", "extensions": []}`, status: 400, media: gqlResp, errors: true},
		{name: "operationName a number", accept: gqlResp, body: `{"query": "{ __typename }", "operationName": 0}`, status: 400, media: gqlResp, errors: true},
		{name: "null parameters", accept: gqlResp, body: `{"query": "{ __typename }", "variables": null, "operationName": null, "extensions": null}`, status: 200, media: gqlResp, data: true},
		{name: "extensions a map", accept: appJSON, body: `{"query": "{ __typename }", "extensions": {"some": "value"}}`, status: 200, media: appJSON, data: true},
		{name: "operation by name", accept: gqlResp, body: `{"query": "query A { __typename } query B { __typename }", "operationName": "B"}`, status: 200, media: gqlResp, data: true},
		{name: "unknown operation name", accept: gqlResp, body: `{"query": "query A { __typename }", "operationName": "Z"}`, status: 400, media: gqlResp, errors: true},
		{name: "parse error, graphql-response+json", accept: gqlResp, body: `{"query": "{"}`, status: 400, media: gqlResp, errors: true},
		{name: "parse error, json", accept: appJSON, body: `{"query": "{"}`, status: 200, media: appJSON, errors: true},
		{name: "validation error, graphql-response+json", accept: gqlResp, body: `{"query": "{ nope }"}`, status: 400, media: gqlResp, errors: true},
		{name: "validation error, json", accept: appJSON, body: `{"query": "{ nope }"}`, status: 200, media: appJSON, errors: true},
		{name: "variables that do not coerce, graphql-response+json", accept: gqlResp,
			body: `{"query": "query($u: ID!) { host(uuid: $u) { uuid } }", "variables": {"v": 1}}`, status: 400, media: gqlResp, errors: true},
		{name: "variables that do not coerce, json", accept: appJSON,
			body: `{"query": "query($u: ID!) { host(uuid: $u) { uuid } }", "variables": {}}`, status: 200, media: appJSON, errors: true},
		{name: "field error: data and errors", accept: gqlResp, body: `{"query": "{ audits(after: \"bad\") { id } }"}`, status: 200, media: gqlResp, data: true, errors: true},

		{name: "GET a query", method: "GET", query: get(map[string]string{"query": "{ __typename }"}), accept: appJSON, status: 200, media: appJSON, data: true},
		{name: "GET without accept", method: "GET", query: get(map[string]string{"query": "{ __typename }"}), status: 200, media: appJSON, data: true},
		{name: "GET with variables", method: "GET", accept: gqlResp, status: 200, media: gqlResp, data: true,
			query: get(map[string]string{"query": "query($n: String!) { __type(name: $n) { name } }", "variables": `{"n": "Host"}`})},
		{name: "GET with variables not JSON", method: "GET", accept: gqlResp, status: 400, media: gqlResp, errors: true,
			query: get(map[string]string{"query": "query($n: String!) { __type(name: $n) { name } }", "variables": `{n}`})},
		{name: "GET a mutation", method: "GET", accept: gqlResp, status: 405, media: gqlResp, errors: true,
			query: get(map[string]string{"query": `mutation { createCluster(input: {name: "x"}) { uuid } }`})},
		{name: "GET the mutation of a document", method: "GET", accept: appJSON, status: 405, media: appJSON, errors: true,
			query: get(map[string]string{"query": `query Q { __typename } mutation M { createCluster(input: {name: "x"}) { uuid } }`, "operationName": "M"})},
		{name: "GET the query of a document", method: "GET", accept: appJSON, status: 200, media: appJSON, data: true,
			query: get(map[string]string{"query": `query Q { __typename } mutation M { createCluster(input: {name: "x"}) { uuid } }`, "operationName": "Q"})},
		{name: "GET from a browser is GraphiQL", method: "GET", accept: browser, status: 200, media: "text/html"},
		{name: "GET with neither is GraphiQL", method: "GET", status: 200, media: "text/html"},
		{name: "GET asking JSON without a query", method: "GET", accept: appJSON, status: 400, media: appJSON, errors: true},
		{name: "DELETE", method: "DELETE", accept: appJSON, status: 405, media: appJSON, errors: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			method := c.method
			if method == "" {
				method = http.MethodPost
			}
			req, err := http.NewRequest(method, e.srv.URL+"/graphql"+c.query, strings.NewReader(c.body))
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case c.contentType == "-":
			case c.contentType != "":
				req.Header.Set("Content-Type", c.contentType)
			case method == http.MethodPost:
				req.Header.Set("Content-Type", "application/json")
			}
			if c.accept != "" {
				req.Header.Set("Accept", c.accept)
			}
			resp, err := e.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			ct := resp.Header.Get("Content-Type")
			if resp.StatusCode != c.status || !strings.HasPrefix(ct, c.media+";") {
				t.Fatalf("status %d, %s; want %d, %s: %s", resp.StatusCode, ct, c.status, c.media, truncate(string(raw)))
			}
			if c.media == "text/html" {
				return
			}
			if !strings.Contains(ct, "charset=utf-8") {
				t.Errorf("Content-Type %q names no UTF-8 charset", ct)
			}
			var body map[string]json.RawMessage
			if err := json.Unmarshal(raw, &body); err != nil {
				t.Fatalf("not JSON: %s", raw)
			}
			if _, has := body["data"]; has != c.data {
				t.Errorf("data entry present %v, want %v: %s", has, c.data, raw)
			}
			if _, has := body["errors"]; has != c.errors {
				t.Errorf("errors present %v, want %v: %s", has, c.errors, raw)
			}
			if c.status == 405 && method == http.MethodGet && resp.Header.Get("Allow") != "POST" {
				t.Errorf("Allow %q, want POST", resp.Header.Get("Allow"))
			}
		})
	}
	if n := len(e.ok(`{ clusters { uuid } }`, nil)["clusters"].([]any)); n != 0 {
		t.Errorf("GET mutations created %d clusters", n)
	}

	// a refusal of authentication is answered in the media type asked for
	tok := newEnv(t, withTokens)
	req, _ := http.NewRequest(http.MethodGet, tok.srv.URL+"/graphql?query=%7B+me+%7B+role+%7D+%7D", nil)
	req.Header.Set("Accept", gqlResp)
	resp, err := tok.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("Content-Type"), gqlResp) {
		t.Errorf("GET without a token: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	req.Header.Set("Authorization", "Bearer "+viewerToken)
	r := tok.do(req)
	if r.status != 200 || str(r.Data, "me.role") != "VIEWER" {
		t.Errorf("GET me as the viewer: %d %s", r.status, r.raw)
	}
}
