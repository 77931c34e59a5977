package agent

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// The dashboard's files are served without a token, with headers that
// keep the page to its own script and out of frames; the data it shows
// still needs one.
func TestTheDashboardIsServedWithoutATokenAndTheAPIStillNeedsOne(t *testing.T) {
	rig := newAPIRig(t)
	for path, want := range map[string]string{
		"/":               `<script src="/assets/app.js"`,
		"/assets/app.js":  "/v1/whoami",
		"/assets/app.css": ".tree",
	} {
		resp, err := http.Get(rig.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("GET %s without a token: %d, body has %q: %v", path, resp.StatusCode, want, strings.Contains(string(body), want))
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
	_, page := rig.do(t, http.MethodGet, "/", RoleNone, "")
	for _, inline := range []string{"<script>", "<style", " style=", " onclick=", " onload="} {
		if strings.Contains(string(page), inline) {
			t.Errorf("index.html has %q, which its Content-Security-Policy forbids", inline)
		}
	}
	for _, path := range []string{"/assets/", "/assets/nothing.js", "/assets/../agent.go", "/nothing-here"} {
		if code, _ := rig.do(t, http.MethodGet, path, RoleNone, ""); code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, code)
		}
	}
	for _, path := range []string{"/v1/status", "/v1/whoami", "/v1/clusters/web/nodes", "/metrics"} {
		if code, _ := rig.do(t, http.MethodGet, path, RoleNone, ""); code != http.StatusUnauthorized {
			t.Errorf("GET %s without a token: %d, want 401", path, code)
		}
	}
	if code, _ := rig.do(t, http.MethodPost, "/", RoleNone, ""); code != http.StatusMethodNotAllowed {
		t.Errorf("POST / : %d, want 405", code)
	}
}
