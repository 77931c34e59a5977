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
	suspended             // prepared: holds its sessions' requests, takes no new session
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
	// HoldMax bounds how long a request of a suspended session waits for
	// the resume before it is answered 503.
	HoldMax time.Duration
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
	inflight   int           // requests admitted and not yet answered
	resumed    chan struct{} // closed when a suspended app resumes
	preparedAt time.Time
	cache      *cache
	sessions   *sessions
	units      int64 // work units done, the deterministic cost
}

var _ node.App = (*App)(nil)

// NewApp returns a ready App with a cold cache and no session.
func NewApp(o AppOptions) *App {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.unitRounds == 0 {
		o.unitRounds = unitRounds
	}
	return &App{
		opts: o, now: o.Now, quit: make(chan struct{}),
		id: o.ID, started: o.Now(), mode: serving,
		cache: newCache(o.CacheSize), sessions: newSessions(o.SessionIdle),
	}
}

// Close releases the requests held by a suspended app (on shutdown).
func (a *App) Close() { a.close.Do(func() { close(a.quit) }) }

// Why a request is not admitted.
var (
	errNoNewSessions = errors.New("not taking new sessions")
	errSuspended     = errors.New("suspended for a clone; retry")
	errNotFinalized  = errors.New("a clone not finalized yet")
	errFull          = errors.New("session table full")
)

// admit lets a request of session cookie in, creating a session when the
// cookie names none and the app takes new ones. A request of a suspended
// session waits for the resume (up to HoldMax). An admitted request must
// be followed by release.
func (a *App) admit(ctx context.Context, cookie string) (id string, created bool, err error) {
	a.mu.Lock()
	for {
		now := a.now()
		ss, ok := a.sessions.get(cookie, now)
		switch {
		case a.mode == cloned:
			err = errNotFinalized
		case !ok && a.mode != serving:
			err = errNoNewSessions
		case a.mode == suspended:
			// Hold the request: it is not in flight, so the app can
			// settle, and it goes on after the resume.
			wait := a.resumed
			a.mu.Unlock()
			t := time.NewTimer(a.opts.HoldMax)
			select {
			case <-wait:
				t.Stop()
			case <-t.C:
				return "", false, errSuspended
			case <-ctx.Done():
				t.Stop()
				return "", false, ctx.Err()
			case <-a.quit:
				t.Stop()
				return "", false, errSuspended
			}
			a.mu.Lock()
			continue
		case !ok:
			if ss, ok = a.sessions.create(now); !ok {
				err = errFull
			}
			created = true
		}
		if err != nil {
			a.mu.Unlock()
			return "", false, err
		}
		ss.LastSeen = now
		ss.Requests++
		a.inflight++
		a.mu.Unlock()
		return ss.ID, created, nil
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
	a.mode, a.resumed, a.preparedAt = suspended, make(chan struct{}), a.now()
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
	if a.mode == suspended {
		close(a.resumed)
	}
	a.mode = serving
	return nil
}

// Finalize keeps node.App's contract: it purges the inherited sessions
// and takes its own id and address; the warm cache stays.
func (a *App) Finalize(_ context.Context, id, address string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.sessions.purge(func(s *session) bool { return s.Inherited })
	a.id, a.address, a.mode = id, address, serving
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
