package sim

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
)

// worldCupScale makes the trace's peak minute (229,426 requests, 3,824
// req/s) need 40 nodes of the default 100 req/s: 3,824 × 1.04 = 3,977.
const worldCupScale = 1.04

// TestWorldCupAcceptance replays the whole WorldCup98 trace (87 days) with
// the default policy, live-clone and cold-boot side by side, and checks
// the figures docs/simulation.md reports: live clones serve at least
// 99.9 % of the requests with at most 25 % of the node-hours of a static
// cluster sized for the peak.
func TestWorldCupAcceptance(t *testing.T) {
	if testing.Short() {
		t.Skip("the full trace takes a while")
	}
	load := openWorldCup(t)
	fc := worldCupConfig(t)
	results := make([]*Result, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, mode := range []Mode{LiveClone, ColdBoot} {
		wg.Go(func() {
			results[i], errs[i] = Run(context.Background(), Options{
				Workload: load, Config: fc.Config, Params: fc.Simulation, Mode: mode,
				Scale: worldCupScale, Seed: 1, Policy: defaultPolicy(t),
			})
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var table strings.Builder
	_ = WriteSummaryTable(&table, results...)
	t.Logf("WorldCup98 × %g:\n%s", worldCupScale, table.String())
	if dir := os.Getenv("SIM_REPORT_DIR"); dir != "" {
		writeReports(t, dir, "WorldCup98", results...)
	}
	live, cold := results[0].Summary, results[1].Summary
	if live.StaticNodes != 40 {
		t.Errorf("the peak needs %d nodes, want 40 (the scale is chosen for it)", live.StaticNodes)
	}
	if live.ServedPct < 99.9 {
		t.Errorf("live-clone served %.3f %% of requests, want at least 99.9 %%", live.ServedPct)
	}
	if live.NodeHoursPct > 25 {
		t.Errorf("live-clone used %.1f %% of the static cluster's node-hours, want at most 25 %%", live.NodeHoursPct)
	}
	if cold.ServedPct >= live.ServedPct {
		t.Errorf("cold boot served %.3f %%, no worse than live clones (%.3f %%)", cold.ServedPct, live.ServedPct)
	}
	for _, r := range results {
		if r.TickErrors > 0 || r.Summary.Failures > 0 {
			t.Errorf("%s: %d policy errors (%s), %d failed operations", r.Label, r.TickErrors, r.FirstTickError, r.Summary.Failures)
		}
	}
}
