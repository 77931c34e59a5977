package sim

import (
	"math"
	"slices"
	"time"

	"github.com/mitosis-autoscaler/mitosis/plan"
)

// Summary is what a run comes to. Everything in it is computed from the
// timeline and the operations (Summarize), so it can be checked by hand.
type Summary struct {
	Duration time.Duration
	// Requests offered, and those not served (dropped after waiting
	// Params.MaxQueueWait, or still waiting at the end).
	Requests, NotServed float64
	// ServedPct is the share of the requests served, in percent.
	ServedPct float64
	// BreachMinutes are the minutes whose mean demand exceeded the mean
	// serving capacity (the SLO breach); Breaches counts the runs of them.
	BreachMinutes float64
	Breaches      int
	// MeanTimeToCapacity is the mean time from the start of a breach to
	// the first clone joining after it (over the breaches some clone
	// joined after, before the next began: AnsweredBreaches of them).
	MeanTimeToCapacity time.Duration
	AnsweredBreaches   int
	// NodeHours are the VM hours used (booting, serving and draining
	// VMs); MeanNodes and MaxNodes are per minute.
	NodeHours, MeanNodes, MaxNodes float64
	// PeakDemand is the highest minute's demand (req/s); StaticNodes the
	// nodes a static cluster needs for it at full warmth, and
	// StaticNodeHours what that cluster uses over the run.
	PeakDemand      float64
	StaticNodes     int
	StaticNodeHours float64
	// NodeHoursPct is NodeHours as a percentage of StaticNodeHours.
	NodeHoursPct float64
	// Expansions and Contractions are the operations started; Reversals
	// the decisions that started operations in the direction opposite to
	// the previous such decision; Failures the operations that ended
	// compensated or failed.
	Expansions, Contractions, Reversals, Failures int
	// UtilP50 and UtilP95 are percentiles over the minutes of the busy
	// fraction: served / serving capacity.
	UtilP50, UtilP95 float64
}

// Summarize computes the summary of a timeline and its operations;
// nodeCapacity is a warm node's capacity (req/s), for the static cluster.
func Summarize(rows []Row, ops []OpRecord, nodeCapacity float64) Summary {
	var s Summary
	var secs float64
	var utils []float64
	for i, r := range rows {
		secs += r.Seconds
		s.Requests += r.Demand * r.Seconds
		s.NotServed += r.Dropped
		s.NodeHours += r.NodesTotal * r.Seconds / 3600
		s.MaxNodes = max(s.MaxNodes, r.NodesTotal)
		s.PeakDemand = max(s.PeakDemand, r.Demand)
		if breach(r) {
			s.BreachMinutes += r.Seconds / 60
			if i == 0 || !breach(rows[i-1]) {
				s.Breaches++
			}
		}
		if r.Capacity > 0 {
			utils = append(utils, r.Served/r.Capacity)
		}
	}
	s.Duration = time.Duration(secs * float64(time.Second))
	s.ServedPct = 100
	if s.Requests > 0 {
		s.ServedPct = 100 * (1 - s.NotServed/s.Requests)
	}
	if secs > 0 {
		s.MeanNodes = s.NodeHours * 3600 / secs
	}
	if nodeCapacity > 0 {
		s.StaticNodes = StaticNodes(s.PeakDemand, nodeCapacity)
		s.StaticNodeHours = float64(s.StaticNodes) * secs / 3600
	}
	if s.StaticNodeHours > 0 {
		s.NodeHoursPct = 100 * s.NodeHours / s.StaticNodeHours
	}
	slices.Sort(utils)
	s.UtilP50, s.UtilP95 = percentile(utils, 50), percentile(utils, 95)

	// Operations, in the order they started.
	ops = slices.Clone(ops)
	slices.SortStableFunc(ops, func(a, b OpRecord) int { return a.Started.Compare(b.Started) })
	var last plan.OpKind
	var lastAt time.Time
	var joins []time.Time
	for _, op := range ops {
		switch op.Kind {
		case plan.OpExpand:
			s.Expansions++
		case plan.OpContract:
			s.Contractions++
		}
		// Operations started together are one decision.
		if last != "" && op.Kind != last && !op.Started.Equal(lastAt) {
			s.Reversals++
		}
		last, lastAt = op.Kind, op.Started
		if op.Status == plan.OpCompensated || op.Status == plan.OpFailed {
			s.Failures++
		}
		if op.Kind == plan.OpExpand && op.Status == plan.OpDone {
			joins = append(joins, op.Finished)
		}
	}
	slices.SortFunc(joins, func(a, b time.Time) int { return a.Compare(b) })
	s.MeanTimeToCapacity, s.AnsweredBreaches = timeToCapacity(rows, joins)
	return s
}

// breach reports whether a row's demand exceeded its serving capacity.
func breach(r Row) bool { return r.Seconds > 0 && r.Demand > r.Capacity*(1+1e-9) }

// timeToCapacity is the mean time from each breach's start to the first
// join at or after it and before the next breach starts.
func timeToCapacity(rows []Row, joins []time.Time) (time.Duration, int) {
	var starts []time.Time
	for i, r := range rows {
		if breach(r) && (i == 0 || !breach(rows[i-1])) {
			starts = append(starts, r.Time)
		}
	}
	var total time.Duration
	n := 0
	for i, st := range starts {
		j, _ := slices.BinarySearchFunc(joins, st, func(a, b time.Time) int { return a.Compare(b) })
		if j == len(joins) || (i+1 < len(starts) && !joins[j].Before(starts[i+1])) {
			continue
		}
		total += joins[j].Sub(st)
		n++
	}
	if n == 0 {
		return 0, 0
	}
	return total / time.Duration(n), n
}

// percentile of sorted values, by nearest rank; 0 for none.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	k := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[min(max(k, 0), len(sorted)-1)]
}
