package sim

import (
	"math"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/plan"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(min float64) time.Time { return t0.Add(time.Duration(min * float64(time.Minute))) }

// rows makes one-minute rows from (demand, capacity, nodes) triples;
// served is min(demand, capacity) and the excess is dropped.
func rows(spec ...[3]float64) []Row {
	out := make([]Row, len(spec))
	for i, s := range spec {
		served := min(s[0], s[1])
		out[i] = Row{Time: at(float64(i)), Seconds: 60, Demand: s[0], Capacity: s[1], Served: served,
			Dropped: (s[0] - served) * 60, NodesTotal: s[2], NodesReady: s[2]}
	}
	return out
}

func op(kind plan.OpKind, start, end float64, st plan.OpStatus) OpRecord {
	return OpRecord{ID: "op", Kind: kind, Started: at(start), Finished: at(end), Status: st}
}

func TestSummarize(t *testing.T) {
	const E, C = plan.OpExpand, plan.OpContract
	done := plan.OpDone
	cases := []struct {
		name  string
		rows  []Row
		ops   []OpRecord
		check func(t *testing.T, s Summary)
	}{
		{
			name: "a cluster that keeps up serves everything and never breaches",
			rows: rows([3]float64{100, 200, 2}, [3]float64{150, 200, 2}),
			check: func(t *testing.T, s Summary) {
				want(t, "requests", s.Requests, 15000)
				want(t, "served %", s.ServedPct, 100)
				want(t, "breach minutes", s.BreachMinutes, 0)
				want(t, "breaches", float64(s.Breaches), 0)
			},
		},
		{
			name: "demand above capacity is a breach minute and its excess is not served",
			rows: rows([3]float64{100, 200, 2}, [3]float64{300, 200, 2}, [3]float64{300, 200, 2}, [3]float64{100, 300, 3}),
			check: func(t *testing.T, s Summary) {
				want(t, "requests", s.Requests, 800*60)
				want(t, "not served", s.NotServed, 200*60)
				want(t, "served %", s.ServedPct, 75)
				want(t, "breach minutes", s.BreachMinutes, 2)
				want(t, "breaches", float64(s.Breaches), 1)
			},
		},
		{
			name: "node-hours compare with a static cluster sized for the peak at full warmth",
			// Peak 250 req/s at 100 req/s a node: 3 static nodes for 4 minutes.
			rows: rows([3]float64{50, 100, 1}, [3]float64{250, 300, 3}, [3]float64{50, 100, 1}, [3]float64{50, 100, 1}),
			check: func(t *testing.T, s Summary) {
				want(t, "node-hours", s.NodeHours, 6.0/60)
				want(t, "static nodes", float64(s.StaticNodes), 3)
				want(t, "static node-hours", s.StaticNodeHours, 12.0/60)
				want(t, "node-hours %", s.NodeHoursPct, 50)
				want(t, "mean nodes", s.MeanNodes, 1.5)
				want(t, "max nodes", s.MaxNodes, 3)
				want(t, "peak", s.PeakDemand, 250)
			},
		},
		{
			name: "a peak exactly at a whole number of nodes needs no extra node",
			rows: rows([3]float64{300, 300, 3}),
			check: func(t *testing.T, s Summary) {
				want(t, "static nodes", float64(s.StaticNodes), 3)
			},
		},
		{
			name: "utilization percentiles are over minutes of served / capacity",
			rows: rows([3]float64{10, 100, 1}, [3]float64{20, 100, 1}, [3]float64{30, 100, 1}, [3]float64{40, 100, 1},
				[3]float64{50, 100, 1}, [3]float64{60, 100, 1}, [3]float64{70, 100, 1}, [3]float64{80, 100, 1},
				[3]float64{90, 100, 1}, [3]float64{200, 100, 1}),
			check: func(t *testing.T, s Summary) {
				want(t, "p50", s.UtilP50, 0.5)
				want(t, "p95", s.UtilP95, 1)
			},
		},
		{
			name: "operations: counts, failures, and reversals between directions",
			rows: rows([3]float64{1, 1, 1}),
			ops: []OpRecord{
				op(E, 1, 2, done), op(E, 1, 2, done), // one decision of two clones
				op(E, 3, 4, plan.OpCompensated),
				op(C, 10, 11, done), // reversal 1
				op(C, 12, 13, plan.OpFailed),
				op(E, 20, 21, done),          // reversal 2
				op(C, 30, 0, plan.OpRunning), // reversal 3, unfinished
			},
			check: func(t *testing.T, s Summary) {
				want(t, "expansions", float64(s.Expansions), 4)
				want(t, "contractions", float64(s.Contractions), 3)
				want(t, "failures", float64(s.Failures), 2)
				want(t, "reversals", float64(s.Reversals), 3)
			},
		},
		{
			name: "time to capacity runs from a breach's start to the next clone that joins",
			rows: rows(
				[3]float64{300, 200, 2}, [3]float64{300, 200, 2}, [3]float64{100, 300, 3}, // breach at 0, clone joins at 1.5
				[3]float64{100, 300, 3}, [3]float64{400, 300, 3}, [3]float64{100, 400, 4}, // breach at 4, clone joins at 4.5
				[3]float64{500, 400, 4}, [3]float64{100, 400, 4}, // breach at 6, no clone before the next breach
				[3]float64{500, 400, 4}, // breach at 8, clone joins at 20
			),
			ops: []OpRecord{
				op(E, 0.5, 1.5, done), op(E, 3.5, 4.5, done), op(E, 5, 5.5, plan.OpCompensated), op(E, 19, 20, done),
			},
			check: func(t *testing.T, s Summary) {
				want(t, "breaches", float64(s.Breaches), 4)
				want(t, "answered", float64(s.AnsweredBreaches), 3)
				want(t, "mean time to capacity (s)", s.MeanTimeToCapacity.Seconds(), (90+30+720)/3.0)
			},
		},
		{
			name: "an empty timeline summarizes to zeros",
			check: func(t *testing.T, s Summary) {
				want(t, "requests", s.Requests, 0)
				want(t, "served %", s.ServedPct, 100)
				want(t, "node-hours %", s.NodeHoursPct, 0)
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.check(t, Summarize(c.rows, c.ops, 100)) })
	}
}

func want(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-9*max(1, math.Abs(want)) {
		t.Errorf("%s = %g, want %g", what, got, want)
	}
}
