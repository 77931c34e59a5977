package agent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mitosis-autoscaler/mitosis/agent/wire"
	"github.com/mitosis-autoscaler/mitosis/config"
)

// apiRig is an agent on a simulated world that is not running: its API
// over a registry the test fills, with a token of each role.
type apiRig struct {
	a      *Agent
	srv    *httptest.Server
	tokens map[Role]string
	logs   *bytes.Buffer
}

func newAPIRig(t *testing.T) *apiRig {
	t.Helper()
	return newAPIRigOn(t, simulatedFile)
}

// newAPIRigOn is newAPIRig on another agent file, its tokens appended.
func newAPIRigOn(t *testing.T, file string) *apiRig {
	t.Helper()
	dir := t.TempDir()
	rig := &apiRig{tokens: map[Role]string{}, logs: &bytes.Buffer{}}
	var list strings.Builder
	for _, role := range []Role{RoleRead, RoleOperate, RoleAdmin} {
		tok := fmt.Sprintf("canary-%s-token-5e3f", role)
		f := filepath.Join(dir, role.String())
		if err := os.WriteFile(f, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		rig.tokens[role] = tok
		fmt.Fprintf(&list, "    - {name: %s-holder, role: %s, file: %s}\n", role, role, f)
	}
	cfg, err := config.Parse([]byte(file+"api:\n  tokens:\n"+list.String()), "api.yaml")
	if err != nil {
		t.Fatal(err)
	}
	engine := defaultPolicy(t)
	log := slog.New(slog.NewJSONHandler(rig.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rig.a, err = New(cfg, Options{Listen: "127.0.0.1:0", Policy: engine, Version: "test", Log: log, World: worldOf(t, cfg)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rig.a.ln.Close() })
	rig.srv = httptest.NewServer(rig.a.Handler())
	t.Cleanup(rig.srv.Close)
	return rig
}

func (rig *apiRig) do(t *testing.T, method, path string, role Role, body string) (int, []byte) {
	t.Helper()
	code, _, b := rig.call(t, method, path, role, body)
	return code, b
}

// call is do with the answer's headers.
func (rig *apiRig) call(t *testing.T, method, path string, role Role, body string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, rig.srv.URL+path, strings.NewReader(body))
	if role != RoleNone {
		req.Header.Set("Authorization", "Bearer "+rig.tokens[role])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, resp.Header, b.Bytes()
}

// Every endpoint against every role: a request without a token is
// refused everywhere but health, a role below the endpoint's is
// forbidden, and one at or above it is let through.
func TestEveryEndpointAgainstEveryRole(t *testing.T) {
	rig := newAPIRig(t)
	for _, rt := range rig.a.routes() {
		method, path, _ := strings.Cut(rt.pattern, " ")
		path = strings.NewReplacer("{cluster}", "web", "{id}", "op-1").Replace(path)
		for _, role := range []Role{RoleNone, RoleRead, RoleOperate, RoleAdmin} {
			code, body := rig.do(t, method, path, role, "{}")
			switch {
			case role == RoleNone && code != http.StatusUnauthorized:
				t.Errorf("%s without a token: %d, want 401", rt.pattern, code)
			case role != RoleNone && role < rt.min && code != http.StatusForbidden:
				t.Errorf("%s as %s: %d, want 403", rt.pattern, role, code)
			case role >= rt.min && (code == http.StatusUnauthorized || code == http.StatusForbidden):
				t.Errorf("%s as %s: %d %s, want it let through", rt.pattern, role, code, body)
			}
		}
	}
	for _, open := range []string{"/-/healthy", "/-/ready"} {
		if code, _ := rig.do(t, http.MethodGet, open, RoleNone, ""); code == http.StatusUnauthorized || code == http.StatusForbidden {
			t.Errorf("%s without a token: %d, want it open", open, code)
		}
	}
	if code, _ := rig.do(t, http.MethodGet, "/v1/nothing-here", RoleAdmin, ""); code != http.StatusNotFound {
		t.Errorf("an unknown path: %d, want 404", code)
	}
	if strings.Contains(rig.logs.String(), "canary-") {
		t.Errorf("a token is in the logs:\n%s", rig.logs.String())
	}
}

// The API's request decoding never panics, and accepts a body only as
// one object of known fields.
func FuzzDecodeRequest(f *testing.F) {
	for _, seed := range []string{`{"template": "web-1"}`, `{"node": "web-2"}`, `{}`, `[]`, `{"template": 1}`, `{"template": "a"} {}`, "", "\x00\xff"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var c wire.CloneRequest
		r := httptest.NewRequest(http.MethodPost, "/v1/clusters/web/clone", strings.NewReader(body))
		r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, maxBody)
		if err := decode(r, &c); err == nil {
			var back map[string]any
			if json.Unmarshal([]byte(body), &back) != nil {
				t.Errorf("accepted %q, which is not one JSON object", body)
			}
			for k := range back { // encoding/json matches names case-insensitively
				if !strings.EqualFold(k, "template") {
					t.Errorf("accepted %q with the unknown field %q", body, k)
				}
			}
		}
	})
}

// A request the API has no endpoint for is answered as every error is: in
// JSON, saying what was wrong.
func TestRequestsNoEndpointTakesAreAnsweredInJSON(t *testing.T) {
	rig := newAPIRig(t)
	for _, c := range []struct {
		method, path string
		code         int
		want         string
	}{
		{http.MethodGet, "/v1/nosuch", http.StatusNotFound, "no endpoint /v1/nosuch"},
		{http.MethodGet, "/v1/clusters/web", http.StatusNotFound, "no endpoint"},
		{http.MethodGet, "/v1/clusters/web/clone", http.StatusMethodNotAllowed, "allowed: POST"},
		{http.MethodPost, "/v1/policy", http.StatusMethodNotAllowed, "method not allowed"},
	} {
		code, b := rig.do(t, c.method, c.path, RoleAdmin, "")
		var e struct{ Error string }
		if code != c.code || json.Unmarshal(b, &e) != nil || !strings.Contains(e.Error, c.want) {
			t.Errorf("%s %s: %d %s, want %d and a JSON error with %q", c.method, c.path, code, b, c.code, c.want)
		}
	}
}

// Bodies are checked alike everywhere: an empty one where an object is
// needed says so, and an endpoint that takes none refuses one.
func TestRequestBodiesAreCheckedOnEveryWrite(t *testing.T) {
	rig := newAPIRig(t)
	for _, c := range []struct {
		method, path, body string
		code               int
		want               string
	}{
		{http.MethodPost, "/v1/clusters/web/clone", "", 400, "request body: empty"},
		{http.MethodPut, "/v1/clusters/web/dry-run", "", 400, "request body: empty"},
		{http.MethodPost, "/v1/clusters/web/pause", "garbage", 400, "takes none"},
		{http.MethodPost, "/v1/clusters/web/resume", `{"x": 1}`, 400, "takes none"},
		{http.MethodPost, "/v1/clusters/web/pause", "", 200, ""},
		{http.MethodPost, "/v1/clusters/web/resume", "{}", 200, ""},
	} {
		code, b := rig.do(t, c.method, c.path, RoleOperate, c.body)
		if code != c.code || !strings.Contains(string(b), c.want) {
			t.Errorf("%s %s with %q: %d %s, want %d with %q", c.method, c.path, c.body, code, b, c.code, c.want)
		}
	}
	if audits, _ := rig.a.reg.Audits(t.Context(), 10); len(audits) != 2 {
		t.Errorf("%d writes audited, want the 2 accepted", len(audits))
	}
}
