package policy_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mitosis-autoscaler/mitosis/policy"
)

// The policy docs/policy.md shows under "Writing a policy" and the test
// it shows under "Testing a policy" are what an operator copies first:
// they must be formatted, compile in strict mode, and pass.
func TestTheExamplesOfTheDocsAreAPolicyAndItsPassingTests(t *testing.T) {
	doc, err := os.ReadFile("../docs/policy.md")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for section, file := range map[string]string{"## Writing a policy\n": "example.rego", "## Testing a policy\n": "example_test.rego"} {
		_, rest, ok := strings.Cut(string(doc), section)
		if !ok {
			t.Fatalf("docs/policy.md has no section %q", strings.TrimSpace(section))
		}
		_, block, ok := strings.Cut(rest, "```rego\n")
		block, _, closed := strings.Cut(block, "```\n")
		if !ok || !closed {
			t.Fatalf("%s: no rego block", strings.TrimSpace(section))
		}
		if err := os.WriteFile(filepath.Join(dir, file), []byte(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if unformatted, err := policy.Check(dir); err != nil || len(unformatted) > 0 {
		t.Fatalf("the examples: %v, not formatted: %v", err, unformatted)
	}
	if _, err := policy.Load(dir); err != nil {
		t.Fatalf("the example policy does not load: %v", err)
	}
	results, err := policy.RunTests(context.Background(), dir)
	if err != nil || len(results) == 0 {
		t.Fatalf("the example's tests: %d results, %v", len(results), err)
	}
	for _, r := range results {
		if r.Outcome != policy.Pass {
			t.Errorf("%s: %s %s", r.FullName(), r.Outcome, r.Message)
		}
	}
}
