package policy

// SchemaVersion is the version of the policy contract: the shape of Input
// and of data.mitosis.decision. It changes only in a breaking way.
const SchemaVersion = 1

// Input is the document a policy sees as `input` (contract version 1,
// documented in docs/policy.md). Durations are seconds; times are Unix
// seconds, so that policies do plain arithmetic.
type Input struct {
	Schema     int               `json:"schema"`
	Now        int64             `json:"now"`
	Cluster    Cluster           `json:"cluster"`
	Nodes      []Node            `json:"nodes"`
	Hosts      []Host            `json:"hosts"`
	Metrics    map[string]Metric `json:"metrics"`
	Health     Health            `json:"health"`
	History    History           `json:"history"`
	Estimates  Estimates         `json:"estimates"`
	Operations []Operation       `json:"operations"`
	Params     map[string]any    `json:"params"`

	// stats are the node statistics, computed once by BuildInput (nil in
	// an input built otherwise: Stats then computes them on each call).
	stats *NodeStats
}

// Cluster describes the cluster and its limits.
type Cluster struct {
	Name string `json:"name"`
	Min  int    `json:"min"`
	Max  int    `json:"max"`
	// Size is the projected size: scalable nodes plus expansions, minus
	// contractions, in flight.
	Size int `json:"size"`
	// Roles are the scalable roles.
	Roles []string `json:"roles"`
}

// Node is one node as a policy sees it.
type Node struct {
	ID           string  `json:"id"`
	Role         string  `json:"role"`
	State        string  `json:"state"`
	Host         string  `json:"host"`
	VM           string  `json:"vm"`
	AgeS         float64 `json:"age_s"`
	Parent       string  `json:"parent"`
	LineageDepth int     `json:"lineage_depth"`
	// Metrics holds the node's samples by name; a missing sample is absent.
	Metrics map[string]Metric `json:"metrics"`
}

// Metric is one value with its age in seconds.
type Metric struct {
	Value float64 `json:"value"`
	AgeS  float64 `json:"age_s"`
}

// Host is a hypervisor host.
type Host struct {
	Name     string `json:"name"`
	Capacity int    `json:"capacity"`
	VMs      int    `json:"vms"`
}

// Health says whether the metrics can be trusted this tick.
type Health struct {
	MetricsAvailable bool   `json:"metrics_available"`
	Reason           string `json:"reason"`
}

// History is what happened lately. A *_s_ago of -1 means never.
type History struct {
	LastExpandSAgo   float64 `json:"last_expand_s_ago"`
	LastContractSAgo float64 `json:"last_contract_s_ago"`
	// LastJoinSAgo is since the last clone joined: the capacity it
	// brought is in the metrics averaged over a longer window only in part.
	LastJoinSAgo float64          `json:"last_join_s_ago"`
	Recent       []RecentDecision `json:"recent"`
}

// RecentDecision is one past decision, newest first.
type RecentDecision struct {
	SAgo   float64 `json:"s_ago"`
	Action string  `json:"action"`
	Count  int     `json:"count"`
}

// Estimates are learned from finished operations (0 until one finished).
type Estimates struct {
	CloneSeconds float64 `json:"clone_seconds"`
	DrainSeconds float64 `json:"drain_seconds"`
}

// Operation is an operation in flight.
type Operation struct {
	ID       string  `json:"id"`
	Kind     string  `json:"kind"`
	Step     string  `json:"step"`
	Template string  `json:"template"`
	Node     string  `json:"node"`
	Host     string  `json:"host"`
	AgeS     float64 `json:"age_s"`
}
