package autoscaler

import (
	"time"

	"github.com/mitosis-autoscaler/mitosis/plan"
)

// Observer is told what the controller did, for the agent's own metrics.
// Its methods are called synchronously from the tick and the sagas, so
// they must be quick and must not block; Deps.Observer may be nil.
type Observer interface {
	// Ticked reports one cluster's tick: the decision it recorded and
	// the cluster as the tick saw it (before the tick's operations).
	Ticked(t TickReport)
	// Stepped reports a committed step of an operation: op is the
	// operation after the step, from the step it left, held for took
	// (by the controller's clock). op.Status says whether it finished.
	Stepped(op plan.Operation, from plan.Step, took time.Duration)
}

// TickReport is one cluster's tick.
type TickReport struct {
	Record plan.DecisionRecord
	State  plan.ClusterState
	Limits plan.Limits
}
