// Package wire is the agent's HTTP API as it travels: the request and
// response bodies that the server in agent, the client agent/client and
// the command line share (docs/api.md).
//
// A type here is a promise to every program that speaks the API: its JSON
// names and shapes change only with a new API version. The package holds
// data and nothing else: it imports plan (for the registry's records that
// the API answers as they are: plan.Node, plan.Operation,
// plan.DecisionRecord, plan.AuditRecord) and the standard library, never
// the agent's back-ends, so that a client of the API carries none of them
// (a test in agent/client keeps it so).
package wire

import (
	"time"

	"github.com/mitosis-autoscaler/mitosis/plan"
)

// ErrorBody is the body of an answer other than 2xx: {"error": "…"}.
// Two refusals say more: a refused clone or detach (409) answers its
// decision record (plan.DecisionRecord, its Reasons), a refused policy
// (422) a PolicyRefusal.
type ErrorBody struct {
	Message string `json:"error"`
}

// Whoami is GET /v1/whoami: the token's name and role.
type Whoami struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

// Status is GET /v1/status.
type Status struct {
	Version       string           `json:"version"`
	PolicyVersion string           `json:"policy_version"`
	Simulated     bool             `json:"simulated"`
	DryRun        bool             `json:"dry_run"`
	Clusters      []ClusterSummary `json:"clusters"`
	// Raft is this agent's place in the replicated registry (absent
	// without raft).
	Raft *RaftStatus `json:"raft,omitempty"`
}

// ClusterSummary is one cluster in the status.
type ClusterSummary struct {
	Name string `json:"name"`
	Min  int    `json:"min"`
	Max  int    `json:"max"`
	// Size is the projected size (scalable nodes ± operations in flight).
	Size int `json:"size"`
	// Nodes counts the registered nodes by state.
	Nodes        map[plan.NodeState]int `json:"nodes"`
	InFlight     int                    `json:"in_flight"`
	Paused       bool                   `json:"paused"`
	DryRun       bool                   `json:"dry_run"`
	LastDecision *plan.DecisionRecord   `json:"last_decision,omitempty"`
}

// TargetGroup is one entry of GET /v1/targets: a node as Prometheus's
// HTTP service discovery (http_sd_configs) reads it.
type TargetGroup struct {
	// Targets is the node's address, host:port.
	Targets []string `json:"targets"`
	// Labels are cluster and node, kept on every series scraped from it,
	// and __meta_mitosis_* (role, state, host, vm, parent: those the node
	// has), which Prometheus drops unless relabelled.
	Labels map[string]string `json:"labels"`
}

// CloneRequest is POST /v1/clusters/{cluster}/clone. The answer is the
// decision record (plan.DecisionRecord): 201 with the operation it
// started, or 409 with the guardrails' reasons.
type CloneRequest struct {
	// Template is the node to clone.
	Template string `json:"template"`
}

// DetachRequest is POST /v1/clusters/{cluster}/detach; it answers as
// CloneRequest.
type DetachRequest struct {
	// Node is the node to detach and destroy.
	Node string `json:"node"`
}

// Settings is a cluster's switches as the API shows them (GET
// …/settings, and the answer of pause, resume and dry-run): DryRun is the
// one in force (the operator's switch, or else the configuration's).
type Settings struct {
	Paused bool      `json:"paused"`
	DryRun bool      `json:"dry_run"`
	By     string    `json:"by,omitempty"`
	At     time.Time `json:"at,omitzero"`
}

// DryRunRequest is PUT /v1/clusters/{cluster}/dry-run. Enabled is
// required: a body without it is refused, not read as false.
type DryRunRequest struct {
	Enabled *bool `json:"enabled"`
}

// PolicyFiles is a policy's files by name (*.rego, tests included), as
// GET /v1/policy answers and PUT /v1/policy and POST /v1/policy/validate
// take them.
type PolicyFiles struct {
	Version string            `json:"version,omitempty"`
	Files   map[string]string `json:"files"`
	// NoTests, on PUT /v1/policy, is the operator saying that the policy
	// may be used with no test that passes; without it such a push is
	// refused (422). Validate and GET ignore it.
	NoTests bool `json:"no_tests,omitempty"`
}

// PolicyCheck is what validating or pushing a policy found, when the
// policy is accepted (200).
type PolicyCheck struct {
	Version  string           `json:"version,omitempty"`
	Tests    TestCounts       `json:"tests"`
	Problems []string         `json:"problems,omitempty"`
	Results  []map[string]any `json:"results,omitempty"`
}

// PolicyRefusal is the answer (422) to a policy that does not compile,
// whose tests fail or that fails on a cluster's latest input: an
// ErrorBody with the problems, file:line:col: message.
type PolicyRefusal struct {
	Message  string     `json:"error"`
	Problems []string   `json:"problems"`
	Tests    TestCounts `json:"tests"`
	Version  string     `json:"version"`
}

// TestCounts counts a policy's Rego tests by outcome.
type TestCounts struct {
	Passed int `json:"passed"`
	Failed int `json:"failed"`
}

// RaftStatus is the raft part of GET /v1/status, and GET /v1/peers (and
// the answer of joining or removing a peer).
type RaftStatus struct {
	Node   string `json:"node"`
	State  string `json:"state"` // leader, follower, candidate or shutdown
	Leader string `json:"leader"`
	Term   uint64 `json:"term"`
	Peers  []Peer `json:"peers"`
	// RegistryIndex and RegistryDigest (GET /v1/peers only) are the log
	// index of the last command this replica applied and a SHA-256 of
	// its registry there: replicas at the same index show the same digest.
	RegistryIndex  uint64 `json:"registry_index,omitempty"`
	RegistryDigest string `json:"registry_digest,omitempty"`
}

// Peer is one voter of the replicated registry: its raft node id and
// raft address.
type Peer struct {
	ID      string `json:"id"`
	Address string `json:"address"`
}

// PeerRequest is POST /v1/peers: the agent to add as a voter.
type PeerRequest struct {
	ID      string `json:"id"`
	Address string `json:"address"`
}
