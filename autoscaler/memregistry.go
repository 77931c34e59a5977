package autoscaler

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/mitosis-autoscaler/mitosis/plan"
)

// decisionHistory is how many decisions a registry keeps per cluster.
const decisionHistory = 256

// MemRegistry is a Registry in memory, for one process: the simulator,
// tests, and a daemon that need not survive its own death. The replicated
// registry (raftstore) keeps the same contract.
type MemRegistry struct {
	mu        sync.Mutex
	nodes     map[string]plan.Node // by id
	nodeIDs   []string             // sorted, so State needs no sort
	ops       map[string]plan.Operation
	opOrder   []string // creation order
	open      []string // unfinished operations, in creation order
	scaling   map[string]plan.ScalingState
	decisions map[string][]plan.DecisionRecord // newest last
	estimates map[string]plan.Estimates
	seq       uint64
}

var _ Registry = (*MemRegistry)(nil)

// NewMemRegistry returns an empty registry.
func NewMemRegistry() *MemRegistry {
	return &MemRegistry{
		nodes:     map[string]plan.Node{},
		ops:       map[string]plan.Operation{},
		scaling:   map[string]plan.ScalingState{},
		decisions: map[string][]plan.DecisionRecord{},
		estimates: map[string]plan.Estimates{},
	}
}

// State returns a copy of one cluster.
func (r *MemRegistry) State(_ context.Context, cluster string) (plan.ClusterState, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var s plan.ClusterState
	for _, id := range r.nodeIDs {
		if n := r.nodes[id]; n.Cluster == cluster {
			s.Nodes = append(s.Nodes, n)
		}
	}
	for _, id := range r.open {
		if op := r.ops[id]; op.Cluster == cluster {
			s.Operations = append(s.Operations, cloneOp(op))
		}
	}
	s.Scaling = cloneScaling(r.scaling[cluster])
	s.Estimates = r.estimates[cluster]
	d := r.decisions[cluster]
	for i := len(d) - 1; i >= 0 && len(s.Recent) < plan.RecentDecisions; i-- {
		s.Recent = append(s.Recent, plan.RecentDecision{At: d[i].At, Action: d[i].Decision.Action, Count: d[i].Decision.Count})
	}
	return s, nil
}

// Unfinished returns every unfinished operation, oldest first.
func (r *MemRegistry) Unfinished(context.Context) ([]plan.Operation, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]plan.Operation, 0, len(r.open))
	for _, id := range r.open {
		out = append(out, cloneOp(r.ops[id]))
	}
	return out, nil
}

// Operation returns one operation.
func (r *MemRegistry) Operation(_ context.Context, id string) (plan.Operation, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	op, ok := r.ops[id]
	if !ok {
		return plan.Operation{}, fmt.Errorf("operation %s: %w", id, ErrNotFound)
	}
	return cloneOp(op), nil
}

// Decide records a decision with its operations.
func (r *MemRegistry) Decide(_ context.Context, rec plan.DecisionRecord, scaling plan.ScalingState, ops []plan.Operation) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, op := range ops {
		if _, dup := r.ops[op.ID]; dup {
			return fmt.Errorf("operation %s already exists", op.ID)
		}
	}
	r.seq++
	rec.Seq = r.seq
	d := append(r.decisions[rec.Cluster], rec)
	if len(d) >= 2*decisionHistory { // trim in bulk, not on every decision
		d = slices.Delete(d, 0, len(d)-decisionHistory)
	}
	r.decisions[rec.Cluster] = d
	r.scaling[rec.Cluster] = cloneScaling(scaling)
	for _, op := range ops {
		r.ops[op.ID] = cloneOp(op)
		r.opOrder = append(r.opOrder, op.ID)
		if !op.Status.Finished() {
			r.open = append(r.open, op.ID)
		}
	}
	return nil
}

// Transition advances an operation with compare-and-set on its step.
func (r *MemRegistry) Transition(_ context.Context, id string, t plan.Transition) (plan.Operation, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	op, ok := r.ops[id]
	if !ok {
		return plan.Operation{}, fmt.Errorf("operation %s: %w", id, ErrNotFound)
	}
	if op.Step != t.From || op.Status.Finished() {
		return cloneOp(op), fmt.Errorf("operation %s is at %s (%s), not %s: %w", id, op.Step, op.Status, t.From, ErrStepConflict)
	}
	op = t.Apply(op)
	r.ops[id] = op
	for _, n := range t.PutNodes {
		r.putNode(n)
	}
	for _, id := range t.RemoveNodes {
		r.removeNode(id)
	}
	if op.Status.Finished() {
		r.open = slices.DeleteFunc(r.open, func(o string) bool { return o == id })
	}
	if op.Status == plan.OpDone {
		r.estimates[op.Cluster] = plan.Learn(r.estimates[op.Cluster], op)
	}
	r.forgetFinished()
	return cloneOp(op), nil
}

// forgetFinished keeps the operation table bounded: finished operations
// beyond the newest decisionHistory are dropped.
func (r *MemRegistry) forgetFinished() {
	if len(r.opOrder) <= 2*decisionHistory {
		return
	}
	keep := r.opOrder[:0]
	drop := len(r.opOrder) - decisionHistory
	for i, id := range r.opOrder {
		if i < drop && r.ops[id].Status.Finished() {
			delete(r.ops, id)
			continue
		}
		keep = append(keep, id)
	}
	r.opOrder = keep
}

// PutNode registers or updates a node.
func (r *MemRegistry) PutNode(_ context.Context, n plan.Node) error {
	if n.ID == "" || n.Cluster == "" {
		return fmt.Errorf("node needs an id and a cluster")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.putNode(n)
	return nil
}

func (r *MemRegistry) putNode(n plan.Node) {
	if _, exists := r.nodes[n.ID]; !exists {
		i, _ := slices.BinarySearch(r.nodeIDs, n.ID)
		r.nodeIDs = slices.Insert(r.nodeIDs, i, n.ID)
	}
	r.nodes[n.ID] = n
}

func (r *MemRegistry) removeNode(id string) {
	if i, ok := slices.BinarySearch(r.nodeIDs, id); ok {
		r.nodeIDs = slices.Delete(r.nodeIDs, i, i+1)
	}
	delete(r.nodes, id)
}

// Decisions returns the cluster's latest decisions, newest first.
func (r *MemRegistry) Decisions(_ context.Context, cluster string, limit int) ([]plan.DecisionRecord, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.decisions[cluster]
	out := make([]plan.DecisionRecord, 0, min(limit, len(d)))
	for i := len(d) - 1; i >= 0 && len(out) < limit; i-- {
		out = append(out, d[i])
	}
	return out, nil
}

func cloneOp(op plan.Operation) plan.Operation {
	op.Journal = slices.Clone(op.Journal)
	return op
}

func cloneScaling(s plan.ScalingState) plan.ScalingState {
	s.Recent = slices.Clone(s.Recent)
	return s
}
