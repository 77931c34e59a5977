package autoscaler

import (
	"context"
	"time"

	"github.com/mitosis-autoscaler/mitosis/hypervisor"
	"github.com/mitosis-autoscaler/mitosis/metrics"
	"github.com/mitosis-autoscaler/mitosis/node"
	"github.com/mitosis-autoscaler/mitosis/plan"
	"github.com/mitosis-autoscaler/mitosis/policy"
)

// The controller's ports: small interfaces, declared here where they are
// used, each with its contract. The daemon wires real implementations in
// cmd/mitosis; the simulator wires simulated ones; the controller never
// knows which.

// Clock tells the time. Everything in this package reads time through it.
type Clock interface {
	Now() time.Time
}

// ErrStepConflict is returned (wrapped) by ControllerRegistry.Transition when the
// operation is no longer at the step the caller expected: someone else
// advanced it. Registries return plan.ErrStepConflict; this is the same.
var ErrStepConflict = plan.ErrStepConflict

// ErrNotFound is returned (wrapped) for an operation the registry lacks.
var ErrNotFound = plan.ErrNotFound

// Registry is the durable record of clusters, nodes, operations and
// decisions: the controller's part and the operators' part. Both
// registries (MemRegistry and raftstore.Store) implement it whole and
// pass the conformance suite in registrytest.
//
// Every method is safe for concurrent use, and every write is atomic: it
// happens whole or not at all. A write that returns an error may still
// have happened (as with a replicated log); callers re-read.
type Registry interface {
	ControllerRegistry
	OperatorRegistry
}

// ControllerRegistry is the part of the Registry the controller calls:
// its tick reads a cluster and records a decision; its sagas list the
// unfinished operations and move them step by step. The contract is
// Registry's.
type ControllerRegistry interface {
	// State returns a consistent copy of one cluster.
	State(ctx context.Context, cluster string) (plan.ClusterState, error)
	// Unfinished returns every unfinished operation of every cluster,
	// oldest first.
	Unfinished(ctx context.Context) ([]plan.Operation, error)
	// RecordDecision records a decision, the scaling state for the next
	// tick and the operations it starts, all at once, and returns the
	// decision as stored: with its sequence number, equal to what a later
	// Decisions returns for it. A decision with By set (an operator's)
	// carries its own audit record.
	RecordDecision(ctx context.Context, rec plan.DecisionRecord, scaling plan.ScalingState, ops []plan.Operation) (plan.DecisionRecord, error)
	// Transition moves an operation from t.From to t.To with the node
	// changes in t, or returns ErrStepConflict if it is not at t.From.
	Transition(ctx context.Context, id string, t plan.Transition) (plan.Operation, error)
}

// OperatorRegistry is the part of the Registry that the controller never
// calls: what the agent's API reads for operators (history, audit, one
// operation), what operators change (plan/admin.go), and the nodes a
// cluster starts with. The contract is Registry's.
type OperatorRegistry interface {
	// Operation returns one operation, finished or not; an unknown id
	// wraps ErrNotFound.
	Operation(ctx context.Context, id string) (plan.Operation, error)
	// Decisions returns up to limit of the cluster's latest decisions,
	// newest first.
	Decisions(ctx context.Context, cluster string, limit int) ([]plan.DecisionRecord, error)
	// PutNode registers or updates a node outside any operation (the
	// nodes a cluster starts with).
	PutNode(ctx context.Context, n plan.Node) error
	// PutSettings replaces a cluster's switches (ClusterState.Settings)
	// and records the change's audit record, at once.
	PutSettings(ctx context.Context, cluster string, s plan.ClusterSettings, a plan.AuditRecord) error
	// Audits returns up to limit of the latest audit records, newest first.
	Audits(ctx context.Context, limit int) ([]plan.AuditRecord, error)
	// PutPolicy records a pushed policy version, the one to decide with,
	// and its audit record, at once.
	PutPolicy(ctx context.Context, p plan.PolicyVersion, a plan.AuditRecord) error
	// Policy returns the policy pushed last; ok is false if none was.
	Policy(ctx context.Context) (p plan.PolicyVersion, ok bool, err error)
}

// MetricsSource takes the metric snapshot of a cluster. A source that
// cannot be trusted says so in Snapshot.Unavailable rather than failing.
type MetricsSource interface {
	Snapshot(ctx context.Context, cluster string, nodes []plan.Node) metrics.Snapshot
}

// PolicyEngine evaluates a compiled policy. Decide returns a decision that
// satisfies the policy contract or an error, never an invalid decision.
type PolicyEngine interface {
	Decide(ctx context.Context, in *policy.Input, now time.Time) (plan.Decision, error)
	// Version identifies the compiled policy (a digest of its sources).
	Version() string
}

// The hypervisor roles are the hypervisor package's, where their
// contract is written (Clone idempotent per operation and never adopting
// another operation's VM; Destroy of a missing VM is success; Lookup of a
// missing one wraps ErrVMNotFound), named here for the readers of this
// file. The sagas use all three.
type (
	VM           = hypervisor.VM
	CloneRequest = hypervisor.CloneRequest
	Cloner       = hypervisor.Cloner
	Destroyer    = hypervisor.Destroyer
	Finder       = hypervisor.Finder
	Hypervisor   = hypervisor.Hypervisor
)

// ErrVMNotFound is returned (wrapped) for a VM that does not exist.
var ErrVMNotFound = hypervisor.ErrNotFound

// Dispatcher is the load balancer in front of the nodes. Every method is
// idempotent.
type Dispatcher interface {
	// Drain stops sending the node new work; current work goes on.
	Drain(ctx context.Context, node string) error
	// Attach adds the node at address if absent and sends it work.
	Attach(ctx context.Context, node, address string) error
	// Remove takes the node out; removing an absent node is success.
	Remove(ctx context.Context, node string) error
}

// SessionCounter is a Dispatcher that can tell how many sessions
// (connections) it still has open to a node, as HAProxy can. It is
// optional: with it, a detach waits until the dispatcher too has nothing
// left open to the node before taking it out.
type SessionCounter interface {
	// Sessions returns the node's current sessions; an unknown node has 0.
	Sessions(ctx context.Context, node string) (int, error)
}

// NodeAPI talks to one node's API at its address. Every call carries the
// operation id and is idempotent per operation. A node that is not (yet)
// reachable returns an error; the sagas retry until their deadline.
type NodeAPI interface {
	Status(ctx context.Context, addr string) (node.Status, error)
	Prepare(ctx context.Context, addr string, req node.PrepareRequest) (node.PrepareReply, error)
	Resume(ctx context.Context, addr, operation string) error
	Finalize(ctx context.Context, addr string, req node.FinalizeRequest) error
	Detach(ctx context.Context, addr, operation string) error
}
