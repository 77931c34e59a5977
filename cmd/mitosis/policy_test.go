package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mitosis-autoscaler/mitosis/plan"
)

// mitosis runs the command in process: its standard output and error, the
// exit code it would end with, and the error main would print.
func mitosis(t *testing.T, args ...string) (stdout, stderr string, code int, err error) {
	t.Helper()
	cmd := newRootCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err = cmd.Execute()
	if err != nil {
		code = 2
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
	}
	return out.String(), errOut.String(), code, err
}

// policyDir writes files into a new directory.
func policyDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const (
	okPolicy = `package mitosis

decision := {"action": "none", "reason": sprintf("now %d", [time.now_ns()])}
`
	okTest = `package mitosis_test

import data.mitosis

test_decides_nothing if {
	mitosis.decision.action == "none"
}
`
	brokenTest = `package mitosis_test

import data.mitosis

test_decides_nothing if {
	mitosis.decision.action == "none"
}

test_broken if {
	mitosis.decision.action == "expand"
}
`
)

func TestPolicyTest(t *testing.T) {
	t.Run("the default policies pass", func(t *testing.T) {
		out, _, code, err := mitosis(t, "policy", "test", "../../policies")
		if code != 0 {
			t.Fatalf("exit %d: %v\n%s", code, err, out)
		}
		if !strings.Contains(out, "PASS data.mitosis_test.test_expands_to_the_desired_size_when_the_mean_is_above_high (") ||
			!strings.Contains(out, "../../policies/examples/\n") || !strings.Contains(out, " passed, 0 failed\n") {
			t.Errorf("output:\n%s", out)
		}
	})
	t.Run("the embedded defaults when there is no policies directory", func(t *testing.T) {
		t.Chdir(t.TempDir())
		out, stderr, code, err := mitosis(t, "policy", "test")
		if code != 0 || !strings.Contains(stderr, "embedded default policies") || !strings.Contains(out, " passed, 0 failed") {
			t.Errorf("exit %d (%v), output:\n%s\n%s", code, err, out, stderr)
		}
	})
	t.Run("a failing test exits 1 naming it", func(t *testing.T) {
		dir := policyDir(t, map[string]string{"p.rego": okPolicy, "p_test.rego": brokenTest})
		out, _, code, err := mitosis(t, "policy", "test", dir)
		if code != 1 {
			t.Fatalf("exit %d (%v), want 1", code, err)
		}
		for _, want := range []string{
			"PASS data.mitosis_test.test_decides_nothing (",
			"FAIL data.mitosis_test.test_broken (",
			"    " + filepath.ToSlash(filepath.Join(dir, "p_test.rego")) + `:10: mitosis.decision.action == "expand" is false` + "\n",
			"1 passed, 1 failed\n",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output does not say %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "p_test.rego:9:") {
			t.Errorf("the failure's place is shown twice:\n%s", out)
		}
		if !strings.Contains(err.Error(), "data.mitosis_test.test_broken") {
			t.Errorf("error %q does not name the test", err)
		}
	})
	t.Run("a syntax error exits 2 naming file and line", func(t *testing.T) {
		dir := policyDir(t, map[string]string{"p.rego": okPolicy, "p_test.rego": "package mitosis_test\n\ntest_x if {\n\t1 ==\n}\n"})
		_, _, code, err := mitosis(t, "policy", "test", dir)
		if code != 2 || !strings.Contains(err.Error(), filepath.ToSlash(filepath.Join(dir, "p_test.rego"))+":") {
			t.Errorf("exit %d, error %v; want 2 naming p_test.rego", code, err)
		}
	})
	t.Run("no tests exits 1", func(t *testing.T) {
		dir := policyDir(t, map[string]string{"p.rego": okPolicy})
		_, _, code, err := mitosis(t, "policy", "test", dir)
		if code != 1 || !strings.Contains(err.Error(), "no tests") {
			t.Errorf("exit %d, error %v", code, err)
		}
	})
	t.Run("a missing directory exits 2", func(t *testing.T) {
		if _, _, code, _ := mitosis(t, "policy", "test", filepath.Join(t.TempDir(), "nope")); code != 2 {
			t.Errorf("exit %d, want 2", code)
		}
	})
}

// evalInput is a whole input document: a cluster web of one ready app node
// n1, sizes 1 to 3.
const evalInput = `{"schema": 1, "now": 1767258000, "cluster": {"name": "web", "min": 1, "max": 3, "size": 1, "roles": ["app"]},
 "nodes": [{"id": "n1", "role": "app", "state": "ready", "host": "h1", "vm": "vm-n1", "age_s": 60, "parent": "", "lineage_depth": 0, "metrics": {}}],
 "hosts": [], "metrics": {}, "health": {"metrics_available": true, "reason": ""},
 "history": {"last_expand_s_ago": -1, "last_contract_s_ago": -1, "last_join_s_ago": -1, "recent": []},
 "estimates": {"clone_seconds": 0, "drain_seconds": 0}, "operations": [], "params": {}}
`

func TestPolicyEval(t *testing.T) {
	input := "../../policy/testdata/input-4-nodes.json"
	t.Run("the default policy on the 4-node example", func(t *testing.T) {
		out, stderr, code, err := mitosis(t, "policy", "eval", "--input", input)
		if code != 0 {
			t.Fatalf("exit %d: %v", code, err)
		}
		var d plan.Decision
		if err := json.Unmarshal([]byte(out), &d); err != nil {
			t.Fatalf("output is not a decision: %v\n%s", err, out)
		}
		if d.Action != plan.ActionExpand || d.Count != 2 || d.Template != "app-3" {
			t.Errorf("decision %+v", d)
		}
		if !strings.Contains(out, `"reason": "mean utilization 0.82 > 0.75 over 4 nodes: desired 6, size 4"`) ||
			!strings.Contains(stderr, "expand: mean utilization 0.82 > 0.75") {
			t.Errorf("output:\n%s\n%s", out, stderr)
		}
	})
	t.Run("--now that is not RFC 3339 exits 2 saying what it wants", func(t *testing.T) {
		_, _, code, err := mitosis(t, "policy", "eval", "--input", input, "--now", "yesterday")
		if code != 2 || err == nil || err.Error() != `--now "yesterday": want RFC 3339, e.g. 2026-11-27T14:02:00Z` {
			t.Errorf("exit %d, error %v", code, err)
		}
	})
	t.Run("an argument exits 2 saying eval takes none", func(t *testing.T) {
		_, _, code, err := mitosis(t, "policy", "eval", "--input", input, "extra")
		if code != 2 || err == nil || err.Error() != `mitosis policy eval takes no arguments; got ["extra"]` {
			t.Errorf("exit %d, error %v", code, err)
		}
	})
	t.Run("--now pins time.now_ns", func(t *testing.T) {
		dir := policyDir(t, map[string]string{"p.rego": okPolicy})
		out, _, code, err := mitosis(t, "policy", "eval", "--policy", dir, "--input", input, "--now", "2030-01-02T03:04:05Z")
		if code != 0 || !strings.Contains(out, `"reason": "now 1893553445000000000"`) {
			t.Errorf("exit %d (%v), output:\n%s", code, err, out)
		}
	})
	t.Run("a random policy is refused at load, at its call; eval twice gives one answer", func(t *testing.T) {
		random := "package mitosis\n\ndecision := {\"action\": \"none\", \"reason\": sprintf(\"%d %s\", [rand.intn(\"r\", 1000), uuid.rfc4122(\"u\")])}\n"
		dir := policyDir(t, map[string]string{"p.rego": random})
		_, _, code, err := mitosis(t, "policy", "eval", "--policy", dir, "--input", input)
		at := filepath.ToSlash(filepath.Join(dir, "p.rego")) + ":3:"
		if code != 2 || err == nil || !strings.Contains(err.Error(), at) ||
			!strings.Contains(err.Error(), "rand.intn is not allowed") || !strings.Contains(err.Error(), "uuid.rfc4122 is not allowed") {
			t.Fatalf("exit %d, error %v; want both calls refused at %s", code, err, at)
		}
		dir = policyDir(t, map[string]string{"p.rego": okPolicy})
		first, _, code, err := mitosis(t, "policy", "eval", "--policy", dir, "--input", input)
		second, _, _, _ := mitosis(t, "policy", "eval", "--policy", dir, "--input", input)
		if code != 0 || first != second {
			t.Errorf("exit %d (%v); two evaluations of one input differ:\n%s\n%s", code, err, first, second)
		}
	})
	for _, c := range []struct {
		name   string
		input  string
		policy map[string]string
		want   string
	}{
		{
			name:  "an unknown field exits 2 naming it and its line",
			input: "{\n  \"schema\": 1,\n  \"cluster\": {\"name\": \"web\", \"maximum\": 4}\n}\n",
			want:  `in.json:3:30: cluster: unknown field "maximum"`,
		},
		{
			name:  "bad JSON exits 2 naming line and column",
			input: "{\n  \"schema\": 1\n  \"now\": 5\n}\n",
			want:  "in.json:3:3: invalid JSON",
		},
		{
			name:   "an invalid decision exits 2 naming the policy's file and line",
			input:  evalInput,
			policy: map[string]string{"scale.rego": "package mitosis\n\n# always clone\ndecision := {\"action\": \"expand\", \"count\": 1, \"template\": \"n9\"}\n"},
			want:   `scale.rego:4: decision: template "n9" is not a ready node of the cluster`,
		},
		{
			name:   "a policy that does not compile exits 2",
			input:  `{}`,
			policy: map[string]string{"scale.rego": "package mitosis\n\ndecision := http.send({})\n"},
			want:   "scale.rego:3: http.send is not allowed",
		},
		{
			name:  "an empty object exits 2 naming the first missing field",
			input: "{}",
			want:  `in.json:1:1: missing field "schema"`,
		},
		{
			name:  "null exits 2",
			input: "null",
			want:  "in.json:1:1: the input must be a JSON object, not null",
		},
		{
			name:  "an input without health exits 2 naming it",
			input: strings.Replace(evalInput, `"health": {"metrics_available": true, "reason": ""},`, "", 1),
			want:  `in.json:1:1: missing field "health"`,
		},
		{
			name:  "schema 0 exits 2",
			input: strings.Replace(evalInput, `"schema": 1`, `"schema": 0`, 1),
			want:  "in.json:1:12: schema: contract version 0 is not supported: want 1",
		},
		{
			name:  "an unknown node state exits 2 naming the node",
			input: strings.Replace(evalInput, `"state": "ready"`, `"state": "up"`, 1),
			want:  `nodes[0].state: "up" is not a node state (ready, preparing, draining, failed)`,
		},
		{
			name:  "a metric of the wrong type names the node and the metric",
			input: strings.Replace(evalInput, `"metrics": {}}]`, `"metrics": {"utilization": {"value": "high", "age_s": 1}}}]`, 1),
			want:  `nodes[0].metrics.utilization.value: cannot use a JSON string as float64`,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := policyDir(t, map[string]string{"in.json": c.input})
			args := []string{"policy", "eval", "--input", filepath.Join(dir, "in.json")}
			if c.policy != nil {
				args = append(args, "--policy", policyDir(t, c.policy))
			}
			_, _, code, err := mitosis(t, args...)
			if code != 2 || err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("exit %d, error %v; want 2 and %q", code, err, c.want)
			}
		})
	}
}

func TestPolicyCheck(t *testing.T) {
	t.Run("the default policies are clean", func(t *testing.T) {
		out, _, code, err := mitosis(t, "policy", "check", "../../policies")
		if code != 0 || !strings.Contains(out, "2 policy directories: formatted, strict compilation clean") {
			t.Errorf("exit %d (%v): %s", code, err, out)
		}
	})
	t.Run("unformatted files exit 1, listed", func(t *testing.T) {
		dir := policyDir(t, map[string]string{"p.rego": okPolicy, "sub/lib.rego": "package mitosis\n\ndecision:={}\n"})
		out, _, code, err := mitosis(t, "policy", "check", dir)
		if want := filepath.ToSlash(filepath.Join(dir, "sub/lib.rego")) + ": not formatted\n"; code != 1 || out != want {
			t.Errorf("exit %d, output %q; want 1 and %q", code, out, want)
		}
		if err == nil || !strings.HasPrefix(err.Error(), "1 file is not formatted") {
			t.Errorf("error %v; want it to start with %q", err, "1 file is not formatted")
		}
	})
	for _, c := range []struct{ name, policy string }{
		{"a policy without a decision exits 2 as eval refuses it", "package mitosis\n\nfoo := 1\n"},
		{"a policy of another package exits 2 as eval refuses it", "package other\n\ndecision := {}\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := policyDir(t, map[string]string{"p.rego": c.policy, "p_test.rego": "package mitosis\n\ndecision := {}\n\ntest_x if true\n"})
			out, _, code, err := mitosis(t, "policy", "check", dir)
			want := filepath.ToSlash(dir) + ": no decision: a policy must define `decision` in `package mitosis`"
			if code != 2 || err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("exit %d, error %v, output %q; want 2 and %q", code, err, out, want)
			}
			_, _, code, err = mitosis(t, "policy", "eval", "--policy", dir, "--input", "../../policy/testdata/input-4-nodes.json")
			if code != 2 || err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("eval: exit %d, error %v; want 2 and %q", code, err, want)
			}
		})
	}
	t.Run("a strict-mode error exits 2 naming file and line", func(t *testing.T) {
		dir := policyDir(t, map[string]string{"p.rego": okPolicy, "p_test.rego": "package mitosis_test\n\ntest_x if {\n\tx := 1\n}\n"})
		_, _, code, err := mitosis(t, "policy", "check", dir)
		if code != 2 || !strings.Contains(err.Error(), "p_test.rego:4:") {
			t.Errorf("exit %d, error %v", code, err)
		}
	})
}
