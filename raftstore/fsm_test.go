package raftstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/mitosis-autoscaler/mitosis/plan"
)

// entries is a log of every kind of command, with refused ones among
// them.
func entries(t *testing.T) [][]byte {
	t.Helper()
	var cmds []Command
	for i := range 30 {
		n := node(fmt.Sprintf("a%02d", i%7))
		cmds = append(cmds, Command{Op: OpPutNode, Node: &n})
		id := fmt.Sprintf("op%02d", i)
		op := expandOp(id)
		rec := plan.DecisionRecord{Cluster: "web", At: t0.Add(time.Duration(i) * time.Second), Operations: []string{id},
			Observed: plan.Observed{Cluster: map[string]float64{"z": 1, "a": 2}}}
		cmds = append(cmds, Command{Op: OpDecide, Record: &rec, Scaling: &plan.ScalingState{LastExpand: rec.At}, Ops: []plan.Operation{op}})
		cmds = append(cmds, Command{Op: OpDecide, Record: &rec, Scaling: &plan.ScalingState{}, Ops: []plan.Operation{op}}) // duplicate: refused
		tr := plan.Transition{From: "prepare", To: "done", Status: plan.OpDone, At: rec.At.Add(3 * time.Second), PutNodes: []plan.Node{node("c" + id)}}
		cmds = append(cmds, Command{Op: OpTransition, ID: id, Transition: &tr})
		cmds = append(cmds, Command{Op: OpTransition, ID: id, Transition: &tr}) // conflict: refused
	}
	var out [][]byte
	for _, c := range cmds {
		b, err := c.Encode()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func applyAll(f *fsm, log [][]byte) (errs int) {
	for i, b := range log {
		res := f.Apply(&raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: b}).(result)
		if res.err != nil {
			errs++
		}
	}
	return errs
}

func fsmJSON(t *testing.T, f *fsm) []byte {
	t.Helper()
	b, err := f.marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFSMApplyIsDeterministic(t *testing.T) {
	log := entries(t)
	a, b := newFSM(), newFSM()
	ea, eb := applyAll(a, log), applyAll(b, log)
	if ea != 60 || eb != 60 {
		t.Errorf("refused entries = %d and %d, want 60 (30 duplicates, 30 conflicts)", ea, eb)
	}
	if !bytes.Equal(fsmJSON(t, a), fsmJSON(t, b)) {
		t.Fatal("two FSMs given the same log hold different states")
	}
}

func TestFSMResultsCarryTheLedgersErrors(t *testing.T) {
	f := newFSM()
	applyAll(f, entries(t)[:4]) // a node, a decision, a refused one, a transition to done
	tr := plan.Transition{From: "prepare", To: "clone", At: t0}
	b, _ := Command{Op: OpTransition, ID: "op00", Transition: &tr}.Encode()
	res := f.Apply(&raft.Log{Type: raft.LogCommand, Data: b}).(result)
	if !errors.Is(res.err, plan.ErrStepConflict) || res.op.Step != "done" {
		t.Errorf("conflict result = %+v, want ErrStepConflict and the operation as it is", res)
	}
	b, _ = Command{Op: OpTransition, ID: "nope", Transition: &tr}.Encode()
	if res := f.Apply(&raft.Log{Type: raft.LogCommand, Data: b}).(result); !errors.Is(res.err, plan.ErrNotFound) {
		t.Errorf("unknown operation result = %+v, want ErrNotFound", res)
	}
}

func TestFSMRefusesWhatItDoesNotUnderstand(t *testing.T) {
	f := newFSM()
	applyAll(f, entries(t)[:4])
	before := fsmJSON(t, f)
	for name, data := range map[string]string{
		"a newer version":      `{"v":2,"op":"put_node","node":{"id":"x","cluster":"web"}}`,
		"no version":           `{"op":"put_node","node":{"id":"x","cluster":"web"}}`,
		"an unknown command":   `{"v":1,"op":"drop_table"}`,
		"an incomplete decide": `{"v":1,"op":"decide","ops":[{"id":"x"}]}`,
		"not json":             `{"v":1,`,
		"a node with no id":    `{"v":1,"op":"put_node","node":{"cluster":"web"}}`,
	} {
		res := f.Apply(&raft.Log{Type: raft.LogCommand, Data: []byte(data)}).(result)
		if res.err == nil {
			t.Errorf("%s: applied", name)
		}
		if !bytes.Equal(fsmJSON(t, f), before) {
			t.Fatalf("%s: changed the state", name)
		}
	}
}

// sink is an in-memory raft.SnapshotSink.
type sink struct {
	bytes.Buffer
	closed, cancelled bool
}

func (s *sink) ID() string    { return "test" }
func (s *sink) Close() error  { s.closed = true; return nil }
func (s *sink) Cancel() error { s.cancelled = true; return nil }

// The digest is read with the index of the command it ends with: FSMs at
// the same index agree, and a restore forgets the index until the next
// command.
func TestFSMDigestGoesWithItsIndex(t *testing.T) {
	log := entries(t)
	a, b := newFSM(), newFSM()
	applyAll(a, log[:50])
	applyAll(b, log)
	ia, da, _ := a.digest()
	ib, db, _ := b.digest()
	if ia != 50 || ib != uint64(len(log)) || da == db {
		t.Fatalf("after 50 and %d entries: indexes %d and %d, digests equal: %v", len(log), ia, ib, da == db)
	}
	for i, e := range log[50:] { // a catches up
		a.Apply(&raft.Log{Index: uint64(51 + i), Type: raft.LogCommand, Data: e})
	}
	if ia, da, _ = a.digest(); ia != ib || da != db {
		t.Fatalf("both at %d: index %d, digests equal: %v", ib, ia, da == db)
	}
	snap, _ := a.Snapshot()
	var out sink
	_ = snap.Persist(&out)
	fresh := newFSM()
	if err := fresh.Restore(io.NopCloser(bytes.NewReader(out.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if i, d, _ := fresh.digest(); i != 0 || d != db {
		t.Errorf("restored: index %d (want 0 until the next command), digests equal: %v", i, d == db)
	}
}

func TestFSMSnapshotRestoresAnIdenticalState(t *testing.T) {
	f := newFSM()
	log := entries(t)
	applyAll(f, log[:100])
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	applyAll(f, log[100:110]) // the snapshot is a point in time
	var out sink
	if err := snap.Persist(&out); err != nil || !out.closed {
		t.Fatalf("Persist: %v (closed %v)", err, out.closed)
	}
	snap.Release()

	fresh := newFSM()
	if err := fresh.Restore(io.NopCloser(bytes.NewReader(out.Bytes()))); err != nil {
		t.Fatal(err)
	}
	want := newFSM()
	applyAll(want, log[:100])
	if !bytes.Equal(fsmJSON(t, fresh), fsmJSON(t, want)) {
		t.Fatal("the restored state differs from the state snapshotted")
	}
	// Restore replaces: a node with state restores the same.
	if err := f.Restore(io.NopCloser(bytes.NewReader(out.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fsmJSON(t, f), fsmJSON(t, want)) {
		t.Fatal("restore did not replace the state")
	}
	// And both go on alike.
	applyAll(f, log[100:])
	applyAll(fresh, log[100:])
	if !bytes.Equal(fsmJSON(t, f), fsmJSON(t, fresh)) {
		t.Fatal("restored FSMs diverge")
	}
	if err := fresh.Restore(io.NopCloser(bytes.NewReader([]byte(`{"v":9}`)))); err == nil {
		t.Error("restored a snapshot of an unknown version")
	}
}

// The command envelope is documented in docs/raft.md; this pins it.
func TestCommandEnvelope(t *testing.T) {
	n := plan.Node{ID: "a1", Cluster: "web"}
	b, err := Command{Op: OpPutNode, Node: &n}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if string(m["v"]) != "1" || string(m["op"]) != `"put_node"` || len(m) != 3 {
		t.Errorf("envelope = %s", b)
	}
}
