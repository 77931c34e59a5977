package test

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/agent/client"
	"github.com/mitosis-autoscaler/mitosis/dispatcher/haproxy/haproxytest"
	"github.com/mitosis-autoscaler/mitosis/hypervisor"
	"github.com/mitosis-autoscaler/mitosis/hypervisor/process"
	"github.com/mitosis-autoscaler/mitosis/internal/testenv"
	"github.com/mitosis-autoscaler/mitosis/plan"
)

// TestTheAgentScalesRealNodesOnHAProxysMetrics is the agent acting on
// real machines as an operator runs it, with nothing but its file: the
// default policy decides on utilization that a real Prometheus computes
// from HAProxy's own per-server metrics, and the agent clones and detaches
// demo-node processes (the process hypervisor) and attaches and removes
// them in HAProxy. Under load sent through HAProxy, the cluster grows from
// one node to its max, and the clones serve; once the load falls to a
// trickle, it shrinks back to one node, and the clones' VMs are gone. No
// client's request fails meanwhile: not while the only node is prepared
// and cloned, nor while nodes are detached.
func TestTheAgentScalesRealNodesOnHAProxysMetrics(t *testing.T) {
	hc := startHAProxyCluster(t)
	dir, vmDir, tokenFile, mitosis, promAddr := hc.dir, hc.vmDir, hc.tokenFile, hc.mitosis, hc.promAddr
	command, web1, lb := hc.command, hc.web1, hc.lb

	// The agent: utilization is each server's responses a second over a
	// capacity of 10, matched to nodes by HAProxy's server name, which is
	// the node's id.
	conf := filepath.Join(dir, "mitosis.yaml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`tick: 1s
clusters:
  - name: web
    min: 1
    max: 3
    scalable_roles: [app]
    hosts: [{name: localhost}]
    cooldown: {up: 1s, down: 1s}
    stabilization: 3s
    policy_params: {settle_s: 5}   # the averages below are over 4 s
nodes: [{cluster: web, id: web-1, role: app, address: %q, host: localhost, vm: web-1}]
metrics:
  url: http://%s
  timeout: 2s
  scrape_interval: 1s
  staleness: 5s
  queries:
    - name: utilization
      query: sum by (server) (rate(haproxy_server_http_responses_total{proxy="app"}[4s])) / 10
      per_node: true
      node_label: server
      match: id
hypervisor:
  kind: process
  process: {dir: %q, command: %s, restore: [--from-state, "{state}"]}
dispatcher:              # the form for several clusters (the chaos test has the other)
  kind: haproxy
  clusters:
    web: {socket: %q, backend: app, servers: [web-1], server_options: "pool-purge-delay 200ms", dynamic_cookies: true}
node_api: {token_file: %q, timeout: 2s}
`, web1.Address, promAddr, vmDir, yamlList(command), lb.Socket, tokenFile)), 0o600); err != nil {
		t.Fatal(err)
	}
	agentAddr := testenv.FreeAddr(t)
	start(t, "mitosis agent", mitosis, "agent", "--config", conf, "--token-file", tokenFile, "--listen", agentAddr, "--log-level", "warn")
	waitHTTP(t, "http://"+agentAddr+"/-/healthy", 10*time.Second)
	api, err := client.New("http://"+agentAddr, token, client.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}

	running := hc.running(t)
	await := func(what string, within time.Duration, ok func(clusterView) bool) clusterView {
		t.Helper()
		return awaitCluster(t, what, within, func() clusterView { return viewCluster(t, api, lb, running) }, ok, nil)
	}
	await("one node at first", 30*time.Second, func(c clusterView) bool { return len(c.ids) == 1 })

	// Load: ~30 requests a second through HAProxy, three nodes' worth.
	// Every request counts: one that fails is a client the cluster let
	// down, whether the node, HAProxy or the network failed it.
	busy := sendLoad(lb.Frontend, 3, 100*time.Millisecond)
	t.Cleanup(busy.stop)
	grown := await("grown to its max of 3", 90*time.Second, func(c clusterView) bool { return len(c.ids) == 3 })
	time.Sleep(2 * time.Second) // the clones take their share
	busy.stop()
	served, failed := busy.counts()
	for _, id := range grown.ids {
		if served[id] == 0 {
			t.Errorf("node %s served nothing (served: %v)", id, served)
		}
	}
	t.Logf("grown to %v; %v", grown.ids, busy)

	recs, err := api.Decisions(t.Context(), "web", 1000)
	if err != nil {
		t.Fatal(err)
	}
	var expansions int
	for _, r := range recs {
		if r.Decision.Action == plan.ActionExpand && len(r.Operations) > 0 {
			expansions++
			if u := r.Observed.NodeMeans["utilization"]; u <= 0.75 {
				t.Errorf("an expansion on a utilization of %v, at most the high mark: %+v", u, r)
			}
		}
	}
	if expansions == 0 {
		t.Error("no expansion decided by the policy")
	}

	// A light load, a third of one node's capacity: back to one node, the
	// clones' VMs destroyed, while clients still come.
	light := sendLoad(lb.Frontend, 1, 300*time.Millisecond)
	t.Cleanup(light.stop)
	shrunk := await("shrunk back to one node", 90*time.Second, func(c clusterView) bool { return len(c.ids) == 1 })
	light.stop()
	_, failedLight := light.counts()
	t.Logf("shrunk to %v; %v", shrunk.ids, light)
	for _, f := range append(busy.failures(), light.failures()...) {
		t.Log("failed request: " + f)
	}
	if failed+failedLight != 0 {
		t.Errorf("%d requests failed (%d growing, %d shrinking), want none", failed+failedLight, failed, failedLight)
	}
	if !slices.Equal(shrunk.ids, []string{"web-1"}) {
		t.Errorf("the node left is %v, want web-1 (never a template's original)", shrunk.ids)
	}
	allDone(t, api, "web", 2, 2)
}

// haproxyCluster is where the agent's tests on processes start: web-1, a
// demo-node VM of the process hypervisor booted as an operator would (the
// agent's process hypervisor then finds it in vmDir and clones it), behind
// a real HAProxy whose exporter a real Prometheus scrapes every second.
type haproxyCluster struct {
	dir, vmDir, tokenFile, mitosis, promAddr string
	hv                                       *process.Hypervisor
	command                                  []string // a VM's, for the agent's hypervisor section
	web1                                     hypervisor.VM
	lb                                       *haproxytest.Instance
}

func startHAProxyCluster(t *testing.T) haproxyCluster {
	t.Helper()
	promBin := testenv.Binary(t, "prometheus")
	demo := built(t, buildDemoNode)
	c := haproxyCluster{dir: t.TempDir(), mitosis: built(t, buildMitosis)}
	c.vmDir = filepath.Join(c.dir, "vms")
	if err := os.Mkdir(c.vmDir, 0o700); err != nil {
		t.Fatal(err)
	}
	c.tokenFile = tokenIn(t, c.dir)
	c.hv, c.command = demoVMs(t, demo, c.vmDir, c.tokenFile)
	var err error
	if c.web1, err = c.hv.Boot(t.Context(), "web-1"); err != nil {
		t.Fatal(err)
	}
	c.lb = haproxytest.Start(t, fmt.Sprintf("server web-1 %s cookie web-1", c.web1.Address))
	c.promAddr, _, _ = scraping(t, promBin, c.dir, "haproxy", strings.TrimSuffix(strings.TrimPrefix(c.lb.Metrics, "http://"), "/metrics"))
	return c
}

// running lists the names of the hypervisor's running VMs.
func (c haproxyCluster) running(t *testing.T) func() []string {
	return func() []string {
		var names []string
		vms, _ := c.hv.List(t.Context())
		for _, vm := range vms {
			if vm.Running {
				names = append(names, vm.Name)
			}
		}
		return names
	}
}

// sessionless is clients sending GET /work through HAProxy, each request
// in a new session (no cookie), so that HAProxy spreads them over its
// servers.
type sessionless struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	mu      sync.Mutex
	served  map[string]int       // by X-Node-ID
	first   map[string]time.Time // when each node first answered
	slowest time.Duration        // of the served requests: a held one waited
	failed  []string             // when, and what each failed request got
}

// sendLoad starts clients, each sending a request every period (or as
// soon as the last one ends, when it took longer).
func sendLoad(frontend string, clients int, every time.Duration) *sessionless {
	ctx, cancel := context.WithCancel(context.Background())
	l := &sessionless{cancel: cancel, served: map[string]int{}, first: map[string]time.Time{}}
	for c := range clients {
		l.wg.Go(func() {
			hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
			tick := time.NewTicker(every)
			defer tick.Stop()
			for i := 0; ctx.Err() == nil; i++ {
				l.send(ctx, hc, fmt.Sprintf("%s/work?key=k%d", frontend, (c*7+i)%50))
				select {
				case <-ctx.Done():
				case <-tick.C:
				}
			}
		})
	}
	return l
}

// send makes one request and counts it: served (200) by the node that
// answered, or failed.
func (l *sessionless) send(ctx context.Context, hc *http.Client, url string) {
	at := time.Now()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := hc.Do(req)
	if ctx.Err() != nil {
		return // stopped: not the cluster's failure
	}
	var why string
	if err != nil {
		why = err.Error()
	} else {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			why = fmt.Sprintf("%s from %q: %s", resp.Status, resp.Header.Get("X-Node-ID"), strings.TrimSpace(string(body)))
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if why != "" {
		l.failed = append(l.failed, fmt.Sprintf("%s (after %s): %s", at.Format("15:04:05.000"), time.Since(at).Round(time.Millisecond), why))
		return
	}
	id := resp.Header.Get("X-Node-ID")
	if l.served[id]++; l.served[id] == 1 {
		l.first[id] = time.Now()
	}
	l.slowest = max(l.slowest, time.Since(at))
}

// stop stops the clients and waits for them.
func (l *sessionless) stop() { l.once.Do(func() { l.cancel(); l.wg.Wait() }) }

// counts returns the requests served, by node, and how many failed.
func (l *sessionless) counts() (map[string]int, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.served), len(l.failed)
}

// firstServed returns when each node first answered.
func (l *sessionless) firstServed() map[string]time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.first)
}

// String sums up the load for the log.
func (l *sessionless) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprintf("requests served by node: %v (the slowest in %s); failed: %d", l.served, l.slowest.Round(time.Millisecond), len(l.failed))
}

func (l *sessionless) failures() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.failed)
}

// allDone checks that every operation of the cluster ended done, and
// that they were so many expansions and contractions.
func allDone(t *testing.T, api *client.Client, cluster string, expansions, contractions int) {
	t.Helper()
	ops, err := api.Operations(t.Context(), cluster, 1000)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[plan.OpKind]int{}
	for _, op := range ops {
		if op.Status != plan.OpDone {
			t.Errorf("operation %s (%s) ended %s at %s: %s", op.ID, op.Kind, op.Status, op.Step, op.Error)
		}
		kinds[op.Kind]++
	}
	if kinds[plan.OpExpand] != expansions || kinds[plan.OpContract] != contractions {
		t.Errorf("operations by kind: %v, want %d expansions and %d contractions", kinds, expansions, contractions)
	}
}

// clusterView is a cluster as the agent's registry, the hypervisor and
// HAProxy see it: settled when the three agree, with every node ready.
type clusterView struct {
	nodes             []plan.Node
	ids, vms, servers []string // sorted
	settled           bool
}

// viewCluster reads cluster web from the agent, HAProxy's backend app and
// running (the hypervisor's running VMs).
func viewCluster(t *testing.T, api *client.Client, lb *haproxytest.Instance, running func() []string) clusterView {
	t.Helper()
	var c clusterView
	ns, err := api.Nodes(t.Context(), "web")
	if err != nil {
		return c
	}
	ready := true
	for _, n := range ns {
		c.nodes = append(c.nodes, n)
		c.ids = append(c.ids, n.ID)
		ready = ready && n.State == plan.NodeReady
	}
	c.vms = running()
	for _, line := range strings.Split(lb.Servers(t), "\n") {
		if f := strings.Fields(line); len(f) > 3 && !strings.HasPrefix(line, "#") {
			c.servers = append(c.servers, f[3])
		}
	}
	for _, s := range [][]string{c.ids, c.vms, c.servers} {
		slices.Sort(s)
	}
	c.settled = ready && slices.Equal(c.ids, c.vms) && slices.Equal(c.ids, c.servers)
	return c
}

// awaitCluster polls view until the cluster is settled and ok, and fails
// the test after within, with what it saw and what more says.
func awaitCluster(t *testing.T, what string, within time.Duration, view func() clusterView, ok func(clusterView) bool, more func() string) clusterView {
	t.Helper()
	var c clusterView
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		if c = view(); c.settled && ok(c) {
			return c
		}
	}
	extra := ""
	if more != nil {
		extra = "\n" + more()
	}
	t.Fatalf("not %s within %s: nodes %v, VMs %v, HAProxy %v%s", what, within, c.ids, c.vms, c.servers, extra)
	return c
}
