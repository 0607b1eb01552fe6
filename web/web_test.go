package web

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func TestServesTheConsole(t *testing.T) {
	h, err := New()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	get := func(path string, hdr map[string]string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		tr := &http.Transport{DisableCompression: true}
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}

	resp, page := get("/", nil)
	csp := resp.Header.Get("Content-Security-Policy")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(csp, "connect-src 'self'") || !strings.Contains(csp, "script-src 'self' 'sha256-") {
		t.Fatalf("GET /: %d %v", resp.StatusCode, resp.Header)
	}
	// every asset the page names is served from here, with its type; none is on another host
	if m := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`).Find(page); m != nil {
		t.Errorf("the page references an external URL %q", m)
	}
	refs := regexp.MustCompile(`(?:src|href)="(/console/[^"]+)"|"(/console/vendor/[^"]+)"`).FindAllSubmatch(page, -1)
	if len(refs) < 10 {
		t.Fatalf("the page names %d assets", len(refs))
	}
	for _, r := range refs {
		p := string(r[1]) + string(r[2])
		resp, body := get(p, nil)
		if resp.StatusCode != 200 || len(body) == 0 || resp.Header.Get("ETag") == "" {
			t.Errorf("%s: %d, %d bytes", p, resp.StatusCode, len(body))
		}
		if strings.HasSuffix(p, ".js") && resp.Header.Get("Content-Type") != "text/javascript; charset=utf-8" {
			t.Errorf("%s: Content-Type %q", p, resp.Header.Get("Content-Type"))
		}
		if bytes.Contains(body, []byte("sourceMappingURL")) {
			t.Errorf("%s points to a source map the console does not serve", p)
		}
	}

	// gzip when asked; 304 for a copy the browser has
	resp, gz := get("/console/vendor/preact.module.js", map[string]string{"Accept-Encoding": "br, gzip;q=0.8"})
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("no gzip: %v", resp.Header)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := io.ReadAll(zr)
	_, want := get("/console/vendor/preact.module.js", nil)
	if !bytes.Equal(plain, want) || len(gz) >= len(want) {
		t.Errorf("gzip body: %d bytes for %d, decompresses equal: %v", len(gz), len(want), bytes.Equal(plain, want))
	}
	if resp, _ := get("/console/vendor/preact.module.js", map[string]string{"Accept-Encoding": "gzip;q=0"}); resp.Header.Get("Content-Encoding") != "" {
		t.Errorf("gzip;q=0 answered with gzip")
	}
	if resp, _ := get("/console/style.css", map[string]string{"If-None-Match": resp.Header.Get("ETag")}); resp.StatusCode != 200 {
		t.Errorf("another file's ETag: %d", resp.StatusCode)
	}
	etag := resp.Header.Get("ETag")
	if resp, _ := get("/console/vendor/preact.module.js", map[string]string{"If-None-Match": etag}); resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: %d", resp.StatusCode)
	}
	for _, p := range []string{"/console/", "/console/nope.js", "/console/../web.go", "/index.html", "/other"} {
		if resp, _ := get(p, nil); resp.StatusCode != 404 {
			t.Errorf("%s: %d, want 404", p, resp.StatusCode)
		}
	}
	for _, p := range []string{"/console/vendor/LICENSE.preact", "/console/vendor/LICENSE.htm"} {
		if resp, body := get(p, nil); resp.StatusCode != 200 || !bytes.Contains(body, []byte("License")) {
			t.Errorf("%s: %d", p, resp.StatusCode)
		}
	}
}
