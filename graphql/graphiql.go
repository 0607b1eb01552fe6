package graphql

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

// assets are GraphiQL, React and React DOM (see assets/SOURCES.md), served from the binary.
//
//go:embed assets
var assets embed.FS

// assetsPath is where the assets are served, under the GraphQL endpoint.
const assetsPath = "/graphql/assets/"

// graphiqlPage loads everything from this server: no CDN, no external URL.
const graphiqlPage = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>portmirror GraphiQL</title>
<link rel="stylesheet" href="` + assetsPath + `graphiql.min.css">
<style>html, body, #graphiql { height: 100%; margin: 0; overflow: hidden; }</style>
</head>
<body>
<div id="graphiql">Loading GraphiQL…</div>
<script src="` + assetsPath + `react.production.min.js"></script>
<script src="` + assetsPath + `react-dom.production.min.js"></script>
<script src="` + assetsPath + `graphiql.min.js"></script>
<script src="` + assetsPath + `graphiql-init.js"></script>
</body>
</html>
`

func serveGraphiQL(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write([]byte(graphiqlPage))
}

// serveAsset serves one embedded file (JS, CSS or a licence); anything else is 404.
func serveAsset(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name := strings.TrimPrefix(r.URL.Path, assetsPath)
	if name == "" || strings.Contains(name, "/") {
		http.NotFound(w, r)
		return
	}
	data, err := fs.ReadFile(assets, path.Join("assets", name))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	switch path.Ext(name) {
	case ".js":
		h.Set("Content-Type", "text/javascript; charset=utf-8")
	case ".css":
		h.Set("Content-Type", "text/css; charset=utf-8")
	default:
		h.Set("Content-Type", "text/plain; charset=utf-8")
	}
	h.Set("Cache-Control", "public, max-age=86400")
	h.Set("X-Content-Type-Options", "nosniff")
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(data)
}
