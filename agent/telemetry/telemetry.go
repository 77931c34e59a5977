// Package telemetry is the agent's own Prometheus metrics
// (docs/telemetry.md): what the agent observes of itself (ticks,
// decisions, proposals, operations and their steps, policy evaluations,
// metrics snapshots, raft leadership), on a registry of its own that
// holds only mitosis's metrics and the Go runtime's and process's.
//
// The agent calls it at these points (observe.go):
//
//	New                  once, with the agent's build
//	ForClusters          once, with the configured clusters' names
//	WatchRaft            once, when the agent is a raft node
//	Policy, Source       to wrap the policy and the metrics source it times
//	Ticked, Stepped      from the controller (autoscaler.Observer)
//	PolicyVersion        whenever another policy is decided with
//	SteppedDown          when the agent stops leading
//	Handler              to serve GET /metrics
package telemetry

import (
	"net/http"
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Telemetry is the agent's own metrics. It observes the controller
// (autoscaler.Observer) and times the policy and the metrics source by
// wrapping them. The controller's reports and the timed calls may come
// from any goroutine.
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

// New registers the metrics; version is the agent's build, exported as
// mitosis_build_info.
func New(version string) *Telemetry {
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

// Handler serves the metrics in the Prometheus text format (GET
// /metrics; the agent puts its token check in front).
func (t *Telemetry) Handler() http.Handler {
	return promhttp.HandlerFor(t.reg, promhttp.HandlerOpts{Registry: t.reg})
}

// Gatherer is the registry Handler serves, for reading the metrics back
// (as tests do) without going through HTTP.
func (t *Telemetry) Gatherer() prometheus.Gatherer { return t.reg }
