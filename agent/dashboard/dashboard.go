// Package dashboard serves the agent's dashboard (docs/dashboard.md): a
// page and its script and style, embedded in the binary, served without
// a token because they hold no data. The page asks for a token and reads
// everything it shows from the agent's API with it, as any other client
// does.
package dashboard

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed web
var webFS embed.FS

// csp lets the page load only its own script, style and API: no inline
// script or style, no other origin, not framed.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Mount serves the dashboard on mux: the page at GET / and its files at
// GET /assets/... Every other path is left to mux's other routes (the
// API's; an unknown one is 404). It registers those two patterns, so it
// may be called once per mux.
func Mount(mux *http.ServeMux) {
	sub, err := fs.Sub(webFS, "web")
	if err != nil {
		panic(err) // the embedded directory is there: go:embed checked it
	}
	files := http.FileServerFS(sub)
	mux.Handle("GET /{$}", headers(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, sub, "index.html")
	})))
	mux.Handle("GET /assets/", headers(http.StripPrefix("/assets/", noListing(files))))
}

// headers sets the dashboard's security headers.
func headers(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", csp)
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
