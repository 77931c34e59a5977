package dashboard

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// get answers GET path (or another method) from a mux with the dashboard
// mounted, as it is on the agent: no token is sent, none is asked for.
func get(t *testing.T, srv *httptest.Server, method, path string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// The dashboard's files are served with headers that keep the page to its
// own script and out of frames, with their types; nothing else is.
func TestTheDashboardsFilesAreServedWithHeadersThatKeepThePageToItself(t *testing.T) {
	mux := http.NewServeMux()
	Mount(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for path, want := range map[string]string{
		"/":               `<script src="/assets/app.js"`,
		"/assets/app.js":  "/v1/whoami",
		"/assets/app.css": ".tree",
	} {
		resp := get(t, srv, http.MethodGet, path)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %d, body has %q: %v", path, resp.StatusCode, want, strings.Contains(string(body), want))
		}
		h := resp.Header
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("GET %s: Content-Security-Policy %q", path, csp)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("X-Frame-Options") != "DENY" {
			t.Errorf("GET %s: X-Content-Type-Options %q, X-Frame-Options %q", path, h.Get("X-Content-Type-Options"), h.Get("X-Frame-Options"))
		}
		types := map[string]string{"/": "text/html", "/assets/app.js": "text/javascript", "/assets/app.css": "text/css"}
		if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, types[path]) {
			t.Errorf("GET %s: Content-Type %q", path, ct)
		}
	}
	// The page holds no inline script or style, which the policy forbids.
	resp := get(t, srv, http.MethodGet, "/")
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, inline := range []string{"<script>", "<style", " style=", " onclick=", " onload="} {
		if strings.Contains(string(page), inline) {
			t.Errorf("index.html has %q, which its Content-Security-Policy forbids", inline)
		}
	}
	for _, path := range []string{"/assets/", "/assets/index.html", "/assets/nothing.js", "/assets/../dashboard.go", "/nothing-here"} {
		resp := get(t, srv, http.MethodGet, path)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, resp.StatusCode)
		}
	}
	resp = get(t, srv, http.MethodPost, "/")
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST / : %d, want 405", resp.StatusCode)
	}
}
