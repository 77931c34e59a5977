package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/mitosis-autoscaler/mitosis/agent/wire"
	"github.com/mitosis-autoscaler/mitosis/plan"
)

// evil is what a policy, a file or a peer may put in any text the agent
// answers: it clears the line, returns, starts a row of its own, adds a
// cell, turns the text around, and adds a C1 CSI and a DEL.
const evil = "\x1b[2K\r\nFAKE\tROW\u202e\u009b\x7f"

// poison sets every string of v, a pointer, to evil (a map's string keys
// to evil and a number, to keep them apart), through structs, slices,
// maps and pointers.
func poison(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			poison(v.Elem())
		}
	case reflect.String:
		if v.CanSet() {
			v.SetString(evil)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				poison(v.Field(i))
			}
		}
	case reflect.Slice:
		for i := range v.Len() {
			poison(v.Index(i))
		}
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		iter, n := v.MapRange(), 0
		for iter.Next() {
			k := reflect.New(v.Type().Key()).Elem()
			k.Set(iter.Key())
			if k.Kind() == reflect.String {
				k.SetString(fmt.Sprintf("%s%d", evil, n))
			}
			val := reflect.New(v.Type().Elem()).Elem()
			val.Set(iter.Value())
			poison(val)
			m.SetMapIndex(k, val)
			n++
		}
		v.Set(m)
	}
}

func poisoned[T any](v T) T {
	poison(reflect.ValueOf(&v))
	return v
}

// Every table the commands print shows the agent's text escaped: a value
// cannot write on the terminal or fake a row (issue 17). JSON is left to
// JSON's own escaping.
func TestTablesEscapeTheAgentsText(t *testing.T) {
	c := newContract(t)
	at := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	rec := poisoned(plan.DecisionRecord{At: at, Operations: []string{"op"}, Proposals: []plan.Proposal{{}},
		Metrics:  plan.MetricsHealth{Available: false},
		Observed: plan.Observed{NodeMeans: map[string]float64{"cpu": 0.5}, NodeCounts: map[string]int{"cpu": 1}, ReadyNodes: 2},
		Reasons:  []plan.Reason{{}}})
	failed := rec // the error shows where the reason would
	rec.Error = ""
	st := poisoned(wire.Status{Clusters: []wire.ClusterSummary{{Nodes: map[plan.NodeState]int{plan.NodeReady: 1}, LastDecision: &failed}, {LastDecision: &rec}}})
	node := poisoned(plan.Node{CreatedAt: at})
	child := poisoned(plan.Node{CreatedAt: at}) // under node in the tree, and one whose parent is gone
	child.Parent, child.ID = node.ID, node.ID+"2"
	orphan := poisoned(plan.Node{CreatedAt: at})
	orphan.ID, orphan.Parent = evil+"3", evil+"gone"
	ops := []plan.Operation{poisoned(plan.Operation{CreatedAt: at}), poisoned(plan.Operation{Kind: plan.OpContract, CreatedAt: at})}
	ops[1].Kind = plan.OpContract
	answer := func(key string, status int, v any) {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		c.fail[key] = stubAnswer{status, string(b)}
	}
	answer("GET /v1/status", 200, st)
	for _, cl := range []string{"web", evil} {
		answer("GET /v1/clusters/"+cl+"/nodes", 200, []plan.Node{node, child, orphan})
		answer("GET /v1/clusters/"+cl+"/operations", 200, ops)
		answer("GET /v1/clusters/"+cl+"/decisions", 200, []plan.DecisionRecord{rec, failed})
	}
	answer("GET /v1/clusters/web/why", 200, rec)
	answer("POST /v1/clusters/web/clone", 201, rec)
	answer("POST /v1/clusters/web/detach", 409, poisoned(plan.DecisionRecord{Reasons: []plan.Reason{{}}}))
	for _, k := range []string{"POST /v1/clusters/web/pause", "POST /v1/clusters/web/resume", "PUT /v1/clusters/web/dry-run"} {
		answer(k, 200, poisoned(wire.Settings{At: at}))
	}
	answer("GET /v1/audit", 200, []plan.AuditRecord{poisoned(plan.AuditRecord{At: at})})
	answer("GET /v1/peers", 200, poisoned(wire.RaftStatus{Peers: []wire.Peer{{}}}))
	answer("GET /v1/policy", 200, poisoned(wire.PolicyFiles{Files: map[string]string{"p.rego": ""}}))
	answer("PUT /v1/policy", 422, poisoned(wire.PolicyRefusal{Problems: []string{""}}))
	answer("DELETE /v1/peers/x", 404, poisoned(wire.ErrorBody{}))

	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(stubToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "p.rego"), []byte("package mitosis\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"status"}, {"nodes", "web"}, {"nodes"}, {"nodes", "web", "--tree"}, {"nodes", "--tree"},
		{"ops", "web"}, {"ops"}, {"decisions", "web"}, {"decisions"}, {"why", "web"},
		{"clone", "web", "web-1"}, {"detach", "web", "web-1"},
		{"pause", "web"}, {"resume", "web"}, {"dry-run", "web", "on"},
		{"audit"}, {"peers", "list"}, {"peers", "remove", "x"}, {"policy", "show"}, {"policy", "push", dir},
	} {
		var stdout, stderr bytes.Buffer
		run(append(args, "--server", c.srv.URL, "--token-file", tokenFile), &stdout, &stderr)
		all := stdout.String() + stderr.String()
		if !strings.Contains(all, `\nFAKE\tROW\u202e`) {
			t.Errorf("%v shows no escaped value:\n%s", args, all)
		}
		for i, r := range all {
			if (r < 0x20 && r != '\n') || (r >= 0x7f && r <= 0x9f) || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) || (r == utf8.RuneError && !strings.HasPrefix(all[i:], "\uFFFD")) {
				t.Errorf("%v prints %U raw at byte %d:\n%q", args, r, i, all)
				break
			}
		}
		for _, line := range strings.Split(all, "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "FAKE") {
				t.Errorf("%v prints a row of the agent's making: %q", args, line)
			}
		}
	}

	// JSON is the API's answer as it came: its own escapes, the text kept.
	var stdout, stderr bytes.Buffer
	run([]string{"decisions", "web", "-o", "json", "--server", c.srv.URL, "--token-file", tokenFile}, &stdout, &stderr)
	var recs []plan.DecisionRecord
	if err := json.Unmarshal(stdout.Bytes(), &recs); err != nil || len(recs) != 2 || recs[0].Decision.Reason != evil {
		t.Errorf("-o json: %v\n%s", err, stdout.String())
	}
}

func TestCellShowsControlsEscaped(t *testing.T) {
	for in, want := range map[string]string{
		"cpu 0.81 over 0.75 → web-3 é": "cpu 0.81 over 0.75 → web-3 é",
		evil:                           `\x1b[2K\r\nFAKE\tROW\u202e\u009b\x7f`,
		"a\u2066b\u2069c\u200f\u2028":  `a\u2066b\u2069c\u200f\u2028`,
		"bad \x9b[31m byte \xff":       `bad \x9b[31m byte \xff`,
		"kept: \uFFFD and a \\ as is":  "kept: \uFFFD and a \\ as is",
		"\x00\x07\x08\x0b\x0c\x1f":     `\x00\x07\x08\x0b\x0c\x1f`,
	} {
		if got := cell(in); got != want {
			t.Errorf("cell(%q) = %q, want %q", in, got, want)
		}
	}
}

// policy eval and policy test show a policy's text escaped as well.
func TestPolicyOutputEscapesThePolicysText(t *testing.T) {
	const rego = `"\u001b[2K\r\nFAKE\tROW\u202e"`
	dir := policyDir(t, map[string]string{
		"p.rego":      "package mitosis\n\ndecision := {\"action\": \"none\", \"reason\": " + rego + "}\n",
		"p_test.rego": "package mitosis_test\n\ntest_x if {\n\tprint(" + rego + ")\n\tfalse\n}\n",
	})
	out, stderr, _, err := mitosis(t, "policy", "eval", "--input", "../../policy/testdata/input-4-nodes.json", "--policy", dir)
	if err != nil || !strings.Contains(out, `"reason": "\u001b[2K\r\nFAKE\tROW`) || !strings.Contains(stderr, `none: \x1b[2K\r\nFAKE\tROW\u202e`) {
		t.Errorf("policy eval: %v\n%s\n%q", err, out, stderr)
	}
	out, _, _, _ = mitosis(t, "policy", "test", dir)
	// What a test printed keeps its lines, each indented under the test.
	if strings.ContainsAny(out, "\x1b\r\t\u202e") || !strings.Contains(out, "printed: \\x1b[2K\\r\n    FAKE\\tROW\\u202e\n") {
		t.Errorf("policy test:\n%q", out)
	}
}
