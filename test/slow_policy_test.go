package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/internal/testenv"
	"github.com/mitosis-autoscaler/mitosis/plan"
)

const slowPolicyWorld = `tick: 4s
clusters:
  - name: web
    min: 2
    max: 10
    scalable_roles: [app]
    hosts: [{name: esx-1, capacity: 15}, {name: esx-2, capacity: 15}]
world: {kind: sim, speed: 4, workload: diurnal-spike, duration: 168h, seed: 2}
simulation:
  synthetic: {base_rps: 150, peak_rps: 600, spike_every: 25m, spike_rise: 2m, spike_decay: 6m}
`

// timeBomb decides none until bomb (ns), then after a comprehension that
// would take hours: it passes the push's trial run, on an input before
// bomb, and overruns every tick after.
const timeBomb = `package mitosis

bomb := %d

decision := {"action": "none", "reason": "quiet"} if {
	time.now_ns() <= bomb
} else := {"action": "none", "reason": sprintf("%%d", [n])}

n := count([x | some a in numbers.range(1, 5000); some b in numbers.range(1, 5000); some c in numbers.range(1, 5000); x := (a + b) + c])
`

const goodPolicy = `package mitosis

decision := {"action": "none", "reason": "good again"}
`

const trivialTest = "package mitosis_test\n\ntest_ok if true\n"

// Issue 17's acceptance: the built agent, pushed a policy that turns slow
// after a moment, records an error naming the deadline within it, and
// decides again with the next policy pushed.
func TestTheAgentOutlivesASlowPolicy(t *testing.T) {
	mitosis := built(t, buildMitosis)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "world.yaml")
	if err := os.WriteFile(cfg, []byte(slowPolicyWorld), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := testenv.FreeAddr(t)
	base := "http://" + addr
	start(t, "mitosis agent", mitosis, "agent", "--simulate", "--config", cfg, "--listen", addr, "--token-file", tokenIn(t, dir))
	waitHTTP(t, base+"/-/ready", 20*time.Second)

	latest := func() plan.DecisionRecord {
		t.Helper()
		recs := apiGet[[]plan.DecisionRecord](t, base+"/v1/clusters/web/decisions?limit=1", token)
		if len(recs) != 1 {
			t.Fatalf("%d decisions", len(recs))
		}
		return recs[0]
	}
	push := func(files map[string]string) {
		t.Helper()
		b, _ := json.Marshal(map[string]any{"files": files})
		req, _ := http.NewRequest(http.MethodPut, base+"/v1/policy", bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := (&http.Client{Timeout: 40 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("push: %s %s", resp.Status, body)
		}
	}
	wait := func(what string, ok func(plan.DecisionRecord) bool) plan.DecisionRecord {
		t.Helper()
		for end := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			if r := latest(); ok(r) {
				return r
			} else if time.Now().After(end) {
				t.Fatalf("no decision %s within 30 s; the latest: %+v", what, r)
			}
		}
	}

	bomb := latest().At.Add(20 * time.Second) // 5 s of wall time at speed 4
	push(map[string]string{"bomb.rego": fmt.Sprintf(timeBomb, bomb.UnixNano()), "bomb_test.rego": trivialTest})
	cut := wait("cut at its deadline", func(r plan.DecisionRecord) bool { return r.Error != "" })
	if !strings.Contains(cut.Error, "overran its deadline of 2s") || cut.Decision.Action != plan.ActionNone {
		t.Errorf("the slow policy's decision: %+v; want none, with an error naming the 2s deadline", cut)
	}
	push(map[string]string{"good.rego": goodPolicy, "good_test.rego": trivialTest})
	wait("by the next policy", func(r plan.DecisionRecord) bool { return r.Error == "" && r.Decision.Reason == "good again" })
	waitHTTP(t, base+"/-/ready", time.Second)
}
