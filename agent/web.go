package agent

import (
	"embed"
	"io/fs"
	"net/http"
)

// The dashboard (docs/dashboard.md): a page and its script and style,
// embedded in the binary, served without a token because they hold no
// data. The page asks for a token and reads everything it shows from the
// API with it, as any other client does.

//go:embed web
var webFS embed.FS

// webCSP lets the page load only its own script, style and API: no
// inline script or style, no other origin, not framed.
const webCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// mountWeb serves the dashboard: the page at GET / and its files at GET
// /assets/... Every other path is left to the API (an unknown one is 404).
func (a *Agent) mountWeb(mux *http.ServeMux) {
	sub, err := fs.Sub(webFS, "web")
	if err != nil {
		panic(err) // the embedded directory is there: go:embed checked it
	}
	files := http.FileServerFS(sub)
	mux.Handle("GET /{$}", webHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, sub, "index.html")
	})))
	mux.Handle("GET /assets/", webHeaders(http.StripPrefix("/assets/", noListing(files))))
}

// webHeaders sets the dashboard's security headers.
func webHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", webCSP)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}

// noListing answers 404 for a directory instead of listing it.
func noListing(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "" || r.URL.Path[len(r.URL.Path)-1] == '/' || r.URL.Path == "index.html" {
			http.NotFound(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}
