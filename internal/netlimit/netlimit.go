// Package netlimit bounds what one listener takes on: open connections per remote address (a listener
// wrapper), and requests served at once (an HTTP middleware that answers 503 beyond the bound instead of
// queueing).
package netlimit

import (
	"net"
	"net/http"
	"strconv"
	"sync"
)

// PerAddr wraps ln so that at most max connections from one remote IP address are open at a time; Accept
// closes a connection beyond that at once and reports it to refused (which may be nil). max ≤ 0: no bound.
func PerAddr(ln net.Listener, max int, refused func(remote string)) net.Listener {
	if max <= 0 {
		return ln
	}
	return &perAddr{Listener: ln, max: max, refused: refused, open: map[string]int{}}
}

type perAddr struct {
	net.Listener
	max     int
	refused func(remote string)
	mu      sync.Mutex
	open    map[string]int
}

// Accept returns the next connection within the bound.
func (l *perAddr) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		host := Host(c.RemoteAddr())
		l.mu.Lock()
		if l.open[host] >= l.max {
			l.mu.Unlock()
			// Reported before the close, so that whoever sees the connection end also sees it counted.
			if l.refused != nil {
				l.refused(c.RemoteAddr().String())
			}
			c.Close()
			continue
		}
		l.open[host]++
		l.mu.Unlock()
		return &countedConn{Conn: c, release: func() { l.release(host) }}, nil
	}
}

func (l *perAddr) release(host string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[host]--; l.open[host] <= 0 {
		delete(l.open, host)
	}
}

// countedConn gives its slot back once, on the first Close.
type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// Host is the IP address of a remote address (the whole string when it has no port).
func Host(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap().String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// Concurrency serves at most max requests at a time through next; a request beyond that is answered at once
// with 503, Retry-After: 1 and a GraphQL error of code UNAVAILABLE, and reported to refused (which may be nil).
// Requests whose path is in exempt are always served. max ≤ 0: no bound.
func Concurrency(next http.Handler, max int, exempt []string, refused func(r *http.Request)) http.Handler {
	if max <= 0 {
		return next
	}
	slots := make(chan struct{}, max)
	skip := map[string]bool{}
	for _, p := range exempt {
		skip[p] = true
	}
	body := []byte(`{"data":null,"errors":[{"message":"the API is serving ` + strconv.Itoa(max) +
		` requests at once, its bound (--api-max-requests): retry shortly","extensions":{"code":"UNAVAILABLE"}}]}` + "\n")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if skip[r.URL.Path] {
			next.ServeHTTP(w, r)
			return
		}
		select {
		case slots <- struct{}{}:
			defer func() { <-slots }()
			next.ServeHTTP(w, r)
		default:
			if refused != nil {
				refused(r)
			}
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write(body)
		}
	})
}
