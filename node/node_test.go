package node_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/autoscaler"
	"github.com/mitosis-autoscaler/mitosis/node"
	"github.com/mitosis-autoscaler/mitosis/node/nodetest"
)

var _ autoscaler.NodeAPI = (*node.Client)(nil)

// app is an in-memory App: it settles a moment after it is prepared, and
// records what it was asked.
type app struct {
	mu       sync.Mutex
	refuse   string
	fail     error // every call but Sessions, Settled and Warmth fails with it
	sessions int
	settle   time.Duration // how long after Prepare it settles; 0: 30 ms
	settleAt time.Time
	calls    []string
	id, addr string
}

func (a *app) record(s string) { a.mu.Lock(); a.calls = append(a.calls, s); a.mu.Unlock() }

func (a *app) Prepare(_ context.Context, mode node.PrepareMode) error {
	if a.refuse != "" {
		return node.Refuse(a.refuse)
	}
	if a.fail != nil {
		return a.fail
	}
	a.record("prepare " + string(mode))
	a.mu.Lock()
	d := a.settle
	if d == 0 {
		d = 30 * time.Millisecond
	}
	a.settleAt = time.Now().Add(d)
	a.mu.Unlock()
	return nil
}
func (a *app) Settled() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.settleAt.IsZero() { // restored, never prepared here
		return a.settle <= 0
	}
	return time.Now().After(a.settleAt)
}
func (a *app) Resume(context.Context) error {
	if a.fail != nil {
		return a.fail
	}
	a.record("resume")
	return nil
}
func (a *app) Finalize(_ context.Context, id, addr string) error {
	if a.fail != nil {
		return a.fail
	}
	a.record("finalize " + id)
	a.mu.Lock()
	a.sessions, a.id, a.addr = 0, id, addr
	a.mu.Unlock()
	return nil
}
func (a *app) Detach(context.Context) error {
	if a.fail != nil {
		return a.fail
	}
	a.record("detach")
	return nil
}
func (a *app) Sessions() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.sessions
}
func (a *app) Warmth() node.Warmth { return node.Warmth{CacheHitRatio: 0.5, Uptime: time.Minute} }

const token = "s3cret-token"

func serve(t *testing.T, a *app, opts node.ServerOptions) (string, *node.Server) {
	t.Helper()
	opts.Token = token
	if opts.ID == "" {
		opts.ID = "web-1"
	}
	s, err := node.NewServer(a, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), s
}

func TestServerConformance(t *testing.T) {
	nodetest.Run(t, nodetest.Harness{
		New: func(t *testing.T) nodetest.Target {
			addr, _ := serve(t, &app{}, node.ServerOptions{})
			return nodetest.Target{Addr: addr, Token: token}
		},
		NewClone: func(t *testing.T, op string) nodetest.Target {
			// A live copy of web-1, prepared by op, with the sessions it suspended.
			addr, _ := serve(t, &app{sessions: 7}, node.ServerOptions{Restore: &node.Snapshot{
				ID: "web-1", State: node.StatePrepared, Operation: op, Generation: 3,
				Records: []node.Record{{Call: "prepare", Operation: op, Reply: &node.PrepareReply{Accepted: true}}},
			}})
			return nodetest.Target{Addr: addr, Token: token}
		},
		Refusing: func(t *testing.T) nodetest.Target {
			addr, _ := serve(t, &app{refuse: "running a batch job"}, node.ServerOptions{})
			return nodetest.Target{Addr: addr, Token: token}
		},
	})
}

func TestRepeatedCallsReachTheAppOnce(t *testing.T) {
	a := &app{}
	addr, _ := serve(t, a, node.ServerOptions{})
	c := node.NewClient(token, node.ClientOptions{})
	ctx := context.Background()
	for range 3 {
		if _, err := c.Prepare(ctx, addr, node.PrepareRequest{Operation: "op-1", Mode: node.PrepareEnd}); err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.Join(a.calls, ","); got != "prepare end" {
		t.Errorf("the app was called %q, want one prepare", got)
	}
}

func TestDetachedWhenTheLastSessionEnds(t *testing.T) {
	a := &app{sessions: 2}
	addr, _ := serve(t, a, node.ServerOptions{})
	c := node.NewClient(token, node.ClientOptions{})
	ctx := context.Background()
	if err := c.Detach(ctx, addr, "op-1"); err != nil {
		t.Fatal(err)
	}
	if st, _ := c.Status(ctx, addr); st.State != node.StateDetaching || st.Sessions != 2 {
		t.Fatalf("with sessions left: %+v, want detaching", st)
	}
	a.mu.Lock()
	a.sessions = 0
	a.mu.Unlock()
	if st, _ := c.Status(ctx, addr); st.State != node.StateDetached {
		t.Fatalf("without sessions: %+v, want detached", st)
	}
}

func TestMarkClonedLetsARunningProcessBeFinalized(t *testing.T) {
	a := &app{}
	addr, s := serve(t, a, node.ServerOptions{})
	s.MarkCloned()
	c := node.NewClient(token, node.ClientOptions{})
	if err := c.Finalize(context.Background(), addr, node.FinalizeRequest{Operation: "op-1", ID: "web-9", Address: addr}); err != nil {
		t.Fatal(err)
	}
	if s.ID() != "web-9" || a.id != "web-9" || a.addr != addr {
		t.Errorf("identity not taken: server %s app %s %s", s.ID(), a.id, a.addr)
	}
}

func TestNewServerNeedsATokenAnIDAndAKnownState(t *testing.T) {
	if _, err := node.NewServer(&app{}, node.ServerOptions{ID: "x"}); err == nil {
		t.Error("no token accepted")
	}
	if _, err := node.NewServer(&app{}, node.ServerOptions{Token: "t"}); err == nil {
		t.Error("no id accepted")
	}
	if _, err := node.NewServer(&app{}, node.ServerOptions{Token: "t", Restore: &node.Snapshot{ID: "x", State: "dozing"}}); err == nil {
		t.Error("an unknown state restored")
	}
}

func TestClientRetriesTransportErrorsAndServerErrorsOnly(t *testing.T) {
	var calls atomic.Int32
	fail := atomic.Int32{}
	status := atomic.Int32{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if fail.Add(-1) >= 0 {
			w.WriteHeader(int(status.Load()))
			_, _ = w.Write([]byte(`{"error":"try later","state":"preparing"}`))
			return
		}
		_, _ = w.Write([]byte(`{"id":"n","state":"ready","ready":true}`))
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	c := node.NewClient(token, node.ClientOptions{Retries: 3, Backoff: time.Millisecond})
	ctx := context.Background()

	for _, tc := range []struct {
		status, failures int
		wantCalls        int32
		check            func(error) bool
	}{
		{503, 2, 3, func(err error) bool { return err == nil }},
		{500, 5, 4, func(err error) bool { return err != nil && strings.Contains(err.Error(), "try later") }},
		{409, 1, 1, func(err error) bool {
			var se *node.StateError
			return errors.As(err, &se) && se.State == node.StatePreparing
		}},
		{400, 1, 1, func(err error) bool { return err != nil && strings.Contains(err.Error(), "400") }},
		{429, 1, 1, func(err error) bool { return err != nil && strings.Contains(err.Error(), "429") }},
		{404, 1, 1, func(err error) bool { return err != nil && strings.Contains(err.Error(), "404") }},
		{401, 1, 1, func(err error) bool { return errors.Is(err, node.ErrUnauthorized) }},
	} {
		calls.Store(0)
		fail.Store(int32(tc.failures))
		status.Store(int32(tc.status))
		_, err := c.Status(ctx, addr)
		if !tc.check(err) || calls.Load() != tc.wantCalls {
			t.Errorf("status %d ×%d: %d calls, error %v; want %d calls", tc.status, tc.failures, calls.Load(), err, tc.wantCalls)
		}
	}

	// A node that does not answer is retried, then given up on.
	srv.Close()
	if _, err := c.Status(ctx, addr); err == nil || !strings.Contains(err.Error(), addr) {
		t.Errorf("a node that is down: %v", err)
	}
}

// Snapshot posts the node's own path and query, with the token, and is
// retried as the node API's calls are.
func TestClientSnapshotPostsTheNodesOwnPath(t *testing.T) {
	var calls atomic.Int32
	var got atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		got.Store(r.Method + " " + r.URL.RequestURI() + " " + r.Header.Get("Authorization"))
	}))
	defer srv.Close()
	c := node.NewClient(token, node.ClientOptions{Backoff: time.Millisecond})
	if err := c.Snapshot(context.Background(), strings.TrimPrefix(srv.URL, "http://"), "/-/snapshot?file=%2Fvms%2Fa.state"); err != nil {
		t.Fatal(err)
	}
	if want := "POST /-/snapshot?file=%2Fvms%2Fa.state Bearer " + token; got.Load() != want || calls.Load() != 2 {
		t.Errorf("%d calls, the last %q; want 2, the last %q", calls.Load(), got.Load(), want)
	}
}

func TestClientHonoursItsContext(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	c := node.NewClient(token, node.ClientOptions{Retries: 100, Backoff: 50 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Status(ctx, strings.TrimPrefix(srv.URL, "http://"))
	if err == nil || time.Since(start) > 2*time.Second {
		t.Errorf("error %v after %s: want a context error within about 200ms", err, time.Since(start))
	}
}

// A node that hangs is given up on after the per-attempt timeout and
// tried again; the bearer token goes with every attempt.
func TestClientTimesOutEachAttempt(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if calls.Add(1) == 1 {
			<-r.Context().Done() // hang until the client gives up
			return
		}
		_, _ = w.Write([]byte(`{"id":"n","state":"ready","ready":true}`))
	}))
	defer srv.Close()
	c := node.NewClient(token, node.ClientOptions{Timeout: 50 * time.Millisecond, Retries: 2, Backoff: time.Millisecond})
	st, err := c.Status(context.Background(), strings.TrimPrefix(srv.URL, "http://"))
	if err != nil || st.ID != "n" || calls.Load() != 2 {
		t.Errorf("status %+v, error %v after %d calls; want n after 2", st, err, calls.Load())
	}
}
