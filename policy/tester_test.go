package policy_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mitosis-autoscaler/mitosis/policy"
)

func TestRunTests(t *testing.T) {
	dir := writeDir(t, map[string]string{
		"p.rego": noneRego,
		"p_test.rego": `package mitosis_test

import data.mitosis

test_passes if {
	mitosis.decision.action == "none"
}

test_fails if {
	d := mitosis.decision
	print("saw", d.action)
	d.action == "expand"
}

test_errors if {
	1 / 0 == 1
}

test_cases[name] if {
	some name, want in {"none": "none", "grow": "expand"}
	mitosis.decision.action == want
}

todo_test_later if false
`,
	})
	results, err := policy.RunTests(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.ToSlash(filepath.Join(dir, "p_test.rego"))
	want := []struct {
		name    string
		row     int
		outcome policy.Outcome
		msg     string
	}{
		{"test_passes", 5, policy.Pass, ""},
		{"test_fails", 9, policy.Fail, file + `:12: d.action == "expand" is false`},
		{"test_errors", 15, policy.Error, "divide by zero"},
		{"test_cases", 19, policy.Fail, "case grow failed"},
		{"todo_test_later", 24, policy.Skip, ""},
	}
	if len(results) != len(want) {
		t.Fatalf("%d results, want %d: %+v", len(results), len(want), results)
	}
	for i, w := range want {
		r := results[i]
		if r.Name != w.name || r.Package != "data.mitosis_test" || r.File != file || r.Row != w.row || r.Outcome != w.outcome {
			t.Errorf("result %d: %s %s at %s:%d, want %s %s at line %d", i, r.Outcome, r.FullName(), r.File, r.Row, w.outcome, w.name, w.row)
		}
		if !strings.Contains(r.Message, w.msg) {
			t.Errorf("%s: message %q does not say %q", w.name, r.Message, w.msg)
		}
	}
	if results[1].Output != "saw none" {
		t.Errorf("output %q, want the test's print", results[1].Output)
	}
	if results[0].FullName() != "data.mitosis_test.test_passes" {
		t.Errorf("full name %q", results[0].FullName())
	}
}

func TestRunTestsRefusesBrokenFiles(t *testing.T) {
	dir := writeDir(t, map[string]string{
		"p.rego":      noneRego,
		"p_test.rego": "package mitosis_test\n\ntest_x if {\n\tx := \n}\n",
	})
	_, err := policy.RunTests(context.Background(), dir)
	var le *policy.LoadError
	if !errors.As(err, &le) {
		t.Fatalf("got %v, want a *LoadError", err)
	}
	if p := le.First(); !strings.HasSuffix(p.File, "p_test.rego") || p.Row == 0 {
		t.Errorf("problem at %s:%d", p.File, p.Row)
	}
}

func TestCheck(t *testing.T) {
	dir := writeDir(t, map[string]string{
		"tidy.rego":  noneRego,
		"messy.rego": "package lib\n\nx:=1\n",
	})
	unformatted, err := policy.Check(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(unformatted) != 1 || unformatted[0] != filepath.ToSlash(filepath.Join(dir, "messy.rego")) {
		t.Errorf("unformatted %v, want messy.rego", unformatted)
	}

	dir = writeDir(t, map[string]string{"p.rego": noneRego, "p_test.rego": "package mitosis_test\n\ntest_x if {\n\tx := 1\n}\n"})
	_, err = policy.Check(dir)
	var le *policy.LoadError
	if !errors.As(err, &le) || le.First().Row != 4 || !strings.Contains(le.First().Message, "x unused") {
		t.Errorf("got %v, want the strict-mode error in the test file", err)
	}
}
