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
		if _, err := l.Decide(rec, plan.ScalingState{LastExpand: at}, []plan.Operation{op}); err != nil {
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
