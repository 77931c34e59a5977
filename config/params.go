package config

import (
	"context"
	"fmt"

	"github.com/mitosis-autoscaler/mitosis/autoscaler"
)

// ParamsChecker is a policy that says which policy_params it refuses
// (policy.Engine): params it refuses would fail every tick.
type ParamsChecker interface {
	CheckParams(ctx context.Context, params map[string]any) error
}

// ParamsError is a cluster whose policy_params the policy refuses.
type ParamsError struct {
	Index   int    // in clusters
	Cluster string // its name
	Err     error  // the policy's reason
}

func (e *ParamsError) Error() string {
	return fmt.Sprintf("clusters[%d] (%s).policy_params: %v", e.Index, e.Cluster, e.Err)
}

func (e *ParamsError) Unwrap() error { return e.Err }

// CheckPolicyParams checks every cluster's policy_params against the
// policy, before anything runs: the agent and `mitosis simulate` refuse a
// file whose params the policy refuses. The error is a *ParamsError.
func CheckPolicyParams(ctx context.Context, policy ParamsChecker, clusters []autoscaler.ClusterConfig) error {
	for i, cl := range clusters {
		if err := policy.CheckParams(ctx, cl.PolicyParams); err != nil {
			return &ParamsError{Index: i, Cluster: cl.Name, Err: err}
		}
	}
	return nil
}
