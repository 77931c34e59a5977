package plan

import (
	"fmt"
	"math"
	"time"
)

// Action is what a policy asks for.
type Action string

const (
	ActionNone     Action = "none"
	ActionExpand   Action = "expand"
	ActionContract Action = "contract"
)

// Valid reports whether a is one of the known actions.
func (a Action) Valid() bool {
	return a == ActionNone || a == ActionExpand || a == ActionContract
}

// Decision is a policy's answer (data.mitosis.decision), already checked
// against the policy contract by the policy engine.
type Decision struct {
	Action Action `json:"action"`
	// Count is how many nodes to add or remove.
	Count int `json:"count,omitempty"`
	// Template is the node to clone from when expanding.
	Template string `json:"template,omitempty"`
	// Templates optionally ranks further templates, best first, used when
	// the per-template budget does not allow Count clones of Template.
	Templates []string `json:"templates,omitempty"`
	// Hosts optionally ranks the hosts clones may be placed on; empty
	// means the template's own host.
	Hosts []string `json:"hosts,omitempty"`
	// Nodes ranks the victims when contracting, best first.
	Nodes []string `json:"nodes,omitempty"`
	// Force goes on with a clone whose template did not settle by the
	// prepare deadline.
	Force bool `json:"force,omitempty"`
	// FailSafe asks for expansion even when metrics are missing or stale.
	FailSafe bool   `json:"fail_safe,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// NodeState is where a node is in its life.
type NodeState string

const (
	// NodeReady serves work.
	NodeReady NodeState = "ready"
	// NodePreparing is a template being prepared for, or stunned by, a clone.
	NodePreparing NodeState = "preparing"
	// NodeDraining takes no new work and is on its way out.
	NodeDraining NodeState = "draining"
	// NodeFailed does not answer or reported itself unhealthy.
	NodeFailed NodeState = "failed"
)

// Node is one application server of a cluster, running in one VM.
type Node struct {
	ID      string    `json:"id"`
	Cluster string    `json:"cluster"`
	Role    string    `json:"role"`
	State   NodeState `json:"state"`
	Host    string    `json:"host"`
	VM      string    `json:"vm"`
	Address string    `json:"address"`
	// Parent is the template this node was cloned from ("" for a node
	// mitosis did not make).
	Parent       string    `json:"parent,omitempty"`
	LineageDepth int       `json:"lineage_depth"`
	CreatedAt    time.Time `json:"created_at"`
}

// Host is a hypervisor host that clones may be placed on.
type Host struct {
	Name string `json:"name"`
	// Capacity is how many VMs the host may run; 0 means unlimited.
	Capacity int `json:"capacity"`
	// VMs is how many it runs now.
	VMs int `json:"vms"`
}

// Limits are the guardrails configured for one cluster.
type Limits struct {
	Min int `json:"min"`
	Max int `json:"max"`
	// ScalableRoles are the roles that may be cloned and contracted; nodes
	// of any other role (a central instance, a database) are never touched
	// and do not count towards the cluster's size.
	ScalableRoles []string `json:"scalable_roles"`

	// ScaleUpCooldown runs from the last clone's join (ScalingState.LastJoin),
	// not from the last decision: the capacity then exists and the metrics
	// measure it. ScaleDownCooldown runs from the last expansion or
	// contraction decision.
	ScaleUpCooldown   time.Duration `json:"scale_up_cooldown"`
	ScaleDownCooldown time.Duration `json:"scale_down_cooldown"`
	// ScaleDownStabilization is how long contraction must be wanted, on
	// every tick, before it happens.
	ScaleDownStabilization time.Duration `json:"scale_down_stabilization"`

	// Budgets of operations in flight at once; 0 means unlimited.
	MaxOpsPerCluster  int `json:"max_ops_per_cluster"`
	MaxOpsPerTemplate int `json:"max_ops_per_template"`
	MaxOpsPerHost     int `json:"max_ops_per_host"`

	// MaxGrowth bounds expansions in flight to (MaxGrowth-1) times the ready
	// scalable nodes (at least one while any is ready), so no round more
	// than multiplies the cluster by MaxGrowth however far the policy
	// overshoots; 0 means unlimited, and a value in (0, 1] is invalid.
	MaxGrowth float64 `json:"max_growth"`
}

// Validate checks the limits on their own, naming the field at fault.
func (l Limits) Validate() error {
	switch {
	case l.Min < 0:
		return fmt.Errorf("min: must be >= 0, got %d", l.Min)
	case l.Max < 1:
		return fmt.Errorf("max: must be >= 1, got %d", l.Max)
	case l.Min > l.Max:
		return fmt.Errorf("min: %d is above max %d", l.Min, l.Max)
	case len(l.ScalableRoles) == 0:
		return fmt.Errorf("scalable_roles: at least one role is needed")
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"scale_up_cooldown", int64(l.ScaleUpCooldown)},
		{"scale_down_cooldown", int64(l.ScaleDownCooldown)},
		{"scale_down_stabilization", int64(l.ScaleDownStabilization)},
		{"max_ops_per_cluster", int64(l.MaxOpsPerCluster)},
		{"max_ops_per_template", int64(l.MaxOpsPerTemplate)},
		{"max_ops_per_host", int64(l.MaxOpsPerHost)},
	} {
		if f.v < 0 {
			return fmt.Errorf("%s: must not be negative", f.name)
		}
	}
	if g := l.MaxGrowth; g != 0 && !(g > 1 && !math.IsInf(g, 1)) { // NaN fails g > 1
		return fmt.Errorf("max_growth: must be 0 (unlimited) or a finite number above 1, got %g", g)
	}
	return nil
}

// Scalable reports whether nodes of role may be cloned and contracted.
func (l Limits) Scalable(role string) bool {
	for _, r := range l.ScalableRoles {
		if r == role {
			return true
		}
	}
	return false
}

// OpKind is the kind of an operation.
type OpKind string

const (
	OpExpand   OpKind = "expand"
	OpContract OpKind = "contract"
)

// OpStatus is where an operation is in its life.
type OpStatus string

const (
	// OpRunning has steps left to run (possibly compensating ones).
	OpRunning OpStatus = "running"
	// OpDone finished every step.
	OpDone OpStatus = "done"
	// OpCompensated failed and undid what it had done.
	OpCompensated OpStatus = "compensated"
	// OpFailed failed and could not undo everything; an operator must look.
	OpFailed OpStatus = "failed"
)

// Finished reports whether no step is left to run.
func (s OpStatus) Finished() bool { return s == OpDone || s == OpCompensated || s == OpFailed }

// Step names one step of a saga; an operation's Step is the step whose
// side effect is about to happen or is under way. It is committed before
// the side effect, so a new leader knows exactly what may have happened.
type Step string

// Operation is one expansion (a clone) or one contraction (a detach), run
// as a saga step by step.
type Operation struct {
	ID      string   `json:"id"`
	Kind    OpKind   `json:"kind"`
	Cluster string   `json:"cluster"`
	Status  OpStatus `json:"status"`
	Step    Step     `json:"step"`
	// Expand: the template, the host the clone goes to, whether to force
	// past an unsettled prepare; once cloned, the clone's VM and node.
	Template string `json:"template,omitempty"`
	Host     string `json:"host,omitempty"`
	Force    bool   `json:"force,omitempty"`
	// Clone is the name the clone's VM and node will have, given when the
	// expansion is planned (NameClones) and never changed; expansions
	// recorded before clone names were have none (see CloneName).
	Clone        string `json:"clone,omitempty"`
	CloneVM      string `json:"clone_vm,omitempty"`
	CloneAddress string `json:"clone_address,omitempty"`
	// Node is the clone (expand) or the victim (contract).
	Node string `json:"node,omitempty"`
	// Reason says why the operation exists, then why it failed if it did.
	Reason string `json:"reason,omitempty"`
	Error  string `json:"error,omitempty"`
	// Fence is the fencing token of the leader that created it.
	Fence     uint64    `json:"fence,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// StepAt is when Step was entered (deadlines count from it).
	StepAt  time.Time     `json:"step_at"`
	Journal []JournalItem `json:"journal,omitempty"`
}

// JournalItem records one committed step of an operation.
type JournalItem struct {
	Step Step      `json:"step"`
	At   time.Time `json:"at"`
	Note string    `json:"note,omitempty"`
}

// Proposal is an operation Plan wants started; the caller gives it an id
// and commits it.
type Proposal struct {
	Kind     OpKind `json:"kind"`
	Template string `json:"template,omitempty"`
	Host     string `json:"host,omitempty"`
	Node     string `json:"node,omitempty"`
	Force    bool   `json:"force,omitempty"`
}

// Recommendation is the size one tick wanted, kept for the stabilization
// window.
type Recommendation struct {
	At   time.Time `json:"at"`
	Size int       `json:"size"`
}

// ScalingState is what the guardrails remember between ticks for one
// cluster. It is opaque to policies and lives in the registry.
type ScalingState struct {
	// LastExpand and LastContract are the last decisions that proposed an
	// expansion or a contraction.
	LastExpand   time.Time `json:"last_expand"`
	LastContract time.Time `json:"last_contract"`
	// LastJoin is when the cluster's last clone joined (its expansion
	// finished done). The registry sets it, not Plan, and never moves it
	// back: the scale-up cooldown runs from it.
	LastJoin time.Time `json:"last_join"`
	// ContractSince is when the current unbroken run of ticks wanting
	// contraction began; zero when the last tick did not want it.
	ContractSince time.Time `json:"contract_since"`
	// Recent holds the sizes wanted by the ticks of that run inside the
	// stabilization window, oldest first.
	Recent []Recommendation `json:"recent,omitempty"`
	// Clones is the number of the cluster's last named clone (NameClones);
	// it only grows, so a name is never given twice.
	Clones int `json:"clones,omitempty"`
}

// MetricsHealth says whether the metrics the decision rests on were usable.
type MetricsHealth struct {
	Available bool   `json:"available"`
	Reason    string `json:"reason,omitempty"`
}
