package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/plan"
)

// A decisions answer stops before the record that would take it over its
// byte budget and says so in a header; its JSON shape stays a list, and
// an answer that fits is what it always was (issue 17).
func TestDecisionsAnswerIsBoundedInBytes(t *testing.T) {
	rig := newAPIRig(t)
	ctx := context.Background()
	at := time.Date(2026, 11, 27, 14, 0, 0, 0, time.UTC)
	for i := range 50 {
		rec := plan.DecisionRecord{Cluster: "web", At: at.Add(time.Duration(i) * time.Second),
			Decision: plan.Decision{Action: plan.ActionNone, Reason: strings.Repeat("r", plan.MaxReason)}}
		if _, err := rig.a.reg.RecordDecision(ctx, rec, plan.ScalingState{}, nil); err != nil {
			t.Fatal(err)
		}
	}
	old := decisionsBudget
	decisionsBudget = 20 << 10 // about nine records
	t.Cleanup(func() { decisionsBudget = old })

	code, h, body := rig.call(t, http.MethodGet, "/v1/clusters/web/decisions?limit=50", RoleRead, "")
	var recs []plan.DecisionRecord
	if err := json.Unmarshal(body, &recs); code != http.StatusOK || err != nil {
		t.Fatalf("%d, %v", code, err)
	}
	if len(body) > decisionsBudget || len(recs) == 0 || len(recs) >= 50 || h.Get(TruncatedHeader) != "true" {
		t.Errorf("%d bytes (budget %d), %d of 50 records, %s: %q", len(body), decisionsBudget, len(recs), TruncatedHeader, h.Get(TruncatedHeader))
	}
	if len(recs) > 0 && !recs[0].At.Equal(at.Add(49*time.Second)) {
		t.Errorf("the first record is of %s, want the newest", recs[0].At)
	}

	code, h, body = rig.call(t, http.MethodGet, "/v1/clusters/web/decisions?limit=3", RoleRead, "")
	all, err := rig.a.reg.Decisions(ctx, "web", 3)
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	_ = json.NewEncoder(&want).Encode(all)
	if code != http.StatusOK || !bytes.Equal(body, want.Bytes()) || h.Get(TruncatedHeader) != "" {
		t.Errorf("an answer that fits: %d, %s %q, same bytes as before %v", code, TruncatedHeader, h.Get(TruncatedHeader), bytes.Equal(body, want.Bytes()))
	}
}
