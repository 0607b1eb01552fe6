// Package graphql serves the management API of API.md: the GraphQL schema and its resolvers over the service,
// its own HTTP layer (POST /graphql, GraphiQL on GET /graphql from embedded assets, /healthz, /metrics), bearer
// token authentication with admin and viewer roles, and a bound on the cost of one document.
package graphql

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gql "github.com/graphql-go/graphql"
	"github.com/graphql-go/graphql/gqlerrors"
	"github.com/graphql-go/graphql/language/parser"
	"github.com/graphql-go/graphql/language/source"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"portmirror/service"
)

// Backend is what the API needs of the service: its operations, and recording a mutation refused before it
// reached the service (a viewer's mutation).
type Backend interface {
	service.Operations
	AuditRefused(ctx context.Context, operation, resourceType, resourceUUID string, err error, detail any) error
}

// HealthCheck is one condition of GET /healthz; Check returns nil when it holds, or the reason it does not.
type HealthCheck struct {
	Name  string
	Check func(ctx context.Context) error
}

// Options configure a Handler. Backend is required; zero values elsewhere take the defaults.
type Options struct {
	Backend Backend
	Tokens  []Token // none: the API serves loopback clients only, as the actor "local"
	Health  []HealthCheck
	Logger  *slog.Logger
	// Registry receives the API's metrics and the Go and process collectors; GET /metrics serves it. Nil: a new
	// one (see Handler.Registry).
	Registry     *prometheus.Registry
	MaxBodyBytes int64 // a POST body larger than this is refused with 413; default 1 MiB
	MaxDepth     int   // a document nested deeper is refused; default 12
	MaxFields    int   // a document selecting more fields (fragments expanded) is refused; default 5000
	// MetricsAuth makes GET /metrics authenticate as POST /graphql does (a token of any role; loopback only
	// without tokens). Without it /metrics is open to every client that reaches the listener.
	MetricsAuth bool
	// OnAuthFailure, when set, is called for every refused authentication with the client's address and why.
	OnAuthFailure func(remote, reason string)
	// Console serves GET / and what is under ConsolePrefix (the web console); nil: / redirects to GraphiQL.
	Console       http.Handler
	ConsolePrefix string
	// Cluster, when set, routes every GraphQL request to the leader controller (see Cluster).
	Cluster Cluster
	// HealthDetail adds fields to GET /healthz's body (the cluster role and leader).
	HealthDetail func() map[string]any
	// Extra handlers mounted on the API's mux by path pattern (e.g. the cluster's internal endpoint).
	Extra map[string]http.Handler
}

// Default limits.
const (
	DefaultMaxBodyBytes = 1 << 20
	DefaultMaxDepth     = 12
	DefaultMaxFields    = 5000
)

// Handler is the HTTP API. It is safe for concurrent use.
type Handler struct {
	backend    Backend
	schema     gql.Schema
	auth       atomic.Pointer[authenticator]
	onAuthFail func(remote, reason string)
	health     []HealthCheck
	logger     *slog.Logger
	registry   *prometheus.Registry
	metrics    *metrics
	maxBody    int64
	maxDepth   int
	maxFields  int
	mux        *http.ServeMux
	cluster    Cluster
	detail     func() map[string]any
	forwarder  *http.Client
	// fastBufs holds *[]byte: the buffers of the fast path's answers, reused (a large page is megabytes, grown
	// by doubling; the pool keeps those up to maxPooledBuf).
	fastBufs sync.Pool
}

// maxPooledBuf is the largest answer buffer fastBufs keeps.
const maxPooledBuf = 16 << 20

// New builds the API handler.
func New(opts Options) (*Handler, error) {
	if opts.Backend == nil {
		return nil, errors.New("graphql: Options.Backend is required")
	}
	if err := ValidateTokens(opts.Tokens); err != nil {
		return nil, fmt.Errorf("graphql: %w", err)
	}
	schema, err := NewSchema(opts.Backend)
	if err != nil {
		return nil, err
	}
	h := &Handler{
		backend:    opts.Backend,
		schema:     schema,
		onAuthFail: opts.OnAuthFailure,
		health:     opts.Health,
		logger:     opts.Logger,
		registry:   opts.Registry,
		maxBody:    opts.MaxBodyBytes,
		maxDepth:   opts.MaxDepth,
		maxFields:  opts.MaxFields,
		cluster:    opts.Cluster,
		detail:     opts.HealthDetail,
	}
	if h.cluster != nil {
		h.forwarder = newForwarder(h.cluster)
	}
	h.fastBufs.New = func() any { return new([]byte) }
	h.auth.Store(newAuthenticator(opts.Tokens))
	if h.logger == nil {
		h.logger = slog.New(slog.DiscardHandler)
	}
	if h.registry == nil {
		h.registry = prometheus.NewRegistry()
	}
	if h.maxBody <= 0 {
		h.maxBody = DefaultMaxBodyBytes
	}
	if h.maxDepth <= 0 {
		h.maxDepth = DefaultMaxDepth
	}
	if h.maxFields <= 0 {
		h.maxFields = DefaultMaxFields
	}
	if h.metrics, err = newMetrics(h.registry); err != nil {
		return nil, fmt.Errorf("graphql: registering metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/graphql", h.routed(h.serveGraphQL))
	for pattern, handler := range opts.Extra {
		mux.Handle(pattern, handler)
	}
	mux.HandleFunc(assetsPath, serveAsset)
	mux.HandleFunc("/healthz", h.serveHealth)
	var metricsHandler http.Handler = promhttp.HandlerFor(h.registry, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(h.logger.Handler(), slog.LevelWarn)})
	if opts.MetricsAuth {
		metricsHandler = h.requireToken(metricsHandler)
	}
	mux.Handle("/metrics", metricsHandler)
	if opts.Console != nil {
		mux.Handle("/{$}", opts.Console)
		if opts.ConsolePrefix != "" {
			mux.Handle(opts.ConsolePrefix, opts.Console)
		}
	} else {
		mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/graphql", http.StatusFound)
		})
	}
	h.mux = mux
	return h, nil
}

// SetTokens replaces the tokens (a config reload); requests from then on authenticate against the new list.
func (h *Handler) SetTokens(tokens []Token) error {
	if err := ValidateTokens(tokens); err != nil {
		return fmt.Errorf("graphql: %w", err)
	}
	h.auth.Store(newAuthenticator(tokens))
	return nil
}

// authenticate finds who sends r, reporting a refusal to OnAuthFailure.
func (h *Handler) authenticate(r *http.Request) (principal, *authError) {
	who, aerr := h.auth.Load().authenticate(r)
	if aerr != nil && h.onAuthFail != nil {
		h.onAuthFail(r.RemoteAddr, r.Method+" "+r.URL.Path+": "+aerr.msg)
	}
	return who, aerr
}

// requireToken lets a request through to next only when it authenticates.
func (h *Handler) requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, aerr := h.authenticate(r); aerr != nil {
			if aerr.status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="portmirror"`)
			}
			h.writeErrors(w, aerr.status, requestError(service.Code(aerr.code), "", aerr.msg))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Registry is where the API's metrics are registered; the daemon registers its other collectors on it.
func (h *Handler) Registry() *prometheus.Registry { return h.registry }

// Schema is the executable schema (for tools that print or check it).
func (h *Handler) Schema() gql.Schema { return h.schema }

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// request is a GraphQL-over-HTTP request: the JSON body of a POST, or the parameters of a GET.
type request struct {
	Query         string         `json:"query"`
	Variables     map[string]any `json:"variables"`
	OperationName string         `json:"operationName"`
	Extensions    map[string]any `json:"extensions"`
}

// response is what /graphql answers; graphql-go's Result has the same shape. noData leaves out the data entry,
// as the GraphQL specification asks of an error raised before execution (a request error).
type response struct {
	Data   any                        `json:"data"`
	Errors []gqlerrors.FormattedError `json:"errors,omitempty"`
	noData bool
}

func (r response) MarshalJSON() ([]byte, error) {
	if r.noData {
		return json.Marshal(struct {
			Errors []gqlerrors.FormattedError `json:"errors"`
		}{r.Errors})
	}
	type plain response // without this method
	return json.Marshal(plain(r))
}

// The media types of the GraphQL-over-HTTP specification.
const (
	mediaGraphQLResponse = "application/graphql-response+json"
	mediaJSON            = "application/json"
)

// negotiate picks the response's media type from the Accept header: the acceptable one with the highest
// quality, application/graphql-response+json on a tie; application/json when Accept is absent or says only */*
// or application/*, as the specification asks of servers during its transition. "" when neither is acceptable.
func negotiate(accept string) string {
	if strings.TrimSpace(accept) == "" {
		return mediaJSON
	}
	best, bestQ, bestExplicit := "", 0.0, false
	for part := range strings.SplitSeq(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			if _, err := fmt.Sscanf(v, "%g", &q); err != nil {
				continue
			}
		}
		if q <= 0 {
			continue
		}
		var cand string
		explicit := true
		switch mt {
		case mediaGraphQLResponse, mediaJSON:
			cand = mt
		case "*/*", "application/*":
			cand, explicit = mediaJSON, false
		default:
			continue
		}
		if q > bestQ || q == bestQ && (explicit && !bestExplicit || explicit && cand == mediaGraphQLResponse) {
			best, bestQ, bestExplicit = cand, q, explicit
		}
	}
	return best
}

// acceptsHTML reports whether the client asked for HTML (a browser opening the URL).
func acceptsHTML(accept string) bool {
	for part := range strings.SplitSeq(accept, ",") {
		if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == "text/html" {
			return true
		}
	}
	return false
}

// exchange is one request to /graphql and how it is answered.
type exchange struct {
	h     *Handler
	w     http.ResponseWriter
	r     *http.Request
	media string // the response's media type
	out   outcome
}

// outcome is what one request ended as, for metrics and the log.
type outcome struct {
	operation string // the first root field, or what stopped the request before execution
	code      string
	actor     string
}

// fail answers a request error: no data entry, the status given.
func (x *exchange) fail(status int, e gqlerrors.FormattedError) {
	x.out.code, _ = e.Extensions["code"].(string)
	x.h.writeJSON(x.w, x.media, status, response{Errors: []gqlerrors.FormattedError{e}, noData: true})
}

// requestErrors answers a document that does not parse or validate, or whose variables do not fit: no data
// entry; 400 for application/graphql-response+json, 200 for application/json (the specification's rule).
func (x *exchange) requestErrors(ctx context.Context, errs []gqlerrors.FormattedError) {
	res := &gql.Result{Errors: errs}
	completeErrors(ctx, res)
	x.out.code = firstCode(res.Errors)
	status := http.StatusOK
	if x.media == mediaGraphQLResponse {
		status = http.StatusBadRequest
	}
	x.h.writeJSON(x.w, x.media, status, response{Errors: res.Errors, noData: true})
}

// result answers an execution. One that never started (variables that do not coerce) has neither data nor an
// error with a path: that is a request error.
func (x *exchange) result(ctx context.Context, res *gql.Result) {
	if res.Data == nil && len(res.Errors) > 0 && !slices.ContainsFunc(res.Errors, func(e gqlerrors.FormattedError) bool { return len(e.Path) > 0 }) {
		x.requestErrors(ctx, res.Errors)
		return
	}
	completeErrors(ctx, res)
	x.out.code = firstCode(res.Errors)
	x.h.writeJSON(x.w, x.media, http.StatusOK, response{Data: res.Data, Errors: res.Errors})
}

func (h *Handler) serveGraphQL(w http.ResponseWriter, r *http.Request) {
	accept := r.Header.Get("Accept")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		// GraphiQL for a person: a GET without a query, unless the client asked for JSON and not HTML
		if !r.URL.Query().Has("query") && (acceptsHTML(accept) || strings.TrimSpace(accept) == "" || negotiate(accept) == "") {
			serveGraphiQL(w, r)
			return
		}
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		h.writeJSON(w, mediaJSON, http.StatusMethodNotAllowed, response{noData: true, Errors: []gqlerrors.FormattedError{
			requestError(service.CodeValidation, service.RuleInvalidArgument,
				r.Method+" is not allowed on /graphql: POST a query or mutation, GET a query, or GET the GraphiQL page")}})
		return
	}
	w.Header().Add("Vary", "Accept")
	x := &exchange{h: h, w: w, r: r, media: negotiate(accept), out: outcome{operation: "invalid", code: "OK"}}
	if x.media == "" {
		x.media = mediaJSON
		x.fail(http.StatusNotAcceptable, requestError(service.CodeValidation, service.RuleInvalidArgument,
			"the Accept header allows neither application/graphql-response+json nor application/json, the media types of GraphQL responses"))
		return
	}
	x.serve()
}

func (x *exchange) serve() {
	h, r, w := x.h, x.r, x.w
	start := time.Now()
	ri := &requestInfo{id: newRequestID(), logger: h.logger}
	defer func() {
		d := time.Since(start)
		h.metrics.requests.WithLabelValues(x.out.operation, x.out.code).Inc()
		h.metrics.duration.WithLabelValues(x.out.operation).Observe(d.Seconds())
		h.logger.LogAttrs(r.Context(), slog.LevelDebug, "graphql request", slog.String("request_id", ri.id),
			slog.String("method", r.Method), slog.String("remote", r.RemoteAddr), slog.String("actor", x.out.actor),
			slog.String("operation", x.out.operation), slog.String("code", x.out.code), slog.Duration("duration", d))
	}()

	who, aerr := h.authenticate(r)
	if aerr != nil {
		x.out.operation = "unauthenticated"
		if aerr.status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="portmirror"`)
		}
		x.fail(aerr.status, requestError(service.Code(aerr.code), "", aerr.msg))
		return
	}
	x.out.actor = who.actor

	var req request
	var status int
	var e gqlerrors.FormattedError
	if r.Method == http.MethodPost {
		// application/json only: a browser cannot send it cross-site without a CORS preflight, which this server
		// never grants, so a web page cannot drive the API through a user's browser.
		mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if cs, ok := params["charset"]; err != nil || mt != mediaJSON || ok && !strings.EqualFold(cs, "utf-8") {
			x.fail(http.StatusUnsupportedMediaType, requestError(service.CodeValidation, service.RuleInvalidArgument,
				"the request body must be JSON {query, variables, operationName} with Content-Type: application/json (UTF-8)"))
			return
		}
		req, status, e = h.readRequest(w, r)
	} else {
		req, status, e = readGetRequest(r)
	}
	if status != 0 {
		x.fail(status, e)
		return
	}

	ri.vars = req.Variables
	src := source.NewSource(&source.Source{Body: []byte(req.Query), Name: "GraphQL request"})
	astDoc, err := parser.Parse(parser.ParseParams{Source: src})
	if err != nil {
		x.requestErrors(r.Context(), gqlerrors.FormatErrors(err))
		return
	}
	doc := newDocument(astDoc, req.OperationName)
	if err := doc.measure(h.maxDepth, h.maxFields); err != nil {
		x.requestErrors(r.Context(), []gqlerrors.FormattedError{requestError(service.CodeValidation, service.RuleInvalidArgument, err.Error())})
		return
	}
	if vr := gql.ValidateDocument(&h.schema, astDoc, nil); !vr.IsValid {
		x.requestErrors(r.Context(), vr.Errors)
		return
	}
	if fields := doc.rootFields(); len(fields) > 0 && fields[0].Name != nil {
		x.out.operation = fields[0].Name.Value
	}
	if doc.op == nil && req.OperationName != "" {
		x.requestErrors(r.Context(), []gqlerrors.FormattedError{requestError(service.CodeValidation, service.RuleInvalidArgument,
			fmt.Sprintf("the document has no operation named %q", req.OperationName))})
		return
	}
	if r.Method != http.MethodPost && doc.isMutation() {
		// GET is safe: a mutation is sent with POST (the specification's 405)
		w.Header().Set("Allow", "POST")
		x.fail(http.StatusMethodNotAllowed, requestError(service.CodeValidation, service.RuleInvalidArgument,
			"a mutation is sent with POST /graphql; GET runs queries only"))
		return
	}

	// The request's own context is not passed on: graphql-go returns as soon as its context is done but leaves
	// the execution running on its own goroutine. Without cancellation, every execution ends before its request
	// does, which is what lets a graceful shutdown wait for the mutations in flight.
	ctx := context.WithoutCancel(r.Context())
	ctx = service.WithActor(ctx, who.actor)
	ctx = withPrincipal(ctx, who)
	ctx = withRequestInfo(ctx, ri)

	if stale := staleFrom(ctx); stale != "" && doc.isMutation() {
		x.fail(http.StatusServiceUnavailable, requestError(service.CodeUnavailable, "",
			"mutations are refused while no majority of the controllers is reachable; nothing was changed: "+stale))
		return
	}
	if doc.isMutation() && who.role != RoleAdmin {
		h.refuseMutations(ctx, doc, req.Variables, who)
		x.fail(http.StatusForbidden, requestError(service.CodeForbidden, "",
			fmt.Sprintf("token %q has the role %s, which may only query; mutations need an admin token", who.actor, who.role)))
		return
	}

	if !doc.isMutation() {
		bp := h.fastBufs.Get().(*[]byte)
		body, err := executeFast(ctx, &h.schema, doc, req.Variables, *bp)
		if err == nil {
			h.writeBody(w, x.media, http.StatusOK, body)
			if cap(body) <= maxPooledBuf {
				*bp = body[:0]
			}
		}
		h.fastBufs.Put(bp)
		if err == nil {
			return
		}
	}
	x.result(ctx, gql.Execute(gql.ExecuteParams{
		Schema:        h.schema,
		AST:           astDoc,
		OperationName: req.OperationName,
		Args:          req.Variables,
		Context:       ctx,
	}))
}

// badRequest is a malformed GraphQL-over-HTTP request (400 in either media type).
func badRequest(msg string) (request, int, gqlerrors.FormattedError) {
	return request{}, http.StatusBadRequest, requestError(service.CodeValidation, service.RuleInvalidArgument, msg)
}

// readGetRequest reads the parameters of a GET: query, and variables and extensions as JSON objects.
func readGetRequest(r *http.Request) (request, int, gqlerrors.FormattedError) {
	qs := r.URL.Query()
	req := request{Query: qs.Get("query"), OperationName: qs.Get("operationName")}
	for _, p := range []struct {
		name string
		into *map[string]any
	}{{"variables", &req.Variables}, {"extensions", &req.Extensions}} {
		v := qs.Get(p.name)
		if v == "" {
			continue
		}
		if err := json.Unmarshal([]byte(v), p.into); err != nil {
			return badRequest(fmt.Sprintf("the %s parameter is not a JSON object: %v", p.name, err))
		}
	}
	if strings.TrimSpace(req.Query) == "" {
		return badRequest("the request has no query: GET /graphql?query=...; open /graphql in a browser for GraphiQL")
	}
	return req, 0, gqlerrors.FormattedError{}
}

// readRequest reads and decodes the body; a non-zero status is a refusal with its error.
func (h *Handler) readRequest(w http.ResponseWriter, r *http.Request) (request, int, gqlerrors.FormattedError) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return request{}, http.StatusRequestEntityTooLarge, requestError(service.CodeValidation, service.RuleInvalidArgument,
				fmt.Sprintf("the request body is larger than %d bytes: send smaller documents (e.g. fewer sessions per call)", h.maxBody))
		}
		return badRequest("reading the request body: " + err.Error())
	}
	var req request
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil {
		return badRequest("the request body is not JSON of the form {\"query\": ..., \"variables\": {...}, \"operationName\": ...}: " + err.Error())
	}
	if dec.More() {
		return badRequest("the request body has data after its JSON object: send one request per POST")
	}
	if strings.TrimSpace(req.Query) == "" {
		return badRequest("the request has no query: send {\"query\": \"...\"}")
	}
	return req, 0, gqlerrors.FormattedError{}
}

// refuseMutations records one refused audit event per mutation field of a document that a viewer sent.
func (h *Handler) refuseMutations(ctx context.Context, doc *document, vars map[string]any, who principal) {
	for _, f := range doc.rootFields() {
		if f.Name == nil || strings.HasPrefix(f.Name.Value, "__") {
			continue
		}
		op := f.Name.Value
		args := argumentValues(f, vars)
		resType, resUUID := h.mutationResource(ctx, op, args)
		refusal := &service.Error{Code: service.CodeForbidden,
			Message: fmt.Sprintf("%s refused: token %q has the role %s, which may only query", op, who.actor, who.role)}
		if err := h.backend.AuditRefused(ctx, op, resType, resUUID, refusal, map[string]any{"input": args}); err != nil {
			ri := requestInfoFrom(ctx)
			h.logger.LogAttrs(ctx, slog.LevelError, "recording a refused mutation in the audit log failed",
				slog.String("request_id", ri.id), slog.String("operation", op), slog.Any("error", err))
		}
	}
}

// mutationResource is the resource type and uuid an audit event of mutation op names, from its arguments.
func (h *Handler) mutationResource(ctx context.Context, op string, args map[string]any) (string, string) {
	input := argObject(args, "input")
	switch op {
	case "createCluster":
		return "Cluster", argString(input, "uuid")
	case "registerHost":
		return "Host", argString(input, "uuid")
	case "deleteHost":
		return "Host", argString(args, "uuid")
	case "registerHosts":
		return "Host", ""
	case "createVmInstances":
		return "VmInstance", ""
	case "createVmInstance":
		return "VmInstance", argString(input, "uuid")
	case "migrateVmInstance", "deleteVmInstance":
		return "VmInstance", argString(args, "uuid")
	case "setVmNicQos":
		return "VmNic", argString(args, "nicUuid")
	case "createFlowNetwork":
		return "FlowNetwork", argString(input, "uuid")
	case "attachFlowNetworkToCluster", "detachFlowNetworkFromCluster", "setFlowEndpoint":
		return "FlowNetwork", argString(args, "flowNetworkUuid")
	case "deleteFlowNetwork":
		return "FlowNetwork", argString(args, "uuid")
	case "createPortMirror":
		return "PortMirror", ""
	case "updatePortMirror", "enablePortMirror", "disablePortMirror", "deletePortMirror":
		return "PortMirror", argString(args, "uuid")
	case "addPortMirrorSession":
		// an operation on a session is an event about its port mirror (API.md), as the service records it
		return "PortMirror", argString(args, "portMirrorUuid")
	case "deletePortMirrorSession", "updatePortMirrorSession", "probePortMirrorSession":
		if s, err := h.backend.Session(ctx, argString(args, "uuid")); err == nil {
			return "PortMirror", s.PortMirrorUUID
		}
		return "PortMirror", ""
	case "addControllerNode", "removeControllerNode":
		return "ControllerNode", argString(args, "id")
	}
	return "", ""
}

// writeErrors answers a request error in application/json (for refusals made before the media type is known).
func (h *Handler) writeErrors(w http.ResponseWriter, status int, errs ...gqlerrors.FormattedError) {
	h.writeJSON(w, mediaJSON, status, response{Errors: errs, noData: true})
}

func (h *Handler) writeJSON(w http.ResponseWriter, media string, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		h.logger.Error("encoding a GraphQL response failed", "error", err)
		status = http.StatusInternalServerError
		body = []byte(`{"errors":[{"message":"encoding the response failed; see the portmirrord log","extensions":{"code":"INTERNAL"}}]}`)
	}
	h.writeBody(w, media, status, append(body, '\n'))
}

// writeBody writes a JSON response body as it is, in the media type given.
func (h *Handler) writeBody(w http.ResponseWriter, media string, status int, body []byte) {
	w.Header().Set("Content-Type", media+"; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// serveHealth runs every health check: 200 when all hold, 503 with the reasons otherwise.
func (h *Handler) serveHealth(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	type check struct {
		Name   string `json:"name"`
		OK     bool   `json:"ok"`
		Reason string `json:"reason,omitempty"`
	}
	body := map[string]any{}
	checks := []check{}
	status := http.StatusOK
	if h.detail != nil {
		for k, v := range h.detail() {
			body[k] = v
		}
	}
	for _, hc := range h.health {
		c := check{Name: hc.Name, OK: true}
		if err := hc.Check(ctx); err != nil {
			c.OK, c.Reason = false, err.Error()
			status = http.StatusServiceUnavailable
		}
		checks = append(checks, c)
	}
	body["status"], body["checks"] = "ok", checks
	if status != http.StatusOK {
		body["status"] = "unavailable"
	}
	h.writeJSON(w, mediaJSON, status, body)
}
