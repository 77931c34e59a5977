package test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/internal/testenv"
	"github.com/mitosis-autoscaler/mitosis/plan"
)

// Issue 17's acceptance against the built agent: a policy that turns slow
// or hungry after a moment cannot stop it.

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

// memoryBomb is timeBomb building 4,000 strings of 10 MB (40 GB).
const memoryBomb = `package mitosis

bomb := %d

decision := {"action": "none", "reason": "quiet"} if {
	time.now_ns() <= bomb
} else := {"action": "none", "reason": substring(r, 0, 10)} if {
	r := concat("", [x | some i in numbers.range(1, 4000); x := sprintf("%%s%%d", [big, i])])
}

big := tenfold(tenfold(tenfold(tenfold(tenfold(tenfold("0123456789")))))) # 10 MB

tenfold(s) := concat("", [s, s, s, s, s, s, s, s, s, s])
`

// hungryTest is a policy's test that builds the same 40 GB.
const hungryTest = `package mitosis_test

test_hungry if {
	big := concat("", [s | some i in numbers.range(1, 100000); s := "0123456789"])
	r := concat("", [x | some i in numbers.range(1, 40000); x := sprintf("%s%d", [big, i])])
	count(r) > 0
}
`

const goodPolicy = `package mitosis

decision := {"action": "none", "reason": "good again"}
`

const trivialTest = "package mitosis_test\n\ntest_ok if true\n"

// policyAgent is a built agent on a simulated world whose policy a test
// pushes through the API.
type policyAgent struct {
	t    *testing.T
	base string
	proc *proc
}

func startPolicyAgent(t *testing.T) *policyAgent {
	mitosis := built(t, buildMitosis)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "world.yaml")
	if err := os.WriteFile(cfg, []byte(slowPolicyWorld), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := testenv.FreeAddr(t)
	a := &policyAgent{t: t, base: "http://" + addr}
	a.proc = start(t, "mitosis agent", mitosis, "agent", "--simulate", "--config", cfg, "--listen", addr, "--token-file", tokenIn(t, dir))
	waitHTTP(t, a.base+"/-/ready", 20*time.Second)
	return a
}

func (a *policyAgent) latest() plan.DecisionRecord {
	a.t.Helper()
	recs := apiGet[[]plan.DecisionRecord](a.t, a.base+"/v1/clusters/web/decisions?limit=1", token)
	if len(recs) != 1 {
		a.t.Fatalf("%d decisions", len(recs))
	}
	return recs[0]
}

// send sends a policy to path (validate or push) and answers the status
// and body.
func (a *policyAgent) send(method, path string, files map[string]string) (int, string) {
	a.t.Helper()
	b, _ := json.Marshal(map[string]any{"files": files})
	req, _ := http.NewRequest(method, a.base+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: 40 * time.Second}).Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func (a *policyAgent) push(files map[string]string) {
	a.t.Helper()
	if code, body := a.send(http.MethodPut, "/v1/policy", files); code != http.StatusOK {
		a.t.Fatalf("push: %d %s", code, body)
	}
}

// wait answers the first latest decision ok accepts, within 30 s.
func (a *policyAgent) wait(what string, ok func(plan.DecisionRecord) bool) plan.DecisionRecord {
	a.t.Helper()
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if r := a.latest(); ok(r) {
			return r
		} else if time.Now().After(end) {
			a.t.Fatalf("no decision %s within 30 s; the latest: %+v", what, r)
		}
	}
}

// peakRSS is the most memory the agent's process has held (VmHWM).
func (a *policyAgent) peakRSS() uint64 {
	a.t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", a.proc.cmd.Process.Pid))
	if err != nil {
		a.t.Fatal(err)
	}
	defer f.Close()
	for sc := bufio.NewScanner(f); sc.Scan(); {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				a.t.Fatal(err)
			}
			return kb << 10
		}
	}
	a.t.Fatal("no VmHWM in the agent's status")
	return 0
}

// The slow policy: the agent records an error naming the deadline within
// it, and decides again with the next policy pushed.
func TestTheAgentOutlivesASlowPolicy(t *testing.T) {
	a := startPolicyAgent(t)
	bomb := a.latest().At.Add(20 * time.Second) // 5 s of wall time at speed 4
	a.push(map[string]string{"bomb.rego": fmt.Sprintf(timeBomb, bomb.UnixNano()), "bomb_test.rego": trivialTest})
	cut := a.wait("cut at its deadline", func(r plan.DecisionRecord) bool { return r.Error != "" })
	if !strings.Contains(cut.Error, "overran its deadline of 2s") || cut.Decision.Action != plan.ActionNone {
		t.Errorf("the slow policy's decision: %+v; want none, with an error naming the 2s deadline", cut)
	}
	a.push(map[string]string{"good.rego": goodPolicy, "good_test.rego": trivialTest})
	a.wait("by the next policy", func(r plan.DecisionRecord) bool { return r.Error == "" && r.Decision.Reason == "good again" })
	waitHTTP(t, a.base+"/-/ready", time.Second)
}

// The hungry policy: a validation whose test would build 40 GB is refused
// naming the memory budget; a pushed policy that turns hungry is cut (at its
// memory budget or its deadline, whichever comes first) on every tick and
// set aside; the agent stays up throughout, its memory bounded.
func TestTheAgentOutlivesAHungryPolicy(t *testing.T) {
	a := startPolicyAgent(t)
	files := map[string]string{"good.rego": goodPolicy, "hungry_test.rego": hungryTest}
	if code, body := a.send(http.MethodPost, "/v1/policy/validate", files); code != http.StatusUnprocessableEntity || !strings.Contains(body, "memory budget of 512 MiB") {
		t.Errorf("validating a policy whose test builds 40 GB: %d %s; want 422 naming the memory budget", code, body)
	}
	waitHTTP(t, a.base+"/-/ready", time.Second)

	bomb := a.latest().At.Add(20 * time.Second)
	a.push(map[string]string{"bomb.rego": fmt.Sprintf(memoryBomb, bomb.UnixNano()), "bomb_test.rego": trivialTest})
	cut := a.wait("cut", func(r plan.DecisionRecord) bool { return r.Error != "" })
	if !strings.Contains(cut.Error, "memory budget of 512 MiB") && !strings.Contains(cut.Error, "overran its deadline") || cut.Decision.Action != plan.ActionNone {
		t.Errorf("the hungry policy's decision: %+v; want none, with an error naming its memory budget or deadline", cut)
	}
	// Three failures in a row set it aside: the agent decides with its own.
	a.wait("by the agent's own policy", func(r plan.DecisionRecord) bool { return r.Error == "" && r.At.After(cut.At) })
	waitHTTP(t, a.base+"/-/ready", time.Second)
	if peak := a.peakRSS(); peak > 2<<30 {
		t.Errorf("the agent's memory peaked at %d MiB, over 2 GiB", peak>>20)
	} else {
		t.Logf("the agent's memory peaked at %d MiB", peak>>20)
	}
}
