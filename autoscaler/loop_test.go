package autoscaler

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/plan"
	"github.com/mitosis-autoscaler/mitosis/policy"
)

// virtualSleeper is the fake world's clock for the loop: a wait moves the
// world's time to its end at once, and is recorded; the world ends after
// end.
type virtualSleeper struct {
	w     *fakeWorld
	end   time.Time
	waits []time.Duration
}

func (s *virtualSleeper) Now() time.Time { return s.w.Now() }

func (s *virtualSleeper) Wait(_ context.Context, until time.Time, _ <-chan struct{}) error {
	now := s.w.Now()
	if !until.Before(s.end) {
		return ErrWorldEnded
	}
	s.waits = append(s.waits, until.Sub(now))
	s.w.advance(until.Sub(now))
	return nil
}

// loopRig runs a rig's controller in its loop for a stretch of virtual
// time and reads back what it decided.
func (r *rig) runLoop(d time.Duration, lead func(context.Context) bool) *virtualSleeper {
	r.t.Helper()
	s := &virtualSleeper{w: r.w, end: r.w.Now().Add(d)}
	l, err := NewLoop(r.c, s, r.cfg.Loop())
	if err != nil {
		r.t.Fatal(err)
	}
	l.Lead = lead
	if err := l.Run(r.ctx); err != nil {
		r.t.Fatal(err)
	}
	return s
}

func (r *rig) decisions() []plan.DecisionRecord {
	r.t.Helper()
	recs, err := r.reg.Decisions(r.ctx, "web", 100)
	if err != nil {
		r.t.Fatal(err)
	}
	slices.Reverse(recs)
	return recs
}

// allOps are the operations the rig's decisions started, oldest first.
func (r *rig) allOps() []plan.Operation {
	r.t.Helper()
	var ops []plan.Operation
	for _, rec := range r.decisions() {
		for _, id := range rec.Operations {
			ops = append(ops, r.op(id))
		}
	}
	return ops
}

// growTo expands by one while the cluster is smaller than n.
func growTo(n int) policyFunc {
	return func(in *policy.Input) (plan.Decision, error) {
		if in.Cluster.Size >= n {
			return plan.Decision{Action: plan.ActionNone}, nil
		}
		return plan.Decision{Action: plan.ActionExpand, Count: 1, Template: "a1", Templates: []string{"a1", "a2"}}, nil
	}
}

// The loop decides every tick, and an expansion it decides runs to its
// end in the same instant when nothing makes it wait: no tick between the
// decision and the clone serving.
func TestTheLoopDecidesEveryTickAndActsAtOnce(t *testing.T) {
	r := newRig(t, growTo(2), nil) // two app nodes: nothing to do
	start := r.w.Now()
	r.runLoop(35*time.Second, nil)
	var at []time.Duration
	for _, rec := range r.decisions() {
		at = append(at, rec.At.Sub(start))
	}
	if want := []time.Duration{0, 10 * time.Second, 20 * time.Second, 30 * time.Second}; !slices.Equal(at, want) {
		t.Fatalf("decided at %v, want every tick (10s) from the start: %v", at, want)
	}

	r = newRig(t, growTo(3), nil)
	start = r.w.Now()
	r.runLoop(5*time.Second, nil)
	ops := r.allOps()
	if len(ops) != 1 || ops[0].Status != plan.OpDone || !ops[0].StepAt.Equal(start) {
		t.Fatalf("operations %+v: want one expansion done at the instant it was decided (%s)", ops, start)
	}
}

// A clone that joins is capacity the next decision must see: the loop
// decides again at once (cooldown.up 0), not at the next tick; with a
// cooldown, as soon as it has passed.
func TestAJoinTriggersADecision(t *testing.T) {
	r := newRig(t, growTo(4), nil)
	start := r.w.Now()
	r.runLoop(5*time.Second, nil)
	var expandsAtStart int
	for _, rec := range r.decisions() {
		if rec.At.Equal(start) && len(rec.Operations) > 0 {
			expandsAtStart++
		}
	}
	// The tick expands; its clone joins; the loop decides again in the
	// same pass (once: a decision that joins at once cannot spin).
	if expandsAtStart != 2 {
		t.Errorf("%d expansions decided at the start, want the tick's and the one its join triggered", expandsAtStart)
	}

	r = newRig(t, growTo(5), func(c *Config) { c.Clusters[0].Cooldown.Up = Dur(3 * time.Second) })
	start = r.w.Now()
	r.runLoop(9*time.Second, nil)
	var at []time.Duration
	for _, rec := range r.decisions() {
		if len(rec.Operations) > 0 {
			at = append(at, rec.At.Sub(start))
		}
	}
	if want := []time.Duration{0, 3 * time.Second, 6 * time.Second}; !slices.Equal(at, want) {
		t.Errorf("expansions decided at %v, want one as each cooldown after a join ends: %v", at, want)
	}
}

// While an operation waits (a template that does not settle), the loop
// looks again after poll, doubling the wait up to max_poll.
func TestTheLoopPollsOperationsWithBackoff(t *testing.T) {
	r := newRig(t, growTo(3), func(c *Config) {
		c.Tick, c.Poll, c.MaxPoll = Dur(time.Minute), Dur(500*time.Millisecond), Dur(5*time.Second)
		c.Clusters[0].Prepare.Deadline = Dur(20 * time.Second)
	})
	r.w.neverSettles = true
	s := r.runLoop(61*time.Second, nil)
	ms := time.Millisecond
	want := []time.Duration{500 * ms, time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	if len(s.waits) < len(want) || !slices.Equal(s.waits[:len(want)], want) {
		t.Fatalf("waits %v, want them to start %v", s.waits, want)
	}
	// The deadline passes (20 s): the expansion is undone, nothing is in
	// flight, and the loop sleeps until the next tick.
	ops := r.allOps()
	if len(ops) == 0 || ops[0].Status != plan.OpCompensated || !ops[0].StepAt.Before(r.w.now.Add(-30*time.Second)) {
		t.Fatalf("operations %+v: want the expansion compensated at its prepare deadline", ops)
	}
	if !slices.ContainsFunc(s.waits, func(d time.Duration) bool { return d > 30*time.Second }) {
		t.Errorf("waits %v: with nothing in flight the loop waits for the tick", s.waits)
	}
}

// A loop that does not lead decides and advances nothing.
func TestAFollowersLoopDoesNothing(t *testing.T) {
	r := newRig(t, growTo(3), nil)
	s := r.runLoop(35*time.Second, func(context.Context) bool { return false })
	if recs := r.decisions(); len(recs) != 0 {
		t.Fatalf("a follower decided: %+v", recs)
	}
	if want := []time.Duration{10 * time.Second, 10 * time.Second, 10 * time.Second}; !slices.Equal(s.waits, want) {
		t.Errorf("waits %v, want a look every tick: %v", s.waits, want)
	}
}

// An operator's selection runs on the loop's goroutine and its operation
// starts at once, not at the next tick.
func TestAnOperatorsCloneStartsAtOnce(t *testing.T) {
	r := newRig(t, growTo(2), func(c *Config) { c.Tick = Dur(time.Hour) })
	l, err := NewLoop(r.c, blockingSleeper{r.w}, r.cfg.Loop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(r.ctx)
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	defer func() { cancel(); <-done }()

	var rec plan.DecisionRecord
	err = l.Do(ctx, func(ctx context.Context, c *Controller) {
		rec, err = c.Manual(ctx, ManualRequest{Cluster: "web", Action: plan.ActionExpand, Template: "a1", By: "ops"})
	})
	if err != nil || len(rec.Operations) != 1 {
		t.Fatalf("manual clone: %+v %v", rec, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		op, err := r.reg.Operation(r.ctx, rec.Operations[0])
		if err == nil && op.Status == plan.OpDone {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the operator's clone is %+v %v: it did not run before the next tick (an hour away)", op, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// blockingSleeper keeps the fake world's time and waits only for a wake
// or the end of its context, as a wall clock waits for a far tick.
type blockingSleeper struct{ w *fakeWorld }

func (s blockingSleeper) Now() time.Time { return s.w.Now() }

func (s blockingSleeper) Wait(ctx context.Context, _ time.Time, wake <-chan struct{}) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-wake:
		return nil
	}
}

func TestNewLoopRefusesABadTiming(t *testing.T) {
	r := newRig(t, growTo(2), nil)
	for _, cfg := range []LoopConfig{{}, {Tick: time.Second}, {Tick: time.Second, Poll: time.Second, MaxPoll: time.Millisecond}} {
		if _, err := NewLoop(r.c, WallClock{}, cfg); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
}
