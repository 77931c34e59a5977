package demonode

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/node"
)

const testToken = "test-token"

// clock is a clock the test moves.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Unix(1_800_000_000, 0).UTC()} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// harness is one node served by httptest, with its clock and a client of
// its node API.
type harness struct {
	n     *Node
	srv   *httptest.Server
	addr  string
	api   *node.Client
	clock *clock
}

func testConfig(t *testing.T) Config {
	return Config{
		ID: "web-1", Token: testToken, StateDir: t.TempDir(), CacheSize: 100, MissCost: 4,
		SessionIdle: 10 * time.Second, HoldMax: 10 * time.Second,
	}
}

func start(t *testing.T, cfg Config) *harness {
	t.Helper()
	return startLogged(t, cfg, slog.New(slog.DiscardHandler))
}

// startLogged is start with the node's logs going to log.
func startLogged(t *testing.T, cfg Config, log *slog.Logger) *harness {
	t.Helper()
	h := &harness{clock: newClock()}
	if cfg.now == nil {
		cfg.now = h.clock.now
	}
	n, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	h.n, h.srv = n, httptest.NewServer(n.Handler())
	t.Cleanup(h.srv.Close)
	t.Cleanup(n.App.Close) // before srv.Close: held requests let go
	h.addr = strings.TrimPrefix(h.srv.URL, "http://")
	h.api = node.NewClient(testToken, node.ClientOptions{Retries: -1})
	return h
}

// reply is a work request's answer.
type reply struct {
	code    int
	cookie  string // the session cookie set, if any
	nodeID  string
	cache   string
	units   int
	retryIn string
}

func (h *harness) work(t *testing.T, key, cookie string) reply {
	t.Helper()
	r, err := h.get(t.Context(), key, cookie)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// get sends a work request with the session cookie, if any.
func (h *harness) get(ctx context.Context, key, cookie string) (reply, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.srv.URL+"/work?key="+key, nil)
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: SessionCookie, Value: cookie})
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	r := reply{code: resp.StatusCode, nodeID: resp.Header.Get("X-Node-ID"), cache: resp.Header.Get("X-Cache"), retryIn: resp.Header.Get("Retry-After")}
	r.units, _ = strconv.Atoi(resp.Header.Get("X-Work-Units"))
	for _, c := range resp.Cookies() {
		if c.Name == SessionCookie {
			r.cookie = c.Value
		}
	}
	return r, nil
}

// workLater sends a work request in the background: its reply comes on
// the channel.
func (h *harness) workLater(t *testing.T, key, cookie string) <-chan reply {
	t.Helper()
	c := make(chan reply, 1)
	go func() {
		r, err := h.get(t.Context(), key, cookie)
		if err != nil {
			t.Error(err) // not Fatal: this is not the test's goroutine
		}
		c <- r
	}()
	return c
}

// notYet fails the test if one of the replies has come.
func notYet(t *testing.T, what string, replies ...<-chan reply) {
	t.Helper()
	time.Sleep(50 * time.Millisecond) // time enough to be answered, were it not held
	for _, c := range replies {
		select {
		case r := <-c:
			t.Fatalf("%s: answered %+v, want it held", what, r)
		default:
		}
	}
}

// within is the reply on c, or a failure after 2 s: a request let go
// is answered at once, well before the hold's 10 s.
func within(t *testing.T, what string, c <-chan reply) reply {
	t.Helper()
	select {
	case r := <-c:
		return r
	case <-time.After(2 * time.Second):
		t.Fatalf("%s: still held 2 s later", what)
		return reply{}
	}
}

func (h *harness) status(t *testing.T) node.Status {
	t.Helper()
	st, err := h.api.Status(t.Context(), h.addr)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// awaitState polls the node's status until it is in want.
func (h *harness) awaitState(t *testing.T, want node.State) node.Status {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := h.status(t)
		if st.State == want {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("state %s, want %s within 5 s", st.State, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (h *harness) prepare(t *testing.T, op string, mode node.PrepareMode) node.PrepareReply {
	t.Helper()
	r, err := h.api.Prepare(t.Context(), h.addr, node.PrepareRequest{Operation: op, Mode: mode, Deadline: time.Now().Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// post calls one of the node's own endpoints with token ("" for none).
func (h *harness) post(t *testing.T, path, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, h.srv.URL+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
