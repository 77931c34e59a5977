package telemetry

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mitosis-autoscaler/mitosis/autoscaler"
	"github.com/mitosis-autoscaler/mitosis/metrics"
	"github.com/mitosis-autoscaler/mitosis/plan"
	"github.com/mitosis-autoscaler/mitosis/policy"
)

// What the agent tells its telemetry, and what it wraps with it.

var _ autoscaler.Observer = (*Telemetry)(nil)

// ForClusters creates every counter series of the named clusters at 0,
// so that their first event is an increase Prometheus can see (a series
// that first appears at 1 has no increase) and a healthy agent exports
// its zero failures. The agent calls it once, with the configured
// clusters.
func (t *Telemetry) ForClusters(names []string) {
	kinds := []plan.OpKind{plan.OpExpand, plan.OpContract}
	for _, cl := range names {
		t.ticks.WithLabelValues(cl)
		t.decisionErrors.WithLabelValues(cl)
		t.unavailable.WithLabelValues(cl)
		for _, k := range kinds {
			for _, r := range []plan.OpStatus{plan.OpDone, plan.OpCompensated, plan.OpFailed} {
				t.operations.WithLabelValues(cl, string(k), string(r))
			}
			for _, dry := range []string{"false", "true"} {
				t.proposals.WithLabelValues(cl, string(k), dry)
			}
		}
		for _, a := range []plan.Action{plan.ActionNone, plan.ActionExpand, plan.ActionContract} {
			for _, dry := range []string{"false", "true"} {
				t.decisions.WithLabelValues(cl, string(a), dry)
			}
		}
	}
}

// SteppedDown drops the gauges that describe the clusters as the leader
// last saw them: a follower does not tick, and gauges frozen at its last
// tick as leader would look like a cluster that stopped deciding. The
// agent calls it when it stops leading; the counters are kept.
func (t *Telemetry) SteppedDown() {
	for _, g := range []*prometheus.GaugeVec{t.lastTick, t.available, t.size, t.minSize, t.maxSize, t.nodes, t.inFlight} {
		g.Reset()
	}
}

// RaftNode is what WatchRaft reads of the agent's raft node
// (*raftstore.Store is one). Both are called on every scrape, so they
// must be cheap and safe from any goroutine.
type RaftNode interface {
	IsLeader() bool
	Term() uint64
}

// WatchRaft exports the raft node's state on every scrape: whether it
// leads (mitosis_raft_leader), its term (mitosis_raft_term). Call it at
// most once: it registers the two gauges.
func (t *Telemetry) WatchRaft(r RaftNode) {
	t.raftLeader = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mitosis_raft_leader", Help: "1 while this agent is the raft leader, else 0."},
		func() float64 {
			if r.IsLeader() {
				return 1
			}
			return 0
		})
	t.raftTerm = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mitosis_raft_term", Help: "The raft term this agent is in (the fencing token of operations)."},
		func() float64 { return float64(r.Term()) })
	t.reg.MustRegister(t.raftLeader, t.raftTerm)
}

// Ticked implements autoscaler.Observer: a cluster's tick, its decision
// and what the registry held then.
func (t *Telemetry) Ticked(r autoscaler.TickReport) {
	rec, cl := r.Record, r.Record.Cluster
	dry := strconv.FormatBool(rec.DryRun)
	t.ticks.WithLabelValues(cl).Inc()
	t.lastTick.WithLabelValues(cl).Set(float64(rec.At.UnixMilli()) / 1000)
	action := rec.Decision.Action
	if action == "" {
		action = plan.ActionNone
	}
	t.decisions.WithLabelValues(cl, string(action), dry).Inc()
	if rec.Error != "" {
		t.decisionErrors.WithLabelValues(cl).Inc()
	}
	for _, p := range rec.Proposals {
		t.proposals.WithLabelValues(cl, string(p.Kind), dry).Inc()
	}
	if rec.Metrics.Available {
		t.available.WithLabelValues(cl).Set(1)
	} else {
		t.available.WithLabelValues(cl).Set(0)
		t.unavailable.WithLabelValues(cl).Inc()
	}
	t.size.WithLabelValues(cl).Set(float64(rec.Size))
	t.minSize.WithLabelValues(cl).Set(float64(r.Limits.Min))
	t.maxSize.WithLabelValues(cl).Set(float64(r.Limits.Max))
	states := map[plan.NodeState]int{plan.NodeReady: 0, plan.NodePreparing: 0, plan.NodeDraining: 0, plan.NodeFailed: 0}
	for _, n := range r.State.Nodes {
		states[n.State]++
	}
	for s, n := range states {
		t.nodes.WithLabelValues(cl, string(s)).Set(float64(n))
	}
	kinds := map[plan.OpKind]int{plan.OpExpand: 0, plan.OpContract: 0}
	for _, op := range r.State.Operations {
		if !op.Status.Finished() {
			kinds[op.Kind]++
		}
	}
	for k, n := range kinds {
		t.inFlight.WithLabelValues(cl, string(k)).Set(float64(n))
	}
}

// Stepped implements autoscaler.Observer: a saga step that took took,
// and the operation's end when it finished.
func (t *Telemetry) Stepped(op plan.Operation, from plan.Step, took time.Duration) {
	t.stepDuration.WithLabelValues(string(op.Kind), string(from)).Observe(took.Seconds())
	if op.Status.Finished() {
		t.operations.WithLabelValues(op.Cluster, string(op.Kind), string(op.Status)).Inc()
		t.opDuration.WithLabelValues(op.Cluster, string(op.Kind), string(op.Status)).Observe(op.StepAt.Sub(op.CreatedAt).Seconds())
	}
}

// Policy wraps e so that each evaluation is timed
// (mitosis_policy_evaluation_duration_seconds, by cluster).
func (t *Telemetry) Policy(e autoscaler.PolicyEngine) autoscaler.PolicyEngine {
	return timedPolicy{e, t.evalDuration}
}

// PolicyVersion labels mitosis_policy_info with the version of the policy
// decided with from now on (the previous version's series goes).
func (t *Telemetry) PolicyVersion(v string) {
	t.policyInfo.Reset()
	t.policyInfo.WithLabelValues(v).Set(1)
}

type timedPolicy struct {
	autoscaler.PolicyEngine
	h *prometheus.HistogramVec
}

func (p timedPolicy) Decide(ctx context.Context, in *policy.Input, now time.Time) (plan.Decision, error) {
	start := time.Now()
	defer func() { p.h.WithLabelValues(in.Cluster.Name).Observe(time.Since(start).Seconds()) }()
	return p.PolicyEngine.Decide(ctx, in, now)
}

// Source wraps s so that each snapshot is timed
// (mitosis_metrics_query_duration_seconds, by cluster).
func (t *Telemetry) Source(s autoscaler.MetricsSource) autoscaler.MetricsSource {
	return timedSource{s, t.queryDuration}
}

type timedSource struct {
	autoscaler.MetricsSource
	h *prometheus.HistogramVec
}

func (s timedSource) Snapshot(ctx context.Context, cluster string, nodes []plan.Node) metrics.Snapshot {
	start := time.Now()
	defer func() { s.h.WithLabelValues(cluster).Observe(time.Since(start).Seconds()) }()
	return s.MetricsSource.Snapshot(ctx, cluster, nodes)
}
