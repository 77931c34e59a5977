package telemetry

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mitosis-autoscaler/mitosis/autoscaler"
	"github.com/mitosis-autoscaler/mitosis/plan"
)

// The telemetry counts what the controller reports, under the names and
// labels of docs/telemetry.md, and passes client_golang's linter (the
// rules promtool check metrics applies).
func TestTelemetryCountsTicksAndOperations(t *testing.T) {
	tel := New("v-test")
	at := time.Unix(1767258000, 0)
	st := plan.ClusterState{
		Nodes: []plan.Node{{ID: "a", State: plan.NodeReady}, {ID: "b", State: plan.NodeReady}, {ID: "c", State: plan.NodeDraining}},
		Operations: []plan.Operation{
			{ID: "op-1", Kind: plan.OpExpand, Status: plan.OpRunning},
			{ID: "op-0", Kind: plan.OpContract, Status: plan.OpDone},
		},
	}
	tel.Ticked(autoscaler.TickReport{
		Record: plan.DecisionRecord{Cluster: "web", At: at, DryRun: true, Size: 3, Metrics: plan.MetricsHealth{Available: true},
			Decision:  plan.Decision{Action: plan.ActionExpand, Count: 1},
			Proposals: []plan.Proposal{{Kind: plan.OpExpand, Template: "a"}}},
		State: st, Limits: plan.Limits{Min: 2, Max: 6},
	})
	tel.Ticked(autoscaler.TickReport{
		Record: plan.DecisionRecord{Cluster: "web", At: at.Add(time.Minute), Size: 3, Error: "policy failed",
			Metrics: plan.MetricsHealth{Available: false, Reason: "prometheus unreachable"}},
		State: st, Limits: plan.Limits{Min: 2, Max: 6},
	})
	op := plan.Operation{Cluster: "web", Kind: plan.OpExpand, Status: plan.OpDone, CreatedAt: at, StepAt: at.Add(90 * time.Second)}
	tel.Stepped(op, "join", 5*time.Second)

	for _, c := range []struct {
		name string
		got  float64
		want float64
	}{
		{"ticks", testutil.ToFloat64(tel.ticks.WithLabelValues("web")), 2},
		{"expand decisions, dry", testutil.ToFloat64(tel.decisions.WithLabelValues("web", "expand", "true")), 1},
		{"none decisions (the failed tick)", testutil.ToFloat64(tel.decisions.WithLabelValues("web", "none", "false")), 1},
		{"decision errors", testutil.ToFloat64(tel.decisionErrors.WithLabelValues("web")), 1},
		{"proposals", testutil.ToFloat64(tel.proposals.WithLabelValues("web", "expand", "true")), 1},
		{"metrics unavailable", testutil.ToFloat64(tel.unavailable.WithLabelValues("web")), 1},
		{"metrics available now", testutil.ToFloat64(tel.available.WithLabelValues("web")), 0},
		{"ready nodes", testutil.ToFloat64(tel.nodes.WithLabelValues("web", "ready")), 2},
		{"draining nodes", testutil.ToFloat64(tel.nodes.WithLabelValues("web", "draining")), 1},
		{"failed nodes", testutil.ToFloat64(tel.nodes.WithLabelValues("web", "failed")), 0},
		{"expansions in flight", testutil.ToFloat64(tel.inFlight.WithLabelValues("web", "expand")), 1},
		{"contractions in flight", testutil.ToFloat64(tel.inFlight.WithLabelValues("web", "contract")), 0},
		{"max size", testutil.ToFloat64(tel.maxSize.WithLabelValues("web")), 6},
		{"last tick", testutil.ToFloat64(tel.lastTick.WithLabelValues("web")), float64(at.Add(time.Minute).Unix())},
		{"operations done", testutil.ToFloat64(tel.operations.WithLabelValues("web", "expand", "done")), 1},
	} {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.name, c.got, c.want)
		}
	}
	// The operation took 90 s from proposal to end; its last step 5 s.
	if err := testutil.CollectAndCompare(tel.opDuration, strings.NewReader(histogram(
		"mitosis_operation_duration_seconds", "Time from an operation's proposal to its end.",
		`cluster="web",kind="expand",result="done"`, slowBuckets, 90)), "mitosis_operation_duration_seconds"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(tel.stepDuration); n != 1 {
		t.Errorf("step duration series: %d, want 1", n)
	}
	problems, err := testutil.GatherAndLint(tel.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// histogram is the text exposition of a histogram with one observation.
func histogram(name, help, labels string, buckets []float64, v float64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name)
	for _, le := range buckets {
		n := 0
		if v <= le {
			n = 1
		}
		fmt.Fprintf(&b, "%s_bucket{%s,le=\"%s\"} %d\n", name, labels, strconv.FormatFloat(le, 'g', -1, 64), n)
	}
	fmt.Fprintf(&b, "%s_bucket{%s,le=\"+Inf\"} 1\n%s_sum{%s} %g\n%s_count{%s} 1\n", name, labels, name, labels, v, name, labels)
	return b.String()
}

// A healthy agent exports its counters at 0 from the start, so that the
// first failure is an increase the alerts see; a leader that steps down
// drops the gauges of its last tick, which would look frozen.
func TestCountersStartAtZeroAndASteppedDownLeaderDropsItsTickGauges(t *testing.T) {
	tel := New("v-test")
	tel.ForClusters([]string{"web", "shop"})
	for name, c := range map[string]struct {
		v    prometheus.Collector
		want int
	}{
		"ticks":       {tel.ticks, 2},
		"unavailable": {tel.unavailable, 2},
		"errors":      {tel.decisionErrors, 2},
		"operations":  {tel.operations, 2 * 2 * 3}, // clusters × kinds × results
		"proposals":   {tel.proposals, 2 * 2 * 2},  // clusters × kinds × dry runs
		"decisions":   {tel.decisions, 2 * 3 * 2},  // clusters × actions × dry runs
	} {
		if n := testutil.CollectAndCount(c.v); n != c.want {
			t.Errorf("%s: %d series before any event, want %d", name, n, c.want)
		}
	}
	if v := testutil.ToFloat64(tel.operations.WithLabelValues("web", "expand", "failed")); v != 0 {
		t.Errorf("failed expansions of a healthy agent: %v", v)
	}

	tel.Ticked(autoscaler.TickReport{
		Record: plan.DecisionRecord{Cluster: "web", At: time.Unix(1767258000, 0), Size: 3, Metrics: plan.MetricsHealth{Available: true}},
		Limits: plan.Limits{Min: 2, Max: 6},
	})
	tel.SteppedDown()
	for name, g := range map[string]*prometheus.GaugeVec{"last tick": tel.lastTick, "available": tel.available, "size": tel.size, "nodes": tel.nodes} {
		if n := testutil.CollectAndCount(g); n != 0 {
			t.Errorf("%s: %d series after stepping down, want none", name, n)
		}
	}
	if v := testutil.ToFloat64(tel.ticks.WithLabelValues("web")); v != 1 {
		t.Errorf("ticks after stepping down: %v, want the 1 counted", v)
	}
}
