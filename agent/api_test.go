package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/config"
	"github.com/mitosis-autoscaler/mitosis/plan"
	"github.com/mitosis-autoscaler/mitosis/policy"
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

func TestReadEndpointsShowWhatTheRegistryHolds(t *testing.T) {
	rig := newAPIRig(t)
	ctx := context.Background()
	at := time.Date(2026, 11, 27, 14, 0, 0, 0, time.UTC)
	for i, n := range []plan.Node{
		{ID: "web-1", Cluster: "web", Role: "app", State: plan.NodeReady, CreatedAt: at},
		{ID: "web-2", Cluster: "web", Role: "app", State: plan.NodeReady, Parent: "web-1", LineageDepth: 1, CreatedAt: at.Add(time.Minute)},
	} {
		if err := rig.a.reg.PutNode(ctx, n); err != nil {
			t.Fatal(i, err)
		}
	}
	op := plan.Operation{ID: "op-1", Kind: plan.OpExpand, Cluster: "web", Status: plan.OpRunning, Step: "prepare", Template: "web-1", CreatedAt: at.Add(2 * time.Minute)}
	for i, rec := range []plan.DecisionRecord{
		{Cluster: "web", At: at.Add(2 * time.Minute), Decision: plan.Decision{Action: plan.ActionExpand, Count: 1, Reason: "busy"}, Operations: []string{"op-1"}},
		{Cluster: "web", At: at.Add(3 * time.Minute), Decision: plan.Decision{Action: plan.ActionNone, Reason: "calm"}},
	} {
		var ops []plan.Operation
		if i == 0 {
			ops = []plan.Operation{op}
		}
		if err := rig.a.reg.Decide(ctx, rec, plan.ScalingState{}, ops); err != nil {
			t.Fatal(err)
		}
	}
	get := func(path string, v any) {
		t.Helper()
		code, body := rig.do(t, http.MethodGet, path, RoleRead, "")
		if code != http.StatusOK {
			t.Fatalf("%s: %d %s", path, code, body)
		}
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	var st Status
	get("/v1/status", &st)
	if len(st.Clusters) != 1 || st.Clusters[0].Nodes[plan.NodeReady] != 2 || st.Clusters[0].InFlight != 1 ||
		st.Clusters[0].LastDecision == nil || st.Clusters[0].LastDecision.Decision.Reason != "calm" || !st.Simulated {
		t.Errorf("status %+v", st)
	}
	var nodes []plan.Node
	get("/v1/clusters/web/nodes", &nodes)
	if len(nodes) != 2 || nodes[1].Parent != "web-1" || nodes[1].LineageDepth != 1 {
		t.Errorf("nodes %+v", nodes)
	}
	var ops []plan.Operation
	get("/v1/clusters/web/operations", &ops)
	if len(ops) != 1 || ops[0].ID != "op-1" || ops[0].Template != "web-1" {
		t.Errorf("operations %+v", ops)
	}
	var one plan.Operation
	get("/v1/operations/op-1", &one)
	if one.Step != "prepare" {
		t.Errorf("operation %+v", one)
	}
	var rec plan.DecisionRecord
	get("/v1/clusters/web/why?at="+at.Add(150*time.Second).Format(time.RFC3339), &rec)
	if rec.Decision.Reason != "busy" {
		t.Errorf("why at 14:02:30: %+v, want the decision of 14:02", rec.Decision)
	}
	for path, want := range map[string]int{
		"/v1/clusters/db/nodes":                        http.StatusNotFound,
		"/v1/operations/op-404":                        http.StatusNotFound,
		"/v1/clusters/web/decisions?limit=0":           http.StatusBadRequest,
		"/v1/clusters/web/why?at=yesterday":            http.StatusBadRequest,
		"/v1/clusters/web/why?at=2020-01-01T00:00:00Z": http.StatusNotFound,
	} {
		code, body := rig.do(t, http.MethodGet, path, RoleRead, "")
		if code != want || !strings.Contains(string(body), `"error"`) {
			t.Errorf("%s: %d %s, want %d with an error", path, code, body, want)
		}
	}
}

// The API's request decoding never panics, and accepts a body only as
// one object of known fields.
func FuzzDecodeRequest(f *testing.F) {
	for _, seed := range []string{`{"template": "web-1"}`, `{"node": "web-2"}`, `{}`, `[]`, `{"template": 1}`, `{"template": "a"} {}`, "", "\x00\xff"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var c CloneRequest
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

// A policy that compiles and passes its own tests is still refused if it
// cannot decide on what a cluster's last tick saw.
func TestAPolicyThatFailsOnAClustersLatestInputIsRefused(t *testing.T) {
	rig := newAPIRig(t)
	now := time.Date(2026, 1, 1, 0, 10, 0, 0, time.UTC)
	in := &policy.Input{Schema: policy.SchemaVersion, Now: now.Unix(),
		Cluster: policy.Cluster{Name: "web", Min: 2, Max: 20, Size: 2, Roles: []string{"app"}},
		Health:  policy.Health{MetricsAvailable: true}}
	if _, err := rig.a.policy.Decide(t.Context(), in, now); err != nil {
		t.Fatal(err)
	}
	before := rig.a.policy.Version()
	for _, c := range []struct{ name, rego, want string }{
		{"a decision of the wrong shape", "package mitosis\n\ndecision := 42\n", "must be an object"},
		{"an expansion with no template", "package mitosis\n\ndecision := {\"action\": \"expand\", \"count\": 1, \"reason\": \"x\"}\n", "template"},
	} {
		body, _ := json.Marshal(PolicyFiles{Files: map[string]string{"p.rego": c.rego}})
		for _, ep := range []struct{ method, path string }{{http.MethodPost, "/v1/policy/validate"}, {http.MethodPut, "/v1/policy"}} {
			code, b := rig.do(t, ep.method, ep.path, RoleAdmin, string(body))
			if code != http.StatusUnprocessableEntity || !strings.Contains(string(b), "cluster web") || !strings.Contains(string(b), c.want) {
				t.Errorf("%s, %s %s: %d %s, want 422 naming the cluster and %q", c.name, ep.method, ep.path, code, b, c.want)
			}
		}
	}
	if rig.a.policy.Version() != before {
		t.Error("a policy that fails on the latest input was put in use")
	}
}

// twoClusters is a dry agent's file with two clusters, web listed before
// api, on a Prometheus the tests never reach.
const twoClusters = `
tick: 15s
dry_run: true
clusters:
  - {name: web, min: 1, max: 4, scalable_roles: [app], hosts: [{name: esx-1}]}
  - {name: api, min: 1, max: 4, scalable_roles: [app]}
metrics:
  url: http://127.0.0.1:1
  queries: [{name: up, query: up, per_node: true}]
`

// Prometheus's HTTP service discovery reads the registered nodes from
// /v1/targets: a target group each, by cluster then node id, with the
// cluster and node labels and the __meta_mitosis_* ones the node has.
func TestTargetsAreTheNodesForPrometheus(t *testing.T) {
	rig := newAPIRigOn(t, twoClusters)
	get := func(path string) (int, http.Header, []byte) {
		t.Helper()
		return rig.call(t, http.MethodGet, path, RoleRead, "")
	}

	// Nothing registered: [], as Prometheus's HTTP SD asks for no targets.
	if code, h, body := get("/v1/targets"); code != http.StatusOK || h.Get("Content-Type") != "application/json" || strings.TrimSpace(string(body)) != "[]" {
		t.Errorf("an empty registry: %d %q %s, want 200 application/json []", code, h.Get("Content-Type"), body)
	}

	for _, n := range []plan.Node{
		{ID: "web-2", Cluster: "web", Role: "app", State: plan.NodeReady, Host: "esx-1", VM: "vm-7", Address: "10.0.0.2:8080", Parent: "web-1", LineageDepth: 1},
		{ID: "web-3", Cluster: "web", Role: "app", State: plan.NodePreparing, Host: "esx-1"}, // no address yet
		{ID: "web-1", Cluster: "web", Role: "app", State: plan.NodeDraining, Host: "esx-1", VM: "vm-1", Address: "10.0.0.1:8080"},
		{ID: "api-1", Cluster: "api", Role: "central", State: plan.NodeReady, Address: "[fd00::1]:8080"},
	} {
		if err := rig.a.reg.PutNode(t.Context(), n); err != nil {
			t.Fatal(n.ID, err)
		}
	}
	api1 := TargetGroup{Targets: []string{"[fd00::1]:8080"}, Labels: map[string]string{
		"cluster": "api", "node": "api-1", "__meta_mitosis_role": "central", "__meta_mitosis_state": "ready"}}
	web1 := TargetGroup{Targets: []string{"10.0.0.1:8080"}, Labels: map[string]string{
		"cluster": "web", "node": "web-1", "__meta_mitosis_role": "app", "__meta_mitosis_state": "draining",
		"__meta_mitosis_host": "esx-1", "__meta_mitosis_vm": "vm-1"}}
	web2 := TargetGroup{Targets: []string{"10.0.0.2:8080"}, Labels: map[string]string{
		"cluster": "web", "node": "web-2", "__meta_mitosis_role": "app", "__meta_mitosis_state": "ready",
		"__meta_mitosis_host": "esx-1", "__meta_mitosis_vm": "vm-7", "__meta_mitosis_parent": "web-1"}}
	moved := func(g TargetGroup, addr string) TargetGroup {
		return TargetGroup{Targets: []string{addr}, Labels: g.Labels}
	}
	for _, c := range []struct {
		query string
		want  []TargetGroup
	}{
		{"", []TargetGroup{api1, web1, web2}},
		{"?cluster=web", []TargetGroup{web1, web2}},
		{"?cluster=api", []TargetGroup{api1}},
		{"?port=9100", []TargetGroup{moved(api1, "[fd00::1]:9100"), moved(web1, "10.0.0.1:9100"), moved(web2, "10.0.0.2:9100")}},
		{"?cluster=web&port=65535", []TargetGroup{moved(web1, "10.0.0.1:65535"), moved(web2, "10.0.0.2:65535")}},
	} {
		code, h, body := get("/v1/targets" + c.query)
		var got []TargetGroup
		if code != http.StatusOK || h.Get("Content-Type") != "application/json" || json.Unmarshal(body, &got) != nil {
			t.Errorf("%s: %d %q %s, want 200 and JSON", c.query, code, h.Get("Content-Type"), body)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", c.query, got, c.want)
		}
	}

	for _, c := range []struct {
		query string
		code  int
		want  string
	}{
		{"?port=0", http.StatusBadRequest, `port: "0" is not a port number from 1 to 65535`},
		{"?port=65536", http.StatusBadRequest, `port: "65536"`},
		{"?port=http", http.StatusBadRequest, `port: "http"`},
		{"?port=", http.StatusBadRequest, `port: ""`},
		{"?cluster=db", http.StatusNotFound, `cluster "db" is not configured`},
		{"?cluster=", http.StatusNotFound, `cluster "" is not configured`},
	} {
		code, body := rig.do(t, http.MethodGet, "/v1/targets"+c.query, RoleRead, "")
		var e struct{ Error string }
		if code != c.code || json.Unmarshal(body, &e) != nil || !strings.Contains(e.Error, c.want) {
			t.Errorf("%s: %d %s, want %d and a JSON error with %q", c.query, code, body, c.code, c.want)
		}
	}
	if code, _ := rig.do(t, http.MethodGet, "/v1/targets", RoleNone, ""); code != http.StatusUnauthorized {
		t.Errorf("no token: %d, want 401", code)
	}
}
