package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/agent/wire"
	"github.com/mitosis-autoscaler/mitosis/plan"
)

// The operator's commands against a stub that follows the API's contract
// (docs/api.md): each command's table and JSON, the requests it sends, and
// the exit code of each kind of answer. TestTheOperatorsCommands
// (cli_test.go) runs them against a real agent on a simulated world.

const stubToken = "stub-t0ken-canary"

// contract is a stub agent: canned answers by "METHOD /path", the
// requests it saw, and failures to inject.
type contract struct {
	t    *testing.T
	srv  *httptest.Server
	mu   sync.Mutex
	seen []seenRequest
	// fail answers "METHOD /path" with a status and a body.
	fail map[string]stubAnswer
}

type seenRequest struct{ method, path, query, body string }

type stubAnswer struct {
	status int
	body   string
}

func newContract(t *testing.T) *contract {
	t.Helper()
	now := time.Now().UTC()
	ago := func(d time.Duration) time.Time { return now.Add(-d).Truncate(time.Second) }
	settings := func(paused, dry bool) wire.Settings {
		return wire.Settings{Paused: paused, DryRun: dry, By: "oncall", At: ago(0)}
	}
	last := plan.DecisionRecord{Seq: 42, Cluster: "web", At: ago(2 * time.Minute), PolicyVersion: "abc123def456",
		Metrics:  plan.MetricsHealth{Available: true},
		Observed: plan.Observed{NodeMeans: map[string]float64{"cpu": 0.81, "mem": 0.5}, NodeCounts: map[string]int{"cpu": 3, "mem": 2}, ReadyNodes: 3},
		Decision: plan.Decision{Action: plan.ActionExpand, Count: 1, Reason: "cpu 0.81 over 0.75"},
		Size:     4, Operations: []string{"op-7"},
		Reasons: []plan.Reason{{Code: "max_step", Message: "one clone at a time"}}}
	manual := plan.DecisionRecord{Seq: 43, Cluster: "web", At: ago(time.Minute), PolicyVersion: "manual", By: "oncall",
		Decision: plan.Decision{Action: plan.ActionContract, Count: 1, Reason: "operator"}, Operations: []string{"op-8"}}
	canned := map[string]any{
		"GET /v1/status": wire.Status{Version: "v0.9.0", PolicyVersion: "abc123def456", Clusters: []wire.ClusterSummary{
			{Name: "web", Min: 2, Max: 20, Size: 4, Nodes: map[plan.NodeState]int{plan.NodeReady: 3}, InFlight: 1, LastDecision: &last},
			{Name: "batch", Min: 0, Max: 8, Size: 0, Nodes: map[plan.NodeState]int{}, Paused: true, DryRun: true},
		}},
		"GET /v1/clusters/web/nodes": []plan.Node{
			{ID: "web-0", Cluster: "web", Role: "app", State: plan.NodeReady, Host: "esx-1", CreatedAt: ago(3 * time.Hour)},
			{ID: "web-1", Cluster: "web", Role: "app", State: plan.NodeReady, Host: "esx-2", Parent: "web-0", LineageDepth: 1, CreatedAt: ago(time.Hour)},
			{ID: "web-2", Cluster: "web", Role: "app", State: plan.NodeReady, Host: "esx-1", Parent: "web-1", LineageDepth: 2, CreatedAt: ago(5 * time.Minute)},
		},
		"GET /v1/clusters/web/operations": []plan.Operation{
			{ID: "op-8", Kind: plan.OpContract, Cluster: "web", Status: plan.OpRunning, Step: "drain", Node: "web-2", CreatedAt: ago(time.Minute)},
			{ID: "op-7", Kind: plan.OpExpand, Cluster: "web", Status: plan.OpRunning, Step: "clone", Template: "web-1", Node: "web-3", CreatedAt: ago(2 * time.Minute)},
		},
		"GET /v1/clusters/web/decisions":    []plan.DecisionRecord{manual, last},
		"GET /v1/clusters/web/why":          last,
		"GET /v1/clusters/batch/nodes":      []plan.Node{{ID: "batch-0", Cluster: "batch", Role: "worker", State: plan.NodeReady, Host: "esx-3", CreatedAt: ago(time.Hour)}},
		"GET /v1/clusters/batch/operations": []plan.Operation{},
		"GET /v1/clusters/batch/decisions":  []plan.DecisionRecord{{Seq: 9, Cluster: "batch", At: ago(30 * time.Second), Decision: plan.Decision{Action: plan.ActionNone, Reason: "paused by oncall"}}},
		"POST /v1/clusters/web/clone":       plan.DecisionRecord{Seq: 44, By: "oncall", Decision: plan.Decision{Action: plan.ActionExpand, Count: 1}, Operations: []string{"op-9"}},
		"POST /v1/clusters/web/detach":      plan.DecisionRecord{Seq: 45, By: "oncall", Decision: plan.Decision{Action: plan.ActionContract, Count: 1}, Operations: []string{"op-10"}},
		"POST /v1/clusters/web/pause":       settings(true, false),
		"POST /v1/clusters/web/resume":      settings(false, false),
		"PUT /v1/clusters/web/dry-run":      settings(false, true),
		"GET /v1/policy":                    wire.PolicyFiles{Version: "abc123def456", Files: map[string]string{"scale.rego": "package mitosis", "scale_test.rego": "package mitosis"}},
		"PUT /v1/policy":                    wire.PolicyCheck{Version: "fed654cba321", Tests: wire.TestCounts{Passed: 7}},
		"GET /v1/audit":                     []plan.AuditRecord{{Seq: 3, At: ago(time.Minute), By: "oncall", Cluster: "web", Action: "pause"}},
	}
	c := &contract{t: t, fail: map[string]stubAnswer{}}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		key := r.Method + " " + r.URL.Path
		c.mu.Lock()
		c.seen = append(c.seen, seenRequest{r.Method, r.URL.Path, r.URL.RawQuery, string(body)})
		injected, failing := c.fail[key]
		c.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Header.Get("Authorization") != "Bearer "+stubToken:
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error": "a valid bearer token is required"}`)
		case failing:
			w.WriteHeader(injected.status)
			io.WriteString(w, injected.body)
		case canned[key] != nil:
			if r.Method == http.MethodPost && (strings.HasSuffix(r.URL.Path, "/clone") || strings.HasSuffix(r.URL.Path, "/detach")) {
				w.WriteHeader(http.StatusCreated)
			}
			json.NewEncoder(w).Encode(canned[key])
		case strings.HasPrefix(r.URL.Path, "/v1/clusters/"):
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, `{"error": "cluster %q is not configured"}`, strings.Split(r.URL.Path, "/")[3])
		default:
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"error": "no such endpoint"}`)
		}
	}))
	t.Cleanup(c.srv.Close)
	return c
}

// last is the last request the stub saw.
func (c *contract) last() seenRequest {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.seen) == 0 {
		c.t.Fatal("no request")
	}
	return c.seen[len(c.seen)-1]
}

// run runs mitosis against the stub with the token in a file, and fails
// the test if the token shows anywhere.
func (c *contract) run(args ...string) (stdout string, code int, err error) {
	c.t.Helper()
	tokenFile := filepath.Join(c.t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(stubToken+"\n"), 0o600); err != nil {
		c.t.Fatal(err)
	}
	stdout, stderr, code, err := mitosis(c.t, append(args, "--server", c.srv.URL, "--token-file", tokenFile)...)
	if strings.Contains(stdout+stderr+fmt.Sprint(err), stubToken) {
		c.t.Errorf("%v shows the token: %v\n%s%s", args, err, stdout, stderr)
	}
	return stdout, code, err
}

// rows splits a table into its lines' fields, the header first.
func rows(t *testing.T, table string) [][]string {
	t.Helper()
	var rs [][]string
	for _, line := range strings.Split(strings.TrimRight(table, "\n"), "\n") {
		rs = append(rs, strings.Fields(line))
	}
	return rs
}

// hasColumns checks a table's header, in order.
func hasColumns(t *testing.T, table string, cols ...string) {
	t.Helper()
	header := strings.SplitN(table, "\n", 2)[0]
	at := 0
	for _, col := range cols {
		i := strings.Index(header[at:], col)
		if i < 0 {
			t.Errorf("header %q lacks %q (or out of order)", header, col)
			return
		}
		at += i + len(col)
	}
}

// hasRow checks that a line of the table starts with these fields. A
// field "~5m" is an age: a duration from 5m to 5m10s (the clock runs).
func hasRow(t *testing.T, table string, fields ...string) {
	t.Helper()
	match := func(want, got string) bool {
		if d, ok := strings.CutPrefix(want, "~"); ok {
			dw, err1 := time.ParseDuration(d)
			dg, err2 := time.ParseDuration(strings.TrimSuffix(got, ":"))
			return err1 == nil && err2 == nil && dg >= dw && dg <= dw+10*time.Second
		}
		return want == got
	}
	for _, r := range rows(t, table) {
		if len(r) >= len(fields) && slices.EqualFunc(fields, r[:len(fields)], match) {
			return
		}
	}
	t.Errorf("no row %q in\n%s", fields, table)
}

func TestOpsCommandsTables(t *testing.T) {
	c := newContract(t)
	ok := func(args ...string) string {
		t.Helper()
		out, code, err := c.run(args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %v\n%s", args, code, err, out)
		}
		return out
	}

	out := ok("status")
	hasColumns(t, out, "CLUSTER", "SIZE", "MIN", "MAX", "READY", "IN FLIGHT", "PAUSED", "DRY RUN", "LAST DECISION")
	hasRow(t, out, "web", "4", "2", "20", "3", "1", "false", "false", "~2m", "expand:", "cpu", "0.81", "over", "0.75")
	hasRow(t, out, "batch", "0", "0", "8", "0", "0", "true", "true", "-")

	out = ok("nodes", "web")
	hasColumns(t, out, "ID", "STATE", "ROLE", "HOST", "PARENT", "DEPTH", "AGE")
	hasRow(t, out, "web-0", "ready", "app", "esx-1", "-", "0", "~3h")
	hasRow(t, out, "web-2", "ready", "app", "esx-1", "web-1", "2", "~5m")

	for _, cmd := range []string{"ops", "operations"} {
		out = ok(cmd, "web")
		hasColumns(t, out, "ID", "KIND", "STATUS", "STEP", "TEMPLATE/NODE", "AGE", "ERROR")
		hasRow(t, out, "op-8", "contract", "running", "drain", "web-2", "~1m", "-")
		hasRow(t, out, "op-7", "expand", "running", "clone", "web-1", "→", "web-3", "~2m", "-")
	}
	if r := c.last(); r.path != "/v1/clusters/web/operations" || r.query != "" {
		t.Errorf("ops sent %+v", r)
	}
	ok("ops", "web", "--limit", "5")
	if r := c.last(); r.query != "limit=5" {
		t.Errorf("ops --limit 5 sent %+v", r)
	}

	out = ok("decisions", "web", "--limit", "2")
	if r := c.last(); r.path != "/v1/clusters/web/decisions" || r.query != "limit=2" {
		t.Errorf("decisions sent %+v", r)
	}
	hasColumns(t, out, "AT", "ACTION", "COUNT", "OPS", "BY", "REASON")
	rs := rows(t, out)
	if len(rs) != 3 || rs[1][1] != "contract" || rs[1][4] != "oncall" || rs[2][1] != "expand" || rs[2][4] != "-" ||
		strings.Join(rs[2][5:], " ") != "cpu 0.81 over 0.75" {
		t.Errorf("decisions, newest first:\n%s", out)
	}
	if _, err := time.Parse(time.RFC3339, rs[1][0]); err != nil {
		t.Errorf("AT %q: %v", rs[1][0], err)
	}

	out = ok("why", "web", "--at", "15m")
	r := c.last()
	at, err := time.Parse(time.RFC3339, strings.TrimPrefix(strings.ReplaceAll(r.query, "%3A", ":"), "at="))
	if r.path != "/v1/clusters/web/why" || err != nil || time.Since(at) < 14*time.Minute || time.Since(at) > 16*time.Minute {
		t.Errorf("why --at 15m sent %+v (%v)", r, err)
	}
	for _, want := range []string{"decision", "expand 1", "cpu 0.81 over 0.75", "metrics", "trusted", "mean cpu", "0.81 over 3 ready nodes", "mean mem", "0.5 over the 2 of 3 ready nodes that report it", "guardrail", "max_step: one clone at a time", "op-7"} {
		if !strings.Contains(out, want) {
			t.Errorf("why lacks %q:\n%s", want, out)
		}
	}
	ok("why", "web", "--at", "2026-11-27T14:02:00Z")
	if r := c.last(); r.query != "at=2026-11-27T14%3A02%3A00Z" {
		t.Errorf("why --at RFC 3339 sent %+v", r)
	}
	ok("why", "web")
	if r := c.last(); r.query != "" {
		t.Errorf("why (now) sent %+v", r)
	}

	out = ok("clone", "web", "web-1")
	if r := c.last(); r.method != "POST" || r.path != "/v1/clusters/web/clone" || !sameJSON(r.body, `{"template":"web-1"}`) {
		t.Errorf("clone sent %+v", r)
	}
	if !strings.Contains(out, "operation op-9 started") {
		t.Errorf("clone:\n%s", out)
	}
	out = ok("detach", "web", "web-2")
	if r := c.last(); r.method != "POST" || r.path != "/v1/clusters/web/detach" || !sameJSON(r.body, `{"node":"web-2"}`) {
		t.Errorf("detach sent %+v", r)
	}
	if !strings.Contains(out, "operation op-10 started") {
		t.Errorf("detach:\n%s", out)
	}

	for _, step := range []struct {
		args         []string
		method, path string
		body         string
		row          []string
	}{
		{[]string{"pause", "web"}, "POST", "/v1/clusters/web/pause", "", []string{"web", "true", "false", "oncall"}},
		{[]string{"resume", "web"}, "POST", "/v1/clusters/web/resume", "", []string{"web", "false", "false", "oncall"}},
		{[]string{"dry-run", "web", "on"}, "PUT", "/v1/clusters/web/dry-run", `{"enabled":true}`, []string{"web", "false", "true", "oncall"}},
		{[]string{"dry-run", "web", "off"}, "PUT", "/v1/clusters/web/dry-run", `{"enabled":false}`, nil},
	} {
		out := ok(step.args...)
		if r := c.last(); r.method != step.method || r.path != step.path || !sameJSON(r.body, step.body) {
			t.Errorf("%v sent %+v", step.args, r)
		}
		hasColumns(t, out, "CLUSTER", "PAUSED", "DRY RUN", "BY")
		if step.row != nil {
			hasRow(t, out, step.row...)
		}
	}

	out = ok("policy", "show")
	for _, want := range []string{"abc123def456", "scale.rego", "scale_test.rego"} {
		if !strings.Contains(out, want) {
			t.Errorf("policy show lacks %s:\n%s", want, out)
		}
	}
	dir := policyDir(t, map[string]string{"scale.rego": "package mitosis\n", "scale_test.rego": "package mitosis\n", "README.md": "not policy"})
	out = ok("policy", "push", dir)
	r = c.last()
	var pushed wire.PolicyFiles
	if r.method != "PUT" || r.path != "/v1/policy" || json.Unmarshal([]byte(r.body), &pushed) != nil ||
		len(pushed.Files) != 2 || pushed.Files["scale.rego"] != "package mitosis\n" || pushed.Files["scale_test.rego"] == "" {
		t.Errorf("policy push sent %+v", r)
	}
	if !strings.Contains(out, "fed654cba321") || !strings.Contains(out, "7 tests passed") {
		t.Errorf("policy push:\n%s", out)
	}

	out = ok("audit")
	hasColumns(t, out, "AT", "BY", "ACTION", "CLUSTER", "DETAIL")
	if rs := rows(t, out); len(rs) != 2 || !slices.Equal(rs[1][1:], []string{"oncall", "pause", "web", "-"}) {
		t.Errorf("audit:\n%s", out)
	}
}

func sameJSON(a, b string) bool {
	if a == "" || b == "" {
		return a == b
	}
	var x, y any
	return json.Unmarshal([]byte(a), &x) == nil && json.Unmarshal([]byte(b), &y) == nil && fmt.Sprint(x) == fmt.Sprint(y)
}

// TestOpsCommandsEveryCluster: nodes, ops and decisions without CLUSTER
// list every cluster's, with a CLUSTER column.
func TestOpsCommandsEveryCluster(t *testing.T) {
	c := newContract(t)
	out, code, err := c.run("nodes")
	if code != 0 {
		t.Fatalf("nodes: exit %d: %v", code, err)
	}
	hasColumns(t, out, "CLUSTER", "ID", "STATE", "ROLE", "HOST", "PARENT", "DEPTH", "AGE")
	hasRow(t, out, "web", "web-2", "ready", "app", "esx-1", "web-1", "2", "~5m")
	hasRow(t, out, "batch", "batch-0", "ready", "worker", "esx-3", "-", "0", "~1h")
	out, code, _ = c.run("ops")
	if code != 0 {
		t.Errorf("ops: exit %d", code)
	}
	hasColumns(t, out, "CLUSTER", "ID", "KIND")
	hasRow(t, out, "web", "op-8", "contract")
	out, code, _ = c.run("decisions")
	hasColumns(t, out, "CLUSTER", "AT", "ACTION")
	if rs := rows(t, out); code != 0 || len(rs) != 4 || rs[1][0] != "batch" || rs[1][2] != "none" || rs[2][0] != "web" {
		t.Errorf("decisions of every cluster, newest first: %d\n%s", code, out)
	}
	var nodes []plan.Node
	out, _, _ = c.run("nodes", "-o", "json")
	if json.Unmarshal([]byte(out), &nodes) != nil || len(nodes) != 4 || nodes[3].Cluster != "batch" {
		t.Errorf("nodes -o json:\n%s", out)
	}
	if _, code, _ := c.run("nodes", "web", "batch"); code != 2 {
		t.Errorf("nodes web batch: exit %d, want 2", code)
	}
}

// TestOpsCommandsTree: nodes --tree draws the clone lineage.
func TestOpsCommandsTree(t *testing.T) {
	c := newContract(t)
	out, code, err := c.run("nodes", "web", "--tree")
	if code != 0 {
		t.Fatalf("nodes --tree: exit %d: %v", code, err)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	want := []string{"web-0  ready esx-1", "└─ web-1  ready esx-2", "   └─ web-2  ready esx-1"}
	if len(lines) != len(want) {
		t.Fatalf("tree:\n%s", out)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d %q, want %q…", i, lines[i], w)
		}
	}
	out, _, _ = c.run("nodes", "--tree")
	if !strings.HasPrefix(out, "web\n  web-0") || !strings.Contains(out, "\nbatch\n  batch-0  ready esx-3") {
		t.Errorf("tree of every cluster:\n%s", out)
	}
}

// TestOpsCommandsSimulatedClock: on a simulated world ages count from the
// newest decision (the world's clock), not from this machine's.
func TestOpsCommandsSimulatedClock(t *testing.T) {
	c := newContract(t)
	c.fail["GET /v1/status"] = stubAnswer{200, `{"simulated": true, "clusters": [{"name": "web", "min": 2, "max": 20,
		"last_decision": {"at": "2026-01-01T02:10:00Z", "decision": {"action": "none", "reason": "within"}}}]}`}
	c.fail["GET /v1/clusters/web/nodes"] = stubAnswer{200, `[{"id": "web-0", "state": "ready", "created_at": "2026-01-01T00:00:00Z"},
		{"id": "web-1", "state": "ready", "parent": "web-0", "lineage_depth": 1, "created_at": "2026-01-01T02:05:00Z"}]`}
	c.fail["GET /v1/clusters/web/operations"] = stubAnswer{200, `[{"id": "op-1", "kind": "expand", "status": "done", "step": "done", "template": "web-0", "created_at": "2026-01-01T02:09:30Z"}]`}
	out, _, _ := c.run("status")
	hasRow(t, out, "web", "0", "2", "20", "0", "0", "false", "false", "0s", "none:", "within")
	out, _, _ = c.run("nodes", "web")
	hasRow(t, out, "web-0", "ready", "-", "-", "-", "0", "2h10m")
	hasRow(t, out, "web-1", "ready", "-", "-", "web-0", "1", "5m")
	out, _, _ = c.run("nodes", "web", "--tree")
	if !strings.Contains(out, "└─ web-1  ready - 5m") {
		t.Errorf("tree:\n%s", out)
	}
	out, _, _ = c.run("ops", "web")
	hasRow(t, out, "op-1", "expand", "done", "done", "web-0", "30s")
}

// TestOpsCommandsJSON: -o json is the API's answer, decodable into its
// type.
func TestOpsCommandsJSON(t *testing.T) {
	c := newContract(t)
	decode := func(v any, args ...string) {
		t.Helper()
		out, code, err := c.run(append(args, "-o", "json")...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %v", args, code, err)
		}
		if err := json.Unmarshal([]byte(out), v); err != nil {
			t.Fatalf("%v -o json: %v\n%s", args, err, out)
		}
	}
	var st wire.Status
	decode(&st, "status")
	if len(st.Clusters) != 2 || st.Clusters[0].LastDecision == nil || st.Clusters[0].LastDecision.Seq != 42 {
		t.Errorf("status: %+v", st)
	}
	var nodes []plan.Node
	decode(&nodes, "nodes", "web")
	if len(nodes) != 3 || nodes[2].Parent != "web-1" || nodes[2].LineageDepth != 2 {
		t.Errorf("nodes: %+v", nodes)
	}
	var ops []plan.Operation
	decode(&ops, "ops", "web")
	if len(ops) != 2 || ops[1].Template != "web-1" {
		t.Errorf("ops: %+v", ops)
	}
	var recs []plan.DecisionRecord
	decode(&recs, "decisions", "web")
	if len(recs) != 2 || recs[0].By != "oncall" {
		t.Errorf("decisions: %+v", recs)
	}
	var why plan.DecisionRecord
	decode(&why, "why", "web", "--at", "1h")
	if why.Seq != 42 || len(why.Reasons) != 1 {
		t.Errorf("why: %+v", why)
	}
	var clone plan.DecisionRecord
	decode(&clone, "clone", "web", "web-1")
	if !slices.Equal(clone.Operations, []string{"op-9"}) {
		t.Errorf("clone: %+v", clone)
	}
	for _, args := range [][]string{{"pause", "web"}, {"resume", "web"}, {"dry-run", "web", "on"}} {
		var s wire.Settings
		decode(&s, args...)
		if s.By != "oncall" || s.At.IsZero() {
			t.Errorf("%v: %+v", args, s)
		}
	}
	var p wire.PolicyFiles
	decode(&p, "policy", "show")
	if p.Version != "abc123def456" || p.Files["scale.rego"] != "package mitosis" {
		t.Errorf("policy show: %+v", p)
	}
	var check wire.PolicyCheck
	decode(&check, "policy", "push", policyDir(t, map[string]string{"a.rego": "package a\n"}))
	if check.Version != "fed654cba321" || check.Tests.Passed != 7 {
		t.Errorf("policy push: %+v", check)
	}
}

// TestOpsCommandsExitCodes: 0 done; 1 refused (403, 409, 422); 2 bad input
// (flags, arguments, 400, 404); 3 the agent cannot be used (unreachable,
// 401, 5xx). The server's message is in the error, the token never.
func TestOpsCommandsExitCodes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fail   string // "METHOD /path" to fail, with status and body
		status int
		body   string
		args   []string
		code   int
		shows  string // in the error or the output
	}{
		{"400", "POST /v1/clusters/web/clone", 400, `{"error":"template: required"}`, []string{"clone", "web", "web-1"}, 2, "template: required"},
		{"401", "GET /v1/status", 401, `{"error":"a valid bearer token is required"}`, []string{"status"}, 3, "a valid bearer token is required"},
		{"403", "POST /v1/clusters/web/pause", 403, `{"error":"grafana has the read role; this needs operate"}`, []string{"pause", "web"}, 1, "this needs operate"},
		{"404 cluster", "", 0, "", []string{"nodes", "db"}, 2, `cluster "db" is not configured`},
		{"404 why", "GET /v1/clusters/web/why", 404, `{"error":"no decision of cluster web at or before 2026-11-27T14:02:00Z is kept"}`, []string{"why", "web"}, 2, "no decision"},
		{"409 clone: the guardrails' reasons", "POST /v1/clusters/web/clone", 409,
			`{"seq":5,"decision":{"action":"expand","count":1},"reasons":[{"code":"max_size","message":"the cluster is at its max, 20"},{"code":"host_capacity","message":"no host has room"}]}`,
			[]string{"clone", "web", "web-1"}, 1, "refused: max_size: the cluster is at its max, 20\nrefused: host_capacity: no host has room"},
		{"409 detach", "POST /v1/clusters/web/detach", 409, `{"seq":6,"reasons":[{"code":"protected_node","message":"web-0 is protected"}]}`,
			[]string{"detach", "web", "web-0"}, 1, "refused: protected_node: web-0 is protected"},
		{"409 dry run off", "PUT /v1/clusters/web/dry-run", 409, `{"error":"the agent is configured to run dry"}`, []string{"dry-run", "web", "off"}, 1, "configured to run dry"},
		{"422 policy: the problems", "PUT /v1/policy", 422, `{"error":"the policy does not compile","problems":["scale.rego:3:1: rego_parse_error: unexpected eof token"]}`,
			[]string{"policy", "push", "POLICY"}, 1, "scale.rego:3:1: rego_parse_error"},
		{"500", "GET /v1/clusters/web/decisions", 500, `{"error":"registry: closed"}`, []string{"decisions", "web"}, 3, "registry: closed"},
		{"503", "POST /v1/clusters/web/clone", 503, `{"error":"the agent's loop did not take the request in time"}`, []string{"clone", "web", "web-1"}, 3, "did not take the request"},
		{"-o yaml", "", 0, "", []string{"status", "-o", "yaml"}, 2, `-o "yaml": want table or json`},
		{"an unknown flag", "", 0, "", []string{"nodes", "web", "--colour"}, 2, "unknown flag"},
		{"a missing argument", "", 0, "", []string{"clone", "web"}, 2, "accepts 2 arg(s)"},
		{"dry-run maybe", "", 0, "", []string{"dry-run", "web", "maybe"}, 2, `"maybe": want on or off`},
		{"--at yesterday", "", 0, "", []string{"why", "web", "--at", "yesterday"}, 2, "RFC 3339"},
		{"a bad limit", "", 0, "", []string{"decisions", "web", "--limit", "many"}, 2, "invalid argument"},
		{"no policy file", "", 0, "", []string{"policy", "push", "EMPTY"}, 2, "no .rego file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newContract(t)
			if tc.fail != "" {
				c.fail[tc.fail] = stubAnswer{tc.status, tc.body}
			}
			args := slices.Clone(tc.args)
			for i, a := range args {
				switch a {
				case "POLICY":
					args[i] = policyDir(t, map[string]string{"scale.rego": "package mitosis\n\nx := {\n"})
				case "EMPTY":
					args[i] = t.TempDir()
				}
			}
			out, code, err := c.run(args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d: %v\n%s", code, tc.code, err, out)
			}
			if !strings.Contains(out+fmt.Sprint(err), tc.shows) {
				t.Errorf("shows neither in the output nor the error %q:\n%s\n%v", tc.shows, out, err)
			}
		})
	}
}

// TestOpsCommandsReachingTheAgent: the token from each of its sources, the
// server from $MITOSIS_SERVER, and what happens without either.
func TestOpsCommandsReachingTheAgent(t *testing.T) {
	c := newContract(t)
	dir := t.TempDir()
	good, wrong := filepath.Join(dir, "good"), filepath.Join(dir, "wrong")
	os.WriteFile(good, []byte(stubToken+"\n"), 0o600)
	os.WriteFile(wrong, []byte("wr0ng-canary\n"), 0o600)
	clean := func() {
		for _, k := range []string{"MITOSIS_SERVER", "MITOSIS_TOKEN", "MITOSIS_TOKEN_FILE"} {
			t.Setenv(k, "")
		}
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		code int
	}{
		{"$MITOSIS_SERVER and $MITOSIS_TOKEN", map[string]string{"MITOSIS_SERVER": c.srv.URL, "MITOSIS_TOKEN": stubToken}, nil, 0},
		{"$MITOSIS_TOKEN_FILE", map[string]string{"MITOSIS_TOKEN_FILE": good}, []string{"--server", c.srv.URL}, 0},
		{"--token-file over $MITOSIS_TOKEN", map[string]string{"MITOSIS_TOKEN": "wr0ng-canary"}, []string{"--server", c.srv.URL, "--token-file", good}, 0},
		{"a wrong token: 401", map[string]string{}, []string{"--server", c.srv.URL, "--token-file", wrong}, 3},
		{"no token", map[string]string{}, []string{"--server", c.srv.URL}, 2},
		{"a token file that is not there", map[string]string{}, []string{"--server", c.srv.URL, "--token-file", filepath.Join(dir, "none")}, 2},
		{"not a URL", map[string]string{"MITOSIS_TOKEN": stubToken}, []string{"--server", "127.0.0.1:9808"}, 2},
		{"unreachable", map[string]string{"MITOSIS_TOKEN": stubToken}, []string{"--server", "http://127.0.0.1:1"}, 3},
		{"a CA file that is not there", map[string]string{"MITOSIS_TOKEN": stubToken}, []string{"--server", "https://127.0.0.1:1", "--ca-file", filepath.Join(dir, "none")}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clean()
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			out, stderr, code, err := mitosis(t, append([]string{"status"}, tc.args...)...)
			if code != tc.code {
				t.Errorf("exit %d, want %d: %v\n%s", code, tc.code, err, out)
			}
			for _, tok := range []string{stubToken, "wr0ng-canary"} {
				if strings.Contains(out+stderr+fmt.Sprint(err), tok) {
					t.Errorf("the token is shown: %v\n%s", err, out)
				}
			}
		})
	}

	// A slow agent: --timeout gives up, exit 3.
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer slow.Close()
	clean()
	t.Setenv("MITOSIS_TOKEN", stubToken)
	start := time.Now()
	if _, _, code, err := mitosis(t, "status", "--server", slow.URL, "--timeout", "200ms"); code != 3 || time.Since(start) > 5*time.Second {
		t.Errorf("--timeout 200ms: exit %d after %v: %v", code, time.Since(start), err)
	}
}

// TestOpsCommandsHelpNamesTheExitCodes: each command's help documents the
// exit codes.
func TestOpsCommandsHelpNamesTheExitCodes(t *testing.T) {
	for _, cmd := range [][]string{{"status"}, {"nodes"}, {"ops"}, {"decisions"}, {"why"}, {"clone"}, {"detach"},
		{"pause"}, {"resume"}, {"dry-run"}, {"audit"}, {"policy", "push"}, {"policy", "show"}} {
		out, _, code, err := mitosis(t, append(cmd, "--help")...)
		if code != 0 || !strings.Contains(out, "Exit codes: 0 done; 1 refused") || !strings.Contains(out, "3 the agent cannot be used") {
			t.Errorf("%v --help: %d %v\n%s", cmd, code, err, out)
		}
	}
}

// TestOpsCommandsWhyCountsBackOnTheAgentsClock: on a simulated world
// "--at 15m" is 15 minutes before the world's now (its newest decision),
// not before this machine's.
func TestOpsCommandsWhyCountsBackOnTheAgentsClock(t *testing.T) {
	c := newContract(t)
	c.fail["GET /v1/status"] = stubAnswer{200, `{"simulated": true, "clusters": [{"name": "web", "min": 2, "max": 20,
		"last_decision": {"at": "2026-01-01T02:10:00Z", "decision": {"action": "none", "reason": "within"}}}]}`}
	for _, args := range [][]string{{"why", "web", "--at", "15m"}, {"why", "web", "--at", "15m", "-o", "json"}} {
		if _, code, err := c.run(args...); code != 0 {
			t.Fatalf("%v: exit %d: %v", args, code, err)
		}
		if r := c.last(); r.path != "/v1/clusters/web/why" || r.query != "at=2026-01-01T01%3A55%3A00Z" {
			t.Errorf("%v sent %+v, want at=2026-01-01T01:55:00Z", args, r)
		}
	}
}

// TestOpsCommandsShowDecisionErrors: a decision whose policy failed shows
// its error where the reason would be, in status, decisions and why.
func TestOpsCommandsShowDecisionErrors(t *testing.T) {
	c := newContract(t)
	failed := `{"seq": 50, "cluster": "web", "at": "2026-01-01T02:10:00Z", "policy_version": "abc", "decision": {"action": "none", "count": 0}, "error": "decision: must be an object"}`
	c.fail["GET /v1/status"] = stubAnswer{200, `{"clusters": [{"name": "web", "min": 2, "max": 20, "last_decision": ` + failed + `}]}`}
	c.fail["GET /v1/clusters/web/decisions"] = stubAnswer{200, `[` + failed + `]`}
	c.fail["GET /v1/clusters/web/why"] = stubAnswer{200, failed}
	out, _, _ := c.run("status")
	if !strings.Contains(out, "none: error: decision: must be an object") {
		t.Errorf("status:\n%s", out)
	}
	out, _, _ = c.run("decisions", "web")
	if rs := rows(t, out); len(rs) != 2 || strings.Join(rs[1][5:], " ") != "error: decision: must be an object" {
		t.Errorf("decisions:\n%s", out)
	}
	out, _, _ = c.run("why", "web")
	hasRow(t, out, "reason", "error:", "decision:", "must", "be", "an", "object")
}

// TestOpsCommandsRefusalIsToldOnce: a refused clone prints its reasons on
// standard output and nothing more on standard error; with -o json it
// prints the decision record the agent answered, and exits 1 all the same.
func TestOpsCommandsRefusalIsToldOnce(t *testing.T) {
	c := newContract(t)
	c.fail["POST /v1/clusters/web/clone"] = stubAnswer{409, `{"seq":5,"decision":{"action":"expand","count":1},"reasons":[{"code":"host_full","message":"no host has room"}]}`}
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte(stubToken), 0o600)
	var stdout, stderr strings.Builder
	code := run([]string{"clone", "web", "web-1", "--server", c.srv.URL, "--token-file", tokenFile}, &stdout, &stderr)
	if code != 1 || stdout.String() != "refused: host_full: no host has room\n" || stderr.String() != "" {
		t.Errorf("exit %d\nstdout %q\nstderr %q", code, stdout.String(), stderr.String())
	}
	stdout.Reset()
	stderr.Reset()
	code = run([]string{"clone", "web", "web-1", "-o", "json", "--server", c.srv.URL, "--token-file", tokenFile}, &stdout, &stderr)
	var rec plan.DecisionRecord
	if err := json.Unmarshal([]byte(stdout.String()), &rec); code != 1 || err != nil || rec.Seq != 5 || len(rec.Reasons) != 1 || rec.Reasons[0].Code != "host_full" {
		t.Errorf("-o json: exit %d (%v)\nstdout %q", code, err, stdout.String())
	}
	if !strings.Contains(stderr.String(), "409") {
		t.Errorf("-o json: stderr %q does not say it was refused", stderr.String())
	}
}

// TestOpsCommandsLimits: --limit below 1 is refused naming it, exit 2,
// before the agent is asked; audit takes --limit too.
func TestOpsCommandsLimits(t *testing.T) {
	c := newContract(t)
	for _, args := range [][]string{{"decisions", "web", "--limit", "0"}, {"decisions", "web", "--limit", "-1"},
		{"ops", "web", "--limit", "0"}, {"audit", "--limit", "-5"}} {
		_, code, err := c.run(args...)
		if code != 2 || err == nil || !strings.Contains(err.Error(), `"--limit"`) || !strings.Contains(err.Error(), "want at least 1") {
			t.Errorf("%v: exit %d, error %v", args, code, err)
		}
	}
	c.mu.Lock()
	seen := len(c.seen)
	c.mu.Unlock()
	if seen != 0 {
		t.Errorf("the agent was asked %d times", seen)
	}
	if _, code, err := c.run("audit", "--limit", "7"); code != 0 {
		t.Fatalf("audit --limit 7: exit %d: %v", code, err)
	}
	if r := c.last(); r.path != "/v1/audit" || r.query != "limit=7" {
		t.Errorf("audit --limit 7 sent %+v", r)
	}
	c.run("audit")
	if r := c.last(); r.path != "/v1/audit" || r.query != "" {
		t.Errorf("audit sent %+v", r)
	}
}

// TestOpsCommandsTreeMarksGoneTemplates: a clone whose template is gone is
// a root marked "from TEMPLATE (gone)", as the dashboard marks it; an
// original is not marked.
func TestOpsCommandsTreeMarksGoneTemplates(t *testing.T) {
	c := newContract(t)
	c.fail["GET /v1/clusters/web/nodes"] = stubAnswer{200, `[{"id": "web-0", "cluster": "web", "state": "ready", "host": "esx-1"},
		{"id": "web-5", "cluster": "web", "state": "ready", "host": "esx-2", "parent": "web-3", "lineage_depth": 2},
		{"id": "web-6", "cluster": "web", "state": "ready", "host": "esx-2", "parent": "web-5", "lineage_depth": 3}]`}
	out, code, err := c.run("nodes", "web", "--tree")
	if code != 0 {
		t.Fatalf("exit %d: %v", code, err)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 3 || strings.Contains(lines[0], "gone") || !strings.HasPrefix(lines[1], "web-5  ready esx-2") ||
		!strings.HasSuffix(lines[1], "  from web-3 (gone)") || !strings.HasPrefix(lines[2], "└─ web-6") || strings.Contains(lines[2], "gone") {
		t.Errorf("tree:\n%s", out)
	}
}

// TestOpsCommandsRefuseBadFlagsAndFiles: a --timeout that is not positive,
// an empty token file, and policy push of a path that is no directory
// are refused with exit 2, saying what is wrong.
func TestOpsCommandsRefuseBadFlagsAndFiles(t *testing.T) {
	c := newContract(t)
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte(" \n"), 0o600)
	rego := filepath.Join(dir, "p.rego")
	os.WriteFile(rego, []byte("package mitosis\n"), 0o600)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"status", "--timeout", "-1s"}, "--timeout -1s: want a positive duration"},
		{[]string{"status", "--timeout", "0s"}, "--timeout 0s: want a positive duration"},
		{[]string{"policy", "push", filepath.Join(dir, "nope")}, filepath.Join(dir, "nope") + ": no such directory"},
		{[]string{"policy", "push", rego}, rego + " is a file; give the directory that holds it"},
		{[]string{"status", "extra"}, `mitosis status takes no arguments; got ["extra"]`},
	} {
		_, code, err := c.run(tc.args...)
		if code != 2 || err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: exit %d, error %v; want 2 and %q", tc.args, code, err, tc.want)
		}
	}
	_, _, code, err := mitosis(t, "status", "--server", c.srv.URL, "--token-file", empty)
	if want := "--token-file " + empty + ": the file is empty"; code != 2 || err == nil || err.Error() != want {
		t.Errorf("an empty token file: exit %d, error %v; want 2 and %q", code, err, want)
	}
	if _, _, code, err := mitosis(t, "agent", "extra"); code != 2 || err == nil || err.Error() != `mitosis agent takes no arguments; got ["extra"]` {
		t.Errorf("agent extra: exit %d, error %v", code, err)
	}
}
