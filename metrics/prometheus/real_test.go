package prometheus_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	promclient "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mitosis-autoscaler/mitosis/internal/testenv"
	"github.com/mitosis-autoscaler/mitosis/metrics"
	"github.com/mitosis-autoscaler/mitosis/metrics/prometheus"
	"github.com/mitosis-autoscaler/mitosis/plan"
)

// target is one fake node's metrics endpoint, exported with client_golang
// on a registry of its own, that can be stopped and restarted at the same
// address.
type target struct {
	t    testing.TB
	addr string
	reg  *promclient.Registry
	load promclient.Gauge

	mu  sync.Mutex
	srv *http.Server
}

// frozen is a gauge whose sample carries a fixed timestamp, as from a
// stuck exporter or federation: Prometheus keeps it, ageing.
type frozen struct {
	desc *promclient.Desc
	at   time.Time
}

func (f frozen) Describe(ch chan<- *promclient.Desc) { ch <- f.desc }
func (f frozen) Collect(ch chan<- promclient.Metric) {
	ch <- promclient.NewMetricWithTimestamp(f.at, promclient.MustNewConstMetric(f.desc, promclient.GaugeValue, 1))
}

func newTarget(t *testing.T, id string, load float64, first bool) *target {
	tg := &target{t: t, addr: testenv.FreeAddr(t), reg: promclient.NewRegistry()}
	tg.load = promclient.NewGauge(promclient.GaugeOpts{Name: "app_load", Help: "Load of the fake node."})
	tg.load.Set(load)
	queue := promclient.NewGaugeVec(promclient.GaugeOpts{Name: "app_queue", Help: "Queue length."}, []string{"node"})
	queue.WithLabelValues(id).Set(10 * load)
	tg.reg.MustRegister(tg.load, queue)
	if first {
		sessions := promclient.NewGauge(promclient.GaugeOpts{Name: "app_sessions", Help: "Sessions of the cluster."})
		sessions.Set(42)
		tg.reg.MustRegister(sessions, frozen{
			desc: promclient.NewDesc("app_frozen", "A sample that never moves on.", nil, nil),
			at:   time.Now(),
		})
	}
	tg.start()
	t.Cleanup(tg.stop)
	return tg
}

func (tg *target) start() {
	tg.t.Helper()
	l, err := listenAgain(tg.addr)
	if err != nil {
		tg.t.Fatal(err)
	}
	srv := &http.Server{Handler: promhttp.HandlerFor(tg.reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	tg.mu.Lock()
	tg.srv = srv
	tg.mu.Unlock()
}

func (tg *target) stop() {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	if tg.srv != nil {
		_ = tg.srv.Close()
		tg.srv = nil
	}
}

// startPrometheus runs the real server on a free loopback port, scraping
// the targets every 200ms, and kills it by its PID when the test ends.
func startPrometheus(t testing.TB, targets []*target) string {
	return startPrometheusWithRules(t, targets, "")
}

// startPrometheusWithRules is startPrometheus with a rule file's groups
// (YAML under "groups:"), if any.
func startPrometheusWithRules(t testing.TB, targets []*target, groups string) string {
	bin := testenv.Binary(t, "prometheus")
	dir := t.TempDir()
	var addrs []string
	for _, tg := range targets {
		addrs = append(addrs, fmt.Sprintf("%q", tg.addr))
	}
	conf := fmt.Sprintf(`global:
  scrape_interval: 200ms
  scrape_timeout: 200ms
scrape_configs:
  - job_name: app
    static_configs:
      - targets: [%s]
`, strings.Join(addrs, ", "))
	if groups != "" {
		rules := filepath.Join(dir, "rules.yml")
		if err := os.WriteFile(rules, []byte("groups:\n"+groups), 0o600); err != nil {
			t.Fatal(err)
		}
		conf += fmt.Sprintf("rule_files: [%q]\n", rules)
	}
	confFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := testenv.FreeAddr(t)
	var out bytes.Buffer
	cmd := exec.Command(bin, "--config.file="+confFile, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus output:\n%s", out.String())
		}
	})
	return "http://" + addr
}

// poll takes snapshots until ok accepts one or the deadline passes.
func poll(t *testing.T, what string, within time.Duration, s *prometheus.Source, nodes []plan.Node,
	ok func(metrics.Snapshot) bool) metrics.Snapshot {
	t.Helper()
	var snap metrics.Snapshot
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		snap = s.Snapshot(context.Background(), "c", nodes)
		if ok(snap) {
			return snap
		}
	}
	t.Fatalf("%s: not within %s; last snapshot %+v", what, within, snap)
	return snap
}

func TestAgainstARealPrometheus(t *testing.T) {
	targets := []*target{newTarget(t, "n1", 1, true), newTarget(t, "n2", 2, false), newTarget(t, "n3", 3, false)}
	var nodes []plan.Node
	for i, tg := range targets {
		nodes = append(nodes, plan.Node{ID: fmt.Sprintf("n%d", i+1), Address: tg.addr})
	}
	url := startPrometheus(t, targets)
	src, err := prometheus.New(prometheus.Config{
		URL: url, Timeout: 5 * time.Second, ScrapeInterval: 200 * time.Millisecond, Staleness: 1500 * time.Millisecond,
		Queries: []prometheus.Query{
			{Name: "load", Query: "app_load", PerNode: true}, // instance = the node's address
			{Name: "queue", Query: "app_queue", PerNode: true, NodeLabel: "node", Match: prometheus.MatchID},
			{Name: "total_load", Query: "sum(app_load)"},
			{Name: "sessions", Query: "app_sessions"},
		},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	full := func(s metrics.Snapshot) bool {
		return s.Unavailable == "" && len(s.Nodes) == 3 && len(s.Nodes["n3"]) == 2
	}

	// DESIGN: the first samples arrive ~5-6 s after start.
	start := time.Now()
	snap := poll(t, "first full snapshot", 20*time.Second, src, nodes, full)
	t.Logf("first full snapshot %s after start", time.Since(start).Round(time.Millisecond))
	for i, n := range nodes {
		load, queue := snap.Nodes[n.ID]["load"], snap.Nodes[n.ID]["queue"]
		if load.Value != float64(i+1) || queue.Value != float64(10*(i+1)) {
			t.Errorf("%s: load %+v queue %+v", n.ID, load, queue)
		}
		for _, smp := range []metrics.Sample{load, queue} {
			if smp.Age < 0 || smp.Age > 1500*time.Millisecond {
				t.Errorf("%s: age %s outside [0, staleness]", n.ID, smp.Age)
			}
		}
	}
	if v := snap.Cluster["total_load"]; v.Value != 6 || v.Age != 0 {
		// A computed expression's timestamp is the evaluation's.
		t.Errorf("total_load %+v, want 6 aged 0", v)
	}
	if v := snap.Cluster["sessions"]; v.Value != 42 || v.Age > 1500*time.Millisecond {
		t.Errorf("sessions %+v", v)
	}

	// A change on a node shows in the next scrapes.
	targets[1].load.Set(5)
	poll(t, "n2's new load", 5*time.Second, src, nodes, func(s metrics.Snapshot) bool {
		return full(s) && s.Nodes["n2"]["load"].Value == 5
	})

	// One target stops: its node goes missing (never zero); the others
	// still decide.
	targets[2].stop()
	snap = poll(t, "n3 missing", 10*time.Second, src, nodes, func(s metrics.Snapshot) bool {
		_, has := s.Nodes["n3"]
		return s.Unavailable == "" && !has && len(s.Nodes) == 2
	})

	// Every target stops: nothing to decide on.
	targets[0].stop()
	targets[1].stop()
	reasons := []string{`query "load": no series`, `query "queue": no series`, `query "total_load": no sample`, `query "sessions": no sample`}
	snap = poll(t, "unavailable, every query saying why", 10*time.Second, src, nodes, func(s metrics.Snapshot) bool {
		for _, want := range reasons {
			if !strings.Contains(s.Unavailable, want) {
				return false
			}
		}
		return len(s.Nodes) == 0 && len(s.Cluster) == 0
	})
	t.Logf("all targets down: %s", snap.Unavailable)

	// They come back: recovered, with no action from anyone.
	for _, tg := range targets {
		tg.start()
	}
	poll(t, "recovery", 15*time.Second, src, nodes, full)

	// A sample that stops moving on (its exporter stuck on one timestamp)
	// is caught by its age: the real sample time, from timestamp().
	stuck, err := prometheus.New(prometheus.Config{
		URL: url, Staleness: time.Second, Queries: []prometheus.Query{{Name: "frozen", Query: "app_frozen"}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	snap = poll(t, "the frozen sample stale", 10*time.Second, stuck, nodes, func(s metrics.Snapshot) bool {
		return strings.Contains(s.Unavailable, `query "frozen": sample is`) && strings.Contains(s.Unavailable, "older than the staleness 1s")
	})
	t.Logf("frozen: %s", snap.Unavailable)

	// Prometheus itself goes away.
	down, err := prometheus.New(prometheus.Config{URL: "http://" + testenv.FreeAddr(t), Queries: []prometheus.Query{{Name: "x", Query: "up"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s := down.Snapshot(context.Background(), "c", nodes); !strings.Contains(s.Unavailable, `query "x": prometheus unreachable`) {
		t.Errorf("no Prometheus: %q", s.Unavailable)
	}
}
