package sim

import (
	"testing"

	"context"
	"github.com/mitosis-autoscaler/mitosis/autoscaler"
	"math"
	"slices"
	"time"

	"github.com/mitosis-autoscaler/mitosis/plan"
	"github.com/mitosis-autoscaler/mitosis/policies"
	"github.com/mitosis-autoscaler/mitosis/policy"
)

// targetPolicy is a small Go policy for tests that must not depend on the
// Rego policies: it sizes the cluster for a target utilization, clones
// the warmest ready nodes and contracts the coldest.
type targetPolicy struct{ target, low float64 }

func (targetPolicy) Version() string { return "test-target" }

func (p targetPolicy) Decide(_ context.Context, in *policy.Input, _ time.Time) (plan.Decision, error) {
	m, ok := in.Metrics["utilization"]
	if !ok {
		return plan.Decision{Action: plan.ActionNone, Reason: "no utilization"}, nil
	}
	type cand struct {
		id   string
		warm float64
	}
	var ready []cand
	for _, n := range in.Nodes {
		if n.State == "ready" {
			ready = append(ready, cand{n.ID, n.Metrics["cache_hit_ratio"].Value})
		}
	}
	slices.SortFunc(ready, func(a, b cand) int {
		if a.warm != b.warm {
			if a.warm > b.warm {
				return -1
			}
			return 1
		}
		if a.id < b.id {
			return -1
		}
		return 1
	})
	serving := in.Metrics["nodes_serving"].Value
	want := int(math.Ceil(serving * m.Value / p.target))
	switch {
	case m.Value > p.target && want > in.Cluster.Size && len(ready) > 0:
		d := plan.Decision{Action: plan.ActionExpand, Count: want - in.Cluster.Size, Template: ready[0].id, Reason: "busy"}
		for _, c := range ready[1:] {
			d.Templates = append(d.Templates, c.id)
		}
		return d, nil
	case m.Value < p.low && in.Cluster.Size > in.Cluster.Min && len(ready) > 1:
		d := plan.Decision{Action: plan.ActionContract, Count: 1, Reason: "idle"}
		for i := len(ready) - 1; i >= 0; i-- {
			d.Nodes = append(d.Nodes, ready[i].id)
		}
		return d, nil
	}
	return plan.Decision{Action: plan.ActionNone}, nil
}

// defaultPolicy is the embedded default Rego policy, which the benchmarks
// and the acceptance test run.
func defaultPolicy(tb testing.TB) autoscaler.PolicyEngine {
	tb.Helper()
	e, err := policy.LoadFS(policies.FS, "policies")
	if err != nil {
		tb.Fatal(err)
	}
	return e
}
