package autoscaler

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/plan"
	"github.com/mitosis-autoscaler/mitosis/policy"
)

// slowOnce is a policy whose first evaluation runs until it is cancelled
// (or 5 s pass: then it was never cut), and whose later ones decide at once.
type slowOnce struct{ calls atomic.Int32 }

func (p *slowOnce) Decide(ctx context.Context, _ *policy.Input, _ time.Time) (plan.Decision, error) {
	if p.calls.Add(1) > 1 {
		return plan.Decision{Action: plan.ActionNone, Reason: "quick"}, nil
	}
	select {
	case <-ctx.Done():
		return plan.Decision{}, &policy.EvalError{Message: "evaluation cancelled: " + context.Cause(ctx).Error(), Err: context.Cause(ctx)}
	case <-time.After(5 * time.Second):
		return plan.Decision{}, errors.New("never cut")
	}
}

func (*slowOnce) Version() string { return "slow" }

// A tick whose evaluation overruns its deadline records an error naming
// the deadline, and the loop's next tick decides again.
func TestAnEvaluationThatOverrunsIsCutAndTheNextTickDecides(t *testing.T) {
	r := newRig(t, &slowOnce{}, func(c *Config) { c.Tick.Duration = 200 * time.Millisecond })
	if got := r.cfg.PolicyDeadline(); got != 100*time.Millisecond {
		t.Fatalf("PolicyDeadline = %s, want half the tick", got)
	}
	start := time.Now()
	r.runLoop(time.Second, nil)
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the loop took %s: the slow evaluation held it", took)
	}
	recs := r.decisions()
	if len(recs) < 2 {
		t.Fatalf("%d decisions, want one a tick", len(recs))
	}
	if !strings.Contains(recs[0].Error, "overran its deadline of 100ms") {
		t.Errorf("first decision's error = %q, want it to name the deadline", recs[0].Error)
	}
	if recs[0].Decision.Action != plan.ActionNone {
		t.Errorf("an overrun acts as %s, want none", recs[0].Decision.Action)
	}
	if last := recs[len(recs)-1]; last.Error != "" || last.Decision.Reason != "quick" {
		t.Errorf("the next ticks did not decide: %+v", last)
	}
}

func TestThePolicyDeadlineIsHalfTheTickAtMostTheCap(t *testing.T) {
	for tick, want := range map[time.Duration]time.Duration{
		time.Second: 500 * time.Millisecond, 15 * time.Second: 7500 * time.Millisecond, time.Minute: MaxPolicyDeadline,
	} {
		if got := (Config{Tick: Duration{Duration: tick}}).PolicyDeadline(); got != want {
			t.Errorf("tick %s: PolicyDeadline = %s, want %s", tick, got, want)
		}
	}
}
