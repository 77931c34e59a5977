package agent

import (
	"encoding/json"
	"io/fs"
	"net/http"
	"strings"
	"testing"

	"github.com/mitosis-autoscaler/mitosis/plan"
	"github.com/mitosis-autoscaler/mitosis/policies"
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

func TestPauseResumeAndDryRunAreRecordedWithWhoChangedThem(t *testing.T) {
	rig := newAPIRig(t)
	var s Settings
	call := func(method, path, body string, want int) {
		t.Helper()
		code, b := rig.do(t, method, path, RoleOperate, body)
		if code != want {
			t.Fatalf("%s %s: %d %s, want %d", method, path, code, b, want)
		}
		if code == http.StatusOK {
			s = Settings{}
			if err := json.Unmarshal(b, &s); err != nil {
				t.Fatal(err)
			}
		}
	}
	call(http.MethodPost, "/v1/clusters/web/pause", "", 200)
	if !s.Paused || s.DryRun || s.By != "operate-holder" || s.At.IsZero() {
		t.Errorf("after pause: %+v", s)
	}
	call(http.MethodPut, "/v1/clusters/web/dry-run", `{"enabled": true}`, 200)
	if !s.Paused || !s.DryRun {
		t.Errorf("after dry-run on: %+v (still paused, now dry)", s)
	}
	call(http.MethodPost, "/v1/clusters/web/resume", "", 200)
	call(http.MethodPut, "/v1/clusters/web/dry-run", `{"enabled": false}`, 200)
	if s.Paused || s.DryRun {
		t.Errorf("after resume and dry-run off: %+v", s)
	}
	call(http.MethodPut, "/v1/clusters/web/dry-run", `{}`, 400)
	call(http.MethodPut, "/v1/clusters/web/dry-run", `{"enabled": "yes"}`, 400)
	call(http.MethodPost, "/v1/clusters/db/pause", "", 404)

	code, b := rig.do(t, http.MethodGet, "/v1/audit", RoleRead, "")
	var audits []plan.AuditRecord
	if code != 200 || json.Unmarshal(b, &audits) != nil {
		t.Fatalf("audit: %d %s", code, b)
	}
	var got []string
	for _, a := range audits {
		got = append(got, a.By+" "+a.Action+" "+a.Detail)
	}
	want := []string{"operate-holder dry-run enabled=false", "operate-holder resume ", "operate-holder dry-run enabled=true", "operate-holder pause "}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("audit trail %q, want %q", got, want)
	}

	// A dry-run agent cannot be switched to act.
	rig.a.cfg.DryRun = true
	call(http.MethodPut, "/v1/clusters/web/dry-run", `{"enabled": false}`, 409)
}

func TestAPolicyIsPushedOnlyIfItCompilesAndItsTestsPass(t *testing.T) {
	rig := newAPIRig(t)
	good := defaultPolicyFiles(t)
	body := func(files map[string]string) string {
		b, _ := json.Marshal(PolicyFiles{Files: files})
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
	if rig.a.policy.Version() != before {
		t.Fatal("a refused policy was put in use")
	}

	code, b = rig.do(t, http.MethodPost, "/v1/policy/validate", RoleOperate, body(good))
	var chk PolicyCheck
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
	var got PolicyFiles
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
