package plan_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/plan"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// fill applies rounds from..from+n-1 of every kind of change to l: nodes in two
// clusters, decisions that start operations, transitions that finish
// them (done and compensated), conflicts that change nothing.
func fill(t *testing.T, l *plan.Ledger, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		at := t0.Add(time.Duration(i) * time.Second)
		cluster := []string{"web", "db"}[i%2]
		id := fmt.Sprintf("op%04d", i)
		if err := l.PutNode(plan.Node{ID: fmt.Sprintf("n%03d", i%37), Cluster: cluster, State: plan.NodeReady, CreatedAt: at}); err != nil {
			t.Fatal(err)
		}
		op := plan.Operation{ID: id, Kind: plan.OpExpand, Cluster: cluster, Status: plan.OpRunning, Step: "prepare", CreatedAt: at, StepAt: at}
		rec := plan.DecisionRecord{Cluster: cluster, At: at, Decision: plan.Decision{Action: plan.ActionExpand, Count: 1}, Operations: []string{id},
			Observed: plan.Observed{Cluster: map[string]float64{"b": 1, "a": 2, "c": 3}}}
		if _, err := l.RecordDecision(rec, plan.ScalingState{LastExpand: at}, []plan.Operation{op}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Transition(id, plan.Transition{From: "clone", To: "x", At: at}); !errors.Is(err, plan.ErrStepConflict) {
			t.Fatalf("conflict: %v", err)
		}
		if i%3 == 2 {
			continue // left unfinished
		}
		status := plan.OpDone
		if i%3 == 1 {
			status = plan.OpCompensated
		}
		tr := plan.Transition{From: "prepare", To: "end", Status: status, At: at.Add(time.Duration(i%7+1) * time.Second),
			PutNodes: []plan.Node{{ID: "c" + id, Cluster: cluster}}, RemoveNodes: []string{fmt.Sprintf("n%03d", (i+5)%37)}}
		if _, err := l.Transition(id, tr); err != nil {
			t.Fatal(err)
		}
	}
}

func marshal(t *testing.T, l *plan.Ledger) []byte {
	t.Helper()
	b, err := json.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLedgerSameChangesSameJSON(t *testing.T) {
	a, b := plan.NewLedger(), &plan.Ledger{} // the zero Ledger is ready too
	fill(t, a, 0, 700)
	fill(t, b, 0, 700)
	ja, jb := marshal(t, a), marshal(t, b)
	if !bytes.Equal(ja, jb) {
		t.Fatal("two ledgers given the same changes marshal differently")
	}
	for range 5 { // map iteration order must not leak into the bytes
		if !bytes.Equal(marshal(t, a), ja) {
			t.Fatal("marshalling the same ledger twice gives different bytes")
		}
	}
	if !bytes.Equal(marshal(t, plan.NewLedger()), marshal(t, &plan.Ledger{})) {
		t.Error("the zero Ledger and NewLedger marshal differently")
	}
}

func TestLedgerJSONRoundTrip(t *testing.T) {
	a := plan.NewLedger()
	fill(t, a, 0, 600)
	var b plan.Ledger
	if err := json.Unmarshal(marshal(t, a), &b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(marshal(t, &b), marshal(t, a)) {
		t.Fatal("a restored ledger marshals differently")
	}
	// And it goes on the same way.
	fill(t, a, 600, 50)
	fill(t, &b, 600, 50)
	if !bytes.Equal(marshal(t, &b), marshal(t, a)) {
		t.Fatal("a restored ledger diverges on the same changes")
	}
	for _, c := range []string{"web", "db"} {
		sa, _ := json.Marshal(a.State(c))
		sb, _ := json.Marshal(b.State(c))
		if !bytes.Equal(sa, sb) {
			t.Errorf("state of %s differs after a round trip", c)
		}
	}
}

func TestLedgerUnmarshalRefusesWhatItDoesNotKnow(t *testing.T) {
	l := plan.NewLedger()
	fill(t, l, 0, 3)
	before := marshal(t, l)
	for name, in := range map[string]string{
		"unknown version":     `{"v":2}`,
		"no version":          `{"seq":3}`,
		"duplicate node":      `{"v":1,"nodes":[{"id":"a","cluster":"w"},{"id":"a","cluster":"w"}]}`,
		"duplicate operation": `{"v":1,"operations":[{"id":"o"},{"id":"o"}]}`,
		"not json":            `{"v":1,`,
	} {
		if err := json.Unmarshal([]byte(in), l); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if !bytes.Equal(marshal(t, l), before) {
			t.Fatalf("%s: a refused state changed the ledger", name)
		}
	}
}

func TestLedgerStaysBounded(t *testing.T) {
	l := plan.NewLedger()
	fill(t, l, 0, 3000)
	if n := len(l.OperationIDs()); n > 2*plan.DecisionHistory+1000 { // unfinished ones (a third) are kept
		t.Errorf("holds %d operations", n)
	}
	if n := len(l.Decisions("web", 1<<20)); n >= 2*plan.DecisionHistory {
		t.Errorf("holds %d decisions of web", n)
	}
	if n := len(l.Unfinished()); n != 1000 {
		t.Errorf("unfinished = %d, want 1000 (none forgotten)", n)
	}
}

func TestLedgerCloneIsIndependent(t *testing.T) {
	a := plan.NewLedger()
	fill(t, a, 0, 20)
	c := a.Clone()
	before := marshal(t, a)
	if !bytes.Equal(marshal(t, c), before) {
		t.Fatal("a clone marshals differently")
	}
	fill(t, c, 20, 40)
	if !bytes.Equal(marshal(t, a), before) {
		t.Error("changing the clone changed the original")
	}
}

// The scale-up cooldown runs from LastJoin, so the ledger must record a
// join when it commits it and never lose it to a Decide whose scaling
// state was computed before the join.
func TestLedgerRecordsTheLastJoin(t *testing.T) {
	l := plan.NewLedger()
	start := func(id, cluster string, kind plan.OpKind) {
		t.Helper()
		op := plan.Operation{ID: id, Kind: kind, Cluster: cluster, Status: plan.OpRunning, Step: "run", CreatedAt: t0, StepAt: t0}
		rec := plan.DecisionRecord{Cluster: cluster, At: t0, Operations: []string{id}}
		if _, err := l.RecordDecision(rec, plan.ScalingState{LastExpand: t0}, []plan.Operation{op}); err != nil {
			t.Fatal(err)
		}
	}
	finish := func(id string, status plan.OpStatus, at time.Time) {
		t.Helper()
		if _, err := l.Transition(id, plan.Transition{From: "run", To: "end", Status: status, At: at}); err != nil {
			t.Fatal(err)
		}
	}
	lastJoin := func(cluster string) time.Time { return l.State(cluster).Scaling.LastJoin }
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

	start("e1", "web", plan.OpExpand)
	start("e2", "web", plan.OpExpand)
	start("e3", "web", plan.OpExpand)
	start("c1", "web", plan.OpContract)
	start("x1", "db", plan.OpExpand)

	finish("e1", plan.OpCompensated, at(5))
	finish("c1", plan.OpDone, at(6))
	if j := lastJoin("web"); !j.IsZero() {
		t.Fatalf("a compensated clone or a done contraction set LastJoin to %s", j)
	}
	finish("e2", plan.OpDone, at(10))
	if j := lastJoin("web"); !j.Equal(at(10)) {
		t.Fatalf("LastJoin = %s after a clone joined at %s", j, at(10))
	}
	if j := lastJoin("db"); !j.IsZero() {
		t.Fatalf("a join in web set db's LastJoin to %s", j)
	}
	finish("e3", plan.OpDone, at(8)) // committed later, stamped earlier
	if j := lastJoin("web"); !j.Equal(at(10)) {
		t.Fatalf("LastJoin moved back to %s", j)
	}

	// A decision computed from a read before the join keeps the join.
	stale := plan.ScalingState{LastExpand: at(12), LastJoin: at(1)}
	if _, err := l.RecordDecision(plan.DecisionRecord{Cluster: "web", At: at(12)}, stale, nil); err != nil {
		t.Fatal(err)
	}
	if s := l.State("web").Scaling; !s.LastJoin.Equal(at(10)) || !s.LastExpand.Equal(at(12)) {
		t.Fatalf("after a stale Decide: LastJoin %s (want %s), LastExpand %s (want %s)", s.LastJoin, at(10), s.LastExpand, at(12))
	}
	// One that knows of a later join takes it.
	if _, err := l.RecordDecision(plan.DecisionRecord{Cluster: "web", At: at(20)}, plan.ScalingState{LastJoin: at(15)}, nil); err != nil {
		t.Fatal(err)
	}
	if j := lastJoin("web"); !j.Equal(at(15)) {
		t.Fatalf("LastJoin = %s, want the later %s", j, at(15))
	}

	// Snapshots and clones carry it.
	var restored plan.Ledger
	if err := json.Unmarshal(marshal(t, l), &restored); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*plan.Ledger{"restored": &restored, "clone": l.Clone()} {
		if j := c.State("web").Scaling.LastJoin; !j.Equal(at(15)) {
			t.Errorf("%s ledger: LastJoin = %s, want %s", name, j, at(15))
		}
	}
	if !bytes.Contains(marshal(t, l), []byte(`"last_join":"`+at(15).Format(time.RFC3339)+`"`)) {
		t.Errorf("the snapshot does not hold last_join: %s", marshal(t, l))
	}
}
