package plan

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"
)

func TestCloneName(t *testing.T) {
	for _, tt := range []struct {
		name string
		op   Operation
		want string
	}{
		{"named when planned", Operation{ID: "web-20260101t000045000-4", Clone: "web-c17"}, "web-c17"},
		{"recorded before clones were named", Operation{ID: "web-20260101t000045000-4"}, "mitosis-web-20260101t000045000-4"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := CloneName(tt.op); got != tt.want {
				t.Errorf("CloneName = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestIsCloneOf(t *testing.T) {
	for _, tt := range []struct {
		cluster, name string
		want          bool
	}{
		{"web", "web-c1", true}, {"web", "web-c17", true}, {"api-eu", "api-eu-c230", true},
		{"web", "api-c1", false}, {"web", "web-eu-c1", false}, {"", "-c1", false},
		{"web", "web-1", false}, {"web", "web-c", false}, {"web", "web-c0", false}, {"web", "web-c07", false},
		{"web", "web-c1x", false}, {"web", "webc1", false}, {"web", "mitosis-web-20260101t000045000-4", false},
	} {
		if got := IsCloneOf(tt.cluster, tt.name); got != tt.want {
			t.Errorf("IsCloneOf(%q, %q) = %v, want %v", tt.cluster, tt.name, got, tt.want)
		}
	}
	if n := FormatCloneName("web", 17); n != "web-c17" || !IsCloneOf("web", n) {
		t.Errorf("FormatCloneName(web, 17) = %q", n)
	}
}

// TestNameClonesSkipsTakenNames: an operator may have named a node as
// mitosis names clones; the clone takes the next free number.
func TestNameClonesSkipsTakenNames(t *testing.T) {
	nodes := []Node{{ID: "web-c1", Cluster: "web"}, {ID: "web-c2", Cluster: "web"}}
	held := []Operation{{ID: "op0", Kind: OpExpand, Cluster: "web", Clone: "web-c4"}, {ID: "old", Kind: OpExpand, Cluster: "web"}}
	ops := []Operation{
		{ID: "op1", Kind: OpExpand, Cluster: "web"},
		{ID: "op2", Kind: OpContract, Cluster: "web", Node: "web-c1"},
		{ID: "op3", Kind: OpExpand, Cluster: "web"},
		{ID: "op4", Kind: OpExpand, Cluster: "web", Clone: "web-c9"}, // named already: kept
	}
	s := ScalingState{Clones: 2}
	NameClones(ops, &s, Taken(nodes, held))
	if ops[0].Clone != "web-c3" || ops[1].Clone != "" || ops[2].Clone != "web-c5" || ops[3].Clone != "web-c9" {
		t.Errorf("names %q %q %q %q; want web-c3, none, web-c5 (web-c4 is held), web-c9", ops[0].Clone, ops[1].Clone, ops[2].Clone, ops[3].Clone)
	}
	if s.Clones != 5 {
		t.Errorf("Clones = %d, want 5", s.Clones)
	}
	if !Taken(nil, held)("mitosis-old") {
		t.Error("the clone of an expansion recorded before names is not taken")
	}
}

// TestLedgerRefusesACloneNameGivenTwice: a name is unique in the registry
// whatever the caller computed (fail closed: nothing is recorded).
func TestLedgerRefusesACloneNameGivenTwice(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := NewLedger()
	if err := l.PutNode(Node{ID: "web-c1", Cluster: "web"}); err != nil {
		t.Fatal(err)
	}
	rec := DecisionRecord{Cluster: "web", At: at}
	expand := func(id, clone string) Operation {
		return Operation{ID: id, Kind: OpExpand, Cluster: "web", Status: OpRunning, Clone: clone}
	}
	if _, err := l.RecordDecision(rec, ScalingState{Clones: 2}, []Operation{expand("a", "web-c2")}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		ops  []Operation
	}{
		{"a node's name", []Operation{expand("b", "web-c1")}},
		{"a held operation's clone", []Operation{expand("b", "web-c2")}},
		{"twice in one decision", []Operation{expand("b", "web-c3"), expand("c", "web-c3")}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := json.Marshal(l)
			if _, err := l.RecordDecision(rec, ScalingState{}, tt.ops); err == nil || !strings.Contains(err.Error(), "clone name") {
				t.Fatalf("Decide: %v, want a clone name refused", err)
			}
			if after, _ := json.Marshal(l); string(after) != string(before) {
				t.Error("a refused decision changed the ledger")
			}
		})
	}
	// A stale scaling state (read before the last naming) does not move
	// the count back.
	if _, err := l.RecordDecision(rec, ScalingState{}, nil); err != nil {
		t.Fatal(err)
	}
	if got := l.State("web").Scaling.Clones; got != 2 {
		t.Errorf("Clones = %d after a stale write, want 2", got)
	}
}

// TestLedgerWithoutCloneNamesLoads: a snapshot written before clones were
// named (no "clones" count, an expansion with no "clone") loads, its
// expansion keeps its old name, and the next clone is numbered from 1.
func TestLedgerWithoutCloneNamesLoads(t *testing.T) {
	old := `{"v":1,"seq":3,"nodes":[{"id":"web-1","cluster":"web"}],` +
		`"operations":[{"id":"web-20260101t000045000-4","kind":"expand","cluster":"web","status":"running","step":"clone"}],` +
		`"scaling":{"web":{"last_expand":"2026-01-01T00:00:45Z","last_contract":"0001-01-01T00:00:00Z","last_join":"0001-01-01T00:00:00Z","contract_since":"0001-01-01T00:00:00Z"}},` +
		`"decisions":{},"estimates":{}}`
	var l Ledger
	if err := json.Unmarshal([]byte(old), &l); err != nil {
		t.Fatal(err)
	}
	st := l.State("web")
	if got := CloneName(st.Operations[0]); got != "mitosis-web-20260101t000045000-4" {
		t.Errorf("the old expansion's clone is %q", got)
	}
	ops := []Operation{{ID: "web-20260101t000100000-0", Kind: OpExpand, Cluster: "web", Status: OpRunning}}
	NameClones(ops, &st.Scaling, Taken(st.Nodes, st.Operations))
	if ops[0].Clone != "web-c1" {
		t.Errorf("next clone %q, want web-c1", ops[0].Clone)
	}
	if _, err := l.RecordDecision(DecisionRecord{Cluster: "web"}, st.Scaling, ops); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(&l)
	var back Ledger
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if got := back.State("web").Scaling.Clones; got != 1 {
		t.Errorf("after a snapshot, Clones = %d, want 1", got)
	}
}

// TestPropertyCloneNamesAreUniqueAndNeverANodes drives a Ledger as the
// controller does — name the expansions of each decision from the state
// just read, record them, let some join (their clone becomes a node),
// some be compensated, some nodes leave, snapshots be restored — with
// operators' nodes named like clones, and checks that no name is ever
// given twice in a cluster nor is ever an operator's node.
func TestPropertyCloneNamesAreUniqueAndNeverANodes(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		clusters := []string{"web", "api"}
		l := NewLedger()
		operators := map[string]bool{}
		for _, c := range clusters {
			for _, n := range rapid.SliceOfNDistinct(rapid.IntRange(1, 40), 0, 6, rapid.ID[int]).Draw(t, c+"-operator-nodes") {
				id := FormatCloneName(c, n) // the worst case: named like a clone
				operators[id] = true
				if err := l.PutNode(Node{ID: id, Cluster: c}); err != nil {
					t.Fatal(err)
				}
			}
		}
		given := map[string]string{} // clone name → operation
		at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		for round := range rapid.IntRange(1, 60).Draw(t, "rounds") {
			at = at.Add(time.Second)
			c := rapid.SampledFrom(clusters).Draw(t, "cluster")
			switch rapid.IntRange(0, 3).Draw(t, "what") {
			case 0, 1: // a decision with some expansions and maybe a contraction
				st := l.State(c)
				var ops []Operation
				for i := range rapid.IntRange(0, 4).Draw(t, "expansions") {
					ops = append(ops, Operation{ID: fmt.Sprintf("%s-%d-%d", c, round, i), Kind: OpExpand, Cluster: c, Status: OpRunning, Step: "clone"})
				}
				if len(st.Nodes) > 0 && rapid.Bool().Draw(t, "contract") {
					ops = append(ops, Operation{ID: fmt.Sprintf("%s-%d-x", c, round), Kind: OpContract, Cluster: c, Status: OpRunning, Step: "drain", Node: st.Nodes[0].ID})
				}
				scaling := st.Scaling
				NameClones(ops, &scaling, Taken(st.Nodes, st.Operations))
				if _, err := l.RecordDecision(DecisionRecord{Cluster: c, At: at}, scaling, ops); err != nil {
					t.Fatalf("Decide: %v", err)
				}
				for _, op := range ops {
					if op.Kind != OpExpand {
						continue
					}
					name := CloneName(op)
					if prev, dup := given[name]; dup {
						t.Fatalf("clone name %s given to %s and %s", name, prev, op.ID)
					}
					if operators[name] {
						t.Fatalf("clone name %s is an operator's node", name)
					}
					if !IsCloneOf(c, name) {
						t.Fatalf("clone name %s is not <cluster>-c<n>", name)
					}
					given[name] = op.ID
				}
			case 2: // an unfinished operation ends: a clone joins, a victim leaves, or it is compensated
				open := l.Unfinished()
				if len(open) == 0 {
					continue
				}
				op := rapid.SampledFrom(open).Draw(t, "op")
				tr := Transition{From: op.Step, To: "done", Status: OpDone, At: at}
				switch {
				case rapid.Bool().Draw(t, "compensated"):
					tr.To, tr.Status = "compensated", OpCompensated
				case op.Kind == OpExpand:
					tr.Node = CloneName(op)
					tr.PutNodes = []Node{{ID: CloneName(op), Cluster: op.Cluster}}
				default:
					tr.RemoveNodes = []string{op.Node}
				}
				if _, err := l.Transition(op.ID, tr); err != nil {
					t.Fatal(err)
				}
			case 3: // a new leader restores a snapshot
				b, err := json.Marshal(l)
				if err != nil {
					t.Fatal(err)
				}
				l = NewLedger()
				if err := json.Unmarshal(b, l); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
}
