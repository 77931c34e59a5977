// Package registrytest is the conformance suite of autoscaler.Registry:
// every registry (the in-memory one, the replicated one) runs it, so they
// all keep the contract written on the interface and the semantics of
// plan.Ledger.
//
//	func TestConformance(t *testing.T) {
//		registrytest.Run(t, func(t *testing.T) autoscaler.Registry { return open(t) })
//	}
package registrytest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/autoscaler"
	"github.com/mitosis-autoscaler/mitosis/plan"
)

// base is the time every fixture counts from (UTC, no monotonic reading,
// so it survives a JSON round trip unchanged).
var base = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// Run runs the suite. open returns a new, empty registry for each subtest;
// it registers its own cleanup with t.
func Run(t *testing.T, open func(t *testing.T) autoscaler.Registry) {
	t.Helper()
	for _, c := range []struct {
		name string
		f    func(t *testing.T, ctx context.Context, r autoscaler.Registry)
	}{
		{"unknown cluster is empty, not an error", unknownClusterIsEmpty},
		{"unknown operation wraps ErrNotFound", unknownOperation},
		{"put node then state lists it, sorted by id", putNodeThenState},
		{"put node updates a node in place", putNodeUpdates},
		{"put node without id or cluster is refused", putNodeInvalid},
		{"a decision is recorded with its scaling and operations at once, and returned as stored", decideRecordsAll},
		{"a decision with a duplicate operation id records nothing", decideDuplicate},
		{"transition from the wrong step conflicts and changes nothing", transitionWrongFrom},
		{"transition of an unknown operation wraps ErrNotFound", transitionUnknown},
		{"a finished operation cannot move", transitionFinished},
		{"transition applies its node changes", transitionNodes},
		{"transition records the step and its details", transitionRecords},
		{"unfinished operations come oldest first across clusters", unfinishedOrder},
		{"state lists only the cluster's unfinished operations", stateOperations},
		{"decisions come newest first, up to the limit", decisionsOrder},
		{"estimates are learned from a done operation", estimatesLearned},
		{"recent sums up the latest decisions, newest first", recentSummaries},
		{"returned values are copies", returnedCopies},
		{"settings are kept per cluster, with their audit record", settingsAndAudit},
		{"an operator's decision carries its audit record", manualDecisionAudited},
		{"the policy pushed last is the one returned", policyPushed},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.f(t, context.Background(), open(t))
		})
	}
}

// at is base plus s seconds.
func at(s int) time.Time { return base.Add(time.Duration(s) * time.Second) }

func node(id, cluster string) plan.Node {
	return plan.Node{ID: id, Cluster: cluster, Role: "app", State: plan.NodeReady, Host: "h1", VM: "vm-" + id, Address: id + ":8080", CreatedAt: at(0)}
}

func expandOp(id, cluster string, s int) plan.Operation {
	return plan.Operation{ID: id, Kind: plan.OpExpand, Cluster: cluster, Status: plan.OpRunning, Step: "prepare",
		Template: "a1", Host: "h1", Reason: "load", Fence: 7, CreatedAt: at(s), StepAt: at(s),
		Journal: []plan.JournalItem{{Step: "prepare", At: at(s), Note: "started"}}}
}

func record(cluster string, s int, action plan.Action, count int, ops ...string) plan.DecisionRecord {
	return plan.DecisionRecord{Cluster: cluster, At: at(s), PolicyVersion: "p1", InputDigest: "d",
		Metrics:    plan.MetricsHealth{Available: true},
		Observed:   plan.Observed{Cluster: map[string]float64{"load": 0.9}, ReadyNodes: 1},
		Decision:   plan.Decision{Action: action, Count: count, Template: "a1", Reason: "why"},
		Size:       1,
		Operations: ops,
		Reasons:    []plan.Reason{{Code: "capped", Message: "budget"}}}
}

func scaling(s int) plan.ScalingState {
	return plan.ScalingState{LastExpand: at(s), Recent: []plan.Recommendation{{At: at(s), Size: 2}}}
}

// decide records a decision starting ops, failing the test on error.
func decide(t *testing.T, ctx context.Context, r autoscaler.Registry, cluster string, s int, ops ...plan.Operation) {
	t.Helper()
	ids := make([]string, len(ops))
	for i, op := range ops {
		ids[i] = op.ID
	}
	if _, err := r.RecordDecision(ctx, record(cluster, s, plan.ActionExpand, len(ops), ids...), scaling(s), ops); err != nil {
		t.Fatalf("RecordDecision: %v", err)
	}
}

func transition(t *testing.T, ctx context.Context, r autoscaler.Registry, id string, tr plan.Transition) plan.Operation {
	t.Helper()
	op, err := r.Transition(ctx, id, tr)
	if err != nil {
		t.Fatalf("Transition %s %s→%s: %v", id, tr.From, tr.To, err)
	}
	return op
}

// same fails unless got and want have the same JSON: registries that
// store through a serialization may turn an empty slice into nil, which
// is the same value to every reader.
func same(t *testing.T, what string, got, want any) {
	t.Helper()
	g, err1 := json.Marshal(got)
	w, err2 := json.Marshal(want)
	if err := errors.Join(err1, err2); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if string(g) != string(w) {
		t.Errorf("%s:\n got  %s\n want %s", what, g, w)
	}
}

func state(t *testing.T, ctx context.Context, r autoscaler.Registry, cluster string) plan.ClusterState {
	t.Helper()
	s, err := r.State(ctx, cluster)
	if err != nil {
		t.Fatalf("State(%s): %v", cluster, err)
	}
	return s
}

func operation(t *testing.T, ctx context.Context, r autoscaler.Registry, id string) plan.Operation {
	t.Helper()
	op, err := r.Operation(ctx, id)
	if err != nil {
		t.Fatalf("Operation(%s): %v", id, err)
	}
	return op
}

func unknownClusterIsEmpty(t *testing.T, ctx context.Context, r autoscaler.Registry) {
	s := state(t, ctx, r, "nowhere")
	if len(s.Nodes) != 0 || len(s.Operations) != 0 || len(s.Recent) != 0 || s.Estimates != (plan.Estimates{}) || !s.Scaling.LastExpand.IsZero() {
		t.Errorf("state of an unknown cluster = %+v, want empty", s)
	}
	if ops, err := r.Unfinished(ctx); err != nil || len(ops) != 0 {
		t.Errorf("Unfinished of an empty registry = %v, %v; want none", ops, err)
	}
	if d, err := r.Decisions(ctx, "nowhere", 10); err != nil || len(d) != 0 {
		t.Errorf("Decisions of an unknown cluster = %v, %v; want none", d, err)
	}
}

func unknownOperation(t *testing.T, ctx context.Context, r autoscaler.Registry) {
	if _, err := r.Operation(ctx, "nope"); !errors.Is(err, plan.ErrNotFound) {
		t.Errorf("Operation(unknown) error = %v, want ErrNotFound", err)
	}
}

func putNodeThenState(t *testing.T, ctx context.Context, r autoscaler.Registry) {
	for _, n := range []plan.Node{node("b2", "web"), node("a1", "web"), node("z9", "db"), node("a3", "web")} {
		if err := r.PutNode(ctx, n); err != nil {
			t.Fatalf("PutNode(%s): %v", n.ID, err)
		}
	}
	same(t, "web nodes", state(t, ctx, r, "web").Nodes, []plan.Node{node("a1", "web"), node("a3", "web"), node("b2", "web")})
	same(t, "db nodes", state(t, ctx, r, "db").Nodes, []plan.Node{node("z9", "db")})
}

func putNodeUpdates(t *testing.T, ctx context.Context, r autoscaler.Registry) {
	n := node("a1", "web")
	if err := r.PutNode(ctx, n); err != nil {
		t.Fatal(err)
	}
	n.State, n.Address = plan.NodeDraining, "10.0.0.9:8080"
	if err := r.PutNode(ctx, n); err != nil {
		t.Fatal(err)
	}
	same(t, "nodes", state(t, ctx, r, "web").Nodes, []plan.Node{n})
}

func putNodeInvalid(t *testing.T, ctx context.Context, r autoscaler.Registry) {
	if err := r.PutNode(ctx, plan.Node{Cluster: "web"}); err == nil {
		t.Error("PutNode without an id succeeded")
	}
	if err := r.PutNode(ctx, plan.Node{ID: "a1"}); err == nil {
		t.Error("PutNode without a cluster succeeded")
	}
	if s := state(t, ctx, r, "web"); len(s.Nodes) != 0 {
		t.Errorf("nodes after refused puts = %+v", s.Nodes)
	}
}

func decideRecordsAll(t *testing.T, ctx context.Context, r autoscaler.Registry) {
	op1, op2 := expandOp("op1", "web", 1), expandOp("op2", "web", 1)
	rec := record("web", 1, plan.ActionExpand, 2, "op1", "op2")
	stored, err := r.RecordDecision(ctx, rec, scaling(1), []plan.Operation{op1, op2})
	if err != nil {
		t.Fatal(err)
	}
	d, err := r.Decisions(ctx, "web", 10)
	if err != nil || len(d) != 1 {
		t.Fatalf("Decisions = %v, %v; want one", d, err)
	}
	if d[0].Seq == 0 {
		t.Error("the decision got no sequence number")
	}
	same(t, "the decision returned by RecordDecision, against the one read back", stored, d[0])
	rec.Seq = d[0].Seq
	same(t, "decision", d[0], rec)
	s := state(t, ctx, r, "web")
	same(t, "scaling", s.Scaling, scaling(1))
	same(t, "operations", s.Operations, []plan.Operation{op1, op2})
	same(t, "operation op2", operation(t, ctx, r, "op2"), op2)
}

func decideDuplicate(t *testing.T, ctx context.Context, r autoscaler.Registry) {
	decide(t, ctx, r, "web", 1, expandOp("op1", "web", 1))
	before := state(t, ctx, r, "web")
	_, err := r.RecordDecision(ctx, record("web", 2, plan.ActionExpand, 2, "op2", "op1"), scaling(2),
		[]plan.Operation{expandOp("op2", "web", 2), expandOp("op1", "web", 2)})
	if err == nil {
		t.Fatal("RecordDecision with an existing operation id succeeded")
	}
	same(t, "state after the refused decision", state(t, ctx, r, "web"), before)
	if d, _ := r.Decisions(ctx, "web", 10); len(d) != 1 {
		t.Errorf("decisions after the refused decision = %d, want 1", len(d))
	}
	if _, err := r.Operation(ctx, "op2"); !errors.Is(err, plan.ErrNotFound) {
		t.Errorf("op2 of the refused decision: err = %v, want ErrNotFound", err)
	}
	// Twice the same new id in one decision is refused too.
	if _, err := r.RecordDecision(ctx, record("web", 3, plan.ActionExpand, 2), scaling(3),
		[]plan.Operation{expandOp("op3", "web", 3), expandOp("op3", "web", 3)}); err == nil {
		t.Error("RecordDecision with one id twice succeeded")
	}
	if _, err := r.Operation(ctx, "op3"); !errors.Is(err, plan.ErrNotFound) {
		t.Errorf("op3 of the refused decision: err = %v, want ErrNotFound", err)
	}
}

func transitionWrongFrom(t *testing.T, ctx context.Context, r autoscaler.Registry) {
	decide(t, ctx, r, "web", 1, expandOp("op1", "web", 1))
	before := operation(t, ctx, r, "op1")
	_, err := r.Transition(ctx, "op1", plan.Transition{From: "clone", To: "resume", Status: plan.OpRunning, At: at(2),
		PutNodes: []plan.Node{node("x1", "web")}})
	if !errors.Is(err, plan.ErrStepConflict) {
		t.Fatalf("Transition from the wrong step: err = %v, want ErrStepConflict", err)
	}
	same(t, "operation after the conflict", operation(t, ctx, r, "op1"), before)
	if s := state(t, ctx, r, "web"); len(s.Nodes) != 0 {
		t.Errorf("the conflicting transition put nodes: %+v", s.Nodes)
	}
}

func transitionUnknown(t *testing.T, ctx context.Context, r autoscaler.Registry) {
	_, err := r.Transition(ctx, "nope", plan.Transition{From: "prepare", To: "clone", Status: plan.OpRunning, At: at(1)})
	if !errors.Is(err, plan.ErrNotFound) {
		t.Errorf("Transition of an unknown operation: err = %v, want ErrNotFound", err)
	}
}

func transitionFinished(t *testing.T, ctx context.Context, r autoscaler.Registry) {
	decide(t, ctx, r, "web", 1, expandOp("op1", "web", 1))
	transition(t, ctx, r, "op1", plan.Transition{From: "prepare", To: "abort", Status: plan.OpCompensated, At: at(2), Error: "refused"})
	before := operation(t, ctx, r, "op1")
	_, err := r.Transition(ctx, "op1", plan.Transition{From: "abort", To: "clone", Status: plan.OpRunning, At: at(3)})
	if !errors.Is(err, plan.ErrStepConflict) {
		t.Fatalf("moving a finished operation: err = %v, want ErrStepConflict", err)
	}
	same(t, "finished operation", operation(t, ctx, r, "op1"), before)
}

func transitionNodes(t *testing.T, ctx context.Context, r autoscaler.Registry) {
	for _, id := range []string{"a1", "a2"} {
		if err := r.PutNode(ctx, node(id, "web")); err != nil {
			t.Fatal(err)
		}
	}
	decide(t, ctx, r, "web", 1, expandOp("op1", "web", 1))
	a1 := node("a1", "web")
	a1.State = plan.NodePreparing
	clone := node("c1", "web")
	clone.Parent, clone.LineageDepth = "a1", 1
	transition(t, ctx, r, "op1", plan.Transition{From: "prepare", To: "join", Status: plan.OpRunning, At: at(2),
		PutNodes: []plan.Node{a1, clone}, RemoveNodes: []string{"a2", "never-there"}})
	same(t, "nodes", state(t, ctx, r, "web").Nodes, []plan.Node{a1, clone})
}

func transitionRecords(t *testing.T, ctx context.Context, r autoscaler.Registry) {
	op := expandOp("op1", "web", 1)
	decide(t, ctx, r, "web", 1, op)
	tr := plan.Transition{From: "prepare", To: "clone", Status: plan.OpRunning, At: at(2), Note: "settled",
		CloneVM: "vm-c1", CloneAddress: "c1:8080", Node: "c1", Host: "h2"}
	got := transition(t, ctx, r, "op1", tr)
	want := tr.Apply(op)
	same(t, "returned operation", got, want)
	same(t, "stored operation", operation(t, ctx, r, "op1"), want)
}

func unfinishedOrder(t *testing.T, ctx context.Context, r autoscaler.Registry) {
	decide(t, ctx, r, "web", 1, expandOp("w1", "web", 1), expandOp("w2", "web", 1))
	decide(t, ctx, r, "db", 2, expandOp("d1", "db", 2))
	decide(t, ctx, r, "web", 3, expandOp("w3", "web", 3))
	transition(t, ctx, r, "w2", plan.Transition{From: "prepare", To: "done", Status: plan.OpDone, At: at(4)})
	ops, err := r.Unfinished(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, op := range ops {
		ids = append(ids, op.ID)
	}
	same(t, "unfinished", ids, []string{"w1", "d1", "w3"})
}

func stateOperations(t *testing.T, ctx context.Context, r autoscaler.Registry) {
	decide(t, ctx, r, "web", 1, expandOp("w1", "web", 1), expandOp("w2", "web", 1))
	decide(t, ctx, r, "db", 2, expandOp("d1", "db", 2))
	transition(t, ctx, r, "w1", plan.Transition{From: "prepare", To: "abort", Status: plan.OpFailed, At: at(3)})
	var ids []string
	for _, op := range state(t, ctx, r, "web").Operations {
		ids = append(ids, op.ID)
	}
	same(t, "web operations", ids, []string{"w2"})
	if _, err := r.Operation(ctx, "w1"); err != nil {
		t.Errorf("a finished operation is still readable: %v", err)
	}
}

func decisionsOrder(t *testing.T, ctx context.Context, r autoscaler.Registry) {
	for i := 1; i <= 5; i++ {
		decide(t, ctx, r, "web", i)
	}
	decide(t, ctx, r, "db", 6)
	d, err := r.Decisions(ctx, "web", 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(d) != 3 {
		t.Fatalf("Decisions(limit 3) gave %d", len(d))
	}
	for i, rec := range d {
		if want := at(5 - i); !rec.At.Equal(want) || rec.Cluster != "web" {
			t.Errorf("decision %d is of %s at %v, want web at %v", i, rec.Cluster, rec.At, want)
		}
		if i > 0 && rec.Seq >= d[i-1].Seq {
			t.Errorf("sequence numbers not decreasing: %d then %d", d[i-1].Seq, rec.Seq)
		}
	}
	if all, _ := r.Decisions(ctx, "web", 100); len(all) != 5 {
		t.Errorf("Decisions(limit 100) gave %d, want 5", len(all))
	}
	if none, _ := r.Decisions(ctx, "web", 0); len(none) != 0 {
		t.Errorf("Decisions(limit 0) gave %d, want 0", len(none))
	}
}

func estimatesLearned(t *testing.T, ctx context.Context, r autoscaler.Registry) {
	decide(t, ctx, r, "web", 0, expandOp("op1", "web", 0))
	transition(t, ctx, r, "op1", plan.Transition{From: "prepare", To: "clone", Status: plan.OpRunning, At: at(5)})
	if e := state(t, ctx, r, "web").Estimates; e != (plan.Estimates{}) {
		t.Errorf("estimates before the operation finished = %+v", e)
	}
	transition(t, ctx, r, "op1", plan.Transition{From: "clone", To: "done", Status: plan.OpDone, At: at(20)})
	if e := state(t, ctx, r, "web").Estimates; e.CloneSeconds != 20 || e.DrainSeconds != 0 {
		t.Errorf("estimates after a 20 s clone = %+v, want clone_seconds 20", e)
	}
	// A compensated operation teaches nothing.
	decide(t, ctx, r, "web", 30, expandOp("op2", "web", 30))
	transition(t, ctx, r, "op2", plan.Transition{From: "prepare", To: "abort", Status: plan.OpCompensated, At: at(90)})
	if e := state(t, ctx, r, "web").Estimates; e.CloneSeconds != 20 {
		t.Errorf("estimates after a compensated operation = %+v, want clone_seconds still 20", e)
	}
	if e := state(t, ctx, r, "db").Estimates; e != (plan.Estimates{}) {
		t.Errorf("another cluster learned: %+v", e)
	}
}

func recentSummaries(t *testing.T, ctx context.Context, r autoscaler.Registry) {
	n := plan.RecentDecisions + 3
	for i := 1; i <= n; i++ {
		action := plan.ActionNone
		if i%2 == 0 {
			action = plan.ActionContract
		}
		if _, err := r.RecordDecision(ctx, record("web", i, action, i%3), plan.ScalingState{}, nil); err != nil {
			t.Fatal(err)
		}
	}
	recent := state(t, ctx, r, "web").Recent
	if len(recent) != plan.RecentDecisions {
		t.Fatalf("recent has %d, want %d", len(recent), plan.RecentDecisions)
	}
	for k, got := range recent {
		i := n - k
		want := plan.RecentDecision{At: at(i), Action: plan.ActionNone, Count: i % 3}
		if i%2 == 0 {
			want.Action = plan.ActionContract
		}
		same(t, fmt.Sprintf("recent[%d]", k), got, want)
	}
}

func returnedCopies(t *testing.T, ctx context.Context, r autoscaler.Registry) {
	decide(t, ctx, r, "web", 1, expandOp("op1", "web", 1))
	wantOp := operation(t, ctx, r, "op1")
	wantState := state(t, ctx, r, "web")
	wantDecisions, _ := r.Decisions(ctx, "web", 10)

	op := operation(t, ctx, r, "op1")
	op.Journal[0].Note = "scribbled"
	st := state(t, ctx, r, "web")
	st.Operations[0].Journal[0].Note = "scribbled"
	st.Scaling.Recent[0].Size = 99
	d, _ := r.Decisions(ctx, "web", 10)
	d[0].Operations[0] = "scribbled"
	d[0].Reasons[0].Message = "scribbled"
	d[0].Observed.Cluster["load"] = -1
	un, _ := r.Unfinished(ctx)
	un[0].Journal[0].Note = "scribbled"

	same(t, "operation", operation(t, ctx, r, "op1"), wantOp)
	same(t, "state", state(t, ctx, r, "web"), wantState)
	got, _ := r.Decisions(ctx, "web", 10)
	same(t, "decisions", got, wantDecisions)

	// What the caller passed in is copied too.
	o := expandOp("op2", "web", 2)
	rec := record("web", 2, plan.ActionExpand, 1, "op2")
	sc := scaling(2)
	if _, err := r.RecordDecision(ctx, rec, sc, []plan.Operation{o}); err != nil {
		t.Fatal(err)
	}
	want := operation(t, ctx, r, "op2")
	o.Journal[0].Note = "scribbled"
	rec.Operations[0] = "scribbled"
	sc.Recent[0].Size = 99
	same(t, "stored operation after the caller changed its own", operation(t, ctx, r, "op2"), want)
	if got, _ := r.Decisions(ctx, "web", 1); got[0].Operations[0] != "op2" {
		t.Errorf("stored decision changed with the caller's: %v", got[0].Operations)
	}
	if s := state(t, ctx, r, "web"); s.Scaling.Recent[0].Size != 2 {
		t.Errorf("stored scaling changed with the caller's: %+v", s.Scaling)
	}
}

func settingsAndAudit(t *testing.T, ctx context.Context, r autoscaler.Registry) {
	on := true
	must(t, r.PutSettings(ctx, "web", plan.ClusterSettings{Paused: true, DryRun: &on, By: "alice", At: at(1)},
		plan.AuditRecord{At: at(1), By: "alice", Cluster: "web", Action: "pause"}))
	st, err := r.State(ctx, "web")
	must(t, err)
	if !st.Settings.Paused || st.Settings.DryRun == nil || !*st.Settings.DryRun || st.Settings.By != "alice" {
		t.Errorf("web's settings %+v", st.Settings)
	}
	other, err := r.State(ctx, "shop")
	must(t, err)
	if other.Settings.Paused || other.Settings.DryRun != nil {
		t.Errorf("shop's settings %+v, want none", other.Settings)
	}
	must(t, r.PutSettings(ctx, "web", plan.ClusterSettings{By: "bob", At: at(2)}, plan.AuditRecord{At: at(2), By: "bob", Cluster: "web", Action: "resume"}))
	st, err = r.State(ctx, "web")
	must(t, err)
	if st.Settings.Paused || st.Settings.DryRun != nil {
		t.Errorf("after resume: %+v", st.Settings)
	}
	audits, err := r.Audits(ctx, 10)
	must(t, err)
	var got []string
	for _, a := range audits {
		got = append(got, a.By+" "+a.Action)
	}
	same(t, "audit trail", got, []string{"bob resume", "alice pause"})
	if audits[0].Seq <= audits[1].Seq {
		t.Errorf("audit sequence numbers %d, %d: want increasing with time", audits[1].Seq, audits[0].Seq)
	}
}

func manualDecisionAudited(t *testing.T, ctx context.Context, r autoscaler.Registry) {
	rec := record("web", 3, plan.ActionExpand, 1)
	rec.By, rec.Decision.Reason = "carol", "manual clone of a1 by carol"
	stored, err := r.RecordDecision(ctx, rec, plan.ScalingState{}, nil)
	must(t, err)
	_, err = r.RecordDecision(ctx, record("web", 4, plan.ActionNone, 0), plan.ScalingState{}, nil)
	must(t, err)
	// The operator's record, returned, is the one stored, not the newest.
	d, err := r.Decisions(ctx, "web", 2)
	must(t, err)
	if len(d) != 2 {
		t.Fatalf("Decisions = %d, want 2", len(d))
	}
	same(t, "the operator's decision returned, against the one read back", stored, d[1])
	audits, err := r.Audits(ctx, 10)
	must(t, err)
	if len(audits) != 1 || audits[0].By != "carol" || audits[0].Action != "clone" || audits[0].Cluster != "web" {
		t.Errorf("audit trail %+v, want carol's clone only", audits)
	}
}

func policyPushed(t *testing.T, ctx context.Context, r autoscaler.Registry) {
	if _, ok, err := r.Policy(ctx); err != nil || ok {
		t.Fatalf("a new registry has a pushed policy (%v, %v)", ok, err)
	}
	for i, v := range []string{"v1", "v2"} {
		must(t, r.PutPolicy(ctx, plan.PolicyVersion{Version: v, Files: map[string]string{"p.rego": "package mitosis # " + v}, By: "dave", At: at(i)},
			plan.AuditRecord{At: at(i), By: "dave", Action: "policy-push", Detail: v}))
	}
	p, ok, err := r.Policy(ctx)
	must(t, err)
	if !ok || p.Version != "v2" || p.Files["p.rego"] != "package mitosis # v2" {
		t.Errorf("policy %+v", p)
	}
	if err := r.PutPolicy(ctx, plan.PolicyVersion{Version: "v3"}, plan.AuditRecord{}); err == nil {
		t.Error("a policy version without files accepted")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
