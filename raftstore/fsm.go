package raftstore

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/raft"

	"github.com/mitosis-autoscaler/mitosis/plan"
)

// fsm is the registry's raft state machine: a plan.Ledger behind a
// read-write lock. Apply is deterministic and never panics on a bad
// entry: whatever it cannot apply is an error result and no change.
//
// Snapshot copies the Ledger's JSON under the read lock (the Ledger is
// bounded, so this is quick) and Persist writes that copy while Apply
// goes on; Restore replaces the whole state.
type fsm struct {
	mu sync.RWMutex
	l  *plan.Ledger
	// index is the log index of the last command applied; 0 after a
	// restore until the next one.
	index uint64
}

var (
	_ raft.FSM         = (*fsm)(nil)
	_ raft.FSMSnapshot = (*fsmSnapshot)(nil)
)

func newFSM() *fsm { return &fsm{l: plan.NewLedger()} }

// Apply applies one committed log entry and returns a result.
func (f *fsm) Apply(e *raft.Log) any {
	if e.Type != raft.LogCommand {
		return result{}
	}
	c, err := DecodeCommand(e.Data)
	if err != nil {
		return result{err: err}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.index = e.Index
	return apply(f.l, c)
}

// read runs fn on the Ledger under the read lock.
func (f *fsm) read(fn func(l *plan.Ledger)) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	fn(f.l)
}

func (f *fsm) marshal() ([]byte, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return json.Marshal(f.l)
}

// digest is a SHA-256 of the state and the index of the command it ends
// with, read together.
func (f *fsm) digest() (index uint64, sum [sha256.Size]byte, err error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	b, err := json.Marshal(f.l)
	return f.index, sha256.Sum256(b), err
}

// Snapshot takes the Ledger's JSON.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	b, err := f.marshal()
	if err != nil {
		return nil, fmt.Errorf("raftstore: snapshot: %w", err)
	}
	return &fsmSnapshot{data: b}, nil
}

// Restore replaces the state with a snapshot's.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, rc); err != nil {
		return fmt.Errorf("raftstore: restore: %w", err)
	}
	l := plan.NewLedger()
	if err := json.Unmarshal(buf.Bytes(), l); err != nil {
		return fmt.Errorf("raftstore: restore: %w", err)
	}
	f.mu.Lock()
	f.l, f.index = l, 0
	f.mu.Unlock()
	return nil
}

type fsmSnapshot struct{ data []byte }

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s.data); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("raftstore: persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}
