package autoscaler

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mitosis-autoscaler/mitosis/plan"
)

// Sleeper is a Clock the loop can wait on: the machine's (WallClock), or a
// simulated world's, whose Wait advances the world instead of sleeping.
type Sleeper interface {
	Clock
	// Wait returns nil once the clock has reached until, or as soon as
	// wake has a value (without taking it), and ctx.Err() when ctx ends.
	// Any other error ends the loop with it: a simulated world returns
	// ErrWorldEnded when its load has run out.
	Wait(ctx context.Context, until time.Time, wake <-chan struct{}) error
}

// ErrWorldEnded is what a simulated world's Wait returns when its load has
// run out; Loop.Run then returns nil.
var ErrWorldEnded = errors.New("the world's load has ended")

// WallClock is the machine's clock.
type WallClock struct{}

// Now is time.Now.
func (WallClock) Now() time.Time { return time.Now() }

// Wait sleeps until until, wake or the end of ctx.
func (WallClock) Wait(ctx context.Context, until time.Time, wake <-chan struct{}) error {
	d := time.Until(until)
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
	case <-wake:
	}
	return nil
}

// LoopConfig is when the loop decides and acts.
type LoopConfig struct {
	// Tick is how often it decides for every cluster.
	Tick time.Duration
	// Poll is how soon it looks again at operations in flight that could
	// not go on (a template settling, a clone booting); each look that
	// finds nothing to do doubles the wait, up to MaxPoll.
	Poll, MaxPoll time.Duration
}

// Loop is the controller's one loop, the same for the agent and the
// simulator: it decides every tick, and advances the operations in flight
// continuously — at once after a decision, an operator's request or a step
// that finished, and otherwise every Poll, backing off while nothing
// moves. A clone that joins is capacity the metrics will measure: the
// loop decides again at once rather than at the next tick.
type Loop struct {
	ctl   *Controller
	clock Sleeper
	cfg   LoopConfig

	// Lead, if set, is asked before every pass whether this controller
	// leads (taking over if it just became leader); a pass that does not
	// lead decides and advances nothing.
	Lead func(ctx context.Context) bool
	// Decided, if set, is told every tick's records and error.
	Decided func(recs []plan.DecisionRecord, err error)
	// Advanced, if set, is told the error of every pass of the actuator.
	Advanced func(err error)

	// passed is when (the machine's time, in Unix ns) the loop last
	// completed a pass: a loop that stops passing is stuck (LastPass).
	passed atomic.Int64

	mu       sync.Mutex
	requests []func(context.Context, *Controller)
	wake     chan struct{} // one token: there are requests
}

// NewLoop makes the loop of c on clock.
func NewLoop(c *Controller, clock Sleeper, cfg LoopConfig) (*Loop, error) {
	if cfg.Tick <= 0 || cfg.Poll <= 0 || cfg.MaxPoll < cfg.Poll {
		return nil, errors.New("autoscaler: the loop needs a positive tick and poll, and max poll >= poll")
	}
	return &Loop{ctl: c, clock: clock, cfg: cfg, wake: make(chan struct{}, 1)}, nil
}

// Do runs fn on the loop's goroutine, the only one that may use the
// controller, then advances the operations at once: how an operator's
// selection starts without waiting for a tick. It returns when fn has
// run, or with ctx's error if ctx ends first (fn may still run).
func (l *Loop) Do(ctx context.Context, fn func(context.Context, *Controller)) error {
	done := make(chan struct{})
	l.mu.Lock()
	l.requests = append(l.requests, func(ctx context.Context, c *Controller) {
		defer close(done)
		fn(ctx, c)
	})
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default: // a token is there already
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// runRequests runs the requests waiting; it reports whether there were any.
func (l *Loop) runRequests(ctx context.Context) bool {
	select {
	case <-l.wake:
	default:
	}
	l.mu.Lock()
	reqs := l.requests
	l.requests = nil
	l.mu.Unlock()
	for _, fn := range reqs {
		fn(ctx, l.ctl)
	}
	return len(reqs) > 0
}

// Run decides and acts until ctx ends (nil then) or the clock's world
// ends (nil too); the first tick is at once.
func (l *Loop) Run(ctx context.Context) error {
	now := l.clock.Now()
	nextTick := now
	var nextPoll time.Time
	// A decision a join triggers: when, and for which clusters (nil: none
	// is due).
	var joinDecision time.Time
	var joined []string
	poll := l.cfg.Poll
	inFlight, act := false, true // a first pass resumes what a predecessor left
	for {
		l.passed.Store(time.Now().UnixNano())
		now = l.clock.Now()
		if !l.leads(ctx) {
			// A follower looks again at the next tick.
			inFlight, joined = false, nil
			if !now.Before(nextTick) {
				nextTick = now.Add(l.cfg.Tick)
			}
		} else {
			tick := !now.Before(nextTick)
			joinDue := joined != nil && !now.Before(joinDecision)
			for pass := 0; pass < 2 && (tick || joinDue || act || inFlight && !now.Before(nextPoll)); pass++ {
				if tick || joinDue {
					var only []string // the tick decides for every cluster
					if !tick {
						only = joined
					}
					recs, err := l.ctl.TickOnly(ctx, only)
					if l.Decided != nil {
						l.Decided(recs, err)
					}
					if tick {
						if nextTick = nextTick.Add(l.cfg.Tick); !nextTick.After(now) {
							nextTick = now.Add(l.cfg.Tick) // late (a long pass, a world that jumped): no burst of ticks
						}
					}
					if joinDue { // a join whose cooldown is still running waits for it
						joined = nil
					}
					act = true
				}
				p, err := l.ctl.Advance(ctx)
				if l.Advanced != nil {
					l.Advanced(err)
				}
				inFlight = p.Unfinished > 0
				if p.Steps > 0 || act {
					poll = l.cfg.Poll
				} else {
					poll = min(2*poll, l.cfg.MaxPoll)
				}
				now = l.clock.Now()
				nextPoll, act, tick, joinDue = now.Add(poll), false, false, false
				// A clone joined: its capacity is measured, so decide again
				// for its cluster as soon as the scale-up cooldown allows (at
				// once, by default: in this pass, which decides once more at
				// most).
				if len(p.Joined) > 0 {
					at := now.Add(l.ctl.upCooldown(p.Joined))
					if joined == nil || at.Before(joinDecision) {
						joinDecision = at
					}
					for _, c := range p.Joined {
						if !slices.Contains(joined, c) {
							joined = append(joined, c)
						}
					}
					tick = pass == 0 && !now.Before(nextTick)
					joinDue = pass == 0 && !now.Before(joinDecision)
				}
			}
		}
		l.passed.Store(time.Now().UnixNano())
		until := nextTick
		if inFlight && nextPoll.Before(until) {
			until = nextPoll
		}
		if joined != nil && joinDecision.Before(until) {
			until = joinDecision
		}
		if err := l.clock.Wait(ctx, until, l.wake); err != nil {
			if errors.Is(err, ErrWorldEnded) || ctx.Err() != nil {
				return nil
			}
			return err
		}
		if l.runRequests(ctx) {
			act = true
		}
	}
}

// LastPass is when, by the machine's clock, the loop last began or ended a
// pass (or began to run): between two passes it waits a tick at most, so a
// loop whose last pass is several ticks old is stuck (a step that does not
// return). Zero before Run. Safe to call from any goroutine.
func (l *Loop) LastPass() time.Time {
	if ns := l.passed.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

func (l *Loop) leads(ctx context.Context) bool { return l.Lead == nil || l.Lead(ctx) }
