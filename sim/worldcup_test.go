package sim

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// worldCupScale makes the trace's peak minute (229,426 requests, 3,824
// req/s) need 40 nodes of the default 100 req/s: 3,824 × 1.04 = 3,977.
const worldCupScale = 1.04

// runWorldCup runs the default policy on load in both modes at once.
func runWorldCup(t *testing.T, load *Workload) (live, cold *Result) {
	t.Helper()
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
	t.Logf("%s × %g:\n%s", load.Name, worldCupScale, table.String())
	if dir := os.Getenv("SIM_REPORT_DIR"); dir != "" {
		writeReports(t, dir, load.Name, results...)
	}
	for _, r := range results {
		if r.TickErrors > 0 || r.Summary.Failures > 0 {
			t.Errorf("%s: %d policy errors (%s), %d failed operations", r.Label, r.TickErrors, r.FirstTickError, r.Summary.Failures)
		}
	}
	return results[0], results[1]
}

// checkAcceptance: live clones serve at least 99.9 % of the requests with
// at most 25 % of the node-hours of a static cluster sized for the peak
// (of staticNodes warm nodes), and cold boots leave more unserved.
func checkAcceptance(t *testing.T, live, cold Summary, staticNodes int) {
	t.Helper()
	if live.StaticNodes != staticNodes {
		t.Errorf("the peak needs %d nodes, want %d", live.StaticNodes, staticNodes)
	}
	if live.ServedPct < 99.9 {
		t.Errorf("live-clone served %.3f %% of requests, want at least 99.9 %%", live.ServedPct)
	}
	if live.NodeHoursPct > 25 {
		t.Errorf("live-clone used %.1f %% of the static cluster's node-hours, want at most 25 %%", live.NodeHoursPct)
	}
	if cold.NotServed <= live.NotServed || cold.BreachMinutes <= live.BreachMinutes {
		t.Errorf("cold boots left %.0f requests unserved in %.0f breach minutes, no more than live clones (%.0f in %.0f)",
			cold.NotServed, cold.BreachMinutes, live.NotServed, live.BreachMinutes)
	}
}

// TestWorldCupSharpestRiseWeek replays the week of the WorldCup98 trace
// with its sharpest rise (19-26 June 1998: +77,474 requests a minute
// within ten minutes on 25 June, to 213,235, 93 % of the trace's peak)
// with the default policy, live-clone and cold-boot side by side, and
// checks the acceptance figures on it against a static cluster sized for
// the week's own peak (37 nodes). The whole trace (87 days) takes
// minutes, so it runs with `make acceptance` (build tag worldcup); its
// figures are in docs/simulation.md.
func TestWorldCupSharpestRiseWeek(t *testing.T) {
	wc := openWorldCup(t)
	start := time.Date(1998, 6, 19, 0, 0, 0, 0, time.UTC)
	live, cold := runWorldCup(t, wc.Slice(start, start.Add(7*24*time.Hour)))
	checkAcceptance(t, live.Summary, cold.Summary, 37)
}

// TestWorldCupFullTrace is the acceptance run of docs/simulation.md: the
// whole 87-day trace in both modes (about a minute on two cores).
func TestWorldCupFullTrace(t *testing.T) {
	live, cold := runWorldCup(t, openWorldCup(t))
	checkAcceptance(t, live.Summary, cold.Summary, 40)
}
