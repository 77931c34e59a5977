package plan

import (
	"errors"
	"slices"
	"time"
)

// The types below are what a registry stores. They live here, on the
// ground floor, so that the in-memory and the replicated registries can
// implement the interface the controller declares without importing it.

// ErrStepConflict is returned (wrapped) by a registry when an operation is
// not at the step a transition expects: someone else advanced it.
var ErrStepConflict = errors.New("operation is not at the expected step")

// ErrNotFound is returned (wrapped) by a registry for an unknown operation.
var ErrNotFound = errors.New("not found")

// ClusterState is one cluster as its registry holds it.
type ClusterState struct {
	Nodes []Node `json:"nodes"`
	// Operations are the cluster's unfinished operations, oldest first.
	Operations []Operation  `json:"operations"`
	Scaling    ScalingState `json:"scaling"`
	Estimates  Estimates    `json:"estimates"`
	// Recent sums up the latest decisions, newest first.
	Recent []RecentDecision `json:"recent,omitempty"`
	// Settings are the operators' switches (pause, dry run).
	Settings ClusterSettings `json:"settings"`
}

// RecentDecision is the gist of a recorded decision, as policies see it.
type RecentDecision struct {
	At     time.Time `json:"at"`
	Action Action    `json:"action"`
	Count  int       `json:"count"`
}

// RecentDecisions is how many decisions ClusterState.Recent sums up.
const RecentDecisions = 16

// Estimates are durations learned from finished operations; zero until
// one has finished.
type Estimates struct {
	CloneSeconds float64 `json:"clone_seconds"`
	DrainSeconds float64 `json:"drain_seconds"`
}

// DecisionRecord is one tick's decision as recorded, with what was done
// about it and why.
type DecisionRecord struct {
	Seq           uint64        `json:"seq"`
	Cluster       string        `json:"cluster"`
	At            time.Time     `json:"at"`
	DryRun        bool          `json:"dry_run"`
	PolicyVersion string        `json:"policy_version"`
	InputDigest   string        `json:"input_digest"`
	Metrics       MetricsHealth `json:"metrics"`
	// Observed is what the tick's metrics said, in short (the whole input
	// is not kept; InputDigest identifies it).
	Observed Observed `json:"observed"`
	Decision Decision `json:"decision"`
	Size     int      `json:"size"`
	// Operations are the ids of the operations started (none in dry-run).
	Operations []string   `json:"operations,omitempty"`
	Proposals  []Proposal `json:"proposals,omitempty"`
	Reasons    []Reason   `json:"reasons,omitempty"`
	// Error is set when the tick failed before a decision (bad policy
	// output, registry error); no action was taken.
	Error string `json:"error,omitempty"`
	// By is who made a manual decision (an operator's selection through
	// the API); empty for the policy's.
	By string `json:"by,omitempty"`
}

// Observed summarizes a tick's metrics: the cluster-level values and,
// per node metric, its mean over the ready nodes of scalable roles (what
// the default policy decides on). Values that are not finite numbers are
// left out.
type Observed struct {
	Cluster   map[string]float64 `json:"cluster,omitempty"`
	NodeMeans map[string]float64 `json:"node_means,omitempty"`
	// NodeCounts counts, per metric, the ready nodes of scalable roles
	// whose mean NodeMeans gives (those that report it).
	NodeCounts map[string]int `json:"node_counts,omitempty"`
	// ReadyNodes counts the ready nodes of scalable roles.
	ReadyNodes int `json:"ready_nodes"`
}

// Transition is one atomic change to an operation. It is committed before
// the side effect of its new step, and only if the operation is still at
// From (compare-and-set), so a deposed leader cannot advance it.
type Transition struct {
	From   Step      `json:"from"`
	To     Step      `json:"to"`
	Status OpStatus  `json:"status"`
	At     time.Time `json:"at"`
	Note   string    `json:"note,omitempty"`
	Error  string    `json:"error,omitempty"`
	// CloneVM, CloneAddress and Node are recorded on the operation when
	// not empty.
	CloneVM      string `json:"clone_vm,omitempty"`
	CloneAddress string `json:"clone_address,omitempty"`
	Node         string `json:"node,omitempty"`
	// Host, when not empty, is where the clone landed, which may differ
	// from the host planned (an Instant Clone runs on its template's).
	Host string `json:"host,omitempty"`
	// Node changes committed with the step.
	PutNodes    []Node   `json:"put_nodes,omitempty"`
	RemoveNodes []string `json:"remove_nodes,omitempty"`
}

// Apply returns op after t, without checking From.
func (t Transition) Apply(op Operation) Operation {
	op.Step, op.Status, op.StepAt = t.To, t.Status, t.At
	if t.CloneVM != "" {
		op.CloneVM = t.CloneVM
	}
	if t.CloneAddress != "" {
		op.CloneAddress = t.CloneAddress
	}
	if t.Node != "" {
		op.Node = t.Node
	}
	if t.Host != "" {
		op.Host = t.Host
	}
	if t.Error != "" {
		op.Error = t.Error
	}
	op.Journal = append(slices.Clip(op.Journal), JournalItem{Step: t.To, At: t.At, Note: t.Note})
	return op
}

// Learn folds a finished operation's duration into the estimates, as an
// exponentially weighted mean that favours recent operations.
func Learn(e Estimates, op Operation) Estimates {
	if op.Status != OpDone || len(op.Journal) == 0 {
		return e
	}
	took := op.Journal[len(op.Journal)-1].At.Sub(op.CreatedAt).Seconds()
	mix := func(old float64) float64 {
		if old == 0 {
			return took
		}
		return 0.7*old + 0.3*took
	}
	switch op.Kind {
	case OpExpand:
		e.CloneSeconds = mix(e.CloneSeconds)
	case OpContract:
		e.DrainSeconds = mix(e.DrainSeconds)
	}
	return e
}
