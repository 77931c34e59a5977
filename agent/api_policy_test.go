package agent

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/agent/wire"
	"github.com/mitosis-autoscaler/mitosis/policies"
	"github.com/mitosis-autoscaler/mitosis/policy"
)

func defaultPolicyFiles(t *testing.T) map[string]string {
	t.Helper()
	files := map[string]string{}
	names, _ := fs.Glob(policies.FS, "*.rego")
	for _, n := range names {
		b, err := fs.ReadFile(policies.FS, n)
		if err != nil {
			t.Fatal(err)
		}
		files[n] = string(b)
	}
	return files
}

func TestAPolicyIsPushedOnlyIfItCompilesAndItsTestsPass(t *testing.T) {
	rig := newAPIRig(t)
	good := defaultPolicyFiles(t)
	body := func(files map[string]string) string {
		b, _ := json.Marshal(wire.PolicyFiles{Files: files})
		return string(b)
	}
	before := rig.a.policy.Version()

	broken := map[string]string{"p.rego": "package mitosis\n\ndecision := {\n"}
	code, b := rig.do(t, http.MethodPost, "/v1/policy/validate", RoleOperate, body(broken))
	if code != http.StatusUnprocessableEntity || !strings.Contains(string(b), "p.rego:") {
		t.Errorf("validate a syntax error: %d %s, want 422 naming the file", code, b)
	}
	failing := map[string]string{
		"p.rego":      "package mitosis\n\ndecision := {\"action\": \"none\", \"reason\": \"x\"}\n",
		"p_test.rego": "package mitosis_test\n\nimport data.mitosis\n\ntest_expands if mitosis.decision.action == \"expand\"\n",
	}
	code, b = rig.do(t, http.MethodPut, "/v1/policy", RoleAdmin, body(failing))
	if code != http.StatusUnprocessableEntity || !strings.Contains(string(b), "test_expands") {
		t.Errorf("push with a failing test: %d %s, want 422 naming the test", code, b)
	}
	for _, bad := range []map[string]string{{"../evil.rego": "package mitosis"}, {"notes.txt": "hi"}, {}} {
		if code, b := rig.do(t, http.MethodPut, "/v1/policy", RoleAdmin, body(bad)); code != http.StatusBadRequest {
			t.Errorf("push of %v: %d %s, want 400", bad, code, b)
		}
	}
	// The colliding name of issue 17 (a name embedding another file), and
	// other names that are not plain: refused on both endpoints, quoted.
	for _, name := range []string{"a.rego\x0021\x00package lib\n\nx := 1\nb.rego", `a\b.rego`, "a\nb.rego", "..", strings.Repeat("a", 200) + ".rego"} {
		for _, ep := range []struct{ method, path string }{{http.MethodPost, "/v1/policy/validate"}, {http.MethodPut, "/v1/policy"}} {
			code, b := rig.do(t, ep.method, ep.path, RoleAdmin, body(map[string]string{name: "package mitosis"}))
			var e wire.ErrorBody
			quoted := fmt.Sprintf("%q", name)
			if code != http.StatusBadRequest || json.Unmarshal(b, &e) != nil ||
				!strings.HasPrefix(e.Message, "files: policy file name "+quoted[:min(len(quoted)-1, 100)]) {
				t.Errorf("%s %q: %d %s, want 400 quoting the name", ep.path, name, code, b)
			}
		}
	}
	if rig.a.policy.Version() != before {
		t.Fatal("a refused policy was put in use")
	}

	code, b = rig.do(t, http.MethodPost, "/v1/policy/validate", RoleOperate, body(good))
	var chk wire.PolicyCheck
	if code != 200 || json.Unmarshal(b, &chk) != nil || chk.Tests.Passed == 0 || chk.Tests.Failed != 0 {
		t.Fatalf("validate the default policy: %d %s", code, b)
	}
	good["target_tracking.rego"] += "\n# a comment makes another version\n"
	code, b = rig.do(t, http.MethodPut, "/v1/policy", RoleAdmin, body(good))
	if code != 200 || json.Unmarshal(b, &chk) != nil || chk.Version == before {
		t.Fatalf("push: %d %s", code, b)
	}
	if rig.a.policy.Version() != chk.Version {
		t.Errorf("in use: %s, pushed %s", rig.a.policy.Version(), chk.Version)
	}
	var got wire.PolicyFiles
	code, b = rig.do(t, http.MethodGet, "/v1/policy", RoleRead, "")
	if code != 200 || json.Unmarshal(b, &got) != nil || got.Version != chk.Version || !strings.Contains(got.Files["target_tracking.rego"], "another version") {
		t.Errorf("get: %d version %s", code, got.Version)
	}
	p, ok, _ := rig.a.reg.Policy(t.Context())
	if !ok || p.Version != chk.Version || p.By != "admin-holder" {
		t.Errorf("registry's policy %+v %v", p.Version, ok)
	}
	audits, _ := rig.a.reg.Audits(t.Context(), 1)
	if len(audits) != 1 || audits[0].Action != "policy-push" || !strings.Contains(audits[0].Detail, chk.Version) {
		t.Errorf("audit %+v", audits)
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
		body, _ := json.Marshal(wire.PolicyFiles{Files: map[string]string{"p.rego": c.rego}})
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

// A push whose policy has no tests is refused unless it says no_tests, and
// the audit trail then says it had none; validate answers on the policy
// alone.
func TestAPolicyWithNoTestsIsPushedOnlyWhenTheOperatorSaysSo(t *testing.T) {
	rig := newAPIRig(t)
	untested := map[string]string{"p.rego": "package mitosis\n\ndecision := {\"action\": \"none\", \"reason\": \"untested\"}\n"}
	before := rig.a.policy.Version()
	body := func(noTests bool) string {
		b, _ := json.Marshal(wire.PolicyFiles{Files: untested, NoTests: noTests})
		return string(b)
	}
	if code, b := rig.do(t, http.MethodPost, "/v1/policy/validate", RoleOperate, body(false)); code != 200 {
		t.Errorf("validate: %d %s", code, b)
	}
	code, b := rig.do(t, http.MethodPut, "/v1/policy", RoleAdmin, body(false))
	var ref wire.PolicyRefusal
	if code != http.StatusUnprocessableEntity || json.Unmarshal(b, &ref) != nil ||
		!strings.Contains(ref.Message, "no tests") || !strings.Contains(ref.Message, "--no-tests") || len(ref.Problems) != 1 {
		t.Errorf("push with no tests: %d %s, want 422 saying it has none", code, b)
	}
	if rig.a.policy.Version() != before {
		t.Fatal("a policy with no tests was put in use without no_tests")
	}
	var chk wire.PolicyCheck
	code, b = rig.do(t, http.MethodPut, "/v1/policy", RoleAdmin, body(true))
	if code != 200 || json.Unmarshal(b, &chk) != nil || chk.Tests.Passed != 0 || rig.a.policy.Version() != chk.Version {
		t.Fatalf("push with no_tests: %d %s", code, b)
	}
	audits, _ := rig.a.reg.Audits(t.Context(), 1)
	if len(audits) != 1 || audits[0].Detail != before+" -> "+chk.Version+" (no tests: pushed with no_tests)" {
		t.Errorf("audit %+v, want it to say the policy had no tests", audits)
	}
}
