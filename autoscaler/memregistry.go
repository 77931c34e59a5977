package autoscaler

import (
	"context"
	"sync"

	"github.com/mitosis-autoscaler/mitosis/plan"
)

// MemRegistry is a Registry in memory, for one process: the simulator,
// tests, and a daemon that need not survive its own death. It is a mutex
// around a plan.Ledger, which holds the registry's semantics; the
// replicated registry (raftstore) applies its log to a Ledger too, so both
// keep the same contract.
type MemRegistry struct {
	mu sync.Mutex
	l  *plan.Ledger
}

var _ Registry = (*MemRegistry)(nil)

// NewMemRegistry returns an empty registry.
func NewMemRegistry() *MemRegistry {
	return &MemRegistry{l: plan.NewLedger()}
}

// State returns a copy of one cluster.
func (r *MemRegistry) State(_ context.Context, cluster string) (plan.ClusterState, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.l.State(cluster), nil
}

// Unfinished returns every unfinished operation, oldest first.
func (r *MemRegistry) Unfinished(context.Context) ([]plan.Operation, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.l.Unfinished(), nil
}

// Operation returns one operation.
func (r *MemRegistry) Operation(_ context.Context, id string) (plan.Operation, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.l.Operation(id)
}

// RecordDecision records a decision with its operations and returns it
// as stored.
func (r *MemRegistry) RecordDecision(_ context.Context, rec plan.DecisionRecord, scaling plan.ScalingState, ops []plan.Operation) (plan.DecisionRecord, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.l.RecordDecision(rec, scaling, ops)
}

// Transition advances an operation with compare-and-set on its step.
func (r *MemRegistry) Transition(_ context.Context, id string, t plan.Transition) (plan.Operation, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.l.Transition(id, t)
}

// PutNode registers or updates a node.
func (r *MemRegistry) PutNode(_ context.Context, n plan.Node) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.l.PutNode(n)
}

// Decisions returns the cluster's latest decisions, newest first.
func (r *MemRegistry) Decisions(_ context.Context, cluster string, limit int) ([]plan.DecisionRecord, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.l.Decisions(cluster, limit), nil
}

// PutSettings replaces a cluster's switches, with its audit record.
func (r *MemRegistry) PutSettings(_ context.Context, cluster string, s plan.ClusterSettings, a plan.AuditRecord) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.l.PutSettings(cluster, s, a)
}

// Audits returns the latest audit records, newest first.
func (r *MemRegistry) Audits(_ context.Context, limit int) ([]plan.AuditRecord, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.l.Audits(limit), nil
}

// PutPolicy records a pushed policy version, with its audit record.
func (r *MemRegistry) PutPolicy(_ context.Context, p plan.PolicyVersion, a plan.AuditRecord) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.l.PutPolicy(p, a)
}

// Policy returns the policy pushed last.
func (r *MemRegistry) Policy(context.Context) (plan.PolicyVersion, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.l.Policy()
	return p, ok, nil
}

// MarshalJSON serializes the registry's whole state (plan.Ledger's JSON).
func (r *MemRegistry) MarshalJSON() ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.l.MarshalJSON()
}

// ops yields the id of every operation held, finished or not, in creation
// order (for tests). The ids are taken under the lock and yielded without
// it, so the loop body may call the registry.
func (r *MemRegistry) ops(yield func(string) bool) {
	r.mu.Lock()
	ids := r.l.OperationIDs()
	r.mu.Unlock()
	for _, id := range ids {
		if !yield(id) {
			return
		}
	}
}
