package demonode

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/mitosis-autoscaler/mitosis/node"
)

// mode is what the app does with work, following its protocol state.
type mode int

const (
	serving   mode = iota // ready: takes new sessions
	suspended             // prepared: holds every request until the resume, takes no new session
	detaching             // serves its sessions until they end, takes no new one
	cloned                // a clone not yet finalized: serves nothing
)

func (m mode) String() string {
	return [...]string{"serving", "suspended", "detaching", "cloned"}[m]
}

// AppOptions configure an App.
type AppOptions struct {
	ID          string
	CacheSize   int
	MissCost    int           // extra work units of a miss
	SessionIdle time.Duration // a session idle this long ends
	// RefusePrepare, if set, is the reason every prepare is declined with.
	RefusePrepare string
	// SettleDelay keeps a prepared app unsettled this long, to stand for
	// an application that is slow to suspend its work.
	SettleDelay time.Duration
	// HoldMax bounds how long a request held by a suspended app waits for
	// the resume before it is answered 503.
	HoldMax time.Duration
	// Cloned starts the app as a clone not finalized yet: it serves
	// nothing until a finalize gives it its id.
	Cloned bool
	// Finalized, if set, is called with the new id after each finalize,
	// outside the app's lock: what a node does besides the app's own.
	Finalized func(id string)
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	// unitRounds is the CPU work of a unit; 0 means the package's
	// unitRounds. Tests of counts make it small, to run fast.
	unitRounds int
}

// App is the demo application: cached work, sessions, and its side of
// the clone protocol (it implements node.App). It is safe for concurrent
// use.
type App struct {
	opts  AppOptions
	now   func() time.Time
	quit  chan struct{} // closed by Close: held requests give up
	close sync.Once

	mu         sync.Mutex
	id         string
	address    string
	started    time.Time // the uptime origin; a clone inherits its template's
	mode       mode
	inflight   int   // requests admitted and not yet answered
	hold       *hold // what the requests of a suspended app wait on
	preparedAt time.Time
	cache      *cache
	sessions   *sessions
	units      int64 // work units done, the deterministic cost
}

var _ node.App = (*App)(nil)

// hold is what the requests held by a suspended app wait for: over is
// closed when the app resumes, or when a clone's finalize drops them
// (dropped is set first, so a request that sees over closed reads it
// safely: the close happens before the receive).
type hold struct {
	over    chan struct{}
	dropped bool
}

// NewApp returns a ready App with a cold cache and no session.
func NewApp(o AppOptions) *App {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.unitRounds == 0 {
		o.unitRounds = unitRounds
	}
	a := &App{
		opts: o, now: o.Now, quit: make(chan struct{}),
		id: o.ID, started: o.Now(), mode: serving,
		cache: newCache(o.CacheSize), sessions: newSessions(o.SessionIdle),
	}
	if o.Cloned {
		a.mode = cloned
	}
	return a
}

// Close releases the requests held by a suspended app (on shutdown).
func (a *App) Close() { a.close.Do(func() { close(a.quit) }) }

// Why a request is not admitted.
var (
	errNoNewSessions = errors.New("not taking new sessions")
	errSuspended     = errors.New("suspended for a clone; retry")
	errNotFinalized  = errors.New("a clone not finalized yet")
	errFull          = errors.New("session table full")
	errDropped       = errors.New("held for the template's client, dropped by the clone's finalize")
)

// admit lets a request of session cookie in, creating a session when the
// cookie names none and the app takes new ones. While the app is
// suspended every request waits for the resume (up to HoldMax), a new
// session's as an existing one's: the template of a one-node cluster
// stays in the dispatcher while it is cloned, and its clients are kept
// waiting rather than failed. An admitted request must be followed by
// release.
func (a *App) admit(ctx context.Context, cookie string) (id string, created bool, err error) {
	a.mu.Lock()
	for a.mode == suspended {
		// Held, the request is not in flight, so the app can settle.
		h := a.hold
		a.mu.Unlock()
		if err := a.await(ctx, h); err != nil {
			return "", false, err
		}
		a.mu.Lock()
	}
	defer a.mu.Unlock()
	now := a.now()
	ss, ok := a.sessions.get(cookie, now)
	switch {
	case a.mode == cloned:
		return "", false, errNotFinalized
	case !ok && a.mode != serving:
		return "", false, errNoNewSessions
	case !ok:
		if ss, ok = a.sessions.create(now); !ok {
			return "", false, errFull
		}
		created = true
	}
	ss.LastSeen = now
	ss.Requests++
	a.inflight++
	return ss.ID, created, nil
}

// await waits for the hold h to end: nil once the app resumed, else why
// the request gives up (HoldMax passed, the client left, the app is
// closing, or a clone's finalize dropped it).
func (a *App) await(ctx context.Context, h *hold) error {
	t := time.NewTimer(a.opts.HoldMax)
	defer t.Stop()
	select {
	case <-h.over:
		if h.dropped {
			return errDropped
		}
		return nil
	case <-t.C:
		return errSuspended
	case <-ctx.Done():
		return ctx.Err()
	case <-a.quit:
		return errSuspended
	}
}

// release ends an admitted request.
func (a *App) release() {
	a.mu.Lock()
	a.inflight--
	a.mu.Unlock()
}

// lookup serves key: from the cache (one unit of work) or computed (one
// plus the miss cost). It returns the value, its rendering (the unit
// every request costs), whether it was a hit, and the units it cost.
func (a *App) lookup(key string) (value, render string, hit bool, units int) {
	a.mu.Lock()
	value, hit = a.cache.get(key)
	a.mu.Unlock()
	units = 1
	if !hit {
		// Computed outside the lock: concurrent misses run in parallel.
		value = compute(key, a.opts.MissCost*a.opts.unitRounds)
		units += a.opts.MissCost
	}
	render = compute(value, a.opts.unitRounds)
	a.mu.Lock()
	if !hit {
		a.cache.put(key, value)
	}
	a.units += int64(units)
	a.mu.Unlock()
	return value, render, hit, units
}

// ID returns the node's current id.
func (a *App) ID() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.id
}

// WorkUnits returns the work units done since start (not inherited).
func (a *App) WorkUnits() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.units
}

// CacheEntries returns how many values the cache holds.
func (a *App) CacheEntries() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cache.len()
}

// TakesNewSessions reports whether the app is ready for new sessions.
func (a *App) TakesNewSessions() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.mode == serving
}

// Prepare keeps node.App's contract. It declines with RefusePrepare when
// set. In PrepareEnd mode it also ends the pending sessions.
func (a *App) Prepare(_ context.Context, m node.PrepareMode) error {
	if a.opts.RefusePrepare != "" {
		return node.Refuse(a.opts.RefusePrepare)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.mode, a.hold, a.preparedAt = suspended, &hold{over: make(chan struct{})}, a.now()
	if m == node.PrepareEnd {
		a.sessions.purge(func(*session) bool { return true })
	}
	return nil
}

// Settled keeps node.App's contract: no request in flight (held ones do
// not count) and the settle delay passed.
func (a *App) Settled() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.inflight == 0 && a.now().Sub(a.preparedAt) >= a.opts.SettleDelay
}

// Resume keeps node.App's contract and lets the held requests go on.
func (a *App) Resume(context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.endHold(false)
	a.mode = serving
	return nil
}

// endHold lets the held requests go: on (after a resume) or, dropped,
// with a 503 (after a clone's finalize). a.mu is held.
func (a *App) endHold(drop bool) {
	if a.hold == nil {
		return
	}
	a.hold.dropped = drop
	close(a.hold.over)
	a.hold = nil
}

// Finalize keeps node.App's contract: it purges every session and drops
// the held requests, then takes its own id and address; the warm cache
// stays. A clone takes no session before its finalize, so all it holds
// then is its template's, whether it was restored from a state file or
// continues its template's memory (a live clone of the VM, still
// suspended); the held requests are the template's clients', which the
// template serves.
func (a *App) Finalize(_ context.Context, id, address string) error {
	a.mu.Lock()
	a.sessions.purge(func(*session) bool { return true })
	a.endHold(true)
	a.id, a.address, a.mode = id, address, serving
	a.mu.Unlock()
	if f := a.opts.Finalized; f != nil {
		f(id)
	}
	return nil
}

// Detach keeps node.App's contract: no new session; the current ones go
// on until they are idle for the idle timeout.
func (a *App) Detach(context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.mode = detaching
	return nil
}

// Sessions keeps node.App's contract: the live sessions.
func (a *App) Sessions() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.sessions.count(a.now())
}

// Warmth keeps node.App's contract: the hit ratio over the recent
// lookups and the uptime since the uptime origin.
func (a *App) Warmth() node.Warmth {
	a.mu.Lock()
	defer a.mu.Unlock()
	return node.Warmth{CacheHitRatio: a.cache.hitRatio(), Uptime: a.now().Sub(a.started)}
}
