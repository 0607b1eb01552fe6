package graphql

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"

	gql "github.com/graphql-go/graphql"
	"github.com/graphql-go/graphql/language/parser"
	"github.com/graphql-go/graphql/language/source"

	"portmirror/model"
	"portmirror/service"
)

// requestIDs finds the request id in an INTERNAL error's message.
var requestIDs = regexp.MustCompile(`request_id [0-9a-f]+`)

// staticLive is a controller's live view with fixed answers, so that the queries of live state have data.
type staticLive struct{ w world }

func (l staticLive) SessionStatus(uuid string) (model.SessionStatus, string) {
	if strings.HasSuffix(uuid, "0") {
		return model.StatusError, "switch <0000000000000001> refused: \"bad\" & \u2028 é"
	}
	return model.StatusActive, ""
}

func (l staticLive) SessionRevision(string) (uint64, bool) { return 0, false }

func (l staticLive) Switches() []model.Switch {
	return []model.Switch{
		{DatapathID: "0000000000000001", HostUUID: l.w.host1, Connected: true, RemoteAddress: "127.0.0.1:4000",
			ConnectedAt: time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC), FlowCount: 12,
			Ports: []model.SwitchPort{{DatapathID: "0000000000000001", PortNo: 0xfffffffe, Name: "br-int", Up: true},
				{DatapathID: "0000000000000001", PortNo: 3, Name: "tap<1>", Up: false}}},
		{DatapathID: "00000000000000ff", HostUUID: uuidN(0x999), Ports: []model.SwitchPort{}},
		{DatapathID: "00000000000000fe"},
	}
}

func (l staticLive) NicPort(nic string) *model.SwitchPort {
	if nic == l.w.web1Nic {
		return &model.SwitchPort{DatapathID: "0000000000000001", PortNo: 3, Name: "tap<1>"}
	}
	return nil
}

func (l staticLive) HostConnected(host string) bool { return host == l.w.host1 }
func (l staticLive) HostDatapathID(host string) string {
	return map[string]string{l.w.host2: "00000000000000aa"}[host]
}

// failingBackend answers one cluster lookup with an internal fault, so that some queries end in a resolver error.
type failingBackend struct {
	*service.Service
	bad string
}

func (f failingBackend) Cluster(ctx context.Context, uuid string) (model.Cluster, error) {
	if uuid == f.bad {
		return model.Cluster{}, errors.New("disk on fire")
	}
	return f.Service.Cluster(ctx, uuid)
}

// oracleWorld fills an env with a varied inventory: odd characters in names, QoS, several port mirrors (one
// disabled), sessions of every direction, audit events.
func oracleWorld(t *testing.T, e *env) world {
	w := e.world()
	e.ok(`mutation { setVmNicQos(nicUuid: "`+w.otherNic+`", qos: {inboundBandwidthBps: 1000}) { uuid } }`, nil)
	e.ok(mCreatePM, map[string]any{"in": map[string]any{"name": "pm <a> & \"b\" é \u2028", "description": "line\nbreak\ttab",
		"flowNetworkUuid": w.flowNet, "enable": true, "sessions": []any{
			map[string]any{"name": "s1", "type": "BIDIRECTION", "sourceNicUuid": w.web1Nic, "destinationNicUuid": w.capture1},
			map[string]any{"name": "s2", "type": "INGRESS", "sourceNicUuid": w.web2Nic, "destinationNicUuid": w.capture1},
			map[string]any{"name": "s3", "type": "EGRESS", "sourceNicUuid": w.web1Nic, "destinationNicUuid": w.capture2},
		}}})
	fn2 := uuidN(0xf2)
	e.ok(mCreateFN, map[string]any{"in": map[string]any{"uuid": fn2, "name": "second", "cidr": "198.18.1.0/24",
		"encapsulation": "VXLAN", "clusterUuids": []any{w.cluster, w.cluster2}}})
	e.ok(mCreatePM, map[string]any{"in": map[string]any{"name": "disabled", "flowNetworkUuid": fn2, "enable": false}})
	e.ok(mCreateFN, map[string]any{"in": map[string]any{"uuid": uuidN(0xf3), "name": "free", "cidr": "198.18.2.0/24"}})
	return w
}

// randomQuery writes a random selection on typ: fields (aliased at times, __typename at times), inline fragments
// and named fragments, down to depth.
type queryGen struct {
	rng       *rand.Rand
	fragments []string
	n         int
}

func (g *queryGen) selection(typ *gql.Object, depth int) string {
	fields := typ.Fields()
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	// map order is random; sort for a reproducible stream
	sortStrings(names)
	var parts []string
	k := 1 + g.rng.IntN(4)
	for range k {
		if g.rng.IntN(8) == 0 {
			parts = append(parts, "__typename")
			continue
		}
		name := names[g.rng.IntN(len(names))]
		def := fields[name]
		if g.rng.IntN(10) == 0 && len(def.Args) > 0 {
			// an argument: the fast path gives up, graphql-go answers
			parts = append(parts, fmt.Sprintf("%s: %s(first: %d)", g.alias(), name, g.rng.IntN(3)))
			continue
		}
		hasRequired := false
		for _, a := range def.Args {
			if _, ok := a.Type.(*gql.NonNull); ok {
				hasRequired = true
			}
		}
		if hasRequired {
			continue
		}
		field := name
		if g.rng.IntN(4) == 0 {
			field = g.alias() + ": " + name
		}
		obj := objectOf(def.Type)
		if obj != nil {
			if depth <= 0 {
				continue
			}
			field += " { " + g.selection(obj, depth-1) + " }"
		}
		switch g.rng.IntN(10) {
		case 0:
			field = "... on " + typ.Name() + " { " + field + " }"
		case 1:
			g.n++
			name := fmt.Sprintf("F%d", g.n)
			g.fragments = append(g.fragments, fmt.Sprintf("fragment %s on %s { %s }", name, typ.Name(), field))
			field = "..." + name
		case 2:
			field = "... { " + field + " }"
		}
		parts = append(parts, field)
	}
	if len(parts) == 0 {
		parts = append(parts, "__typename")
	}
	return strings.Join(parts, " ")
}

func (g *queryGen) alias() string {
	g.n++
	return fmt.Sprintf("a%d", g.n)
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func objectOf(t gql.Type) *gql.Object {
	for {
		switch x := t.(type) {
		case *gql.NonNull:
			t = x.OfType
		case *gql.List:
			t = x.OfType
		case *gql.Object:
			return x
		default:
			return nil
		}
	}
}

// TestFastPathMatchesGraphQLGo holds the fast path against graphql-go on random queries over a varied store: the
// handler's answer must be byte for byte what graphql-go's result encodes to, whether the fast path answered or
// gave up (arguments, repeated keys, resolver errors), and the fast path must answer most of them.
func TestFastPathMatchesGraphQLGo(t *testing.T) {
	var svc *service.Service
	var w world
	e := newEnv(t, nil)
	w = oracleWorld(t, e)
	svc = e.svc
	svc.SetLive(staticLive{w})
	backend := failingBackend{Service: svc, bad: w.cluster2}
	h, err := New(Options{Backend: backend})
	if err != nil {
		t.Fatal(err)
	}
	e.h = h
	e.srv.Config.Handler = h

	rng := rand.New(rand.NewPCG(7, 11))
	fast, gaveUp, invalid := 0, 0, 0
	for i := range 800 { // enough for both paths with the paged lists, whose arguments send more queries to graphql-go
		g := &queryGen{rng: rng}
		q := "{ " + g.selection(h.schema.QueryType(), 4) + " }"
		if len(g.fragments) > 0 {
			q += "\n" + strings.Join(g.fragments, "\n")
		}
		astDoc, err := parser.Parse(parser.ParseParams{Source: source.NewSource(&source.Source{Body: []byte(q)})})
		if err != nil {
			t.Fatalf("query %d does not parse: %v\n%s", i, err, q)
		}
		if vr := gql.ValidateDocument(&h.schema, astDoc, nil); !vr.IsValid {
			invalid++ // graphql-go's validator refuses some fragment spreads inside lists; not this test's business
			continue
		}
		ctx := withRequestInfo(context.Background(), &requestInfo{id: "oracle", logger: h.logger})
		ctx = withPrincipal(ctx, principal{actor: "local", role: RoleAdmin}) // as the handler's context carries it
		res := gql.Execute(gql.ExecuteParams{Schema: h.schema, AST: astDoc, Context: ctx})
		completeErrors(ctx, res)
		want, err := json.Marshal(response{Data: res.Data, Errors: res.Errors})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, '\n')
		if _, err := executeFast(ctx, &h.schema, newDocument(astDoc, ""), nil, nil); err == nil {
			fast++
		} else if errors.Is(err, errGiveUp) {
			gaveUp++
		} else {
			t.Fatalf("query %d: %v", i, err)
		}
		r := e.post("", q, nil)
		if len(res.Errors) > 0 {
			// graphql-go runs a selection's fields in map order, so which of several errors it meets first (and
			// reports) varies from run to run; the data does not
			var a, b struct {
				Data   json.RawMessage `json:"data"`
				Errors []gqlError      `json:"errors"`
			}
			if json.Unmarshal([]byte(r.raw), &a) != nil || json.Unmarshal(want, &b) != nil || !bytes.Equal(a.Data, b.Data) ||
				len(a.Errors) == 0 || a.Errors[0].Extensions["code"] != b.Errors[0].Extensions["code"] {
				t.Fatalf("query %d:\n%s\nhandler answered:\n%s\ngraphql-go answers:\n%s", i, q, r.raw, want)
			}
			continue
		}
		if got := requestIDs.ReplaceAllString(r.raw, "request_id oracle"); got != string(want) {
			t.Fatalf("query %d:\n%s\nhandler answered:\n%s\ngraphql-go answers:\n%s", i, q, r.raw, want)
		}
	}
	t.Logf("%d queries answered by the fast path, %d by graphql-go, %d refused by validation", fast, gaveUp, invalid)
	if fast < 250 || gaveUp < 50 {
		t.Fatalf("fast path answered %d, gave up on %d: the random queries do not cover both", fast, gaveUp)
	}
}

// TestFastPathGivesUp lists what the fast path leaves to graphql-go, each answered as graphql-go answers it.
func TestFastPathGivesUp(t *testing.T) {
	e := newEnv(t, nil)
	oracleWorld(t, e)
	for _, tc := range []struct {
		name, query string
		vars        map[string]any
	}{
		{"variable not given", `query($n: Int) { audits(first: $n) { operation } }`, nil},
		{"null variable", `query($n: Int) { audits(first: $n) { operation } }`, map[string]any{"n": nil}},
		{"variable that does not coerce", `query($n: Int) { audits(first: $n) { operation } }`, map[string]any{"n": "two"}},
		{"directive", `{ clusters { uuid name @include(if: false) } }`, nil},
		{"introspection", `{ __schema { queryType { name } } }`, nil},
		{"repeated key", `{ clusters { uuid } clusters { name } }`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			astDoc, err := parser.Parse(parser.ParseParams{Source: source.NewSource(&source.Source{Body: []byte(tc.query)})})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			_, err = executeFast(ctx, &e.h.schema, newDocument(astDoc, ""), tc.vars, nil)
			if !errors.Is(err, errGiveUp) {
				t.Fatalf("fast path answered %s", tc.query)
			}
			r := e.post("", tc.query, tc.vars)
			if r.status != 200 || !bytes.Contains([]byte(r.raw), []byte(`"data"`)) && !bytes.Contains([]byte(r.raw), []byte(`"errors"`)) {
				t.Fatalf("%d %s", r.status, r.raw)
			}
		})
	}
}

// TestFastPathArguments holds the fast path's arguments and variables against graphql-go: for each query the fast
// path answers, byte for byte what graphql-go's result with the same variables encodes to.
func TestFastPathArguments(t *testing.T) {
	e := newEnv(t, nil)
	w := oracleWorld(t, e)
	e.svc.SetLive(staticLive{w})
	page := `query($f: String, $n: Int) { portMirrorPage(first: $n, nameContains: $f) { totalCount items { uuid name state sessions { uuid name status } } } }`
	for _, tc := range []struct {
		name, query string
		vars        map[string]any
	}{
		{"literal arguments", `{ portMirrorPage(first: 1, nameContains: "PM") { totalCount items { name } } }`, nil},
		{"variables", page, map[string]any{"f": "pm", "n": 100}},
		{"variable as JSON number", page, map[string]any{"f": "", "n": float64(2)}},
		{"variable left to the argument's default", `query($f: String) { portMirrorPage(nameContains: $f) { totalCount items { name } } }`, map[string]any{"f": "nothing"}},
		{"variable default", `query($n: Int = 1) { audits(first: $n) { operation } }`, nil},
		{"nested argument", `{ portMirrors { name audits(first: 1) { operation } } }`, nil},
		{"id argument", `query($u: ID!) { flowNetwork(uuid: $u) { uuid name } }`, map[string]any{"u": w.flowNet}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, want, err := bothPaths(t, e, tc.query, tc.vars)
			if err != nil {
				t.Fatalf("the fast path gave up: %v", err)
			}
			if strings.Contains(want, `"errors":`) {
				t.Fatalf("graphql-go: %s", want)
			}
			if got != want {
				t.Fatalf("fast path answered:\n%s\ngraphql-go answers:\n%s", got, want)
			}
		})
	}
}
