package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mitosis-autoscaler/mitosis/plan"
	"github.com/mitosis-autoscaler/mitosis/policies"
	"github.com/mitosis-autoscaler/mitosis/policy"
)

const simulatedFile = `
tick: 15s
clusters:
  - name: web
    min: 2
    max: 20
    scalable_roles: [app]
    cooldown: {up: 30s, down: 2m}
    stabilization: 2m
    hosts: [{name: esx-1}, {name: esx-2}]
hypervisor:
  kind: sim
  sim: {speed: 1200, workload: spike, duration: 6h, seed: 3}
simulation:
  synthetic: {base_rps: 100, peak_rps: 1500, spike_every: 20m, spike_rise: 2m, spike_decay: 5m}
`

// On a simulated world the agent acts: it clones when a spike comes and
// detaches when it has passed, in real time sped up, and serves what it
// did as a real agent does.
func TestASimulatedWorldExpandsAndContracts(t *testing.T) {
	cfg, err := Parse([]byte(simulatedFile), "sim.yaml")
	if err != nil {
		t.Fatal(err)
	}
	engine, err := policy.LoadFS(policies.FS, "policies")
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg, Options{Listen: "127.0.0.1:0", Token: "t0k", Policy: engine, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	expanded := func() float64 { return testutil.ToFloat64(a.telemetry.operations.WithLabelValues("web", "expand", "done")) }
	contracted := func() float64 { return testutil.ToFloat64(a.telemetry.operations.WithLabelValues("web", "contract", "done")) }
	deadline := time.Now().Add(20 * time.Second) // ~6.7 simulated hours at ×1200
	for time.Now().Before(deadline) && (expanded() == 0 || contracted() == 0) {
		time.Sleep(100 * time.Millisecond)
	}
	if expanded() == 0 || contracted() == 0 {
		t.Fatalf("after 20 s: %v expansions and %v contractions done", expanded(), contracted())
	}

	req, _ := http.NewRequest(http.MethodGet, "http://"+a.Addr()+"/v1/clusters/web/decisions?limit=1000", nil)
	req.Header.Set("Authorization", "Bearer t0k")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var recs []plan.DecisionRecord
	if err := json.NewDecoder(resp.Body).Decode(&recs); err != nil {
		t.Fatal(err)
	}
	var started int
	for _, r := range recs {
		started += len(r.Operations)
		if r.DryRun {
			t.Errorf("decision at %s is dry-run in an acting agent", r.At)
		}
	}
	if started == 0 {
		t.Errorf("%d decisions, none started an operation", len(recs))
	}
	if r, err := http.Get("http://" + a.Addr() + "/-/ready"); err != nil || r.StatusCode != http.StatusOK {
		t.Errorf("ready: %v %v", r.Status, err)
	}
}
