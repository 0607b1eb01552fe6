package graphql

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"portmirror/service"
)

// Cluster is what the API asks of the controllers' cluster; nil for a controller that runs alone.
type Cluster interface {
	ID() string
	// Route says where a request is served now: leaderURL, the leader's API to forward it to; both empty, here
	// (this controller leads and has confirmed it); stale, why no leader can serve it (queries are then answered
	// from this controller's copy, marked stale, and mutations refused as UNAVAILABLE).
	Route(ctx context.Context) (leaderURL, stale string)
	// CheckSecret reports whether a request carrying it comes from a member.
	CheckSecret(secret string) bool
	Secret() string
	// HTTPTransport carries requests to other members (mutual TLS where the cluster uses it).
	HTTPTransport() http.RoundTripper
}

// Headers of a request forwarded from one controller to the leader.
const (
	HeaderClusterSecret = "X-Portmirror-Cluster-Secret" // the members' secret: the request comes from a member
	HeaderForwardedFor  = "X-Portmirror-Forwarded-For"  // the client's address, as the forwarding member saw it
	HeaderVia           = "X-Portmirror-Via"            // the id of the member the client sent the request to
	// HeaderStale is set on an answer from a controller that reaches no leader: its copy may lack recent changes.
	HeaderStale = "X-Portmirror-Stale"
)

// forwardTimeout bounds one forwarded request; the leader refuses a mutation it cannot commit within 10 s.
const forwardTimeout = 15 * time.Second

// staleRetryMargin: an answer marked stale from the controller a request was forwarded to (it does not lead) is
// retried at the leader while more than this is left of forwardTimeout, and passed on after.
const staleRetryMargin = 5 * time.Second

type staleKey struct{}

// staleFrom is why the request is answered from a copy that may be stale, or "".
func staleFrom(ctx context.Context) string {
	s, _ := ctx.Value(staleKey{}).(string)
	return s
}

// routed serves a GraphQL request where the cluster says: here, at the leader (forwarded, with the caller's
// identity), or here from this controller's copy, marked stale.
func (h *Handler) routed(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if h.cluster == nil || !isGraphQLRequest(r) {
			next(w, r)
			return
		}
		ctx := r.Context()
		if secret := r.Header.Get(HeaderClusterSecret); secret != "" {
			// From a member: served here as it is, never forwarded again.
			if !h.cluster.CheckSecret(secret) {
				h.writeErrors(w, http.StatusForbidden, requestError(service.CodeForbidden, "",
					"the request claims to come from a controller of this cluster, but its cluster secret is wrong"))
				return
			}
			if a := r.Header.Get(HeaderForwardedFor); a != "" {
				r.RemoteAddr = a
			}
			ctx = service.WithVia(ctx, r.Header.Get(HeaderVia))
			if url, stale := h.cluster.Route(ctx); url != "" || stale != "" {
				if stale == "" {
					stale = "the leadership moved while the request was forwarded"
				}
				ctx = context.WithValue(ctx, staleKey{}, stale)
			}
			h.serveStale(w, r.WithContext(ctx), next)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
		if err != nil {
			h.writeErrors(w, http.StatusRequestEntityTooLarge, requestError(service.CodeValidation, service.RuleInvalidArgument,
				fmt.Sprintf("the request body is larger than %d bytes or could not be read: %v", h.maxBody, err)))
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		url, stale := h.cluster.Route(ctx)
		switch {
		case url != "":
			h.forward(w, r, body, url)
		case stale != "":
			h.serveStale(w, r.WithContext(context.WithValue(ctx, staleKey{}, stale)), next)
		default:
			next(w, r)
		}
	}
}

// isGraphQLRequest is a request that runs a document (not GraphiQL's page).
func isGraphQLRequest(r *http.Request) bool {
	return r.Method == http.MethodPost || (r.Method == http.MethodGet && r.URL.Query().Has("query"))
}

// serveStale serves the request here; when it is marked stale, the answer says so (a header, and
// extensions.stale in the body).
func (h *Handler) serveStale(w http.ResponseWriter, r *http.Request, next http.HandlerFunc) {
	stale := staleFrom(r.Context())
	if stale == "" {
		next(w, r)
		return
	}
	w.Header().Set(HeaderStale, stale)
	rec := &recorder{header: w.Header(), status: http.StatusOK}
	next(rec, r)
	body := rec.buf.Bytes()
	trimmed := bytes.TrimRight(body, "\n")
	if len(trimmed) > 0 && trimmed[len(trimmed)-1] == '}' && bytes.HasPrefix(trimmed, []byte("{")) {
		ext, _ := json.Marshal(map[string]any{"stale": true, "staleReason": stale})
		var out bytes.Buffer
		out.Write(trimmed[:len(trimmed)-1])
		if len(trimmed) > 2 {
			out.WriteByte(',')
		}
		out.WriteString(`"extensions":`)
		out.Write(ext)
		out.WriteString("}\n")
		body = out.Bytes()
	}
	w.Header().Del("Content-Length")
	w.WriteHeader(rec.status)
	_, _ = w.Write(body)
}

// recorder buffers a response.
type recorder struct {
	header http.Header
	status int
	buf    bytes.Buffer
	wrote  bool
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.buf.Write(b)
}
func (r *recorder) WriteHeader(status int) {
	if !r.wrote {
		r.status = status
		r.wrote = true
	}
}

// forward sends the request to the leader's API with the caller's identity and copies the answer back. A
// leader that cannot be reached is looked for again (an election may be under way) until the forwarding time
// runs out; a request whose answer was lost after it was sent is answered UNAVAILABLE, its outcome unknown.
func (h *Handler) forward(w http.ResponseWriter, r *http.Request, body []byte, leaderURL string) {
	ctx, cancel := context.WithTimeout(r.Context(), forwardTimeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	for {
		target := strings.TrimRight(leaderURL, "/") + r.URL.RequestURI()
		req, err := http.NewRequestWithContext(ctx, r.Method, target, bytes.NewReader(body))
		if err != nil {
			h.writeErrors(w, http.StatusInternalServerError, requestError(service.CodeInternal, "", "forwarding to the leader: "+err.Error()))
			return
		}
		for _, k := range []string{"Content-Type", "Accept", "Authorization", "User-Agent"} {
			if v := r.Header.Get(k); v != "" {
				req.Header.Set(k, v)
			}
		}
		req.Header.Set(HeaderClusterSecret, h.cluster.Secret())
		req.Header.Set(HeaderForwardedFor, r.RemoteAddr)
		req.Header.Set(HeaderVia, h.cluster.ID())
		// No idempotency key: with one, net/http resends a request whose kept-alive connection broke after it was
		// written (the leader may have read and committed it), and a resend that then cannot connect would pass
		// below for a request never sent ("nothing was changed"). Without one it resends only what it never wrote.
		resp, err := h.forwarder.Do(req)
		if err == nil && (resp.Header.Get(HeaderStale) == "" || time.Until(deadline) < staleRetryMargin) {
			defer resp.Body.Close()
			for _, k := range []string{"Content-Type", "Cache-Control", "Vary", "WWW-Authenticate", "Allow", HeaderStale} {
				if v := resp.Header.Get(k); v != "" {
					w.Header().Set(k, v)
				}
			}
			w.WriteHeader(resp.StatusCode)
			_, _ = io.Copy(w, resp.Body)
			return
		}
		if err == nil {
			// The controller reached does not lead (this one's idea of the leader was out of date, e.g. a restarted
			// ex-leader): it refused a mutation unchanged, or answered a query from its copy. Look for the leader again.
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			h.logger.Info("the controller the request was forwarded to does not lead; looking for the leader again",
				"forwarded_to", leaderURL, "why", resp.Header.Get(HeaderStale))
		} else {
			var op *net.OpError
			notSent := errors.As(err, &op) && op.Op == "dial"
			if !notSent || ctx.Err() != nil {
				h.logger.Warn("forwarding a request to the leader failed", "leader", leaderURL, "err", err)
				msg := "the request was forwarded to the leader controller, which did not answer; its outcome is unknown (a mutation may have been applied: the audit trail tells): " + err.Error()
				if !notSent {
					h.writeErrors(w, http.StatusServiceUnavailable, requestError(service.CodeUnavailable, "", msg))
					return
				}
				h.writeErrors(w, http.StatusServiceUnavailable, requestError(service.CodeUnavailable, "",
					"no leader controller could be reached; nothing was changed: "+err.Error()))
				return
			}
			h.logger.Info("the leader did not take the connection; looking for the leader again", "leader", leaderURL, "err", err)
		}
		// Wait for the leader, or serve here if this controller now leads.
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
		url, stale := h.cluster.Route(ctx)
		switch {
		case url != "":
			leaderURL = url
		case stale != "" || ctx.Err() != nil:
			if stale == "" {
				stale = ctx.Err().Error()
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			h.serveStale(w, r.WithContext(context.WithValue(r.Context(), staleKey{}, stale)), h.serveGraphQL)
			return
		default:
			r.Body = io.NopCloser(bytes.NewReader(body))
			h.serveGraphQL(w, r)
			return
		}
	}
}

// newForwarder is the HTTP client forwarded requests go through.
func newForwarder(c Cluster) *http.Client {
	return &http.Client{Transport: c.HTTPTransport(), Timeout: forwardTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}
