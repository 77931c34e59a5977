package policy_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/policy"
)

// slowRego decides after a triple comprehension over 5,000 numbers: hours
// of evaluation, unless it is cut.
const slowRego = `package mitosis

n := count([x | some a in numbers.range(1, 5000); some b in numbers.range(1, 5000); some c in numbers.range(1, 5000); x := (a + b) + c])

decision := {"action": "none", "reason": sprintf("%d", [n])}
`

// A long evaluation is cut at its deadline, and its error names the
// deadline.
func TestDecideIsCutAtItsDeadline(t *testing.T) {
	e, err := policy.Load(writeDir(t, map[string]string{"p.rego": slowRego}))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("testdata/input-4-nodes.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	in, err := policy.ReadInput(f, "input-4-nodes.json")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := policy.WithDeadline(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = e.Decide(ctx, in, time.Now())
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Decide returned after %s; the deadline was 200ms", took)
	}
	var de *policy.DeadlineError
	if !errors.As(err, &de) || de.Deadline != 200*time.Millisecond {
		t.Fatalf("Decide = %v, want an error wrapping *DeadlineError of 200ms", err)
	}
	if !strings.Contains(err.Error(), "overran its deadline of 200ms") {
		t.Errorf("error %q does not name the deadline", err)
	}
}
