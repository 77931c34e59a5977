package plan

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// DecisionHistory is how many decisions a Ledger keeps per cluster (it
// trims in bulk, so it may hold up to twice as many), and how many
// finished operations it keeps at least.
const DecisionHistory = 256

// Ledger is the state of a registry and every change to it, with no
// locking, no clock, no I/O: the in-memory registry wraps it in a mutex,
// the replicated one applies its log entries to it. Given the same changes
// in the same order, two Ledgers hold the same state and marshal to the
// same JSON, whatever the map iteration order.
//
// It keeps nodes per cluster, operations in creation order (unfinished
// ones on an open list, finished ones beyond the newest DecisionHistory
// forgotten), the latest decisions per cluster, the scaling state and the
// estimates learned from done operations. Everything it returns is a copy,
// and everything it stores is copied: callers cannot reach its state.
//
// The zero Ledger is empty and ready to use. It is not safe for
// concurrent use.
type Ledger struct {
	nodes     map[string]Node // by id
	nodeIDs   []string        // sorted, so State needs no sort
	ops       map[string]Operation
	opOrder   []string // creation order
	open      []string // unfinished operations, in creation order
	scaling   map[string]ScalingState
	decisions map[string][]DecisionRecord // newest last
	estimates map[string]Estimates
	settings  map[string]ClusterSettings
	audits    []AuditRecord   // oldest first
	policies  []PolicyVersion // pushed, oldest first
	seq       uint64
}

// NewLedger returns an empty Ledger.
func NewLedger() *Ledger {
	l := &Ledger{}
	l.init()
	return l
}

func (l *Ledger) init() {
	if l.nodes != nil {
		return
	}
	l.nodes = map[string]Node{}
	l.ops = map[string]Operation{}
	l.scaling = map[string]ScalingState{}
	l.decisions = map[string][]DecisionRecord{}
	l.estimates = map[string]Estimates{}
	l.settings = map[string]ClusterSettings{}
}

// State returns a copy of one cluster; an unknown cluster is empty.
func (l *Ledger) State(cluster string) ClusterState {
	var s ClusterState
	for _, id := range l.nodeIDs {
		if n := l.nodes[id]; n.Cluster == cluster {
			s.Nodes = append(s.Nodes, n)
		}
	}
	for _, id := range l.open {
		if op := l.ops[id]; op.Cluster == cluster {
			s.Operations = append(s.Operations, CloneOperation(op))
		}
	}
	s.Scaling = CloneScalingState(l.scaling[cluster])
	s.Estimates = l.estimates[cluster]
	s.Settings = l.settings[cluster]
	if d := s.Settings.DryRun; d != nil {
		v := *d
		s.Settings.DryRun = &v
	}
	d := l.decisions[cluster]
	for i := len(d) - 1; i >= 0 && len(s.Recent) < RecentDecisions; i-- {
		s.Recent = append(s.Recent, RecentDecision{At: d[i].At, Action: d[i].Decision.Action, Count: d[i].Decision.Count})
	}
	return s
}

// Unfinished returns every unfinished operation, oldest first.
func (l *Ledger) Unfinished() []Operation {
	out := make([]Operation, 0, len(l.open))
	for _, id := range l.open {
		out = append(out, CloneOperation(l.ops[id]))
	}
	return out
}

// Operation returns one operation, or an error wrapping ErrNotFound.
func (l *Ledger) Operation(id string) (Operation, error) {
	op, ok := l.ops[id]
	if !ok {
		return Operation{}, fmt.Errorf("operation %s: %w", id, ErrNotFound)
	}
	return CloneOperation(op), nil
}

// OperationIDs returns the ids of every operation held, finished or not,
// in creation order.
func (l *Ledger) OperationIDs() []string { return slices.Clone(l.opOrder) }

// Decisions returns up to limit of the cluster's latest decisions, newest
// first.
func (l *Ledger) Decisions(cluster string, limit int) []DecisionRecord {
	d := l.decisions[cluster]
	out := make([]DecisionRecord, 0, max(0, min(limit, len(d))))
	for i := len(d) - 1; i >= 0 && len(out) < limit; i-- {
		out = append(out, CloneDecisionRecord(d[i]))
	}
	return out
}

// RecordDecision records a decision (numbered with the next sequence number), the
// cluster's scaling state and the operations the decision starts, all at
// once. An operation id that exists already, or twice among ops, is an
// error and nothing is recorded; so is an expansion whose clone name is a
// node's or another operation's clone's. It returns the record as stored.
//
// scaling was computed from an earlier read, so its LastJoin may predate
// a join committed since: the later of the two is kept, and the larger
// of the clone counts.
func (l *Ledger) RecordDecision(rec DecisionRecord, scaling ScalingState, ops []Operation) (DecisionRecord, error) {
	l.init()
	seen := make(map[string]bool, len(ops))
	for _, op := range ops {
		if _, dup := l.ops[op.ID]; dup || seen[op.ID] {
			return DecisionRecord{}, fmt.Errorf("operation %s already exists", op.ID)
		}
		seen[op.ID] = true
	}
	if err := l.checkCloneNames(ops); err != nil {
		return DecisionRecord{}, err
	}
	l.seq++
	rec = CloneDecisionRecord(rec)
	rec.Seq = l.seq
	// The policy's text is capped where it is checked (package policy);
	// this keeps any other writer's from growing the history and snapshots.
	rec.Decision.Reason, rec.Error = CutText(rec.Decision.Reason, MaxReason), CutText(rec.Error, MaxReason)
	if rec.By != "" { // an operator's: its audit record goes with it
		l.audit(AuditRecord{At: rec.At, By: rec.By, Cluster: rec.Cluster, Action: manualAction(rec), Detail: manualDetail(rec)})
	}
	d := append(l.decisions[rec.Cluster], rec)
	if len(d) >= 2*DecisionHistory { // trim in bulk, not on every decision
		d = slices.Delete(d, 0, len(d)-DecisionHistory)
	}
	l.decisions[rec.Cluster] = d
	scaling = CloneScalingState(scaling)
	if joined := l.scaling[rec.Cluster].LastJoin; joined.After(scaling.LastJoin) {
		scaling.LastJoin = joined
	}
	// Likewise the clone numbers never go back, so no name is given twice.
	scaling.Clones = max(scaling.Clones, l.scaling[rec.Cluster].Clones)
	l.scaling[rec.Cluster] = scaling
	for _, op := range ops {
		l.ops[op.ID] = CloneOperation(op)
		l.opOrder = append(l.opOrder, op.ID)
		if !op.Status.Finished() {
			l.open = append(l.open, op.ID)
		}
	}
	return CloneDecisionRecord(rec), nil
}

// checkCloneNames refuses expansions whose clone would have the name of a
// node, or of the clone of an operation held or among ops: two VMs of one
// name would make compensation unable to tell whose is whose.
func (l *Ledger) checkCloneNames(ops []Operation) error {
	names := map[string]string{} // clone name → operation id
	for _, op := range ops {
		if op.Kind != OpExpand || op.Clone == "" {
			continue
		}
		if _, node := l.nodes[op.Clone]; node {
			return fmt.Errorf("operation %s: clone name %s is a node's", op.ID, op.Clone)
		}
		if other, dup := names[op.Clone]; dup {
			return fmt.Errorf("operations %s and %s: one clone name %s", other, op.ID, op.Clone)
		}
		names[op.Clone] = op.ID
	}
	if len(names) == 0 {
		return nil
	}
	for _, id := range l.opOrder {
		if held := l.ops[id]; held.Kind == OpExpand {
			if other, dup := names[CloneName(held)]; dup {
				return fmt.Errorf("operation %s: clone name %s is operation %s's", other, CloneName(held), id)
			}
		}
	}
	return nil
}

// Transition moves operation id from t.From to t.To with the node changes
// in t (compare-and-set). An unknown id wraps ErrNotFound; an operation
// that is not at t.From, or is finished, wraps ErrStepConflict, and then
// nothing changes and the operation is returned as it is.
func (l *Ledger) Transition(id string, t Transition) (Operation, error) {
	l.init()
	op, ok := l.ops[id]
	if !ok {
		return Operation{}, fmt.Errorf("operation %s: %w", id, ErrNotFound)
	}
	if op.Step != t.From || op.Status.Finished() {
		return CloneOperation(op), fmt.Errorf("operation %s is at %s (%s), not %s: %w", id, op.Step, op.Status, t.From, ErrStepConflict)
	}
	op = t.Apply(op)
	l.ops[id] = op
	for _, n := range t.PutNodes {
		l.putNode(n)
	}
	for _, n := range t.RemoveNodes {
		l.removeNode(n)
	}
	if op.Status.Finished() {
		l.open = slices.DeleteFunc(l.open, func(o string) bool { return o == id })
	}
	if op.Status == OpDone {
		l.estimates[op.Cluster] = Learn(l.estimates[op.Cluster], op)
	}
	if op.Status == OpDone && op.Kind == OpExpand {
		l.joined(op.Cluster, t.At)
	}
	l.forgetFinished()
	return CloneOperation(op), nil
}

// joined records that a clone of cluster joined at; LastJoin never moves
// back, whatever order joins are committed in.
func (l *Ledger) joined(cluster string, at time.Time) {
	s := l.scaling[cluster]
	if at.After(s.LastJoin) {
		s.LastJoin = at
		l.scaling[cluster] = s
	}
}

// PutNode registers or updates a node; it needs an id and a cluster.
func (l *Ledger) PutNode(n Node) error {
	if n.ID == "" || n.Cluster == "" {
		return fmt.Errorf("node needs an id and a cluster")
	}
	l.init()
	l.putNode(n)
	return nil
}

func (l *Ledger) putNode(n Node) {
	if _, exists := l.nodes[n.ID]; !exists {
		i, _ := slices.BinarySearch(l.nodeIDs, n.ID)
		l.nodeIDs = slices.Insert(l.nodeIDs, i, n.ID)
	}
	l.nodes[n.ID] = n
	// A node named as the cluster's n-th clone (a clone, or an operator's
	// node so named) moves the count past n: the name is never given to a
	// clone, even after the node is gone.
	if c, ok := cloneNumber(n.Cluster, n.ID); ok && c > l.scaling[n.Cluster].Clones {
		s := l.scaling[n.Cluster]
		s.Clones = c
		l.scaling[n.Cluster] = s
	}
}

func (l *Ledger) removeNode(id string) {
	if i, ok := slices.BinarySearch(l.nodeIDs, id); ok {
		l.nodeIDs = slices.Delete(l.nodeIDs, i, i+1)
	}
	delete(l.nodes, id)
}

// forgetFinished keeps the operation table bounded: finished operations
// beyond the newest DecisionHistory are dropped.
func (l *Ledger) forgetFinished() {
	if len(l.opOrder) <= 2*DecisionHistory {
		return
	}
	keep := l.opOrder[:0]
	drop := len(l.opOrder) - DecisionHistory
	for i, id := range l.opOrder {
		if i < drop && l.ops[id].Status.Finished() {
			delete(l.ops, id)
			continue
		}
		keep = append(keep, id)
	}
	clear(l.opOrder[len(keep):])
	l.opOrder = keep
}

// ledgerJSON is the Ledger as it is serialized: nodes sorted by id,
// operations in creation order, maps keyed by cluster (encoding/json
// sorts map keys), so equal Ledgers give equal bytes.
type ledgerJSON struct {
	Version    int                         `json:"v"`
	Seq        uint64                      `json:"seq"`
	Nodes      []Node                      `json:"nodes"`
	Operations []Operation                 `json:"operations"`
	Scaling    map[string]ScalingState     `json:"scaling"`
	Decisions  map[string][]DecisionRecord `json:"decisions"`
	Estimates  map[string]Estimates        `json:"estimates"`
	Settings   map[string]ClusterSettings  `json:"settings,omitempty"`
	Audits     []AuditRecord               `json:"audits,omitempty"`
	Policies   []PolicyVersion             `json:"policies,omitempty"`
}

// ledgerVersion is the version of the Ledger's JSON.
const ledgerVersion = 1

// MarshalJSON serializes the whole state (a snapshot).
func (l *Ledger) MarshalJSON() ([]byte, error) {
	j := ledgerJSON{
		Version:    ledgerVersion,
		Seq:        l.seq,
		Nodes:      make([]Node, 0, len(l.nodeIDs)),
		Operations: make([]Operation, 0, len(l.opOrder)),
		Scaling:    l.scaling,
		Decisions:  l.decisions,
		Estimates:  l.estimates,
		Settings:   l.settings,
		Audits:     l.audits,
		Policies:   l.policies,
	}
	if l.nodes == nil { // the zero Ledger marshals as an empty one
		j.Scaling, j.Decisions, j.Estimates = map[string]ScalingState{}, map[string][]DecisionRecord{}, map[string]Estimates{}
	}
	for _, id := range l.nodeIDs {
		j.Nodes = append(j.Nodes, l.nodes[id])
	}
	for _, id := range l.opOrder {
		j.Operations = append(j.Operations, l.ops[id])
	}
	return json.Marshal(j)
}

// UnmarshalJSON replaces the state with a serialized one. It refuses a
// version it does not know and a state that contradicts itself (duplicate
// ids), leaving the Ledger as it was.
func (l *Ledger) UnmarshalJSON(b []byte) error {
	var j ledgerJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	if j.Version != ledgerVersion {
		return fmt.Errorf("ledger: unknown version %d (want %d)", j.Version, ledgerVersion)
	}
	n := NewLedger()
	n.seq = j.Seq
	for _, node := range j.Nodes {
		if node.ID == "" {
			return fmt.Errorf("ledger: a node has no id")
		}
		if _, dup := n.nodes[node.ID]; dup {
			return fmt.Errorf("ledger: node %s appears twice", node.ID)
		}
		n.nodes[node.ID] = node
		n.nodeIDs = append(n.nodeIDs, node.ID)
	}
	slices.Sort(n.nodeIDs)
	for _, op := range j.Operations {
		if _, dup := n.ops[op.ID]; dup {
			return fmt.Errorf("ledger: operation %s appears twice", op.ID)
		}
		n.ops[op.ID] = op
		n.opOrder = append(n.opOrder, op.ID)
		if !op.Status.Finished() {
			n.open = append(n.open, op.ID)
		}
	}
	if j.Scaling != nil {
		n.scaling = j.Scaling
	}
	if j.Decisions != nil {
		n.decisions = j.Decisions
	}
	if j.Estimates != nil {
		n.estimates = j.Estimates
	}
	if j.Settings != nil {
		n.settings = j.Settings
	}
	n.audits, n.policies = j.Audits, j.Policies
	*l = *n
	return nil
}

// Clone returns a deep copy of the Ledger.
func (l *Ledger) Clone() *Ledger {
	c := NewLedger()
	c.seq = l.seq
	maps.Copy(c.nodes, l.nodes)
	c.nodeIDs = slices.Clone(l.nodeIDs)
	for id, op := range l.ops {
		c.ops[id] = CloneOperation(op)
	}
	c.opOrder = slices.Clone(l.opOrder)
	c.open = slices.Clone(l.open)
	for k, s := range l.scaling {
		c.scaling[k] = CloneScalingState(s)
	}
	for k, d := range l.decisions {
		cd := make([]DecisionRecord, len(d))
		for i := range d {
			cd[i] = CloneDecisionRecord(d[i])
		}
		c.decisions[k] = cd
	}
	maps.Copy(c.estimates, l.estimates)
	for k, s := range l.settings {
		if s.DryRun != nil {
			v := *s.DryRun
			s.DryRun = &v
		}
		c.settings[k] = s
	}
	c.audits = slices.Clone(l.audits)
	for _, p := range l.policies {
		p.Files = maps.Clone(p.Files)
		c.policies = append(c.policies, p)
	}
	return c
}

// manualAction names an operator's decision for the audit trail.
func manualAction(rec DecisionRecord) string {
	switch rec.Decision.Action {
	case ActionExpand:
		return "clone"
	case ActionContract:
		return "detach"
	}
	return string(rec.Decision.Action)
}

// manualDetail is what an operator's selection came to, for the audit
// trail: the request, and whether it ran dry or what refused it.
func manualDetail(rec DecisionRecord) string {
	d := rec.Decision.Reason
	switch {
	case rec.DryRun:
		return d + " (dry run)"
	case len(rec.Operations) == 0 && len(rec.Reasons) > 0:
		why := make([]string, len(rec.Reasons))
		for i, r := range rec.Reasons {
			why[i] = string(r.Code) + ": " + r.Message
		}
		return d + "; refused: " + strings.Join(why, "; ")
	}
	return d
}

// CloneOperation returns a copy of op that shares no memory with it.
func CloneOperation(op Operation) Operation {
	op.Journal = slices.Clone(op.Journal)
	return op
}

// CloneScalingState returns a copy of s that shares no memory with it.
func CloneScalingState(s ScalingState) ScalingState {
	s.Recent = slices.Clone(s.Recent)
	return s
}

// CloneDecisionRecord returns a copy of r that shares no memory with it.
func CloneDecisionRecord(r DecisionRecord) DecisionRecord {
	r.Observed.Cluster = maps.Clone(r.Observed.Cluster)
	r.Observed.NodeMeans = maps.Clone(r.Observed.NodeMeans)
	r.Observed.NodeCounts = maps.Clone(r.Observed.NodeCounts)
	r.Decision.Templates = slices.Clone(r.Decision.Templates)
	r.Decision.Hosts = slices.Clone(r.Decision.Hosts)
	r.Decision.Nodes = slices.Clone(r.Decision.Nodes)
	r.Operations = slices.Clone(r.Operations)
	r.Proposals = slices.Clone(r.Proposals)
	r.Reasons = slices.Clone(r.Reasons)
	return r
}
