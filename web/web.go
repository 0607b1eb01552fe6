// Package web is the console: the product guide's Port Mirroring pages for a person with a browser, served by
// the daemon from files embedded in the binary. The pages are Preact components written with htm (plain ES
// modules, vendored from npm by `make web-vendor`); everything they show and do goes through the GraphQL API.
package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"regexp"
	"strings"
)

//go:embed static
var static embed.FS

// Prefix is where the console's assets are served; the page itself is served at "/".
const Prefix = "/console/"

// asset is one embedded file, ready to serve.
type asset struct {
	body, gz    []byte // gz: nil when compressing does not pay
	contentType string
	etag        string
}

// Handler serves the console. It is safe for concurrent use.
type Handler struct {
	assets map[string]*asset // by path under static/
	csp    string
}

// New loads the embedded files.
func New() (*Handler, error) {
	h := &Handler{assets: map[string]*asset{}}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		h.assets[strings.TrimPrefix(p, "static/")] = newAsset(p, body)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("web: reading the embedded console: %w", err)
	}
	index, ok := h.assets["index.html"]
	if !ok {
		return nil, fmt.Errorf("web: the embedded console has no index.html")
	}
	// The page's only inline script is its import map; the policy allows it by its hash and nothing else: no
	// other inline script, no script, style, font, image or connection to any other origin.
	m := regexp.MustCompile(`(?s)<script type="importmap">(.*?)</script>`).FindSubmatch(index.body)
	if m == nil {
		return nil, fmt.Errorf("web: index.html has no import map")
	}
	sum := sha256.Sum256(m[1])
	h.csp = "default-src 'none'; script-src 'self' 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'; " +
		"style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
	return h, nil
}

func newAsset(p string, body []byte) *asset {
	a := &asset{body: body, contentType: mime.TypeByExtension(path.Ext(p))}
	switch {
	case strings.HasSuffix(p, ".js"):
		a.contentType = "text/javascript; charset=utf-8"
	case strings.HasPrefix(path.Base(p), "LICENSE"):
		a.contentType = "text/plain; charset=utf-8"
	case a.contentType == "":
		a.contentType = "application/octet-stream"
	}
	sum := sha256.Sum256(body)
	a.etag = `"` + hex.EncodeToString(sum[:8]) + `"`
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	_, _ = zw.Write(body)
	_ = zw.Close()
	if buf.Len() < len(body)*9/10 {
		a.gz = buf.Bytes()
	}
	return a
}

// ServeHTTP serves the page at "/" and the assets under Prefix; anything else is 404.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	var name string
	switch {
	case r.URL.Path == "/":
		name = "index.html"
	case strings.HasPrefix(r.URL.Path, Prefix):
		name = strings.TrimPrefix(r.URL.Path, Prefix)
	}
	a, ok := h.assets[name]
	if !ok || name == "" {
		http.NotFound(w, r)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", a.contentType)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Cache-Control", "no-cache") // revalidate: the ETag makes that cheap, and a new binary is seen at once
	hd.Set("ETag", a.etag)
	hd.Set("Vary", "Accept-Encoding")
	if name == "index.html" {
		hd.Set("Content-Security-Policy", h.csp)
		hd.Set("Referrer-Policy", "no-referrer")
	}
	if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, a.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := a.body
	if a.gz != nil && acceptsGzip(r.Header.Get("Accept-Encoding")) {
		hd.Set("Content-Encoding", "gzip")
		body = a.gz
	}
	hd.Set("Content-Length", fmt.Sprint(len(body)))
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(body)
}

func acceptsGzip(ae string) bool {
	for part := range strings.SplitSeq(ae, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			continue
		}
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			if _, err := fmt.Sscanf(v, "%g", &q); err != nil {
				q = 0
			}
		}
		return q > 0
	}
	return false
}
