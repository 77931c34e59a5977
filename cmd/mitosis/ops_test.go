package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/agent/wire"
	"github.com/mitosis-autoscaler/mitosis/plan"
)

// The operator's commands' tables and JSON, against the stub agent of
// ops_stub_test.go.

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
