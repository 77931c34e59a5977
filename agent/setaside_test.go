package agent

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/agent/wire"
	"github.com/mitosis-autoscaler/mitosis/config"
	"github.com/mitosis-autoscaler/mitosis/internal/testenv"
	"github.com/mitosis-autoscaler/mitosis/plan"
	"github.com/mitosis-autoscaler/mitosis/policy"
)

// failingPolicy fails every evaluation.
type failingPolicy struct{}

func (failingPolicy) Decide(context.Context, *policy.Input, time.Time) (plan.Decision, error) {
	return plan.Decision{}, errors.New("boom")
}
func (failingPolicy) Version() string { return "failing1" }

// A pushed policy that fails setAsideAfter evaluations in a row is set
// aside: the agent decides with its own again, records that as the policy
// to decide with, and says why in the audit.
func TestAPushedPolicyThatKeepsFailingIsSetAside(t *testing.T) {
	cfg, err := config.Parse([]byte(simulatedFile), "sim.yaml")
	if err != nil {
		t.Fatal(err)
	}
	own := defaultPolicy(t)
	a := startAgent(t, cfg, Options{Policy: own, PolicyFiles: defaultPolicyFiles(t)}, nil)
	waitReady(t, a, http.StatusOK, "ready")
	a.usePolicy(failingPolicy{}, map[string]string{"p.rego": "…"}) // as a push would
	if !a.policy.current().pushed {
		t.Fatal("a policy pushed is not marked pushed")
	}
	ctx := context.Background()
	var audit *plan.AuditRecord
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end) && audit == nil; time.Sleep(20 * time.Millisecond) {
		recs, err := a.reg.Audits(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if r.Action == "policy-set-aside" {
				audit = &r
			}
		}
	}
	if audit == nil {
		t.Fatal("no policy-set-aside audit record after 10 s of failing ticks")
	}
	if audit.By != byAgent || !strings.Contains(audit.Detail, "failing1 -> "+own.Version()) ||
		!strings.Contains(audit.Detail, "failed 3 evaluations in a row") || !strings.Contains(audit.Detail, "web: boom") {
		t.Errorf("audit record %+v: want the agent saying which policy failed, how often and how", *audit)
	}
	if cur := a.policy.current(); cur.engine != own || cur.pushed {
		t.Errorf("deciding with %s, want the agent's own %s", cur.engine.Version(), own.Version())
	}
	if p, ok, err := a.reg.Policy(ctx); err != nil || !ok || p.Version != own.Version() || p.By != byAgent {
		t.Errorf("the registry's policy: %+v %v %v; want the agent's own, recorded by it", p, ok, err)
	}
	// It decides again: a decision by its own policy, without error.
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		recs, err := a.reg.Decisions(ctx, "web", 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 1 && recs[0].PolicyVersion == own.Version() && recs[0].Error == "" {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("no decision by the agent's own policy after the set-aside: %+v", recs)
		}
	}
}

// With IgnorePushedPolicy (--ignore-pushed-policy), an agent restarted
// over a registry that holds a pushed policy decides with its own.
func TestAnAgentCanStartIgnoringThePushedPolicy(t *testing.T) {
	dir, addr := t.TempDir(), testenv.FreeAddr(t)
	cfg, err := config.Parse([]byte(raftFile("a1", addr, dir, true, []raftNode{{id: "a1", raft: addr}})), "a1.yaml")
	if err != nil {
		t.Fatal(err)
	}
	own := defaultPolicy(t)
	run := func(ignore bool, do func(a *Agent)) {
		a, err := New(cfg, Options{Listen: "127.0.0.1:0", Token: "t0k", Policy: own, PolicyFiles: defaultPolicyFiles(t), IgnorePushedPolicy: ignore})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- a.Run(ctx) }()
		// Until it decided once: it leads, and took over (resumePolicy).
		for end := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			recs, err := a.reg.Decisions(ctx, "web", 1)
			if err == nil && len(recs) == 1 && recs[0].At.After(start) {
				break
			}
			if time.Now().After(end) {
				t.Fatalf("no decision in 10 s: %v %v", recs, err)
			}
		}
		do(a)
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	pushed := defaultPolicyFiles(t)
	pushed["extra.rego"] = "package extra\n\nx := 1\n"
	var version string
	run(false, func(a *Agent) {
		b, _ := json.Marshal(wire.PolicyFiles{Files: pushed})
		if code, body := call(t, a, http.MethodPut, "/v1/policy", string(b)); code != http.StatusOK {
			t.Fatalf("push: %d %s", code, body)
		}
		version = a.policy.Version()
	})
	run(true, func(a *Agent) {
		if v := a.policy.Version(); v != own.Version() {
			t.Errorf("with IgnorePushedPolicy: deciding with %s, want its own %s (pushed: %s)", v, own.Version(), version)
		}
	})
	run(false, func(a *Agent) {
		if v := a.policy.Version(); v != version {
			t.Errorf("without it: deciding with %s, want the pushed %s", v, version)
		}
	})
}
