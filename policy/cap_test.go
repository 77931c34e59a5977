package policy_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/mitosis-autoscaler/mitosis/plan"
	"github.com/mitosis-autoscaler/mitosis/policy"
)

// big is a Rego expression of 900,000 bytes of "é" (two bytes each), so
// that a cut in the middle of a rune would show.
const big = `replace(sprintf("%0450000d", [0]), "0", "é")`

// A policy's free text is capped where its decision is checked, so the
// record, the log, raft and the API never carry more (issue 17).
func TestDecideCapsThePolicysText(t *testing.T) {
	ctx, now := context.Background(), time.Unix(0, 0)
	load := func(src string) *policy.Engine {
		t.Helper()
		e, err := policy.Load(writeDir(t, map[string]string{"p.rego": "package mitosis\n\n" + src}))
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	capped := func(what, s string) {
		t.Helper()
		if len(s) > plan.MaxReason+200 || !utf8.ValidString(s) || !strings.Contains(s, "[cut: ") {
			t.Errorf("%s: %d bytes (cap %d), valid UTF-8 %v, ends %q", what, len(s), plan.MaxReason, utf8.ValidString(s), s[max(0, len(s)-40):])
		}
	}

	d, err := load(`decision := {"action": "none", "reason": `+big+`}`).Decide(ctx, smallInput(nil), now)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Reason) > plan.MaxReason || !utf8.ValidString(d.Reason) || !strings.HasSuffix(d.Reason, " … [cut: 900000 bytes]") {
		t.Errorf("reason: %d bytes (cap %d), valid UTF-8 %v, ends %q", len(d.Reason), plan.MaxReason, utf8.ValidString(d.Reason), d.Reason[max(0, len(d.Reason)-40):])
	}

	// Errors quote what the policy gave: they are recorded, so capped too.
	_, err = load(`decision := {"action": `+big+`}`).Decide(ctx, smallInput(nil), now)
	var de *policy.DecisionError
	if !errors.As(err, &de) {
		t.Fatalf("a huge action: %v", err)
	}
	capped("decision error", err.Error())
	_, err = load(`decision := {"action": "none", "count": to_number(`+big+`)}`).Decide(ctx, smallInput(nil), now)
	var ee *policy.EvalError
	if !errors.As(err, &ee) {
		t.Fatalf("a bad operand: %v", err)
	}
	capped("evaluation error", err.Error())
	_, err = load(`param_errors contains `+big+` if true
decision := {"action": "none"}`).Decide(ctx, smallInput(nil), now)
	var pe *policy.ParamsError
	if !errors.As(err, &pe) {
		t.Fatalf("param_errors: %v", err)
	}
	capped("params error", err.Error())
}
