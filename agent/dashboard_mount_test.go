package agent

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// The agent serves its dashboard's files without a token, with the
// dashboard's headers (agent/dashboard tests them in full); the data the
// page shows still needs one.
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
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("GET %s: Content-Security-Policy %q: not the dashboard's", path, csp)
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
