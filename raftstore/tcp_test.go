package raftstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mitosis-autoscaler/mitosis/plan"
)

// tcpCluster starts three nodes on loopback TCP (127.0.0.1, ports the
// kernel picks): n1 bootstraps alone, then adds n2 and n3 as voters, as
// `mitosis peers join` will. tune, if not nil, changes each node's
// configuration.
func tcpCluster(tb testing.TB, tune func(*Config)) []*Store {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var nodes []*Store
	for i := 1; i <= 3; i++ {
		cfg := Config{NodeID: fmt.Sprintf("n%d", i), BindAddr: "127.0.0.1:0", DataDir: tb.TempDir(),
			Bootstrap: i == 1, Logger: hclog.NewNullLogger()}
		if tune != nil {
			tune(&cfg)
		}
		s, err := Open(cfg)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = s.Close() })
		nodes = append(nodes, s)
	}
	l := nodes[0]
	if _, _, err := l.WaitLeader(ctx); err != nil {
		tb.Fatal(err)
	}
	for _, s := range nodes[1:] {
		if err := l.AddVoter(ctx, s.ID(), s.Addr()); err != nil {
			tb.Fatalf("AddVoter %s: %v", s.ID(), err)
		}
	}
	for _, s := range nodes {
		if _, _, err := s.WaitLeader(ctx); err != nil {
			tb.Fatal(err)
		}
	}
	return nodes
}

// leaderOf waits for a leader among nodes and returns it.
func leaderOf(tb testing.TB, nodes []*Store) *Store {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range nodes {
			if s.IsLeader() {
				return s
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	tb.Fatal("no leader")
	return nil
}

func TestThreeNodesOnLoopbackTCP(t *testing.T) {
	nodes := tcpCluster(t, relaxed)
	l := leaderOf(t, nodes)
	populate(t, l)
	if err := l.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := ledgerJSON(t, l)
	eventually(t, "the followers to apply the leader's writes", func() bool {
		for _, s := range nodes {
			if b, _ := s.LedgerJSON(); !bytes.Equal(b, want) {
				return false
			}
		}
		return true
	})
	follower := nodes[0]
	if follower == l {
		follower = nodes[1]
	}
	err := follower.PutNode(context.Background(), node("z9"))
	if want := "raftstore: not the leader (leader is " + l.Addr() + ")"; err == nil || err.Error() != "put_node: "+want {
		t.Errorf("write on a follower: %v, want %q", err, want)
	}
}

// BenchmarkCommitStep is the latency of one Transition commit (an
// operation's step, compare-and-set) on a 3-node cluster over loopback
// TCP, fsync included, with the tuned default timeouts. Should the
// leadership move (a late heartbeat on a loaded machine), the benchmark
// goes on with the new leader, from the step the operation is at.
func BenchmarkCommitStep(b *testing.B) {
	nodes := tcpCluster(b, nil)
	l := leaderOf(b, nodes)
	ctx := context.Background()
	steps := []plan.Step{"prepare", "clone"}
	op, k := "", 0
	b.ResetTimer()
	for i := range b.N {
		if i%100 == 0 { // a new operation now and then, so the journal stays short
			b.StopTimer()
			op, k = fmt.Sprintf("op%d", i), 0
			if _, err := l.RecordDecision(ctx, plan.DecisionRecord{Cluster: "web", At: t0}, plan.ScalingState{}, []plan.Operation{expandOp(op)}); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		t := plan.Transition{From: steps[k%2], To: steps[(k+1)%2], Status: plan.OpRunning, At: t0}
		if _, err := l.Transition(ctx, op, t); errors.Is(err, ErrNotLeader) {
			b.StopTimer()
			l = leaderOf(b, nodes)
			if err := l.Sync(ctx); err != nil {
				b.Fatal(err)
			}
			cur, err := l.Operation(ctx, op)
			if err != nil {
				b.Fatal(err)
			}
			if cur.Step != steps[k%2] {
				k++
			}
			b.StartTimer()
			continue
		} else if err != nil {
			b.Fatal(err)
		}
		k++
	}
}

// BenchmarkFailover is the time from the leader's death to the first
// operation step its successor commits, on 3 nodes over loopback TCP with
// the tuned default timeouts: the followers notice the silence, elect one
// of them, and the new leader commits. The old leader is then reopened on
// its data directory (untimed), for the next round.
func BenchmarkFailover(b *testing.B) {
	cfgs := map[string]Config{}
	nodes := tcpCluster(b, func(c *Config) { cfgs[c.NodeID] = *c })
	ctx := context.Background()
	l := leaderOf(b, nodes)
	if _, err := l.RecordDecision(ctx, plan.DecisionRecord{Cluster: "web", At: t0}, plan.ScalingState{}, []plan.Operation{expandOp("op")}); err != nil {
		b.Fatal(err)
	}
	steps := []plan.Step{"prepare", "clone"}
	b.ResetTimer()
	for i := range b.N {
		if err := l.Close(); err != nil {
			b.Fatal(err)
		}
		var live []*Store
		for _, s := range nodes {
			if s != l {
				live = append(live, s)
			}
		}
		next := leaderOf(b, live)
		t := plan.Transition{From: steps[i%2], To: steps[(i+1)%2], Status: plan.OpRunning, At: t0}
		for {
			_, err := next.Transition(ctx, "op", t)
			if err == nil {
				break
			}
			if !errors.Is(err, ErrNotLeader) {
				b.Fatal(err)
			}
			next = leaderOf(b, live)
		}
		b.StopTimer()
		cfg := cfgs[l.ID()]
		cfg.BindAddr, cfg.Bootstrap = l.Addr(), false
		back, err := Open(cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = back.Close() })
		for j, s := range nodes {
			if s == l {
				nodes[j] = back
			}
		}
		if _, _, err := back.WaitLeader(ctx); err != nil {
			b.Fatal(err)
		}
		l = next
		b.StartTimer()
	}
}
