// Package metrics holds the metric snapshot a tick decides on. Sources
// (Prometheus, a recorded trace, the simulator) fill it.
package metrics

import "time"

// Sample is one value and how old it is.
type Sample struct {
	Value float64       `json:"value"`
	Age   time.Duration `json:"age"`
}

// Snapshot is the metrics of one cluster at one tick. A node or a metric
// without a sample is absent from the maps, never zero.
type Snapshot struct {
	// Cluster holds cluster-level values by query name.
	Cluster map[string]Sample
	// Nodes holds per-node values: node id → query name → sample.
	Nodes map[string]map[string]Sample
	// Unavailable is why the snapshot cannot be trusted ("" when it can):
	// the source was unreachable, a query failed or came back empty, or a
	// sample was stale, NaN or infinite.
	Unavailable string
}
