package netlimit

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestPerAddr: over real TCP, the third connection from one address is closed at once while two are open, and
// a closed connection frees its slot.
func TestPerAddr(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var refused atomic.Int32
	ln := PerAddr(raw, 2, func(string) { refused.Add(1) })
	defer ln.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			_, _ = c.Write([]byte("hi"))
			accepted <- c
		}
	}()
	dial := func() (net.Conn, error) {
		c, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = io.ReadFull(c, make([]byte, 2))
		return c, err
	}
	c1, err1 := dial()
	c2, err2 := dial()
	if err1 != nil || err2 != nil {
		t.Fatalf("connections within the bound: %v %v", err1, err2)
	}
	c3, err3 := dial()
	if err3 == nil {
		t.Fatal("a third connection from one address was served")
	}
	c3.Close()
	if refused.Load() != 1 {
		t.Errorf("refused %d, want 1", refused.Load())
	}
	c1.Close()
	(<-accepted).Close() // the server's side of c1 gives the slot back
	c4, err4 := dial()
	if err4 != nil {
		t.Fatalf("a slot freed by Close was not reusable: %v", err4)
	}
	c4.Close()
	c2.Close()
}

// TestConcurrency: with two requests in progress a third is answered 503 with Retry-After at once; exempt paths
// and requests after the first ones finished are served.
func TestConcurrency(t *testing.T) {
	release := make(chan struct{})
	var inside sync.WaitGroup
	inside.Add(2)
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			inside.Done()
			<-release
		}
		_, _ = w.Write([]byte("ok"))
	})
	var refused atomic.Int32
	srv := httptest.NewServer(Concurrency(slow, 2, []string{"/healthz"}, func(*http.Request) { refused.Add(1) }))
	defer srv.Close()
	var done sync.WaitGroup
	for range 2 {
		done.Add(1)
		go func() {
			defer done.Done()
			if resp, err := http.Get(srv.URL + "/slow"); err == nil {
				resp.Body.Close()
			}
		}()
	}
	inside.Wait()
	resp, err := http.Get(srv.URL + "/graphql")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" || refused.Load() != 1 {
		t.Fatalf("over the bound: %d %q %s (refused %d)", resp.StatusCode, resp.Header.Get("Retry-After"), body, refused.Load())
	}
	if resp, err := http.Get(srv.URL + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("exempt path over the bound: %v %v", resp, err)
	}
	close(release)
	done.Wait()
	if resp, err := http.Get(srv.URL + "/graphql"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("after the slow requests: %v %v", resp, err)
	}
}
