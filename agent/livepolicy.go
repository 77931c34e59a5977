package agent

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mitosis-autoscaler/mitosis/autoscaler"
	"github.com/mitosis-autoscaler/mitosis/plan"
	"github.com/mitosis-autoscaler/mitosis/policy"
)

// livePolicy is the policy the controller decides with, replaced whole
// when one is pushed: a tick uses the one it found when it began.
type livePolicy struct {
	cur atomic.Pointer[policyInUse]
	// last is each cluster's latest input and time (cluster name →
	// lastInput), on which a policy pushed to replace this one must
	// decide.
	last sync.Map
	// deadline bounds each evaluation of a pushed policy's trial run, as
	// a tick's: one that would overrun a tick is refused.
	deadline time.Duration
}

type lastInput struct {
	in  *policy.Input
	now time.Time
}

type policyInUse struct {
	engine autoscaler.PolicyEngine
	files  map[string]string // its sources, for GET /v1/policy; nil if unknown
}

func (p *livePolicy) current() *policyInUse { return p.cur.Load() }

func (p *livePolicy) Decide(ctx context.Context, in *policy.Input, now time.Time) (plan.Decision, error) {
	p.last.Store(in.Cluster.Name, lastInput{in, now}) // never modified after: the controller builds one a tick
	return p.cur.Load().engine.Decide(ctx, in, now)
}

// tryOn decides with engine on each cluster's latest input, and says
// where it fails: a policy that compiles and passes its own tests may
// still break on the inputs it is pushed to decide on (a decision of the
// wrong shape, params it does not accept).
func (p *livePolicy) tryOn(ctx context.Context, engine *policy.Engine) []string {
	var problems []string
	p.last.Range(func(k, v any) bool {
		l := v.(lastInput)
		ectx, cancel := policy.WithDeadline(ctx, p.deadline)
		_, err := engine.Decide(ectx, l.in, l.now)
		cancel()
		if err != nil {
			problems = append(problems, fmt.Sprintf("cluster %s: on its input of %s: %v", k, l.now.UTC().Format(time.RFC3339), err))
		}
		return true
	})
	slices.Sort(problems)
	return problems
}

func (p *livePolicy) Version() string { return p.cur.Load().engine.Version() }

// usePolicy makes engine the policy decided with.
func (a *Agent) usePolicy(engine autoscaler.PolicyEngine, files map[string]string) {
	a.policy.cur.Store(&policyInUse{engine: engine, files: files})
	a.telemetry.PolicyVersion(engine.Version())
}
