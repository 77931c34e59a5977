package raftstore

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/mitosis-autoscaler/mitosis/autoscaler"
	"github.com/mitosis-autoscaler/mitosis/plan"
)

// The replicated registry is a registry.
var _ autoscaler.Registry = (*Store)(nil)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// testCluster is a few nodes in this process, on raft's in-memory
// transport, each with its own data directory.
type testCluster struct {
	t     *testing.T
	ids   []string
	dirs  map[string]string
	trans map[string]*raft.InmemTransport
	nodes map[string]*Store
	tune  func(*Config)
}

// relaxed are timeouts for the tests of several nodes in one process: the
// tuned defaults (100 ms) hold on an idle machine, but under the race
// detector on a loaded one a heartbeat can come late and cause an
// election that a test does not expect.
func relaxed(cfg *Config) {
	cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 400*time.Millisecond, 400*time.Millisecond, 200*time.Millisecond
}

// newCluster starts n nodes bootstrapped as one cluster ("n1"…), with
// the tuned defaults for one node and relaxed timeouts for more, then
// tune applied.
func newCluster(t *testing.T, n int, tune func(*Config)) *testCluster {
	t.Helper()
	if n > 1 {
		tune = then(relaxed, tune)
	}
	c := &testCluster{t: t, dirs: map[string]string{}, trans: map[string]*raft.InmemTransport{}, nodes: map[string]*Store{}, tune: tune}
	var peers []Peer
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("n%d", i)
		c.ids = append(c.ids, id)
		c.dirs[id] = t.TempDir()
		peers = append(peers, Peer{ID: id, Address: id})
	}
	for _, id := range c.ids {
		c.start(id, true, peers)
	}
	t.Cleanup(c.close)
	return c
}

// start opens node id on its data directory with a new transport
// connected to every other node's.
func (c *testCluster) start(id string, bootstrap bool, peers []Peer) *Store {
	c.t.Helper()
	_, tr := raft.NewInmemTransport(raft.ServerAddress(id))
	for other, ot := range c.trans {
		if other != id {
			tr.Connect(raft.ServerAddress(other), ot)
			ot.Connect(raft.ServerAddress(id), tr)
		}
	}
	c.trans[id] = tr
	if _, ok := c.dirs[id]; !ok {
		c.dirs[id] = c.t.TempDir()
	}
	cfg := Config{NodeID: id, DataDir: c.dirs[id], Bootstrap: bootstrap, Peers: peers,
		Transport: func(Config, hclog.Logger) (raft.Transport, error) { return tr, nil },
		Logger:    hclog.NewNullLogger()}
	if c.tune != nil {
		c.tune(&cfg)
	}
	s, err := Open(cfg)
	if err != nil {
		c.t.Fatalf("open %s: %v", id, err)
	}
	c.nodes[id] = s
	return s
}

// stop closes node id; its data directory stays.
func (c *testCluster) stop(id string) {
	c.t.Helper()
	if err := c.nodes[id].Close(); err != nil {
		c.t.Errorf("close %s: %v", id, err)
	}
	delete(c.nodes, id)
	delete(c.trans, id)
	for _, ot := range c.trans {
		ot.Disconnect(raft.ServerAddress(id))
	}
}

// then returns a tune that applies a then b (either may be nil).
func then(a, b func(*Config)) func(*Config) {
	return func(cfg *Config) {
		for _, f := range []func(*Config){a, b} {
			if f != nil {
				f(cfg)
			}
		}
	}
}

func (c *testCluster) close() {
	for id := range c.nodes {
		c.stop(id)
	}
}

func (c *testCluster) running() []*Store {
	var out []*Store
	for _, id := range c.ids {
		if s, ok := c.nodes[id]; ok {
			out = append(out, s)
		}
	}
	for id, s := range c.nodes { // nodes started beyond the first ones
		if !contains(c.ids, id) {
			out = append(out, s)
		}
	}
	return out
}

func contains(ids []string, id string) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// eventually polls cond every 5 ms for up to 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// leader waits until exactly one running node leads and every running
// node knows it, and returns it.
func (c *testCluster) leader() *Store {
	c.t.Helper()
	var l *Store
	eventually(c.t, "a leader all nodes agree on", func() bool {
		l = nil
		for _, s := range c.running() {
			if s.IsLeader() {
				if l != nil {
					return false
				}
				l = s
			}
		}
		if l == nil {
			return false
		}
		for _, s := range c.running() {
			if id, _ := s.Leader(); id != l.ID() {
				return false
			}
		}
		return true
	})
	return l
}

func ledgerJSON(t *testing.T, s *Store) []byte {
	t.Helper()
	b, err := s.LedgerJSON()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// converge waits until every running node holds the same state as want.
func (c *testCluster) converge(want []byte) {
	c.t.Helper()
	eventually(c.t, "every node to hold the same state", func() bool {
		for _, s := range c.running() {
			if b, err := s.LedgerJSON(); err != nil || !bytes.Equal(b, want) {
				return false
			}
		}
		return true
	})
}

func node(id string) plan.Node {
	return plan.Node{ID: id, Cluster: "web", Role: "app", State: plan.NodeReady, Host: "h1", VM: "vm-" + id, Address: id + ":8080", CreatedAt: t0}
}

func expandOp(id string) plan.Operation {
	return plan.Operation{ID: id, Kind: plan.OpExpand, Cluster: "web", Status: plan.OpRunning, Step: "prepare", Template: "a1", CreatedAt: t0, StepAt: t0}
}

// populate writes a little of everything through s: nodes, a decision
// with two operations, a transition of one, and returns the context.
func populate(t *testing.T, s *Store) context.Context {
	t.Helper()
	ctx := context.Background()
	for _, id := range []string{"a1", "a2", "a3"} {
		if err := s.PutNode(ctx, node(id)); err != nil {
			t.Fatalf("PutNode: %v", err)
		}
	}
	rec := plan.DecisionRecord{Cluster: "web", At: t0, Decision: plan.Decision{Action: plan.ActionExpand, Count: 2, Template: "a1"}, Operations: []string{"op1", "op2"}}
	if _, err := s.RecordDecision(ctx, rec, plan.ScalingState{LastExpand: t0}, []plan.Operation{expandOp("op1"), expandOp("op2")}); err != nil {
		t.Fatalf("RecordDecision: %v", err)
	}
	if _, err := s.Transition(ctx, "op1", plan.Transition{From: "prepare", To: "clone", Status: plan.OpRunning, At: t0.Add(time.Second)}); err != nil {
		t.Fatalf("Transition: %v", err)
	}
	return ctx
}

// dirSize is the bytes of every file under dir.
func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
