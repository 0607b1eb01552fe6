package graphql

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// TestForwardLeaderDiesAfterReading: the leader reads a forwarded mutation (it may
// commit it) and dies before answering, on a kept-alive connection. The answer must
// say the outcome is unknown, never that nothing was changed: a new attempt that
// cannot connect to the dead leader proves nothing about the first one.
func TestForwardLeaderDiesAfterReading(t *testing.T) {
	fc := &fakeCluster{}
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !strings.Contains(string(body), "mutation") {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"data":{"clusters":[]}}`)
			return
		}
		// Read (and, as far as the forwarder can tell, committed); then the leader dies.
		fc.set("")
		_ = srv.Listener.Close()
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			_ = conn.Close()
		}
	}))
	defer srv.Close()
	fc.set(srv.URL)
	e := newEnv(t, func(o *Options) { o.Cluster = fc })

	// A first request leaves a kept-alive connection to the leader in the forwarder's pool.
	if r := e.post("", `{ clusters { uuid } }`, nil); r.status != http.StatusOK || len(r.Errors) > 0 {
		t.Fatalf("query forwarded to the leader: %d %s", r.status, r.raw)
	}
	r := e.post("", `mutation { createCluster(input: {name: "x"}) { uuid } }`, nil)
	if r.code() != "UNAVAILABLE" || len(r.Errors) == 0 || !strings.Contains(r.Errors[0].Message, "unknown") ||
		strings.Contains(r.Errors[0].Message, "nothing was changed") {
		t.Fatalf("a mutation the leader read before dying: %d %s; want UNAVAILABLE saying its outcome is unknown", r.status, r.raw)
	}
}

// fakeCluster routes every request to its leader URL, or, without one, answers that no leader is reachable.
type fakeCluster struct {
	mu     sync.Mutex
	leader string
}

func (c *fakeCluster) set(u string) {
	c.mu.Lock()
	c.leader = u
	c.mu.Unlock()
}

func (c *fakeCluster) ID() string { return "f1" }
func (c *fakeCluster) Route(context.Context) (string, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leader == "" {
		return "", "no majority of the controllers is reachable, so none leads"
	}
	return c.leader, ""
}
func (c *fakeCluster) CheckSecret(s string) bool { return s == "secret" }
func (c *fakeCluster) Secret() string            { return "secret" }

// TestForwardToNonLeaderRetries: the controller a request is forwarded to does not
// lead (this one's idea of the leader was out of date) and refuses it, marked stale;
// the forwarder looks for the leader again and the client gets the leader's answer.
func TestForwardToNonLeaderRetries(t *testing.T) {
	fc := &fakeCluster{}
	leader := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"data":{"createCluster":{"uuid":"from-the-leader"}}}`)
	}))
	defer leader.Close()
	var mu sync.Mutex
	refused := 0
	follower := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		refused++
		mu.Unlock()
		fc.set(leader.URL) // by now this controller has heard of the real leader
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set(HeaderStale, "the leadership moved while the request was forwarded")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"data":null,"errors":[{"message":"nothing was changed","extensions":{"code":"UNAVAILABLE"}}]}`)
	}))
	defer follower.Close()
	fc.set(follower.URL)
	e := newEnv(t, func(o *Options) { o.Cluster = fc })

	r := e.post("", `mutation { createCluster(input: {name: "x"}) { uuid } }`, nil)
	if r.status != http.StatusOK || len(r.Errors) > 0 || str(r.Data, "createCluster.uuid") != "from-the-leader" {
		t.Fatalf("mutation forwarded to a controller that does not lead: %d %s; want the leader's answer", r.status, r.raw)
	}
	mu.Lock()
	defer mu.Unlock()
	if refused != 1 {
		t.Errorf("the controller that does not lead got %d requests, want 1", refused)
	}
}

func (c *fakeCluster) HTTPTransport() http.RoundTripper {
	return http.DefaultTransport.(*http.Transport).Clone()
}
