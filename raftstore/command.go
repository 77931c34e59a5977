package raftstore

import (
	"encoding/json"
	"fmt"

	"github.com/mitosis-autoscaler/mitosis/plan"
)

// The log entries of the replicated registry are commands: one small JSON
// envelope each, versioned so that a node never applies what it does not
// understand.
//
//	{"v":1,"op":"decide","record":{…},"scaling":{…},"ops":[…]}
//	{"v":1,"op":"transition","id":"op-17","transition":{…}}
//	{"v":1,"op":"put_node","node":{…}}
//	{"v":1,"op":"put_settings","cluster":"web","settings":{…},"audit":{…}}
//	{"v":1,"op":"put_policy","policy":{…},"audit":{…}}
//
// The payloads are the plan types in their JSON form. Every command is
// applied to a plan.Ledger, which holds the semantics; a command the
// Ledger refuses (a step conflict, a duplicate operation id, a node with
// no id) is still a committed log entry: it changes nothing, on every
// node alike, and its error goes back to the proposer.

// CommandVersion is the version of the command envelope this build writes
// and the only one it applies. A node that meets another version refuses
// the entry (an error result, no change): upgrade every node before a
// leader writes a newer version.
const CommandVersion = 1

// Command kinds.
const (
	OpDecide     = "decide"
	OpTransition = "transition"
	OpPutNode    = "put_node"
	OpSettings   = "put_settings"
	OpPolicy     = "put_policy"
)

// Command is one log entry.
type Command struct {
	V  int    `json:"v"`
	Op string `json:"op"`

	// decide
	Record  *plan.DecisionRecord `json:"record,omitempty"`
	Scaling *plan.ScalingState   `json:"scaling,omitempty"`
	Ops     []plan.Operation     `json:"ops,omitempty"`

	// transition
	ID         string           `json:"id,omitempty"`
	Transition *plan.Transition `json:"transition,omitempty"`

	// put_node
	Node *plan.Node `json:"node,omitempty"`

	// put_settings, put_policy
	Cluster  string                `json:"cluster,omitempty"`
	Settings *plan.ClusterSettings `json:"settings,omitempty"`
	Policy   *plan.PolicyVersion   `json:"policy,omitempty"`
	Audit    *plan.AuditRecord     `json:"audit,omitempty"`
}

// DecodeCommand parses and checks one log entry.
func DecodeCommand(b []byte) (Command, error) {
	var c Command
	if err := json.Unmarshal(b, &c); err != nil {
		return Command{}, fmt.Errorf("raftstore: bad command: %w", err)
	}
	if c.V != CommandVersion {
		return Command{}, fmt.Errorf("raftstore: command version %d unknown (this node applies version %d)", c.V, CommandVersion)
	}
	switch {
	case c.Op == OpDecide && c.Record != nil && c.Scaling != nil:
	case c.Op == OpTransition && c.ID != "" && c.Transition != nil:
	case c.Op == OpPutNode && c.Node != nil:
	case c.Op == OpSettings && c.Settings != nil && c.Audit != nil:
	case c.Op == OpPolicy && c.Policy != nil && c.Audit != nil:
	default:
		return Command{}, fmt.Errorf("raftstore: unknown or incomplete command %q", c.Op)
	}
	return c, nil
}

// Encode returns the command's log entry.
func (c Command) Encode() ([]byte, error) {
	c.V = CommandVersion
	return json.Marshal(c)
}

// result is what applying a command returns to its proposer, through the
// Apply future's Response.
type result struct {
	op     plan.Operation      // transition only
	record plan.DecisionRecord // decide only: the record as stored, with its sequence number
	err    error
}

// apply applies c to l. It is deterministic: the same command on the same
// Ledger gives the same state and the same result.
func apply(l *plan.Ledger, c Command) result {
	switch c.Op {
	case OpDecide:
		rec, err := l.RecordDecision(*c.Record, *c.Scaling, c.Ops)
		return result{record: rec, err: err}
	case OpTransition:
		op, err := l.Transition(c.ID, *c.Transition)
		return result{op: op, err: err}
	case OpPutNode:
		return result{err: l.PutNode(*c.Node)}
	case OpSettings:
		return result{err: l.PutSettings(c.Cluster, *c.Settings, *c.Audit)}
	case OpPolicy:
		return result{err: l.PutPolicy(*c.Policy, *c.Audit)}
	}
	return result{err: fmt.Errorf("raftstore: unknown command %q", c.Op)}
}
