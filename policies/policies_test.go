package policies_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mitosis-autoscaler/mitosis/policies"
	"github.com/mitosis-autoscaler/mitosis/policy"
)

// dirs are the policy directories of this package: the embedded defaults
// and every example.
func dirs(t *testing.T) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if m, _ := filepath.Glob(filepath.Join(p, "*.rego")); len(m) > 0 {
				out = append(out, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestFormattedAndStrict is `opa fmt --list` and `opa check --strict`:
// every file is formatted as opa fmt writes it, and every directory
// compiles in strict mode with the policies' capabilities.
func TestFormattedAndStrict(t *testing.T) {
	for _, dir := range dirs(t) {
		t.Run(dir, func(t *testing.T) {
			unformatted, err := policy.Check(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(unformatted) > 0 {
				t.Errorf("not formatted as `opa fmt` writes them: %s", strings.Join(unformatted, ", "))
			}
		})
	}
}

// TestRegoTests runs the Rego tests of every directory: each must pass,
// and each rule of the policies must have tests.
func TestRegoTests(t *testing.T) {
	for _, dir := range dirs(t) {
		t.Run(dir, func(t *testing.T) {
			results, err := policy.RunTests(context.Background(), dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(results) == 0 {
				t.Fatal("no Rego tests")
			}
			for _, r := range results {
				if r.Outcome != policy.Pass {
					t.Errorf("%s %s (%s:%d): %s %s", r.Outcome, r.FullName(), r.File, r.Row, r.Message, r.Output)
				}
			}
		})
	}
}

// TestEmbedded checks that the embedded defaults are the files of this
// directory, and that they load and test from the embedded copy.
func TestEmbedded(t *testing.T) {
	entries, err := fs.ReadDir(policies.FS, ".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		disk, err := os.ReadFile(e.Name())
		if err != nil {
			t.Fatal(err)
		}
		emb, _ := fs.ReadFile(policies.FS, e.Name())
		if string(disk) != string(emb) {
			t.Errorf("%s: the embedded copy differs", e.Name())
		}
	}
	e, err := policy.LoadFS(policies.FS, "policies")
	if err != nil {
		t.Fatal(err)
	}
	d, err := policy.Load(".")
	if err != nil {
		t.Fatal(err)
	}
	if e.Version() != d.Version() {
		t.Errorf("embedded version %s, on disk %s", e.Version(), d.Version())
	}
	for _, f := range e.Files() {
		if strings.HasSuffix(f, "_test.rego") || strings.Contains(f, "examples/") {
			t.Errorf("the engine compiled %s", f)
		}
	}
	results, err := policy.RunTestsFS(context.Background(), policies.FS, "policies")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if r.Outcome != policy.Pass {
			t.Errorf("%s %s: %s", r.Outcome, r.FullName(), r.Message)
		}
	}
}
