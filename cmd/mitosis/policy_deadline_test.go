package main

import (
	"strings"
	"testing"
	"time"
)

// slowPolicy loops for hours unless it is cut.
const slowPolicy = `package mitosis

n := count([x | some a in numbers.range(1, 5000); some b in numbers.range(1, 5000); some c in numbers.range(1, 5000); x := (a + b) + c])

decision := {"action": "none", "reason": sprintf("%d", [n])}
`

func TestPolicyEvalAndTestAreCutAtTheirTimeout(t *testing.T) {
	dir := policyDir(t, map[string]string{"p.rego": slowPolicy,
		"p_test.rego": "package mitosis_test\n\nimport data.mitosis\n\ntest_slow if mitosis.n > 0\n"})
	start := time.Now()
	_, _, code, err := mitosis(t, "policy", "eval", "--policy", dir, "--input", "../../policy/testdata/input-4-nodes.json", "--timeout", "200ms")
	if code != 2 || err == nil || !strings.Contains(err.Error(), "overran its deadline of 200ms") {
		t.Errorf("eval: exit %d, error %v; want 2 naming the deadline", code, err)
	}
	_, _, code, err = mitosis(t, "policy", "test", dir, "--timeout", "300ms")
	if code == 0 || err == nil || !strings.Contains(err.Error(), "overran its deadline of 300ms") {
		t.Errorf("test: exit %d, error %v; want a failure naming the deadline", code, err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %s", took)
	}
}

// The start-up check of the file's policy_params against the policy is
// under the tick's deadline too: a param_errors rule that loops stops the
// start, naming the deadline, instead of holding it.
func TestTheAgentsParamsCheckIsCutAtTheDeadline(t *testing.T) {
	dir := policyDir(t, map[string]string{"p.rego": `package mitosis

decision := {"action": "none"}

param_errors contains sprintf("%d", [n]) if {
	n := count([x | some a in numbers.range(1, 5000); some b in numbers.range(1, 5000); some c in numbers.range(1, 5000); x := (a + b) + c])
}
`})
	file, token := agentFiles(t, strings.Replace(minimal, "tick: 15s", "tick: 1s", 1))
	start := time.Now()
	_, code, err := runAgent(t, "--config", file, "--token-file", token, "--dry-run", "--policy", dir)
	if code != 2 || err == nil || !strings.Contains(err.Error(), "overran its deadline of 500ms") {
		t.Errorf("exit %d, error %v; want 2 naming the deadline", code, err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %s", took)
	}
}
