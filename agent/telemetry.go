package agent

import (
	"context"
	"net/http"
	"runtime"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mitosis-autoscaler/mitosis/autoscaler"
	"github.com/mitosis-autoscaler/mitosis/metrics"
	"github.com/mitosis-autoscaler/mitosis/plan"
	"github.com/mitosis-autoscaler/mitosis/policy"
)

// Telemetry is the agent's own metrics (docs/telemetry.md). It observes
// the controller (autoscaler.Observer) and times the policy and the
// metrics source by wrapping them. Its registry holds only mitosis's
// metrics and the Go runtime's and process's.
type Telemetry struct {
	reg *prometheus.Registry

	ticks, decisionErrors, unavailable *prometheus.CounterVec
	decisions, proposals, operations   *prometheus.CounterVec
	lastTick, available, size          *prometheus.GaugeVec
	minSize, maxSize                   *prometheus.GaugeVec
	nodes, inFlight, policyInfo        *prometheus.GaugeVec
	evalDuration, queryDuration        *prometheus.HistogramVec
	opDuration, stepDuration           *prometheus.HistogramVec
	raftLeader, raftTerm               prometheus.GaugeFunc
}

// Buckets: fast things (an evaluation, a query) from 1 ms to 10 s; slow
// things (an operation, a step) from 1 s to about an hour.
var (
	fastBuckets = prometheus.ExponentialBucketsRange(0.001, 10, 14)
	slowBuckets = prometheus.ExponentialBucketsRange(1, 4096, 13)
)

// NewTelemetry registers the metrics; version is the agent's build.
func NewTelemetry(version string) *Telemetry {
	reg := prometheus.NewRegistry()
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
		f(v)
		return v
	}
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		v := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
		f(v)
		return v
	}
	histogram := func(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
		v := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
		f(v)
		return v
	}
	t := &Telemetry{
		reg:            reg,
		ticks:          counter("mitosis_ticks_total", "Ticks run.", "cluster"),
		decisionErrors: counter("mitosis_decision_errors_total", "Ticks whose policy evaluation failed.", "cluster"),
		unavailable:    counter("mitosis_metrics_unavailable_total", "Ticks whose metrics could not be trusted.", "cluster"),
		decisions:      counter("mitosis_decisions_total", "Decisions recorded, by the policy's action.", "cluster", "action", "dry_run"),
		proposals:      counter("mitosis_proposals_total", "Operations the plan let through (in a dry run, would have started).", "cluster", "kind", "dry_run"),
		operations:     counter("mitosis_operations_total", "Operations finished, by result.", "cluster", "kind", "result"),
		lastTick:       gauge("mitosis_last_tick_timestamp_seconds", "When the cluster's last tick ran, in Unix seconds.", "cluster"),
		available:      gauge("mitosis_metrics_available", "1 if the cluster's last metrics snapshot could be trusted, else 0.", "cluster"),
		size:           gauge("mitosis_cluster_size", "Projected size: scalable nodes plus and minus the operations in flight.", "cluster"),
		minSize:        gauge("mitosis_cluster_min_size", "The cluster's configured minimum size.", "cluster"),
		maxSize:        gauge("mitosis_cluster_max_size", "The cluster's configured maximum size.", "cluster"),
		nodes:          gauge("mitosis_cluster_nodes", "Registered nodes, by state.", "cluster", "state"),
		inFlight:       gauge("mitosis_operations_in_flight", "Operations not finished.", "cluster", "kind"),
		policyInfo:     gauge("mitosis_policy_info", "1 for the policy version the agent decides with.", "version"),
		evalDuration:   histogram("mitosis_policy_evaluation_duration_seconds", "Time to evaluate the policy on one tick.", fastBuckets, "cluster"),
		queryDuration:  histogram("mitosis_metrics_query_duration_seconds", "Time to take one metrics snapshot.", fastBuckets, "cluster"),
		opDuration:     histogram("mitosis_operation_duration_seconds", "Time from an operation's proposal to its end.", slowBuckets, "cluster", "kind", "result"),
		stepDuration:   histogram("mitosis_operation_step_duration_seconds", "Time a saga step took.", slowBuckets, "kind", "step"),
	}
	build := gauge("mitosis_build_info", "1, labelled with the agent's build.", "version", "goversion")
	build.WithLabelValues(version, runtime.Version()).Set(1)
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return t
}

// forClusters creates every counter series of the clusters at 0, so
// that their first event is an increase Prometheus can see (a series
// that first appears at 1 has no increase) and a healthy agent exports
// its zero failures.
func (t *Telemetry) forClusters(names []string) {
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

// steppedDown drops the gauges that describe the clusters as the leader
// last saw them: a follower does not tick, and gauges frozen at its last
// tick as leader would look like a cluster that stopped deciding.
func (t *Telemetry) steppedDown() {
	for _, g := range []*prometheus.GaugeVec{t.lastTick, t.available, t.size, t.minSize, t.maxSize, t.nodes, t.inFlight} {
		g.Reset()
	}
}

// raftState is what watchRaft reads.
type raftState interface {
	IsLeader() bool
	Term() uint64
}

// watchRaft exports the raft node's state: whether it leads, its term.
func (t *Telemetry) watchRaft(r raftState) {
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

// Handler serves the metrics in the Prometheus text format.
func (t *Telemetry) Handler() http.Handler {
	return promhttp.HandlerFor(t.reg, promhttp.HandlerOpts{Registry: t.reg})
}

// Ticked implements autoscaler.Observer.
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

// Stepped implements autoscaler.Observer.
func (t *Telemetry) Stepped(op plan.Operation, from plan.Step, took time.Duration) {
	t.stepDuration.WithLabelValues(string(op.Kind), string(from)).Observe(took.Seconds())
	if op.Status.Finished() {
		t.operations.WithLabelValues(op.Cluster, string(op.Kind), string(op.Status)).Inc()
		t.opDuration.WithLabelValues(op.Cluster, string(op.Kind), string(op.Status)).Observe(op.StepAt.Sub(op.CreatedAt).Seconds())
	}
}

// Policy times each evaluation of e.
func (t *Telemetry) Policy(e autoscaler.PolicyEngine) autoscaler.PolicyEngine {
	return timedPolicy{e, t.evalDuration}
}

// policyVersion labels mitosis_policy_info with the policy decided with.
func (t *Telemetry) policyVersion(v string) {
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

// Source times each snapshot of s.
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
