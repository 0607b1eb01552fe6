package graphql

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
)

const (
	adminToken  = "admin-token-0123456789abcdef"
	viewerToken = "viewer-token-0123456789abcdef"
)

func withTokens(o *Options) {
	o.Tokens = []Token{
		{Name: "ops", Secret: adminToken, Role: RoleAdmin},
		{Name: "console", Secret: viewerToken, Role: RoleViewer},
	}
}

func TestAuthWithTokens(t *testing.T) {
	e := newEnv(t, withTokens)
	createCluster := `mutation { createCluster(input: {name: "c"}) { uuid } }`
	cases := []struct {
		name, header string
		query        string
		status       int
		code         string
	}{
		{"no header", "", `{ clusters { uuid } }`, 401, "UNAUTHENTICATED"},
		{"wrong token", "Bearer not-a-token-0123456789", `{ clusters { uuid } }`, 401, "UNAUTHENTICATED"},
		{"a prefix of a token", "Bearer " + adminToken[:10], `{ clusters { uuid } }`, 401, "UNAUTHENTICATED"},
		{"another scheme", "Basic " + adminToken, `{ clusters { uuid } }`, 401, "UNAUTHENTICATED"},
		{"viewer query", "Bearer " + viewerToken, `{ clusters { uuid } }`, 200, ""},
		{"viewer mutation", "Bearer " + viewerToken, createCluster, 403, "FORBIDDEN"},
		{"admin mutation", "Bearer " + adminToken, createCluster, 200, ""},
		{"scheme in lower case", "bearer " + adminToken, `{ clusters { uuid } }`, 200, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/graphql", strings.NewReader(fmt.Sprintf(`{"query": %q}`, c.query)))
			req.Header.Set("Content-Type", "application/json")
			if c.header != "" {
				req.Header.Set("Authorization", c.header)
			}
			e.t = t
			r := e.do(req)
			if r.status != c.status || r.code() != c.code {
				t.Errorf("status %d code %q, want %d %q: %s", r.status, r.code(), c.status, c.code, r.raw)
			}
		})
	}
	e.t = t
	// the admin's mutation is recorded with the token's name; nothing from the refused calls was created
	d := e.post(adminToken, `{ clusters { uuid } audits { actor operation success } }`, nil).Data
	if n := len(d["clusters"].([]any)); n != 1 {
		t.Errorf("%d clusters, want the admin's one", n)
	}
	evs := d["audits"].([]any)
	if len(evs) != 2 || str(evs[0], "actor") != "ops" || get(evs[0], "success") != true ||
		str(evs[1], "actor") != "console" || get(evs[1], "success") != false || str(evs[1], "operation") != "createCluster" {
		t.Errorf("audits %v, want the admin's success after the viewer's refusal", evs)
	}
}

// TestViewerMutationAudited: each mutation field of a viewer's document is one refused event, with the resource
// named and nothing changed.
func TestViewerMutationAudited(t *testing.T) {
	e := newEnv(t, withTokens)
	pm := uuidN(0x77)
	r := e.post(viewerToken, `mutation($pm: ID!) {
	  enablePortMirror(uuid: $pm) { uuid }
	  ...more
	}
	fragment more on Mutation { createCluster(input: {name: "x"}) { uuid } }`, map[string]any{"pm": pm})
	if r.status != http.StatusForbidden || r.code() != "FORBIDDEN" || r.Data != nil || !strings.Contains(r.Errors[0].Message, "console") {
		t.Fatalf("status %d: %s", r.status, r.raw)
	}
	d := e.post(adminToken, `{ clusters { uuid } audits { actor operation resourceType resourceUuid success error detail } }`, nil).Data
	if n := len(d["clusters"].([]any)); n != 0 {
		t.Errorf("the refused document created %d clusters", n)
	}
	evs := d["audits"].([]any)
	if len(evs) != 2 {
		t.Fatalf("%d audit events, want 2: %v", len(evs), evs)
	}
	want := []struct{ op, typ, uuid string }{{"createCluster", "Cluster", ""}, {"enablePortMirror", "PortMirror", pm}}
	for i, w := range want {
		ev := evs[i]
		if str(ev, "operation") != w.op || str(ev, "resourceType") != w.typ || str(ev, "resourceUuid") != w.uuid ||
			str(ev, "actor") != "console" || get(ev, "success") != false || !strings.Contains(str(ev, "error"), "viewer") {
			t.Errorf("event %d: %v, want %v refused for console", i, ev, w)
		}
	}
	if !strings.Contains(str(evs[1], "detail"), pm) {
		t.Errorf("the detail %q does not carry the arguments", str(evs[1], "detail"))
	}
}

func TestNoTokensServesLoopbackOnly(t *testing.T) {
	e := newEnv(t, nil)
	r := e.post("", `mutation { createCluster(input: {name: "c"}) { uuid } }`, nil)
	if r.status != 200 || len(r.Errors) > 0 {
		t.Fatalf("loopback: %d %s", r.status, r.raw)
	}
	if ev := e.audits(1)[0]; str(ev, "actor") != "local" {
		t.Errorf("actor %q, want local", str(ev, "actor"))
	}
	for _, remote := range []string{"198.18.0.7:40000", "[2001:db8::1]:40000", "[::ffff:198.18.0.7]:1"} {
		req := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(`{"query": "{ clusters { uuid } }"}`))
		req.Header.Set("Content-Type", "application/json")
		req.RemoteAddr = remote
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, req)
		if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), `"code":"FORBIDDEN"`) {
			t.Errorf("from %s: %d %s", remote, rec.Code, rec.Body)
		}
	}
	for _, remote := range []string{"127.0.0.1:5000", "[::1]:5000", "[::ffff:127.0.0.1]:5000"} {
		req := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(`{"query": "{ clusters { uuid } }"}`))
		req.Header.Set("Content-Type", "application/json")
		req.RemoteAddr = remote
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Errorf("from %s: %d %s", remote, rec.Code, rec.Body)
		}
	}
}

func TestTokenValidation(t *testing.T) {
	long := "0123456789abcdef0123"
	for _, c := range []struct {
		name   string
		tokens []Token
		err    string
	}{
		{"ok", []Token{{Name: "a", Secret: long, Role: RoleAdmin}, {Name: "b", Secret: long + "x", Role: RoleViewer}}, ""},
		{"empty name", []Token{{Name: "", Secret: long, Role: RoleAdmin}}, "name is empty"},
		{"short", []Token{{Name: "a", Secret: "short", Role: RoleAdmin}}, "at least 16"},
		{"bad role", []Token{{Name: "a", Secret: long, Role: "root"}}, `"root"`},
		{"same name", []Token{{Name: "a", Secret: long, Role: RoleAdmin}, {Name: "a", Secret: long + "x", Role: RoleAdmin}}, "twice"},
		{"same token", []Token{{Name: "a", Secret: long, Role: RoleAdmin}, {Name: "b", Secret: long, Role: RoleViewer}}, "same token"},
		{"reserved name", []Token{{Name: "local", Secret: long, Role: RoleAdmin}}, "reserved"},
		{"digest", []Token{{Name: "a", SHA256: strings.Repeat("ab", 32), Role: RoleAdmin}}, ""},
		{"digest not hex", []Token{{Name: "a", SHA256: strings.Repeat("zz", 32), Role: RoleAdmin}}, "64 hex digits"},
		{"digest too short", []Token{{Name: "a", SHA256: "abcd", Role: RoleAdmin}}, "64 hex digits"},
		{"token and digest", []Token{{Name: "a", Secret: long, SHA256: strings.Repeat("ab", 32), Role: RoleAdmin}}, "not both"},
		{"digest of another's token", []Token{{Name: "a", Secret: long, Role: RoleAdmin}, {Name: "b", SHA256: fmt.Sprintf("%x", sha256.Sum256([]byte(long))), Role: RoleViewer}}, "same token"},
	} {
		err := ValidateTokens(c.tokens)
		if (err == nil) != (c.err == "") || err != nil && !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: %v, want %q", c.name, err, c.err)
		}
	}
}

func TestHTTPRefusals(t *testing.T) {
	e := newEnv(t, nil)
	big := `{"query": "{ clusters { uuid } }", "variables": {"pad": "` + strings.Repeat("x", DefaultMaxBodyBytes) + `"}}`
	deep := "{ portMirrors { " + strings.Repeat("sessions { portMirror { ", 6) + "uuid" + strings.Repeat(" } }", 6) + " } }"
	wide := "{ " + strings.Repeat("clusters { uuid name } ", 2600) + "}"
	cases := []struct {
		name, method, contentType, body string
		status                          int
		code, mentions                  string
	}{
		{"body too large", "POST", "application/json", big, 413, "VALIDATION", "larger than"},
		{"malformed JSON", "POST", "application/json", `{"query": `, 400, "VALIDATION", "not JSON"},
		{"no query", "POST", "application/json", `{"variables": {}}`, 400, "VALIDATION", "no query"},
		{"two JSON objects", "POST", "application/json", `{"query": "{ clusters { uuid } }"} {}`, 400, "VALIDATION", "after its JSON"},
		{"form post", "POST", "application/x-www-form-urlencoded", `query=%7B%7D`, 415, "VALIDATION", "application/json"},
		{"text/plain post", "POST", "text/plain", `{"query": "{ clusters { uuid } }"}`, 415, "VALIDATION", "application/json"},
		{"syntax error", "POST", "application/json", `{"query": "{ clusters { "}`, 200, "VALIDATION", "Syntax Error"},
		{"unknown field", "POST", "application/json", `{"query": "{ nope }"}`, 200, "VALIDATION", "nope"},
		{"too deep", "POST", "application/json", `{"query": "` + deep + `"}`, 200, "VALIDATION", "12 levels"},
		{"too many fields", "POST", "application/json", `{"query": "` + wide + `"}`, 200, "VALIDATION", "5000 fields"},
		{"fragment cycle", "POST", "application/json", `{"query": "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }"}`, 200, "VALIDATION", "spreads itself"},
		{"missing variable", "POST", "application/json", `{"query": "query($u: ID!) { host(uuid: $u) { uuid } }"}`, 200, "VALIDATION", "$u"},
		{"ambiguous operation", "POST", "application/json", `{"query": "query A { clusters { uuid } } query B { hosts { uuid } }"}`, 200, "VALIDATION", "operation name"},
		{"GET with a mutation", "GET", "", "", 405, "VALIDATION", "POST"},
		{"PUT", "PUT", "application/json", `{"query": "{ clusters { uuid } }"}`, 405, "VALIDATION", "PUT"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.t = t
			url := e.srv.URL + "/graphql"
			if c.method == "GET" {
				url += "?query=mutation+%7B+deletePortMirror%28uuid%3A+%22x%22%29+%7D"
			}
			req, _ := http.NewRequest(c.method, url, strings.NewReader(c.body))
			if c.contentType != "" {
				req.Header.Set("Content-Type", c.contentType)
			}
			r := e.do(req)
			if r.status != c.status || r.code() != c.code || len(r.Errors) == 0 || !strings.Contains(r.Errors[0].Message, c.mentions) {
				t.Errorf("status %d code %q, want %d %q mentioning %q: %s", r.status, r.code(), c.status, c.code, c.mentions, truncate(r.raw))
			}
		})
	}
	e.t = t
	if n := e.auditCount(); n != 0 {
		t.Errorf("refused requests left %d audit events", n)
	}
}

func truncate(s string) string {
	if len(s) > 600 {
		return s[:600] + "..."
	}
	return s
}

// TestIntrospection: GraphiQL's introspection query passes the depth bound.
func TestIntrospection(t *testing.T) {
	e := newEnv(t, nil)
	const typeRef = "kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }"
	q := `query IntrospectionQuery { __schema { queryType { name } mutationType { name } types { ...FullType } directives { name locations args { ...InputValue } } } }
	fragment FullType on __Type { kind name description fields(includeDeprecated: true) { name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
	  inputFields { ...InputValue } interfaces { ...TypeRef } enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason } possibleTypes { ...TypeRef } }
	fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
	fragment TypeRef on __Type { ` + typeRef + ` }`
	d := e.ok(q, nil)
	if str(d, "__schema.mutationType.name") != "Mutation" {
		t.Fatalf("introspection: %v", d["__schema"])
	}
	// the defaults of the contract are visible to tools
	for _, ty := range get(d, "__schema.types").([]any) {
		if str(ty, "name") != "FlowNetworkInput" {
			continue
		}
		for _, f := range get(ty, "inputFields").([]any) {
			// graphql-go v0.8.1 prints an enum default as a string: "GRE"
			if str(f, "name") == "encapsulation" && strings.Trim(str(f, "defaultValue"), `"`) != "GRE" {
				t.Errorf("FlowNetworkInput.encapsulation default %v, want GRE", get(f, "defaultValue"))
			}
		}
	}
}

func TestGraphiQL(t *testing.T) {
	e := newEnv(t, nil)
	resp, err := e.srv.Client().Get(e.srv.URL + "/graphql")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /graphql: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if m := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`).Find(page); m != nil {
		t.Errorf("the page references an external URL %q", m)
	}
	refs := regexp.MustCompile(`(?:src|href)="([^"]+)"`).FindAllSubmatch(page, -1)
	if len(refs) != 5 {
		t.Errorf("the page references %d assets, want 5 (css, react, react-dom, graphiql, init)", len(refs))
	}
	for _, ref := range refs {
		path := string(ref[1])
		resp, err := e.srv.Client().Get(e.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		wantType := "text/javascript"
		if strings.HasSuffix(path, ".css") {
			wantType = "text/css"
		}
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), wantType) || len(body) < 500 {
			t.Errorf("%s: %d %s, %d bytes", path, resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
		}
	}
	for _, path := range []string{"/graphql/assets/LICENSE.graphiql", "/graphql/assets/LICENSE.react"} {
		resp, err := e.srv.Client().Get(e.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Contains(body, []byte("MIT License")) {
			t.Errorf("%s: %d", path, resp.StatusCode)
		}
	}
	for _, path := range []string{"/graphql/assets/nope.js", "/graphql/assets/../http.go", "/graphql/assets/"} {
		resp, err := e.srv.Client().Get(e.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Errorf("%s: %d, want 404", path, resp.StatusCode)
		}
	}
}

func TestHealthz(t *testing.T) {
	var mu sync.Mutex
	openflowErr := errors.New("OpenFlow listener on :6653 is down")
	e := newEnv(t, func(o *Options) {
		o.Health = []HealthCheck{
			{Name: "store", Check: func(context.Context) error { return nil }},
			{Name: "openflow", Check: func(context.Context) error { mu.Lock(); defer mu.Unlock(); return openflowErr }},
		}
	})
	check := func(wantStatus int, wantInBody string) {
		t.Helper()
		resp, err := e.srv.Client().Get(e.srv.URL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != wantStatus || !strings.Contains(string(body), wantInBody) {
			t.Errorf("/healthz: %d %s, want %d with %q", resp.StatusCode, body, wantStatus, wantInBody)
		}
	}
	check(503, "listener on :6653 is down")
	mu.Lock()
	openflowErr = nil
	mu.Unlock()
	check(200, `"status":"ok"`)
}

func TestMetrics(t *testing.T) {
	e := newEnv(t, nil)
	e.ok(`{ clusters { uuid } }`, nil)
	e.post("", `mutation { createCluster(input: {name: ""}) { uuid } }`, nil)
	resp, err := e.srv.Client().Get(e.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`portmirror_graphql_requests_total{code="OK",operation="clusters"} 1`,
		`portmirror_graphql_requests_total{code="VALIDATION",operation="createCluster"} 1`,
		`portmirror_graphql_request_duration_seconds_count{operation="clusters"} 1`,
		`go_goroutines`, `process_resident_memory_bytes`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestInternalError: a fault below the service (here the store closed under it) is INTERNAL, with a message that
// says where to look, and the request id that the log carries.
func TestInternalError(t *testing.T) {
	e := newEnv(t, nil)
	if err := e.st.Close(); err != nil {
		t.Fatal(err)
	}
	r := e.post("", `mutation { createCluster(input: {name: "c"}) { uuid } }`, nil)
	if r.status != 200 || r.code() != "INTERNAL" || r.rule() != "" ||
		!regexp.MustCompile(`log for request_id [0-9a-f]{16}`).MatchString(r.Errors[0].Message) {
		t.Errorf("status %d: %s", r.status, r.raw)
	}
}

// TestConcurrentRequests: queries and mutations in parallel (run under -race).
func TestConcurrentRequests(t *testing.T) {
	e := newEnv(t, nil)
	w := e.world()
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 5 {
				body, _ := json.Marshal(map[string]any{"query": `mutation($in: ClusterInput!) { createCluster(input: $in) { uuid } }`,
					"variables": map[string]any{"in": map[string]any{"name": fmt.Sprintf("c-%d-%d", i, j)}}})
				if r := postOnce(e.srv, body); r != "" {
					errs <- r
				}
				body, _ = json.Marshal(map[string]any{"query": `query($f: ID!) { flowNetwork(uuid: $f) { endpoints { ip host { cluster { hosts { name } } } } } clusters { name } }`,
					"variables": map[string]any{"f": w.flowNet}})
				if r := postOnce(e.srv, body); r != "" {
					errs <- r
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for r := range errs {
		t.Error(r)
	}
	if n := len(e.ok(`{ clusters { uuid } }`, nil)["clusters"].([]any)); n != 2+40 {
		t.Errorf("%d clusters, want 42", n)
	}
}

// postOnce posts a body and returns "" when it succeeded, else what went wrong.
func postOnce(srv *httptest.Server, body []byte) string {
	resp, err := srv.Client().Post(srv.URL+"/graphql", "application/json", bytes.NewReader(body))
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || bytes.Contains(raw, []byte(`"errors"`)) {
		return fmt.Sprintf("%d %s", resp.StatusCode, raw)
	}
	return ""
}

// TestTokenDigestsAndMetricsAuth: a token given as its SHA-256 authenticates like one given as it is; with
// MetricsAuth, /metrics needs a token; every refusal reaches OnAuthFailure with the client's address; SetTokens
// replaces the list for the next request.
func TestTokenDigestsAndMetricsAuth(t *testing.T) {
	var mu sync.Mutex
	var failures []string
	e := newEnv(t, func(o *Options) {
		o.Tokens = []Token{{Name: "hashed", SHA256: fmt.Sprintf("%X", sha256.Sum256([]byte(adminToken))), Role: RoleAdmin}}
		o.MetricsAuth = true
		o.OnAuthFailure = func(remote, reason string) {
			mu.Lock()
			defer mu.Unlock()
			failures = append(failures, remote+" "+reason)
		}
	})
	if r := e.post(adminToken, `{ clusters { uuid } }`, nil); r.status != 200 || len(r.Errors) > 0 {
		t.Fatalf("the token of a digest: %d %s", r.status, r.raw)
	}
	if r := e.post(fmt.Sprintf("%x", sha256.Sum256([]byte(adminToken))), `{ clusters { uuid } }`, nil); r.code() != "UNAUTHENTICATED" {
		t.Fatalf("the digest itself sent as a token: %d %s", r.status, r.raw)
	}
	metrics := func(token string) int {
		req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/metrics", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := metrics(""); got != http.StatusUnauthorized {
		t.Errorf("/metrics without a token: %d", got)
	}
	if got := metrics(adminToken); got != http.StatusOK {
		t.Errorf("/metrics with a token: %d", got)
	}
	mu.Lock()
	if len(failures) != 2 || !strings.HasPrefix(failures[0], "127.0.0.1:") || !strings.Contains(failures[1], "/metrics") {
		t.Errorf("auth failures reported: %q", failures)
	}
	mu.Unlock()

	if err := e.h.SetTokens([]Token{{Name: "next", Secret: viewerToken, Role: RoleViewer}}); err != nil {
		t.Fatal(err)
	}
	if r := e.post(adminToken, `{ clusters { uuid } }`, nil); r.code() != "UNAUTHENTICATED" {
		t.Errorf("a replaced token still works: %s", r.raw)
	}
	if r := e.post(viewerToken, `{ clusters { uuid } }`, nil); r.status != 200 {
		t.Errorf("the new token: %s", r.raw)
	}
	if err := e.h.SetTokens([]Token{{Name: "bad", Secret: "short", Role: RoleAdmin}}); err == nil {
		t.Error("SetTokens took a bad list")
	}
}
