package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/internal/testenv"
	"github.com/mitosis-autoscaler/mitosis/plan"
)

// proc is a server process of a test, stopped by its PID at the end.
type proc struct {
	cmd *exec.Cmd
	out *testenv.Buffer
}

func start(t *testing.T, name string, bin string, args ...string) *proc {
	t.Helper()
	return startEnv(t, name, nil, bin, args...)
}

// startEnv is start with env added to the test's environment.
func startEnv(t *testing.T, name string, env []string, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), out: &testenv.Buffer{}}
	if env != nil {
		p.cmd.Env = append(os.Environ(), env...)
	}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.output())
		}
	})
	return p
}

func (p *proc) stop() {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

func (p *proc) output() string { return p.out.String() }

// scraping runs a real Prometheus with its data in dir, scraping targets
// (host:port) every second as job. It returns its address and its
// arguments, which start it again on the same data and port.
func scraping(t *testing.T, bin, dir, job string, targets ...string) (addr string, args []string, p *proc) {
	t.Helper()
	addr = testenv.FreeAddr(t)
	conf := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(conf, fmt.Appendf(nil, `global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: %s
    static_configs:
      - targets: %s
`, job, yamlList(targets)), 0o600); err != nil {
		t.Fatal(err)
	}
	args = []string{"--config.file=" + conf, "--storage.tsdb.path=" + filepath.Join(dir, "tsdb"),
		"--web.listen-address=" + addr, "--log.level=warn"}
	p = start(t, "prometheus", bin, args...)
	waitHTTP(t, "http://"+addr+"/-/ready", 10*time.Second)
	return addr, args, p
}

func waitHTTP(t *testing.T, u string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		resp, err := http.Get(u)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready within %s (last: %v)", u, within, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestAgentDryRunOnARealPrometheus is issue 5's acceptance: a real
// Prometheus scrapes two demo nodes every second; the agent runs dry on
// it. Raising the nodes' load makes it record a dry-run expansion whose
// record carries the Prometheus-derived utilization; stopping Prometheus
// makes it record "metrics unavailable" and no action; restarting it
// makes decisions resume. Its /metrics passes promtool.
func TestAgentDryRunOnARealPrometheus(t *testing.T) {
	promBin := testenv.Binary(t, "prometheus")
	promtool := testenv.Binary(t, "promtool")
	demo, mitosis := built(t, buildDemoNode), built(t, buildMitosis)
	dir := t.TempDir()
	tokenFile := tokenIn(t, dir)

	// Two demo nodes.
	var nodeAddrs []string
	for _, id := range []string{"web-1", "web-2"} {
		addr := testenv.FreeAddr(t)
		start(t, id, demo, "--id", id, "--listen", addr, "--token-file", tokenFile, "--state-dir", dir)
		waitHTTP(t, "http://"+addr+"/metrics", 10*time.Second)
		nodeAddrs = append(nodeAddrs, addr)
	}

	// Prometheus scraping them every second.
	promAddr, promArgs, prom := scraping(t, promBin, dir, "app", nodeAddrs...)

	// The agent, dry, ticking every second. Utilization is requests per
	// second over a capacity of 10 a node.
	agentAddr := testenv.FreeAddr(t)
	conf := filepath.Join(dir, "mitosis.yaml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`tick: 1s
dry_run: true
clusters:
  - name: web
    min: 2
    max: 6
    scalable_roles: [app]
    hosts: [{name: esx-1}]
nodes:
  - {cluster: web, id: web-1, role: app, address: "%s", host: esx-1, vm: web-1}
  - {cluster: web, id: web-2, role: app, address: "%s", host: esx-1, vm: web-2}
metrics:
  url: http://%s
  timeout: 2s
  scrape_interval: 1s
  staleness: 5s
  queries:
    - name: utilization
      query: sum by (instance) (rate(demo_node_requests_total[4s])) / 10
      per_node: true
`, nodeAddrs[0], nodeAddrs[1], promAddr)), 0o600); err != nil {
		t.Fatal(err)
	}
	agent := start(t, "mitosis agent", mitosis, "agent", "--config", conf, "--token-file", tokenFile, "--listen", agentAddr)
	waitHTTP(t, "http://"+agentAddr+"/-/healthy", 10*time.Second)

	decisions := func() []plan.DecisionRecord {
		req, _ := http.NewRequest(http.MethodGet, "http://"+agentAddr+"/v1/clusters/web/decisions?limit=5", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var recs []plan.DecisionRecord
		if err := json.NewDecoder(resp.Body).Decode(&recs); err != nil {
			t.Fatal(err)
		}
		return recs
	}
	await := func(what string, within time.Duration, ok func(plan.DecisionRecord) bool) plan.DecisionRecord {
		t.Helper()
		deadline := time.Now().Add(within)
		for time.Now().Before(deadline) {
			if recs := decisions(); len(recs) > 0 && ok(recs[0]) {
				return recs[0]
			}
			time.Sleep(250 * time.Millisecond)
		}
		t.Fatalf("no decision where %s within %s; latest: %+v", what, within, decisions())
		return plan.DecisionRecord{}
	}

	// Without a token, /v1/ is refused.
	if resp, err := http.Get("http://" + agentAddr + "/v1/clusters/web/decisions"); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no token: %v %v", resp.Status, err)
	}

	// Idle: metrics trusted (once Prometheus has samples), and at its min.
	await("metrics are trusted and nothing is done", 30*time.Second, func(r plan.DecisionRecord) bool {
		return r.Metrics.Available && r.Decision.Action == plan.ActionNone
	})

	// Load: 60 requests a second across both nodes, 3 per node's capacity.
	ctx, stopLoad := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, addr := range nodeAddrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(33 * time.Millisecond)
			defer tick.Stop()
			for ctx.Err() == nil {
				if resp, err := http.Get("http://" + addr + "/work"); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				<-tick.C
			}
		}()
	}
	t.Cleanup(func() { stopLoad(); wg.Wait() })
	exp := await("a dry-run expansion", 30*time.Second, func(r plan.DecisionRecord) bool {
		return r.Decision.Action == plan.ActionExpand
	})
	if !exp.DryRun || len(exp.Operations) != 0 || len(exp.Proposals) == 0 {
		t.Errorf("expansion record: dry run %v, operations %v, proposals %v", exp.DryRun, exp.Operations, exp.Proposals)
	}
	// The load is ~30 requests a second a node, 3 times its capacity;
	// the first expansion comes while rate()'s window is still filling.
	if u := exp.Observed.NodeMeans["utilization"]; u <= 0.75 || u > 4.5 || exp.Observed.ReadyNodes != 2 {
		t.Errorf("the record's observed utilization %v over %d nodes; want above 0.75 (the policy's high mark) and at most ~3, over 2", u, exp.Observed.ReadyNodes)
	}
	t.Logf("dry-run expansion: %s (observed %+v)", exp.Decision.Reason, exp.Observed)

	// Prometheus down: metrics unavailable, no action.
	prom.stop()
	down := await("metrics are unavailable", 20*time.Second, func(r plan.DecisionRecord) bool { return !r.Metrics.Available })
	if down.Decision.Action != plan.ActionNone || len(down.Proposals) != 0 {
		t.Errorf("with Prometheus down: action %s, proposals %v", down.Decision.Action, down.Proposals)
	}
	t.Logf("Prometheus down: %s / %s", down.Metrics.Reason, down.Decision.Reason)

	// Prometheus back on the same data and port: decisions resume.
	start(t, "prometheus (restarted)", promBin, promArgs...)
	waitHTTP(t, "http://"+promAddr+"/-/ready", 10*time.Second)
	back := await("metrics are trusted again", 30*time.Second, func(r plan.DecisionRecord) bool { return r.Metrics.Available })
	t.Logf("Prometheus back: %s", back.Decision.Reason)
	if !strings.Contains(agent.output(), "would have acted") {
		t.Errorf("the agent's log does not say what it would have done")
	}

	// The agent's own metrics pass promtool and count what happened.
	mreq, _ := http.NewRequest(http.MethodGet, "http://"+agentAddr+"/metrics", nil)
	mreq.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(mreq)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	check := exec.Command(promtool, "check", "metrics")
	check.Stdin = bytes.NewReader(body)
	if out, err := check.CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	want := map[string]bool{
		`mitosis_decisions_total{action="expand",cluster="web",dry_run="true"}`: false,
		`mitosis_metrics_unavailable_total{cluster="web"}`:                      false,
		`mitosis_policy_evaluation_duration_seconds_count{cluster="web"}`:       false,
		`mitosis_cluster_nodes{cluster="web",state="ready"} 2`:                  false,
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		for k := range want {
			if strings.HasPrefix(sc.Text(), k) {
				want[k] = true
			}
		}
	}
	for k, seen := range want {
		if !seen {
			t.Errorf("/metrics lacks %s", k)
		}
	}
}
