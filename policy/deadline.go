package policy

import (
	"context"
	"fmt"
	"time"
)

// DeadlineError is why an evaluation was cut short: it overran the
// deadline its caller gave it (WithDeadline). OPA stops a cancelled
// evaluation between steps, so a policy that loops for long (a comprehension
// over a large range) cannot hold the caller: Decide returns an *EvalError
// wrapping this.
type DeadlineError struct {
	Deadline time.Duration
}

func (e *DeadlineError) Error() string {
	return fmt.Sprintf("the evaluation overran its deadline of %s", e.Deadline)
}

// WithDeadline is ctx cancelled after d, with a *DeadlineError naming d as
// its cause: an evaluation under it that overruns fails with an error that
// says which deadline it overran. d <= 0 sets none.
func WithDeadline(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeoutCause(ctx, d, &DeadlineError{Deadline: d})
}
