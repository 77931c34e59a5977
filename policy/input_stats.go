package policy

import (
	"math"
	"slices"

	"github.com/open-policy-agent/opa/v1/ast"
)

// NodeStats summarizes the per-node metrics of the nodes a policy scales
// on: the ready nodes of the scalable roles. The engine derives it from
// Nodes and Cluster.Roles on every evaluation and hands it to the policy
// as input.node_stats, so that a policy can read a cluster's mean in
// constant time instead of walking thousands of nodes on every tick; a
// policy that needs more (a percentile, say) still iterates input.nodes.
type NodeStats struct {
	// Ready is how many nodes are ready and of a scalable role.
	Ready int `json:"ready"`
	// Metrics summarizes each metric that at least one of them reports.
	Metrics map[string]MetricStats `json:"metrics"`
}

// MetricStats summarizes one metric over the ready nodes of scalable
// roles. Samples that are not finite numbers count as missing.
type MetricStats struct {
	Count   int     `json:"count"`   // nodes that report it
	Missing int     `json:"missing"` // ready nodes that do not
	Sum     float64 `json:"sum"`
	Mean    float64 `json:"mean"`
	Min     float64 `json:"min"`
	Max     float64 `json:"max"`
	// MaxAgeS is the age of the oldest sample.
	MaxAgeS float64 `json:"max_age_s"`
}

// Stats derives the input's node statistics. An input from BuildInput
// has them already; the caller must not change what they summarize.
func (in *Input) Stats() NodeStats {
	if in.stats != nil {
		return *in.stats
	}
	return in.computeStats()
}

func (in *Input) computeStats() NodeStats {
	st := NodeStats{Metrics: map[string]MetricStats{}}
	for i := range in.Nodes {
		n := &in.Nodes[i]
		if n.State != "ready" || !slices.Contains(in.Cluster.Roles, n.Role) {
			continue
		}
		st.Ready++
		for name, s := range n.Metrics {
			if math.IsNaN(s.Value) || math.IsInf(s.Value, 0) {
				continue
			}
			m, seen := st.Metrics[name]
			if !seen {
				m.Min, m.Max = s.Value, s.Value
			}
			m.Count++
			m.Sum += s.Value
			m.Min, m.Max = min(m.Min, s.Value), max(m.Max, s.Value)
			m.MaxAgeS = max(m.MaxAgeS, s.AgeS)
			st.Metrics[name] = m
		}
	}
	for name, m := range st.Metrics {
		m.Missing = st.Ready - m.Count
		m.Mean = m.Sum / float64(m.Count)
		st.Metrics[name] = m
	}
	return st
}

var (
	kNodeStats, kReady              = key("node_stats"), key("ready")
	kMissing, kSum, kMean, kMaxAgeS = key("missing"), key("sum"), key("mean"), key("max_age_s")
)

func (c *converter) stats(st NodeStats) *ast.Term {
	kvs := make([][2]*ast.Term, 0, len(st.Metrics))
	for name, m := range st.Metrics {
		kvs = append(kvs, [2]*ast.Term{c.str(name), c.obj(
			[2]*ast.Term{kCount, ast.IntNumberTerm(m.Count)},
			[2]*ast.Term{kMissing, ast.IntNumberTerm(m.Missing)},
			[2]*ast.Term{kSum, c.float(m.Sum)},
			[2]*ast.Term{kMean, c.float(m.Mean)},
			[2]*ast.Term{kMin, c.float(m.Min)},
			[2]*ast.Term{kMax, c.float(m.Max)},
			[2]*ast.Term{kMaxAgeS, c.float(m.MaxAgeS)},
		)})
	}
	return c.obj(
		[2]*ast.Term{kReady, ast.IntNumberTerm(st.Ready)},
		[2]*ast.Term{kMetrics, c.obj(kvs...)},
	)
}
