package raftstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/autoscaler"
	"github.com/mitosis-autoscaler/mitosis/autoscaler/registrytest"
	"github.com/mitosis-autoscaler/mitosis/plan"
)

func TestSingleNodeConformance(t *testing.T) {
	registrytest.Run(t, func(t *testing.T) autoscaler.Registry {
		return newCluster(t, 1, nil).leader()
	})
}

func TestThreeNodesReplicateTheLeadersWrites(t *testing.T) {
	c := newCluster(t, 3, nil)
	l := c.leader()
	ctx := populate(t, l)
	// A conflict is a committed entry with an error result: no change.
	before := l.AppliedIndex()
	if _, err := l.Transition(ctx, "op1", plan.Transition{From: "prepare", To: "clone", Status: plan.OpRunning, At: t0}); !errors.Is(err, plan.ErrStepConflict) {
		t.Fatalf("conflicting transition: err = %v, want ErrStepConflict", err)
	}
	if l.AppliedIndex() <= before {
		t.Error("the conflicting transition was not committed")
	}
	want := ledgerJSON(t, l)
	c.converge(want)
	for _, s := range c.running() {
		st, _ := s.State(ctx, "web")
		if len(st.Nodes) != 3 || len(st.Operations) != 2 || st.Operations[0].Step != "clone" {
			t.Errorf("%s: state = %+v", s.ID(), st)
		}
	}
	_, leaderAddr := l.Leader()
	for _, s := range c.running() {
		if s == l {
			continue
		}
		err := s.PutNode(ctx, node("z9"))
		var nl *NotLeaderError
		if !errors.Is(err, ErrNotLeader) || !errors.As(err, &nl) || nl.LeaderAddr != leaderAddr || nl.LeaderID != l.ID() {
			t.Fatalf("%s: write on a follower: err = %v, want NotLeaderError naming %s", s.ID(), err, leaderAddr)
		}
		if want := fmt.Sprintf("raftstore: not the leader (leader is %s)", leaderAddr); !bytes.Contains([]byte(err.Error()), []byte(want)) {
			t.Errorf("error %q does not say %q", err, want)
		}
		if err := s.Sync(ctx); !errors.Is(err, ErrNotLeader) {
			t.Errorf("%s: Sync on a follower: err = %v, want ErrNotLeader", s.ID(), err)
		}
	}
	if !bytes.Equal(ledgerJSON(t, l), want) {
		t.Error("a refused write changed the state")
	}
	peers, err := l.Peers()
	if err != nil || len(peers) != 3 {
		t.Errorf("Peers = %v, %v", peers, err)
	}
}

func TestNewLeaderServesTheSameState(t *testing.T) {
	c := newCluster(t, 3, nil)
	old := c.leader()
	ctx := populate(t, old)
	want := ledgerJSON(t, old)
	c.converge(want)
	term := old.Term()

	oldID := old.ID()
	c.stop(oldID)
	start := time.Now()
	l := c.leader()
	t.Logf("new leader %s after %v", l.ID(), time.Since(start))
	if l.Term() <= term {
		t.Errorf("term %d after the election, was %d: the fencing token must grow", l.Term(), term)
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := l.Sync(sctx); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if got := ledgerJSON(t, l); !bytes.Equal(got, want) {
		t.Fatalf("the new leader's state differs:\n got  %s\n want %s", got, want)
	}
	op, err := l.Transition(ctx, "op1", plan.Transition{From: "clone", To: "done", Status: plan.OpDone, At: t0.Add(9 * time.Second)})
	if err != nil || op.Status != plan.OpDone {
		t.Fatalf("Transition on the new leader = %+v, %v", op, err)
	}
	if st, _ := l.State(ctx, "web"); st.Estimates.CloneSeconds != 9 {
		t.Errorf("estimates = %+v, want clone_seconds 9", st.Estimates)
	}

	// The old leader comes back from its data directory as a follower
	// and catches up.
	c.start(oldID, true, nil)
	c.converge(ledgerJSON(t, l))
}

func TestRestartRecoversFromTheDataDir(t *testing.T) {
	c := newCluster(t, 1, func(cfg *Config) { cfg.SnapshotThreshold, cfg.TrailingLogs = 8, 4 })
	s := c.leader()
	ctx := populate(t, s)
	if err := s.Snapshot(); err != nil { // some of the state from a snapshot…
		t.Fatal(err)
	}
	for i := range 5 { // …and some from the log after it
		if err := s.PutNode(ctx, node(fmt.Sprintf("b%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	want := ledgerJSON(t, s)
	c.stop("n1")
	c.start("n1", true, nil)
	c.leader()
	c.converge(want)
}

func TestSnapshotRestoresIntoAFreshNode(t *testing.T) {
	c := newCluster(t, 1, then(relaxed, func(cfg *Config) { // relaxed: it grows to two nodes
		cfg.SnapshotThreshold, cfg.TrailingLogs, cfg.SnapshotInterval = 16, 4, 20*time.Millisecond
	}))
	l := c.leader()
	ctx := populate(t, l)
	for i := range 100 {
		if err := l.PutNode(ctx, node(fmt.Sprintf("b%02d", i%40))); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Snapshot(); err != nil {
		t.Fatal(err)
	}
	first, _ := l.logs.FirstIndex()
	if first <= 1 {
		t.Fatalf("the log was not compacted (first index %d)", first)
	}
	// n2 has nothing; the leader no longer has the start of the log, so
	// n2 can only get the state through a snapshot.
	n2 := c.start("n2", false, nil)
	if err := l.AddVoter(ctx, "n2", n2.Addr()); err != nil {
		t.Fatalf("AddVoter: %v", err)
	}
	want := ledgerJSON(t, l)
	c.converge(want)
	if got := ledgerJSON(t, n2); !bytes.Equal(got, want) {
		t.Fatalf("fresh node's state differs")
	}
	if err := l.RemoveServer(ctx, "n2"); err != nil {
		t.Fatalf("RemoveServer: %v", err)
	}
}

func TestLogCompactionKeepsTheDataDirBounded(t *testing.T) {
	const threshold, trailing = 64, 32
	c := newCluster(t, 1, func(cfg *Config) {
		cfg.SnapshotThreshold, cfg.TrailingLogs, cfg.SnapshotInterval = threshold, trailing, 10*time.Millisecond
	})
	s := c.leader()
	ctx := context.Background()
	var sizes []int64
	for round := range 4 {
		for i := range 300 {
			n := node(fmt.Sprintf("a%02d", i%50))
			n.Address = fmt.Sprintf("10.0.%d.%d:8080", round, i) // every write changes something
			if err := s.PutNode(ctx, n); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, "the log to be compacted", func() bool {
			first, _ := s.logs.FirstIndex()
			last, _ := s.logs.LastIndex()
			return first > 1 && last-first < threshold+trailing
		})
		sizes = append(sizes, dirSize(t, c.dirs["n1"]))
	}
	first, _ := s.logs.FirstIndex()
	last, _ := s.logs.LastIndex()
	t.Logf("log [%d, %d]; data dir after each 300 writes: %v bytes", first, last, sizes)
	const bound = 2 << 20
	for i, n := range sizes {
		if n > bound {
			t.Errorf("data dir is %d bytes after round %d, want at most %d", n, i, bound)
		}
	}
	if sizes[3] > sizes[1]+sizes[1]/2 {
		t.Errorf("data dir keeps growing: %v", sizes)
	}
}
