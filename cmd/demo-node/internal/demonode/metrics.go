package demonode

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Request results, the values of demo_node_requests_total's label.
const (
	resultHit         = "hit"
	resultMiss        = "miss"
	resultUnavailable = "unavailable" // 503: no new session, suspended, not finalized
	resultBadRequest  = "bad_request"
)

// metrics are the node's Prometheus metrics, in a registry of its own.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration prometheus.Histogram
	units    prometheus.Counter
}

func newMetrics(a *App) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "demo_node_requests_total",
			Help: "Work requests answered, by result (hit, miss, unavailable, bad_request).",
		}, []string{"result"}),
		// From 0.25 ms (about a hit) past a few ms (a miss) to queueing.
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "demo_node_request_duration_seconds",
			Help:    "Time to answer a work request.",
			Buckets: prometheus.ExponentialBuckets(0.00025, 2, 12),
		}),
		units: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "demo_node_work_units_total",
			Help: "Work units done: 1 per hit, 1 plus the miss cost per miss.",
		}),
	}
	for _, r := range []string{resultHit, resultMiss, resultUnavailable, resultBadRequest} {
		m.requests.WithLabelValues(r)
	}
	m.reg.MustRegister(
		m.requests, m.duration, m.units,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "demo_node_sessions",
			Help: "Live sessions.",
		}, func() float64 { return float64(a.Sessions()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "demo_node_cache_hit_ratio",
			Help: "Cache hits over the recent lookups (the last 1000).",
		}, func() float64 { return a.Warmth().CacheHitRatio }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "demo_node_cache_entries",
			Help: "Values in the cache.",
		}, func() float64 { return float64(a.CacheEntries()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "demo_node_ready",
			Help: "1 if the node takes new sessions, else 0.",
		}, func() float64 {
			if a.TakesNewSessions() {
				return 1
			}
			return 0
		}),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}
