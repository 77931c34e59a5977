package plan

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

func TestLedgerKeepsOperatorsWritesAndTheirAudit(t *testing.T) {
	l := NewLedger()
	at := time.Date(2026, 11, 27, 14, 0, 0, 0, time.UTC)
	on := true
	if err := l.PutSettings("web", ClusterSettings{Paused: true, DryRun: &on, By: "alice", At: at}, AuditRecord{At: at, By: "alice", Cluster: "web", Action: "pause"}); err != nil {
		t.Fatal(err)
	}
	on = false // the Ledger kept its own copy
	st := l.State("web")
	if !st.Settings.Paused || st.Settings.DryRun == nil || !*st.Settings.DryRun || st.Settings.By != "alice" {
		t.Fatalf("settings %+v", st.Settings)
	}
	*st.Settings.DryRun = false // and hands out copies
	if !*l.State("web").Settings.DryRun {
		t.Fatal("State shares the settings' dry run with its caller")
	}
	if l.State("shop").Settings.Paused {
		t.Error("another cluster is paused")
	}
	if err := l.PutSettings("", ClusterSettings{}, AuditRecord{}); err == nil {
		t.Error("settings without a cluster accepted")
	}

	if _, err := l.RecordDecision(DecisionRecord{Cluster: "web", At: at.Add(time.Minute), By: "bob",
		Decision: Decision{Action: ActionExpand, Count: 1, Template: "web-1", Reason: "manual clone of web-1 by bob"}}, ScalingState{}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := l.RecordDecision(DecisionRecord{Cluster: "web", At: at.Add(2 * time.Minute), Decision: Decision{Action: ActionNone}}, ScalingState{}, nil); err != nil {
		t.Fatal(err)
	}
	if err := l.PutPolicy(PolicyVersion{Version: "v1", Files: map[string]string{"p.rego": "package mitosis"}, By: "carol", At: at},
		AuditRecord{At: at.Add(3 * time.Minute), By: "carol", Action: "policy-push", Detail: "v1"}); err != nil {
		t.Fatal(err)
	}
	audits := l.Audits(10)
	var got []string
	for _, a := range audits {
		got = append(got, a.By+":"+a.Action)
	}
	if fmt.Sprint(got) != "[carol:policy-push bob:clone alice:pause]" {
		t.Errorf("audit trail %v, want carol's push, bob's clone, alice's pause, newest first (the policy's decision is none of it)", got)
	}
	if p, ok := l.Policy(); !ok || p.Version != "v1" || p.Files["p.rego"] != "package mitosis" {
		t.Errorf("policy %+v %v", p, ok)
	}
	if err := l.PutPolicy(PolicyVersion{Version: "v2"}, AuditRecord{}); err == nil {
		t.Error("a policy without files accepted")
	}
	for i := range PolicyHistory + 3 {
		_ = l.PutPolicy(PolicyVersion{Version: fmt.Sprint("w", i), Files: map[string]string{"p.rego": "x"}}, AuditRecord{Action: "policy-push"})
	}
	if vs := l.Policies(); len(vs) != PolicyHistory || vs[0].Version != fmt.Sprint("w", PolicyHistory+2) || vs[0].Files != nil {
		t.Errorf("policy history: %d versions, newest %+v", len(vs), vs[0])
	}

	// All of it survives a snapshot and a clone.
	b, err := json.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	back := NewLedger()
	if err := json.Unmarshal(b, back); err != nil {
		t.Fatal(err)
	}
	b2, _ := json.Marshal(back)
	b3, _ := json.Marshal(l.Clone())
	if string(b) != string(b2) || string(b) != string(b3) {
		t.Error("a restored or cloned Ledger differs from the original")
	}
	if !back.State("web").Settings.Paused || len(back.Audits(100)) != len(l.Audits(100)) {
		t.Error("settings or audit lost in the snapshot")
	}
}

func TestTheAuditTrailIsBounded(t *testing.T) {
	l := NewLedger()
	for i := range 3 * AuditHistory {
		l.Audit(AuditRecord{By: "x", Action: "pause", Detail: fmt.Sprint(i)})
	}
	all := l.Audits(10 * AuditHistory)
	if len(all) < AuditHistory || len(all) >= 2*AuditHistory || all[0].Detail != fmt.Sprint(3*AuditHistory-1) {
		t.Errorf("%d records kept, newest %q", len(all), all[0].Detail)
	}
}

func TestTheAuditTrailSaysWhatAnOperatorsSelectionCameTo(t *testing.T) {
	var l Ledger
	sel := func(dry bool, ops []string, reasons []Reason) string {
		t.Helper()
		if _, err := l.RecordDecision(DecisionRecord{Cluster: "web", By: "bob", DryRun: dry, Operations: ops, Reasons: reasons,
			Decision: Decision{Action: ActionContract, Count: 1, Nodes: []string{"web-2"}, Reason: "manual detach of web-2 by bob"}},
			ScalingState{}, nil); err != nil {
			t.Fatal(err)
		}
		return l.Audits(1)[0].Detail
	}
	if got := sel(false, []string{"web-op-1"}, nil); got != "manual detach of web-2 by bob" {
		t.Errorf("accepted: %q", got)
	}
	if got := sel(true, nil, nil); got != "manual detach of web-2 by bob (dry run)" {
		t.Errorf("dry run: %q", got)
	}
	got := sel(false, nil, []Reason{{CodeMinSize, "size 2 may not go below 2"}, {CodeNotEnoughVictims, "0 of 1"}})
	if got != "manual detach of web-2 by bob; refused: min_size: size 2 may not go below 2; not_enough_victims: 0 of 1" {
		t.Errorf("refused: %q", got)
	}
}
