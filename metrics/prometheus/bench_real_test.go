package prometheus_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	promclient "github.com/prometheus/client_golang/prometheus"

	"github.com/mitosis-autoscaler/mitosis/internal/testenv"
	"github.com/mitosis-autoscaler/mitosis/metrics"
	"github.com/mitosis-autoscaler/mitosis/metrics/prometheus"
	"github.com/mitosis-autoscaler/mitosis/plan"
)

// BenchmarkSnapshot1000Nodes is one snapshot of a 1,000-node cluster from
// a real Prometheus: three per-node queries (1,000 series each, mapped to
// nodes by a node label) and one cluster-level query, as a tick takes it.
func BenchmarkSnapshot1000Nodes(b *testing.B) {
	const n = 1000
	tg := &target{t: b, addr: testenv.FreeAddr(b), reg: promclient.NewRegistry()}
	var nodes []plan.Node
	vecs := map[string]*promclient.GaugeVec{}
	for _, name := range []string{"app_utilization", "app_sessions", "app_cache_hit_ratio"} {
		vecs[name] = promclient.NewGaugeVec(promclient.GaugeOpts{Name: name, Help: name + " of a node."}, []string{"node"})
		tg.reg.MustRegister(vecs[name])
	}
	for i := range n {
		id := fmt.Sprintf("n%04d", i)
		nodes = append(nodes, plan.Node{ID: id})
		vecs["app_utilization"].WithLabelValues(id).Set(float64(i%100) / 100)
		vecs["app_sessions"].WithLabelValues(id).Set(float64(i))
		vecs["app_cache_hit_ratio"].WithLabelValues(id).Set(0.9)
	}
	tg.start()
	b.Cleanup(tg.stop)
	url := startPrometheus(b, []*target{tg})
	src, err := prometheus.New(prometheus.Config{
		URL: url, Timeout: 10 * time.Second, ScrapeInterval: 200 * time.Millisecond, Staleness: 5 * time.Second,
		Queries: []prometheus.Query{
			{Name: "utilization", Query: "app_utilization", PerNode: true, NodeLabel: "node", Match: prometheus.MatchID},
			{Name: "sessions", Query: "app_sessions", PerNode: true, NodeLabel: "node", Match: prometheus.MatchID},
			{Name: "cache_hit_ratio", Query: "app_cache_hit_ratio", PerNode: true, NodeLabel: "node", Match: prometheus.MatchID},
			{Name: "total_sessions", Query: "sum(app_sessions)"},
		},
	}, nil)
	if err != nil {
		b.Fatal(err)
	}
	full := func(s metrics.Snapshot) bool { return s.Unavailable == "" && len(s.Nodes) == n }
	deadline := time.Now().Add(30 * time.Second)
	for snap := src.Snapshot(context.Background(), "c", nodes); !full(snap); snap = src.Snapshot(context.Background(), "c", nodes) {
		if time.Now().After(deadline) {
			b.Fatalf("no full snapshot of %d nodes within 30 s; last: %d nodes, %q", n, len(snap.Nodes), snap.Unavailable)
		}
		time.Sleep(200 * time.Millisecond)
	}
	b.ReportAllocs()
	for b.Loop() {
		if snap := src.Snapshot(context.Background(), "c", nodes); !full(snap) {
			b.Fatalf("snapshot of %d nodes, unavailable %q", len(snap.Nodes), snap.Unavailable)
		}
	}
}
