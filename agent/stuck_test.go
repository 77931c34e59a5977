package agent

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/agent/wire"
	"github.com/mitosis-autoscaler/mitosis/autoscaler"
	"github.com/mitosis-autoscaler/mitosis/config"
)

// startAgent is runAgent with opt's policy and token "t0k", edit applied
// to the agent before it runs.
func startAgent(t *testing.T, cfg config.File, opt Options, edit func(*Agent)) *Agent {
	t.Helper()
	opt.Listen, opt.Token, opt.Version, opt.World = "127.0.0.1:0", "t0k", "test", worldOf(t, cfg)
	if opt.Policy == nil {
		opt.Policy = defaultPolicy(t)
	}
	a, err := New(cfg, opt)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(a)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return a
}

// blockLoop holds the agent's loop in a step that does not return until
// the test ends (or the returned function is called).
func blockLoop(t *testing.T, a *Agent) (release func()) {
	t.Helper()
	held, free := make(chan struct{}), make(chan struct{})
	go a.loop.Do(context.Background(), func(context.Context, *autoscaler.Controller) { close(held); <-free })
	<-held
	var once bool
	release = func() {
		if !once {
			once = true
			close(free)
		}
	}
	t.Cleanup(release) // before the agent's own cleanup, which waits for the loop
	return release
}

func getReady(t *testing.T, a *Agent) (int, string) {
	t.Helper()
	r, err := http.Get("http://" + a.Addr() + "/-/ready")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return r.StatusCode, string(b)
}

func waitReady(t *testing.T, a *Agent, want int, says string) {
	t.Helper()
	var code int
	var body string
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if code, body = getReady(t, a); code == want && strings.Contains(body, says) {
			return
		}
	}
	t.Fatalf("/-/ready: %d %q; want %d saying %q", code, body, want, says)
}

// A loop that stops passing makes /-/ready answer 503 saying so, and 200
// again once it passes.
func TestReadyReportsAStuckLoop(t *testing.T) {
	cfg, err := config.Parse([]byte(simulatedFile), "sim.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := defaultTiming(cfg).stuckAfter, time.Minute; got != want {
		t.Errorf("stuckAfter = %s for a 15s tick, want %s", got, want)
	}
	cfg30 := cfg
	cfg30.Tick.Duration = 30 * time.Second
	if got, want := defaultTiming(cfg30).stuckAfter, 90*time.Second+10*time.Second; got != want {
		t.Errorf("stuckAfter = %s for a 30s tick, want %s", got, want)
	}
	a := startAgent(t, cfg, Options{}, func(a *Agent) { a.timing.stuckAfter = 300 * time.Millisecond })
	waitReady(t, a, http.StatusOK, "ready")
	release := blockLoop(t, a)
	waitReady(t, a, http.StatusServiceUnavailable, "its loop is stuck: no pass for")
	release()
	waitReady(t, a, http.StatusOK, "ready")
}

// When the loop is busy, an operator's clone is answered 503 saying so
// before the HTTP server's write timeout: not an empty reply.
func TestABusyLoopIsA503BeforeTheWriteTimeout(t *testing.T) {
	cfg, err := config.Parse([]byte(simulatedFile), "sim.yaml")
	if err != nil {
		t.Fatal(err)
	}
	a := startAgent(t, cfg, Options{}, func(a *Agent) { a.timing.writeTimeout = 1200 * time.Millisecond })
	waitReady(t, a, http.StatusOK, "ready")
	st, err := a.reg.State(context.Background(), "web")
	if err != nil || len(st.Nodes) == 0 {
		t.Fatalf("state: %v %v", st, err)
	}
	blockLoop(t, a)
	start := time.Now()
	code, body := call(t, a, http.MethodPost, "/v1/clusters/web/clone", `{"template": "`+st.Nodes[0].ID+`"}`)
	var e wire.ErrorBody
	if code != http.StatusServiceUnavailable || json.Unmarshal([]byte(body), &e) != nil ||
		!strings.Contains(e.Message, "did not take the request in time") {
		t.Errorf("clone on a busy loop: %d %q; want 503 saying the loop did not take it", code, body)
	}
	if took := time.Since(start); took > 1200*time.Millisecond {
		t.Errorf("answered after %s, past the write timeout", took)
	}
}

// slowRego decides after a triple comprehension over 5,000 numbers: hours
// of evaluation, unless it is cut.
const slowRego = `package mitosis

n := count([x | some a in numbers.range(1, 5000); some b in numbers.range(1, 5000); some c in numbers.range(1, 5000); x := (a + b) + c])

decision := {"action": "none", "reason": sprintf("%d", [n])}
`

// A policy whose tests run for ever is refused, saying why, before the
// HTTP server's write timeout.
func TestAPolicyCheckIsAnsweredBeforeTheWriteTimeout(t *testing.T) {
	cfg, err := config.Parse([]byte(simulatedFile), "sim.yaml")
	if err != nil {
		t.Fatal(err)
	}
	a := startAgent(t, cfg, Options{}, func(a *Agent) { a.timing.writeTimeout = 1200 * time.Millisecond })
	files, _ := json.Marshal(wire.PolicyFiles{Files: map[string]string{"p.rego": slowRego,
		"p_test.rego": "package mitosis_test\n\nimport data.mitosis\n\ntest_slow if mitosis.n > 0\n"}})
	start := time.Now()
	code, body := call(t, a, http.MethodPost, "/v1/policy/validate", string(files))
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, "overran its deadline of 1s") {
		t.Errorf("validate: %d %q; want 422 naming the deadline", code, body)
	}
	if took := time.Since(start); took > 1200*time.Millisecond {
		t.Errorf("answered after %s, past the write timeout", took)
	}
}

// A pushed policy's trial run on the clusters' latest inputs is under the
// tick's deadline: a policy that would overrun every tick is refused.
func TestAPushedPolicysTrialRunIsUnderTheTicksDeadline(t *testing.T) {
	cfg, err := config.Parse([]byte(simulatedFile), "sim.yaml")
	if err != nil {
		t.Fatal(err)
	}
	a := startAgent(t, cfg, Options{}, func(a *Agent) { a.policy.deadline = 200 * time.Millisecond })
	waitReady(t, a, http.StatusOK, "ready")
	files, _ := json.Marshal(wire.PolicyFiles{Files: map[string]string{"p.rego": slowRego}})
	code, body := call(t, a, http.MethodPut, "/v1/policy", string(files))
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, "overran its deadline of 200ms") {
		t.Errorf("push: %d %q; want 422 naming the deadline", code, body)
	}
}
