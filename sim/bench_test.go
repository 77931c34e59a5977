package sim

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/autoscaler"
	"github.com/mitosis-autoscaler/mitosis/plan"
)

// weekLoad is the first week of July 1998 from the WorldCup98 trace (its
// peak, 229,426 requests in the minute of 21:41 on 7 July, included),
// scaled ×2.6 so that the peak needs ~100 nodes.
func weekLoad(b *testing.B) (*Workload, float64) {
	start := time.Date(1998, 7, 1, 0, 0, 0, 0, time.UTC)
	return openWorldCup(b).Slice(start, start.Add(7*24*time.Hour)), 2.6
}

// BenchmarkSimulateWeek simulates a week at 5 s steps, ticking the real
// controller and the default policy every 30 s, with up to ~100 nodes.
func BenchmarkSimulateWeek(b *testing.B) { benchWeek(b, defaultPolicy(b)) }

// BenchmarkSimulateWeekGoPolicy is the same week with a small Go policy
// instead of the Rego one: what the world and the controller cost.
func BenchmarkSimulateWeekGoPolicy(b *testing.B) { benchWeek(b, targetPolicy{0.6, 0.4}) }

func benchWeek(b *testing.B, engine autoscaler.PolicyEngine) {
	load, scale := weekLoad(b)
	fc := worldCupConfig(b)
	fc.Clusters[0].Max = 150
	var res *Result
	for b.Loop() {
		var err error
		res, err = Run(context.Background(), Options{
			Workload: load, Config: fc.Config, Params: fc.Simulation, Mode: LiveClone, Scale: scale, Policy: engine, Seed: 1,
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if res.TickErrors > 0 {
		b.Fatalf("%d policy errors; first: %s", res.TickErrors, res.FirstTickError)
	}
	b.ReportMetric(res.Summary.MaxNodes, "max-nodes")
	b.ReportMetric(res.Summary.ServedPct, "served-%")
}

func worldCupConfig(tb testing.TB) FileConfig {
	tb.Helper()
	fc, err := LoadConfig("testdata/worldcup.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	return fc
}

// BenchmarkWorldStep is one step of a world of 100 serving nodes: a
// simulated week is 120,960 of them.
func BenchmarkWorldStep(b *testing.B) {
	p := DefaultParams()
	w, err := NewWorld(p, LiveClone, flat(7000, 24*time.Hour), 1, nil, 1)
	if err != nil {
		b.Fatal(err)
	}
	for i := range 100 {
		if _, err := w.AddNode(fmt.Sprintf("n%03d", i), "app", "host-1"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if w.Done() {
			b.StopTimer()
			w.steps, w.now = 0, 0
			b.StartTimer()
		}
		w.Step()
	}
}

// BenchmarkSnapshot is the metrics snapshot of 100 nodes, taken every tick.
func BenchmarkSnapshot(b *testing.B) {
	w, err := NewWorld(DefaultParams(), LiveClone, flat(7000, time.Hour), 1, nil, 1)
	if err != nil {
		b.Fatal(err)
	}
	var nodes []plan.Node
	for i := range 100 {
		n, err := w.AddNode(fmt.Sprintf("n%03d", i), "app", "host-1")
		if err != nil {
			b.Fatal(err)
		}
		nodes = append(nodes, n)
	}
	for range 20 {
		w.Step()
	}
	b.ReportAllocs()
	for b.Loop() {
		w.Snapshot(context.Background(), "app", nodes)
	}
}
