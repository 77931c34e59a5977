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
	h := &harness{clock: newClock()}
	if cfg.now == nil {
		cfg.now = h.clock.now
	}
	n, err := New(cfg, slog.New(slog.DiscardHandler))
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
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, h.srv.URL+"/work?key="+key, nil)
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: SessionCookie, Value: cookie})
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
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
	return r
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
