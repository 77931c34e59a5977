package plan_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mitosis-autoscaler/mitosis/plan"
)

func TestCutText(t *testing.T) {
	if got := plan.CutText("short", 10); got != "short" {
		t.Errorf("a text under the limit changed: %q", got)
	}
	long := strings.Repeat("é", 450000) // 900,000 bytes, 2 each
	got := plan.CutText(long, plan.MaxReason)
	if len(got) > plan.MaxReason || !utf8.ValidString(got) {
		t.Fatalf("cut to %d bytes (limit %d), valid UTF-8 %v", len(got), plan.MaxReason, utf8.ValidString(got))
	}
	if !strings.HasSuffix(got, " … [cut: 900000 bytes]") || !strings.HasPrefix(got, "éé") {
		t.Errorf("cut text = …%q", got[len(got)-40:])
	}
	for n := range 40 { // every limit, on and off a rune's boundary
		if c := plan.CutText(long, n); len(c) > n || !utf8.ValidString(c) {
			t.Errorf("CutText(long, %d) = %q: %d bytes", n, c, len(c))
		}
	}
}

// The ledger keeps no more of a record's free text than MaxReason,
// whoever wrote the record.
func TestLedgerCapsARecordsText(t *testing.T) {
	var l plan.Ledger
	long := strings.Repeat("x", 900000)
	rec, err := l.RecordDecision(plan.DecisionRecord{Cluster: "web", Decision: plan.Decision{Action: plan.ActionNone, Reason: long}, Error: long}, plan.ScalingState{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	stored := l.Decisions("web", 1)[0]
	for _, s := range []string{rec.Decision.Reason, rec.Error, stored.Decision.Reason, stored.Error} {
		if len(s) > plan.MaxReason || !strings.HasSuffix(s, "[cut: 900000 bytes]") {
			t.Errorf("kept %d bytes (cap %d)", len(s), plan.MaxReason)
		}
	}
}
