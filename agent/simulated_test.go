package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/config"
	"github.com/mitosis-autoscaler/mitosis/plan"
	"github.com/mitosis-autoscaler/mitosis/sim"
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
world: {kind: sim, speed: 1200, workload: spike, duration: 6h, seed: 3}
simulation:
  synthetic: {base_rps: 100, peak_rps: 1500, spike_every: 20m, spike_rise: 2m, spike_decay: 5m}
`

// setSpeed runs a parsed simulated world at speed: its world section
// says so, as if the file had.
func setSpeed(t *testing.T, cfg *config.File, speed float64) {
	t.Helper()
	w := map[string]any{}
	if err := cfg.World.Decode(&w); err != nil {
		t.Fatal(err)
	}
	w["speed"] = speed
	if err := cfg.World.Encode(w); err != nil {
		t.Fatal(err)
	}
}

// On a simulated world the agent acts: it clones when a spike comes and
// detaches when it has passed, in real time sped up, and serves what it
// did as a real agent does.
func TestASimulatedWorldExpandsAndContracts(t *testing.T) {
	cfg, err := config.Parse([]byte(simulatedFile), "sim.yaml")
	if err != nil {
		t.Fatal(err)
	}
	a := runAgent(t, cfg)

	expanded := func() float64 {
		return operationsFinished(t, a, "web", "expand", "done")
	}
	contracted := func() float64 {
		return operationsFinished(t, a, "web", "contract", "done")
	}
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

// An operator clones a node of their choice and detaches another through
// the API; each is a decision recorded with their name, and runs.
func TestAnOperatorClonesAndDetachesThroughTheAPI(t *testing.T) {
	cfg, err := config.Parse([]byte(simulatedFile), "sim.yaml")
	if err != nil {
		t.Fatal(err)
	}
	setSpeed(t, &cfg, 60)
	a := runAgent(t, cfg)

	post := func(path, body string) (int, plan.DecisionRecord) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, "http://"+a.Addr()+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer t0k")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var rec plan.DecisionRecord
		_ = json.NewDecoder(resp.Body).Decode(&rec)
		return resp.StatusCode, rec
	}
	code, rec := post("/v1/clusters/web/clone", `{"template": "web-1"}`)
	if code != http.StatusCreated || rec.By != "admin" || len(rec.Operations) != 1 {
		t.Fatalf("clone: %d %+v", code, rec)
	}
	// The answer is the record as stored, numbered as the decisions list it.
	if recs, _ := a.reg.Decisions(context.Background(), "web", 100); rec.Seq == 0 ||
		!slices.ContainsFunc(recs, func(r plan.DecisionRecord) bool { return r.Seq == rec.Seq && r.By == "admin" }) {
		t.Errorf("the clone's record has seq %d, not that of a stored decision", rec.Seq)
	}
	deadline := time.Now().Add(10 * time.Second)
	var op plan.Operation
	for time.Now().Before(deadline) {
		if op, err = a.reg.Operation(context.Background(), rec.Operations[0]); err == nil && op.Status.Finished() {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if op.Status != plan.OpDone || op.Template != "web-1" || op.Node == "" {
		t.Fatalf("the operator's clone: %+v", op)
	}
	if code, rec := post("/v1/clusters/web/detach", `{"node": "`+op.Node+`"}`); code != http.StatusCreated || len(rec.Operations) != 1 {
		t.Fatalf("detach of the clone %s: %d %+v", op.Node, code, rec)
	}
	for _, path := range []string{"/v1/clusters/web/clone", "/v1/clusters/web/detach"} {
		body := `{"template": "no-such-node"}`
		if strings.HasSuffix(path, "detach") {
			body = `{"node": "no-such-node"}`
		}
		if code, _ := post(path, body); code != http.StatusNotFound {
			t.Errorf("%s of a node that does not exist: %d, want 404", path, code)
		}
	}
	for body, want := range map[string]int{`{"template": ""}`: 400, `{"tempate": "web-1"}`: 400, `[]`: 400, `{"template": "web-1"} {}`: 400} {
		if code, _ := post("/v1/clusters/web/clone", body); code != want {
			t.Errorf("clone with %s: %d, want %d", body, code, want)
		}
	}
}

// make run's promise: on the embedded defaults, a person watching sees
// the cluster expand by cloning and later contract within two minutes
// (120 simulated minutes at the defaults' speed; run here 20 times as
// fast).
func TestTheEmbeddedDefaultsExpandAndContractWithinTwoMinutes(t *testing.T) {
	cfg, err := config.Parse(SimulatedDefaults, "embedded defaults")
	if err != nil {
		t.Fatal(err)
	}
	if w := worldOf(t, cfg).(*sim.AgentWorld); *w.World.Speed != 60 {
		t.Fatalf("the defaults run at ×%v; this test assumes ×60", *w.World.Speed)
	}
	setSpeed(t, &cfg, 1200)
	a := runAgent(t, cfg)
	count := func(kind string) float64 {
		return operationsFinished(t, a, "web", kind, "done")
	}
	deadline := time.Now().Add(6 * time.Second) // 2 minutes at ×60
	for time.Now().Before(deadline) && (count("expand") == 0 || count("contract") == 0) {
		time.Sleep(50 * time.Millisecond)
	}
	if count("expand") == 0 || count("contract") == 0 {
		t.Fatalf("within 120 simulated minutes: %v clones and %v detaches done", count("expand"), count("contract"))
	}
}

// On a simulated world the API stamps its writes with the world's clock,
// as the decisions are: the audit trail and the settings sort with them.
func TestASimulatedAgentStampsItsWritesWithTheWorldsClock(t *testing.T) {
	cfg, err := config.Parse([]byte(simulatedFile), "sim.yaml")
	if err != nil {
		t.Fatal(err)
	}
	setSpeed(t, &cfg, 600)
	a := runAgent(t, cfg)
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if recs, _ := a.reg.Decisions(ctx, "web", 1); len(recs) == 1 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+a.Addr()+"/v1/clusters/web/pause", nil)
	req.Header.Set("Authorization", "Bearer t0k")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	recs, _ := a.reg.Decisions(ctx, "web", 1)
	audits, _ := a.reg.Audits(ctx, 1)
	if resp.StatusCode != http.StatusOK || len(recs) != 1 || len(audits) != 1 {
		t.Fatalf("pause: %s; %d decisions, %d audit records", resp.Status, len(recs), len(audits))
	}
	// ×600: a second of this machine is 10 simulated minutes.
	if gap := audits[0].At.Sub(recs[0].At).Abs(); gap > 30*time.Minute {
		t.Errorf("the pause is stamped %s, the newest decision %s: %s apart", audits[0].At, recs[0].At, gap)
	}
}

// The agent acts on a simulated world only when it is given one (the
// command makes it with package sim): it knows nothing of simulation.
func TestASimulatedWorldNeedsItsMaker(t *testing.T) {
	cfg, err := config.Parse([]byte("clusters: [{name: web, min: 1, max: 4}]\nworld: {kind: sim}\n"), "sim.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Simulated() {
		t.Fatal("world.kind sim is not simulated")
	}
	if _, err := New(cfg, Options{Listen: "127.0.0.1:0", Token: "t0k", Policy: defaultPolicy(t)}); err == nil || !strings.Contains(err.Error(), "cannot make a simulated world") {
		t.Errorf("no maker: %v", err)
	}
}
