// Package test holds the end-to-end tests: the controller and its sagas
// against real components — reference nodes (cmd/demo-node) that speak
// the node API, a real HAProxy as the dispatcher, and the process
// hypervisor, whose "VMs" are demo-node processes that a clone restores
// from a snapshot of its running template.
package test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/autoscaler"
	"github.com/mitosis-autoscaler/mitosis/config"
	"github.com/mitosis-autoscaler/mitosis/dispatcher/haproxy"
	"github.com/mitosis-autoscaler/mitosis/dispatcher/haproxy/haproxytest"
	"github.com/mitosis-autoscaler/mitosis/hypervisor"
	"github.com/mitosis-autoscaler/mitosis/hypervisor/process"
	"github.com/mitosis-autoscaler/mitosis/internal/testenv"
	"github.com/mitosis-autoscaler/mitosis/metrics"
	"github.com/mitosis-autoscaler/mitosis/node"
	"github.com/mitosis-autoscaler/mitosis/plan"
	"github.com/mitosis-autoscaler/mitosis/policies"
	"github.com/mitosis-autoscaler/mitosis/policy"
)

const token = "e2e-node-token-2f7a" // an agent token too: 16 bytes at least

// world is the real components of one test.
type world struct {
	dir      string
	hv       *process.Hypervisor
	lb       *haproxytest.Instance
	disp     *haproxy.Dispatcher
	nodes    *node.Client
	frontend string
	// flags are extra demo-node flags per VM name (a refusing template, say).
	flags map[string][]string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	bin, err := buildDemoNode()
	if err != nil {
		t.Fatal(err)
	}
	w := &world{dir: t.TempDir(), nodes: node.NewClient(token, node.ClientOptions{Timeout: 5 * time.Second}), flags: map[string][]string{}}
	tokenFile := filepath.Join(w.dir, "token")
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	w.hv, err = process.New(process.Config{
		Dir: w.dir,
		Command: func(name, addr, state string) *exec.Cmd {
			args := []string{"--id", name, "--listen", addr, "--token-file", tokenFile, "--state-dir", w.dir, "--session-idle", "1s"}
			args = append(args, w.flags[name]...)
			if state != "" {
				args = append(args, "--from-state", state)
			}
			return exec.Command(bin, args...)
		},
		Snapshot: func(ctx context.Context, vm hypervisor.VM, file string) error {
			return w.nodes.Snapshot(ctx, vm.Address, "/-/snapshot?file="+url.QueryEscape(file))
		},
		Ready: func(ctx context.Context, addr string) error {
			_, err := w.nodes.Status(ctx, addr)
			return err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.hv.Close)
	w.lb = haproxytest.Start(t) // an empty backend: the test attaches web-1
	w.frontend = w.lb.Frontend
	w.disp, err = haproxy.New(context.Background(), haproxy.Config{
		Socket: w.lb.Socket, Backend: "app", Servers: []string{"web-1", "web-2", "web-3"}, Cluster: "web",
		ServerOptions: "pool-purge-delay 200ms", DynamicCookies: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// work sends n requests through HAProxy, each on a new connection, and
// counts the answers by the node that served them.
func (w *world) work(t *testing.T, n int) map[string]int {
	t.Helper()
	return workThrough(t, w.frontend, n)
}

// knob is a metrics source whose utilization the test sets; the rest of
// each node's figures come from the node itself.
type knob struct {
	mu    sync.Mutex
	util  float64
	nodes *node.Client
}

func (k *knob) set(u float64) { k.mu.Lock(); k.util = u; k.mu.Unlock() }

func (k *knob) Snapshot(ctx context.Context, _ string, nodes []plan.Node) metrics.Snapshot {
	k.mu.Lock()
	u := k.util
	k.mu.Unlock()
	snap := metrics.Snapshot{Cluster: map[string]metrics.Sample{}, Nodes: map[string]map[string]metrics.Sample{}}
	for _, n := range nodes {
		m := map[string]metrics.Sample{"utilization": {Value: u}}
		if st, err := k.nodes.Status(ctx, n.Address); err == nil {
			m["cache_hit_ratio"] = metrics.Sample{Value: st.CacheHitRatio}
			m["sessions"] = metrics.Sample{Value: float64(st.Sessions)}
		}
		snap.Nodes[n.ID] = m
	}
	return snap
}

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

// controller wires the real controller to the world, with the default
// policy and no cooldown or stabilization, so that it acts at once.
func (w *world) controller(t *testing.T, reg autoscaler.Registry, k *knob) *autoscaler.Controller {
	t.Helper()
	engine, err := policy.LoadFS(policies.FS, "policies")
	if err != nil {
		t.Fatal(err)
	}
	return w.controllerWith(t, reg, k, engine, "")
}

// e2eConfig is the cluster web, 1 to 4 nodes on one host, acting at once;
// extra YAML lines go into the cluster's entry.
const e2eConfig = `
tick: 1s
clusters:
  - name: web
    min: 1
    max: 4
    cooldown: {up: 0s, down: 0s}
    stabilization: 0s
    hosts: [{name: localhost}]
    finalize: {deadline: 15s}
    detach: {deadline: 15s}
`

func (w *world) controllerWith(t *testing.T, reg autoscaler.Registry, k *knob, engine autoscaler.PolicyEngine, extra string) *autoscaler.Controller {
	t.Helper()
	if extra == "" {
		extra = "    prepare: {deadline: 10s, mode: suspend}\n"
	}
	cfg, err := config.ParseController([]byte(e2eConfig+extra), "e2e.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := autoscaler.New(cfg, autoscaler.Deps{
		Registry: reg, Metrics: k, Policy: engine, Hypervisor: w.hv, Dispatcher: w.disp,
		Nodes: w.nodes, Clock: wallClock{}, Log: slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// boot starts VM name outside mitosis, attaches it in HAProxy and
// registers it as a ready node of the cluster web.
func (w *world) boot(t *testing.T, reg autoscaler.Registry, name string) plan.Node {
	t.Helper()
	ctx := context.Background()
	vm, err := w.hv.Boot(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.disp.Attach(ctx, name, vm.Address); err != nil {
		t.Fatal(err)
	}
	n := plan.Node{ID: name, Cluster: "web", Role: "app", State: plan.NodeReady,
		Host: vm.Host, VM: vm.Name, Address: vm.Address, CreatedAt: time.Now().Add(-time.Hour)}
	if err := reg.PutNode(ctx, n); err != nil {
		t.Fatal(err)
	}
	return n
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// runUntil ticks and actuates the controller until done holds.
func runUntil(t *testing.T, c *autoscaler.Controller, what string, done func() bool) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(60 * time.Second)
	for !done() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 60 s", what)
		}
		if _, err := c.Tick(ctx); err != nil {
			t.Logf("tick: %v", err)
		}
		if err := c.Actuate(ctx); err != nil {
			t.Logf("actuate: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestExpandAndContractWithRealNodesBehindHAProxy(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	reg := autoscaler.NewMemRegistry()

	// The cluster starts with one node, web-1, booted outside mitosis.
	vm := w.boot(t, reg, "web-1")
	if by := w.work(t, 40); by["web-1"] != 40 {
		t.Fatalf("warming web-1 through HAProxy: %v", by)
	}
	template, err := w.nodes.Status(ctx, vm.Address)
	if err != nil {
		t.Fatal(err)
	}

	// Busy: the default policy expands by one clone of web-1.
	k := &knob{util: 0.9, nodes: w.nodes}
	c := w.controller(t, reg, k)
	var clone plan.Node
	runUntil(t, c, "a clone joins", func() bool {
		st, err := reg.State(ctx, "web")
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range st.Nodes {
			if n.Parent == "web-1" && n.State == plan.NodeReady {
				clone = n
				return len(st.Operations) == 0
			}
		}
		return false
	})
	k.set(0.5) // within the band: nothing more to do

	st, err := w.nodes.Status(ctx, clone.Address)
	if err != nil {
		t.Fatal(err)
	}
	if st.ID != clone.ID || st.State != node.StateReady || st.Generation != template.Generation+1 || st.Sessions != 0 {
		t.Errorf("the clone after finalize: %+v, want id %s, ready, generation %d, no inherited session", st, clone.ID, template.Generation+1)
	}
	if st.CacheHitRatio < template.CacheHitRatio/2 {
		t.Errorf("the clone starts cold: cache hit ratio %.2f, its template had %.2f", st.CacheHitRatio, template.CacheHitRatio)
	}
	if ts, _ := w.nodes.Status(ctx, vm.Address); ts.State != node.StateReady || ts.ID != "web-1" {
		t.Errorf("the template after the clone: %+v, want web-1 ready again", ts)
	}
	by := w.work(t, 40)
	if by[clone.ID] == 0 || by["web-1"] == 0 {
		t.Errorf("work through HAProxy after the expansion: %v, want both nodes serving", by)
	}

	// Idle: the default policy contracts the clone (the newest, coldest).
	k.set(0.1)
	runUntil(t, c, "the clone leaves", func() bool {
		st, err := reg.State(ctx, "web")
		if err != nil {
			t.Fatal(err)
		}
		_, present := nodeByID(st.Nodes, clone.ID)
		return !present && len(st.Operations) == 0
	})
	k.set(0.5)
	if _, err := w.hv.Lookup(ctx, clone.VM); err == nil {
		t.Error("the clone's VM still exists")
	}
	if _, err := w.nodes.Status(ctx, clone.Address); err == nil {
		t.Error("the clone's process still answers")
	}
	if by := w.work(t, 20); by["web-1"] != 20 {
		t.Errorf("work after the contraction: %v, want all on web-1", by)
	}
	if servers := w.lb.Servers(t); strings.Contains(servers, clone.ID) {
		t.Errorf("HAProxy still has the clone:\n%s", servers)
	}
}

func nodeByID(nodes []plan.Node, id string) (plan.Node, bool) {
	for _, n := range nodes {
		if n.ID == id {
			return n, true
		}
	}
	return plan.Node{}, false
}

// promtool, Prometheus's own checker, finds nothing to say about the
// metrics a real demo-node exports.
func TestDemoNodeMetricsPassPromtool(t *testing.T) {
	promtool := testenv.Binary(t, "promtool")
	w := newWorld(t)
	reg := autoscaler.NewMemRegistry()
	n := w.boot(t, reg, "web-1")
	w.work(t, 20) // some traffic, so that every series has samples
	resp, err := http.Get("http://" + n.Address + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "demo_node_requests_total") {
		t.Fatalf("/metrics: %s %v\n%s", resp.Status, err, body)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(string(body))
	out, err := cmd.CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) != 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}
