package graphql

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	gql "github.com/graphql-go/graphql"
	"github.com/graphql-go/graphql/language/parser"
	"github.com/graphql-go/graphql/language/source"
)

// bothPaths runs a query through the fast path and through graphql-go, as the handler would, and returns the
// fast path's body (fastErr: errGiveUp when it left the query to graphql-go) and graphql-go's body.
func bothPaths(t *testing.T, e *env, query string, vars map[string]any) (fast, viaGo string, fastErr error) {
	t.Helper()
	astDoc, err := parser.Parse(parser.ParseParams{Source: source.NewSource(&source.Source{Body: []byte(query)})})
	if err != nil {
		t.Fatal(err)
	}
	if vr := gql.ValidateDocument(&e.h.schema, astDoc, nil); !vr.IsValid {
		t.Fatalf("invalid: %v", vr.Errors)
	}
	ctx := withRequestInfo(context.Background(), &requestInfo{id: "oracle", logger: e.h.logger})
	ctx = withPrincipal(ctx, principal{actor: "local", role: RoleAdmin})
	res := gql.Execute(gql.ExecuteParams{Schema: e.h.schema, AST: astDoc, Args: vars, Context: ctx})
	completeErrors(ctx, res)
	want, err := json.Marshal(response{Data: res.Data, Errors: res.Errors})
	if err != nil {
		t.Fatal(err)
	}
	body, err := executeFast(ctx, &e.h.schema, newDocument(astDoc, ""), vars, nil)
	return string(body), string(want) + "\n", err
}

// TestSessionsPaged pages PortMirror.sessions with first and after, through HTTP, and holds the fast path's answer
// against graphql-go's for each case; the refusals are graphql-go's, naming the port mirror and what was wrong.
func TestSessionsPaged(t *testing.T) {
	e := newEnv(t, nil)
	w := oracleWorld(t, e)
	e.svc.SetLive(staticLive{w})
	d := e.ok(`{ portMirrors(nameContains: "pm <a>") { uuid sessions { uuid name } } }`, nil)
	pm := str(d, "portMirrors.0.uuid")
	var all []string // s1, s2, s3 by uuid, in creation order
	for i := range 3 {
		all = append(all, str(d, "portMirrors.0.sessions."+string(rune('0'+i))+".uuid"))
	}
	if pm == "" || slices.Contains(all, "") {
		t.Fatalf("world: %v", d)
	}
	const byVars = `query($n: Int, $a: ID) { portMirror(uuid: "%PM%") { sessionCount sessions(first: $n, after: $a) { uuid } } }`
	for _, tc := range []struct {
		name  string
		args  string         // the arguments of sessions, literal
		vars  map[string]any // or variables of byVars
		want  []string       // the sessions answered; nil with wantErr
		error []string       // the refusal's message contains each of these
	}{
		{name: "no arguments: every session", args: "", want: all},
		{name: "first 0", args: "(first: 0)", want: []string{}},
		{name: "first 2", args: "(first: 2)", want: all[:2]},
		{name: "first beyond the end", args: "(first: 50)", want: all},
		{name: "first after the first", args: `(first: 1, after: "` + all[0] + `")`, want: all[1:2]},
		{name: "after alone: the rest", args: `(after: "` + all[0] + `")`, want: all[1:]},
		{name: "after in capitals", args: `(first: 5, after: "` + strings.ToUpper(all[1]) + `")`, want: all[2:]},
		{name: "after the last", args: `(first: 10, after: "` + all[2] + `")`, want: []string{}},
		{name: "variables", vars: map[string]any{"n": 1, "a": all[1]}, want: all[2:]},
		{name: "unknown after", args: `(first: 10, after: "` + uuidN(0x5e55) + `")`,
			error: []string{pm, `"pm <a> & \"b\" é`, uuidN(0x5e55), "start again without after"}},
		{name: "unknown after by variable", vars: map[string]any{"n": 2, "a": "nonsense"}, error: []string{pm, `"nonsense"`}},
		{name: "negative first", args: "(first: -1)", error: []string{pm, "first is -1", "0 or more"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := `{ portMirror(uuid: "` + pm + `") { sessionCount sessions` + tc.args + ` { uuid } } }`
			if tc.vars != nil {
				q = strings.ReplaceAll(byVars, "%PM%", pm)
			}
			r := e.post("", q, tc.vars)
			fast, viaGo, fastErr := bothPaths(t, e, q, tc.vars)
			if tc.error != nil {
				if r.code() != "VALIDATION" || r.rule() != "INVALID_ARGUMENT" || r.Data["portMirror"] != nil {
					t.Fatalf("want VALIDATION / INVALID_ARGUMENT and portMirror null, got %s", r.raw)
				}
				for _, s := range tc.error {
					if !strings.Contains(r.Errors[0].Message, s) {
						t.Errorf("the message %q does not say %q", r.Errors[0].Message, s)
					}
				}
				if !errors.Is(fastErr, errGiveUp) {
					t.Fatalf("the fast path answered a refusal: %v %s", fastErr, fast)
				}
				if r.raw != viaGo {
					t.Fatalf("handler answered:\n%s\ngraphql-go answers:\n%s", r.raw, viaGo)
				}
				return
			}
			if len(r.Errors) > 0 {
				t.Fatal(r.raw)
			}
			var got []string
			for _, s := range get(r.Data, "portMirror.sessions").([]any) {
				got = append(got, s.(map[string]any)["uuid"].(string))
			}
			if !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
				t.Fatalf("sessions %v, want %v", got, tc.want)
			}
			if c := get(r.Data, "portMirror.sessionCount"); c != float64(3) {
				t.Fatalf("sessionCount %v, want 3", c)
			}
			if fastErr != nil {
				t.Fatalf("the fast path gave up: %v", fastErr)
			}
			if fast != viaGo || r.raw != fast {
				t.Fatalf("handler answered:\n%s\nfast path:\n%s\ngraphql-go:\n%s", r.raw, fast, viaGo)
			}
		})
	}
}

// TestSessionCounts holds sessionCount and sessionStatusCounts against the sessions the list shows, enabled and
// disabled, on both paths.
func TestSessionCounts(t *testing.T) {
	e := newEnv(t, nil)
	w := oracleWorld(t, e)
	e.svc.SetLive(staticLive{w}) // a session whose uuid ends in 0 is ERROR, the others ACTIVE
	const q = `{ portMirrors { name state sessionCount sessionStatusCounts { active inactive pending error } sessions { uuid status } } }`
	check := func(when string) {
		t.Helper()
		d := e.ok(q, nil)
		pms := get(d, "portMirrors").([]any)
		if len(pms) != 2 {
			t.Fatalf("%s: %v", when, d)
		}
		for _, p := range pms {
			p := p.(map[string]any)
			ss := p["sessions"].([]any)
			tally := map[string]float64{"active": 0, "inactive": 0, "pending": 0, "error": 0}
			for _, s := range ss {
				tally[strings.ToLower(s.(map[string]any)["status"].(string))]++
			}
			counts := p["sessionStatusCounts"].(map[string]any)
			for k, v := range tally {
				if counts[k] != v {
					t.Errorf("%s: %s: sessionStatusCounts %v, the sessions' statuses make %v", when, p["name"], counts, tally)
				}
			}
			if p["sessionCount"] != float64(len(ss)) {
				t.Errorf("%s: %s: sessionCount %v, %d sessions", when, p["name"], p["sessionCount"], len(ss))
			}
		}
		fast, viaGo, fastErr := bothPaths(t, e, q, nil)
		if fastErr != nil || fast != viaGo {
			t.Fatalf("%s: fast path (%v):\n%s\ngraphql-go:\n%s", when, fastErr, fast, viaGo)
		}
	}
	check("enabled")
	d := e.ok(`{ portMirrors(nameContains: "pm <a>") { uuid sessionCount sessionStatusCounts { inactive } } }`, nil)
	if get(d, "portMirrors.0.sessionCount") != float64(3) {
		t.Fatalf("sessionCount: %v", d)
	}
	e.ok(`mutation($u: ID!) { disablePortMirror(uuid: $u) { state } }`, map[string]any{"u": str(d, "portMirrors.0.uuid")})
	check("disabled")
	d = e.ok(`{ portMirrors(nameContains: "pm <a>") { sessionStatusCounts { inactive active } } }`, nil)
	if get(d, "portMirrors.0.sessionStatusCounts.inactive") != float64(3) {
		t.Fatalf("disabled: %v", d)
	}
}
