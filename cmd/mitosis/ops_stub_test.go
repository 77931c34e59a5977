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

func sameJSON(a, b string) bool {
	if a == "" || b == "" {
		return a == b
	}
	var x, y any
	return json.Unmarshal([]byte(a), &x) == nil && json.Unmarshal([]byte(b), &y) == nil && fmt.Sprint(x) == fmt.Sprint(y)
}

// TestOpsCommandsEveryCluster: nodes, ops and decisions without CLUSTER
// list every cluster's, with a CLUSTER column.
