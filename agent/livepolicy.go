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
	// failing is the pushed policy whose evaluations failed last, and
	// failures how many in a row (the loop's goroutine's alone).
	failing  string
	failures int
	// ignored is the pushed policy version --ignore-pushed-policy left
	// aside when the agent started.
	ignored string
	// checking is held by the one operator's check (validate or push) that
	// may run at once: compiling and testing a policy may take the
	// policy's whole memory budget, which must not be multiplied.
	checking sync.Mutex
}

// setAsideAfter is how many evaluations in a row a pushed policy may fail
// (an error, or its deadline overrun) before the agent sets it aside.
const setAsideAfter = 3

// byAgent is who the agent's own audit records name.
const byAgent = "mitosis-agent"

type lastInput struct {
	in  *policy.Input
	now time.Time
}

type policyInUse struct {
	engine autoscaler.PolicyEngine
	files  map[string]string // its sources, for GET /v1/policy; nil if unknown
	// pushed: not the agent's own (its file's, or the embedded default)
	// but one pushed; the agent sets it aside if it keeps failing.
	pushed bool
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

// usePolicy makes engine, a pushed policy, the policy decided with.
func (a *Agent) usePolicy(engine autoscaler.PolicyEngine, files map[string]string) {
	a.use(&policyInUse{engine: engine, files: files, pushed: true})
}

// useOwnPolicy decides with the agent's own policy (the command's).
func (a *Agent) useOwnPolicy() {
	a.use(&policyInUse{engine: a.opt.Policy, files: a.opt.PolicyFiles})
}

func (a *Agent) use(p *policyInUse) {
	a.policy.cur.Store(p)
	a.telemetry.PolicyVersion(p.engine.Version())
}

// watchPolicy counts a pushed policy's failed evaluations in the records
// of a tick, and sets it aside after setAsideAfter in a row: a policy that
// keeps failing (or overrunning its deadline) leaves the clusters
// unscaled, so the agent goes back to its own, and says so in the audit.
// Called on the loop's goroutine, after each tick.
func (a *Agent) watchPolicy(recs []plan.DecisionRecord) {
	cur := a.policy.current()
	if !cur.pushed {
		return
	}
	v := cur.engine.Version()
	if a.policy.failing != v {
		a.policy.failing, a.policy.failures = v, 0
	}
	var last string
	for _, r := range recs {
		if r.PolicyVersion != v || r.InputDigest == "" { // not evaluated (paused) or by another policy
			continue
		}
		if r.Error == "" {
			a.policy.failures = 0
			continue
		}
		a.policy.failures++
		last = r.Cluster + ": " + r.Error
	}
	if a.policy.failures >= setAsideAfter {
		a.setAside(v, last)
	}
}

// setAside decides with the agent's own policy instead of the pushed
// policy version, and records that in the registry (so that every replica
// decides with the same) with an audit record that says why.
func (a *Agent) setAside(version, why string) {
	own := a.opt.Policy
	now := a.now()
	detail := fmt.Sprintf("%s -> %s: the pushed policy failed %d evaluations in a row (last, %s); set aside for the agent's own policy until one is pushed again",
		version, own.Version(), a.policy.failures, why)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.reg.PutPolicy(ctx, plan.PolicyVersion{Version: own.Version(), Files: a.opt.PolicyFiles, By: byAgent, At: now},
		plan.AuditRecord{At: now, By: byAgent, Action: "policy-set-aside", Detail: detail}); err != nil {
		// Set aside here all the same: it fails here, whatever the registry says.
		a.log.Error("recording that the pushed policy was set aside", "error", err)
	}
	a.useOwnPolicy()
	a.policy.failing, a.policy.failures = "", 0
	a.log.Warn("policy set aside", "detail", detail)
}
