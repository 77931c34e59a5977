package test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/agent/client"
	"github.com/mitosis-autoscaler/mitosis/internal/testenv"
	"github.com/mitosis-autoscaler/mitosis/plan"
)

// TestTheAgentAnswersALoadStepWithinSeconds measures what issue 15
// promises of the loop, on real processes: HAProxy, a Prometheus that
// scrapes it every second, and the agent on the process hypervisor with a
// tick of a second and the default policy, whose surge signal is HAProxy's
// request rate (docs/agent.md). Over repeated load steps, from one node's
// light load to two nodes' worth:
//
//   - from the step to the first request a clone serves: p95 <= 5 s;
//   - from the expansion's decision to the clone serving: at most the
//     clone's own time (the operation from its clone step to its join)
//     plus 2 s, since the saga advances at once, not at ticks;
//   - an operator's clone (POST /v1/clusters/web/clone) joins within 3 s.
func TestTheAgentAnswersALoadStepWithinSeconds(t *testing.T) {
	const steps = 10
	hc := startHAProxyCluster(t)
	dir, vmDir, tokenFile, mitosis, promAddr := hc.dir, hc.vmDir, hc.tokenFile, hc.mitosis, hc.promAddr
	command, web1, lb := hc.command, hc.web1, hc.lb

	// A node serves 10 requests a second: utilization is a server's
	// responses over 10, and demand_nodes the backend's requests over 10,
	// over three scrapes. Contraction waits 2 s (stabilization and
	// cooldown): the test steps the load down and up again and again.
	conf := filepath.Join(dir, "mitosis.yaml")
	if err := os.WriteFile(conf, fmt.Appendf(nil, `tick: 1s
clusters:
  - name: web
    min: 1
    max: 2
    scalable_roles: [app]
    hosts: [{name: localhost}]
    cooldown: {down: 1s}
    stabilization: 2s
    policy_params: {settle_s: 4}
nodes: [{cluster: web, id: web-1, role: app, address: %q, host: localhost, vm: web-1}]
metrics:
  url: http://%s
  timeout: 2s
  scrape_interval: 1s
  staleness: 5s
  queries:
    - name: utilization
      query: sum by (server) (rate(haproxy_server_http_responses_total{proxy="app"}[3s])) / 10
      per_node: true
      node_label: server
      match: id
    - name: demand_nodes
      query: sum(rate(haproxy_backend_http_requests_total{proxy="app"}[3s])) / 10
hypervisor:
  kind: process
  process: {dir: %q, command: %s, restore: [--from-state, "{state}"]}
dispatcher:
  kind: haproxy
  clusters:
    web: {socket: %q, backend: app, servers: [web-1], server_options: "pool-purge-delay 200ms", dynamic_cookies: true}
node_api: {token_file: %q, timeout: 2s}
`, web1.Address, promAddr, vmDir, yamlList(command), lb.Socket, tokenFile), 0o600); err != nil {
		t.Fatal(err)
	}
	agentAddr := testenv.FreeAddr(t)
	start(t, "mitosis agent", mitosis, "agent", "--config", conf, "--token-file", tokenFile, "--listen", agentAddr, "--log-level", "warn")
	waitHTTP(t, "http://"+agentAddr+"/-/healthy", 10*time.Second)
	api, err := client.New("http://"+agentAddr, token, client.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	view := func() clusterView { return viewCluster(t, api, lb, hc.running(t)) }
	one := func(c clusterView) bool { return len(c.ids) == 1 }

	// The light load, a third of a node, runs throughout; each step adds
	// two nodes' worth for as long as it takes a clone to serve.
	light := sendLoad(lb.Frontend, 1, 300*time.Millisecond)
	t.Cleanup(light.stop)
	var toServe, overhead []time.Duration
	for i := range steps {
		awaitCluster(t, fmt.Sprintf("one node before step %d", i+1), 60*time.Second, view, one, nil)
		// Prometheus's rates forget the last step's load (3 s windows).
		time.Sleep(4 * time.Second)
		before := knownOps(t, api)
		stepAt := time.Now()
		heavy := sendLoad(lb.Frontend, 2, 100*time.Millisecond)
		clone, servedAt := awaitNewServer(t, heavy, 30*time.Second)
		heavy.stop()
		toServe = append(toServe, servedAt.Sub(stepAt))

		op := newExpansion(t, api, before)
		decided, cloned, joined := journalTimes(t, op)
		own := joined.Sub(cloned)
		toServing := servedAt.Sub(decided)
		overhead = append(overhead, toServing-own)
		t.Logf("step %d: %s served after %s; decision → serving %s, the clone's own time %s (clone step → join)",
			i+1, clone, servedAt.Sub(stepAt).Round(time.Millisecond), toServing.Round(time.Millisecond), own.Round(time.Millisecond))
		if _, failed := heavy.counts(); failed > 0 {
			t.Errorf("step %d: %d requests failed: %v", i+1, failed, heavy.failures())
		}
	}
	p95 := percentile95(toServe)
	t.Logf("load step → first request a clone serves, over %d steps: p95 %s (all: %v)", steps, p95.Round(time.Millisecond), roundAll(toServe))
	if p95 > 5*time.Second {
		t.Errorf("p95 from a load step to a clone serving is %s, want at most 5s", p95)
	}
	for i, o := range overhead {
		if o > 2*time.Second {
			t.Errorf("step %d: from the decision to the clone serving took %s more than the clone's own time, want at most 2s", i+1, o)
		}
	}

	// An operator's clone starts at once, not at a tick, and joins.
	awaitCluster(t, "one node before the operator's clone", 60*time.Second, view, one, nil)
	asked := time.Now()
	rec, err := api.Clone(t.Context(), "web", "web-1")
	if err != nil || len(rec.Operations) != 1 {
		t.Fatalf("manual clone: %+v, %v", rec, err)
	}
	for {
		op, err := api.Operation(t.Context(), rec.Operations[0])
		if err == nil && op.Status == plan.OpDone {
			t.Logf("the operator's clone joined %s after it was asked for", time.Since(asked).Round(time.Millisecond))
			break
		}
		if err == nil && op.Status.Finished() {
			t.Fatalf("the operator's clone ended %s: %s", op.Status, op.Error)
		}
		if since := time.Since(asked); since > 3*time.Second {
			t.Fatalf("the operator's clone has not joined %s after it was asked for (%+v, %v); want within 3s", since, op, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	light.stop()
	if _, failed := light.counts(); failed > 0 {
		t.Errorf("%d light requests failed: %v", failed, light.failures())
	}
}

// awaitNewServer waits for a request of load to be served by a node
// other than web-1, and returns which and when.
func awaitNewServer(t *testing.T, load *sessionless, within time.Duration) (string, time.Time) {
	t.Helper()
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for id, at := range load.firstServed() {
			if id != "web-1" {
				return id, at
			}
		}
	}
	t.Fatalf("no clone served within %s: %v", within, load)
	return "", time.Time{}
}

// knownOps are the ids of the cluster's operations so far.
func knownOps(t *testing.T, api *client.Client) map[string]bool {
	t.Helper()
	ops, err := api.Operations(t.Context(), "web", 1000)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, op := range ops {
		ids[op.ID] = true
	}
	return ids
}

// newExpansion is the one expansion started since known, once it is done.
func newExpansion(t *testing.T, api *client.Client, known map[string]bool) plan.Operation {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		ops, err := api.Operations(t.Context(), "web", 1000)
		if err != nil {
			t.Fatal(err)
		}
		var fresh []plan.Operation
		for _, op := range ops {
			if !known[op.ID] && op.Kind == plan.OpExpand {
				fresh = append(fresh, op)
			}
		}
		if len(fresh) == 1 && fresh[0].Status == plan.OpDone {
			return fresh[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("want one new expansion, done; have %+v", fresh)
		}
	}
}

// journalTimes are when op was decided, entered its clone step, and joined.
func journalTimes(t *testing.T, op plan.Operation) (decided, cloned, joined time.Time) {
	t.Helper()
	decided = op.CreatedAt
	for _, j := range op.Journal {
		switch j.Step {
		case "clone":
			cloned = j.At
		case "join":
			joined = j.At
		}
	}
	if cloned.IsZero() || joined.IsZero() {
		t.Fatalf("operation %s has no clone or join step in its journal: %+v", op.ID, op.Journal)
	}
	return decided, cloned, joined
}

func percentile95(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, (len(s)*95+99)/100-1)]
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(10 * time.Millisecond)
	}
	return out
}
