package plan

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Input is everything Plan looks at for one cluster on one tick.
type Input struct {
	Now    time.Time
	Limits Limits
	// Nodes are the cluster's registered nodes, of every role.
	Nodes []Node
	Hosts []Host
	// Operations are the cluster's unfinished operations.
	Operations []Operation
	Scaling    ScalingState
	Metrics    MetricsHealth
	Decision   Decision
	// Manual marks an operator's selection (mitosis clone NODE, mitosis
	// detach NODE): the guardrails of time and data (metrics, cooldowns,
	// the stabilization window) and the growth guardrail (an operator's
	// clone is one node, asked for on purpose) do not apply to it, and it
	// is not a wish the stabilization window remembers; those of size,
	// budgets, host capacity, eligible templates and protected nodes all do.
	Manual bool
}

// Code names a guardrail, so that reasons can be counted and tested.
type Code string

const (
	CodeMetricsUnavailable Code = "metrics_unavailable"
	CodeCooldown           Code = "cooldown"
	CodeStabilizing        Code = "stabilizing"
	CodeMaxSize            Code = "max_size"
	CodeMinSize            Code = "min_size"
	CodeLastNode           Code = "last_node"
	CodeClusterBudget      Code = "cluster_budget"
	CodeTemplateBudget     Code = "template_budget"
	CodeHostBudget         Code = "host_budget"
	CodeHostFull           Code = "host_full"
	CodeGrowth             Code = "growth"
	CodeIneligibleTemplate Code = "ineligible_template"
	CodeProtectedNode      Code = "protected_node"
	CodeNotEnoughVictims   Code = "not_enough_victims"
)

// Reason explains why an intent was capped or refused.
type Reason struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

func (r Reason) String() string { return string(r.Code) + ": " + r.Message }

// Result is what Plan decided.
type Result struct {
	// Proposals are the operations to start, in order.
	Proposals []Proposal `json:"proposals"`
	// Reasons say why fewer operations were proposed than the decision asked.
	Reasons []Reason `json:"reasons,omitempty"`
	// Size is the projected size of the cluster before the proposals:
	// scalable nodes, plus expansions and minus contractions in flight.
	Size int `json:"size"`
	// Scaling is the state to store for the next tick.
	Scaling ScalingState `json:"scaling"`
}

// Plan turns a decision into operations, applying every guardrail. It is
// pure: the same Input always gives the same Result.
func Plan(in Input) Result {
	v := newView(in)
	res := Result{Size: v.size, Scaling: in.Scaling}
	if in.Manual {
		res.Scaling.Recent = slices.Clone(in.Scaling.Recent) // shares nothing with in
	} else {
		res.Scaling = stabilize(in, v.size)
	}
	switch in.Decision.Action {
	case ActionExpand:
		v.expand(&res)
		if len(res.Proposals) > 0 {
			res.Scaling.LastExpand = in.Now
		}
	case ActionContract:
		v.contract(&res)
		if len(res.Proposals) > 0 {
			res.Scaling.LastContract = in.Now
		}
	}
	return res
}

// stabilize records this tick's wish for the scale-down window: a run of
// contract-wanting ticks grows, anything else breaks it.
func stabilize(in Input, size int) ScalingState {
	s := in.Scaling
	d := in.Decision
	if d.Action != ActionContract || d.Count <= 0 || !in.Metrics.Available {
		s.ContractSince, s.Recent = time.Time{}, nil
		return s
	}
	if s.ContractSince.IsZero() {
		s.ContractSince = in.Now
	}
	cutoff := in.Now.Add(-in.Limits.ScaleDownStabilization)
	recent := make([]Recommendation, 0, len(s.Recent)+1)
	for _, r := range s.Recent {
		if !r.At.Before(cutoff) {
			recent = append(recent, r)
		}
	}
	s.Recent = append(recent, Recommendation{At: in.Now, Size: size - d.Count})
	return s
}

// view is the cluster as the guardrails see it.
type view struct {
	in    Input
	nodes map[string]Node
	size  int
	// held: nodes some unfinished operation works on (victims and templates).
	held map[string]bool
	// in flight per template and per host.
	opsByTemplate, opsByHost map[string]int
	clonesByHost             map[string]int
	// clones in flight, and the scalable nodes ready now, for the growth
	// guardrail.
	clones, ready int
}

func newView(in Input) *view {
	v := &view{
		in:            in,
		nodes:         make(map[string]Node, len(in.Nodes)),
		held:          map[string]bool{},
		opsByTemplate: map[string]int{},
		opsByHost:     map[string]int{},
		clonesByHost:  map[string]int{},
	}
	for _, n := range in.Nodes {
		v.nodes[n.ID] = n
		if in.Limits.Scalable(n.Role) {
			v.size++
			if n.State == NodeReady {
				v.ready++
			}
		}
	}
	for _, op := range in.Operations {
		if op.Status.Finished() {
			continue
		}
		switch op.Kind {
		case OpExpand:
			v.size++
			v.clones++
			v.held[op.Template] = true
			if op.Node != "" { // the clone, once made, is not a victim yet
				v.held[op.Node] = true
			}
			v.opsByTemplate[op.Template]++
			v.opsByHost[op.Host]++
			v.clonesByHost[op.Host]++
		case OpContract:
			v.size--
			v.held[op.Node] = true
			v.opsByHost[v.nodes[op.Node].Host]++
		}
	}
	return v
}

func (v *view) inFlight() int {
	n := 0
	for _, op := range v.in.Operations {
		if !op.Status.Finished() {
			n++
		}
	}
	return n
}

// growthAllowance is how many clones may be in flight for ready nodes
// under a growth factor g > 0: (g-1)×ready, rounded down, but at least
// one while a node is ready, so that a cluster of one can still grow.
func growthAllowance(g float64, ready int) int {
	if ready == 0 || g <= 1 {
		return 0
	}
	// The epsilon keeps (1.4-1)×5 = 1.9999999999999996 from losing a
	// clone; the cap keeps a huge g from overflowing the conversion.
	a := math.Floor((g-1)*float64(ready) + 1e-9)
	if a >= math.MaxInt32 {
		return math.MaxInt32
	}
	return max(1, int(a))
}

// free is what is left of a budget; a budget of 0 is unlimited.
func free(budget, used int) int {
	if budget == 0 {
		return int(^uint(0) >> 1)
	}
	return max(budget-used, 0)
}

func (v *view) expand(res *Result) {
	in, l, d := v.in, v.in.Limits, v.in.Decision
	want := d.Count
	if want <= 0 {
		return
	}
	if !in.Manual && !in.Metrics.Available && !d.FailSafe {
		res.refuse(CodeMetricsUnavailable, "metrics unavailable (%s) and the decision does not ask for fail-safe expansion", in.Metrics.Reason)
		return
	}
	// From the last join, not the last decision: a decision is an
	// intention, a joined clone is capacity the metrics now measure.
	last := in.Scaling.LastJoin
	if wait := l.ScaleUpCooldown - in.Now.Sub(last); !in.Manual && !last.IsZero() && wait > 0 {
		res.refuse(CodeCooldown, "scale-up cooldown: %s left since the last clone joined %s ago", wait, in.Now.Sub(last))
		return
	}
	n := want
	n = res.capTo(n, l.Max-v.size, CodeMaxSize, "max size %d", l.Max)
	n = res.capTo(n, free(l.MaxOpsPerCluster, v.inFlight()), CodeClusterBudget, "%d operations already in flight (budget %d)", v.inFlight(), l.MaxOpsPerCluster)
	if !in.Manual && l.MaxGrowth > 0 {
		allowed := growthAllowance(l.MaxGrowth, v.ready)
		n = res.capTo(n, allowed-v.clones, CodeGrowth, "%d ready nodes may have %d clones in flight at most (growth ×%g), and %d already are", v.ready, allowed, l.MaxGrowth, v.clones)
	}
	if n == 0 {
		return
	}

	// Place n clones: templates in the policy's order, each up to its
	// budget, each clone on the first host with room.
	templates := dedupe(append([]string{d.Template}, d.Templates...))
	if len(templates) == 0 {
		res.refuse(CodeIneligibleTemplate, "the decision names no template")
		return
	}
	var short []Reason
	for _, t := range templates {
		if len(res.Proposals) == n {
			break
		}
		tn, ok := v.nodes[t]
		if why := v.templateIneligible(t, tn, ok); why != "" {
			short = append(short, Reason{CodeIneligibleTemplate, fmt.Sprintf("template %s %s", t, why)})
			continue
		}
		hosts := d.Hosts
		if len(hosts) == 0 {
			hosts = []string{tn.Host}
		}
		for len(res.Proposals) < n {
			if free(l.MaxOpsPerTemplate, v.opsByTemplate[t]) == 0 {
				short = append(short, Reason{CodeTemplateBudget, fmt.Sprintf("template %s has %d clones in flight (budget %d)", t, v.opsByTemplate[t], l.MaxOpsPerTemplate)})
				break
			}
			h, ok, why := v.pickHost(hosts)
			if !ok {
				short = append(short, why)
				break
			}
			res.Proposals = append(res.Proposals, Proposal{Kind: OpExpand, Template: t, Host: h, Force: d.Force})
			v.opsByTemplate[t]++
			v.opsByHost[h]++
			v.clonesByHost[h]++
		}
	}
	if len(res.Proposals) < n {
		res.Reasons = append(res.Reasons, short...)
	}
}

func (v *view) templateIneligible(id string, n Node, ok bool) string {
	switch {
	case !ok:
		return "is not a node of the cluster"
	case !v.in.Limits.Scalable(n.Role):
		return fmt.Sprintf("has role %q, which is not scalable", n.Role)
	case n.State != NodeReady && !(n.State == NodePreparing && v.opsByTemplate[id] > 0):
		return fmt.Sprintf("is %s, not ready", n.State)
	case v.held[id] && v.opsByTemplate[id] == 0:
		return "is being contracted"
	}
	return ""
}

// pickHost returns the first host with budget and capacity left, or why none.
// pickHost is the first of hosts with room. A node registered without a
// host has "": the hypervisor places its clones, and host-less
// operations share one host budget.
func (v *view) pickHost(hosts []string) (string, bool, Reason) {
	l := v.in.Limits
	why := Reason{CodeHostBudget, "no host given"}
	for _, h := range hosts {
		if free(l.MaxOpsPerHost, v.opsByHost[h]) == 0 {
			why = Reason{CodeHostBudget, fmt.Sprintf("host %s has %d operations in flight (budget %d)", h, v.opsByHost[h], l.MaxOpsPerHost)}
			continue
		}
		if c := v.hostCapacity(h); c > 0 && v.hostVMs(h)+v.clonesByHost[h] >= c {
			why = Reason{CodeHostFull, fmt.Sprintf("host %s is full (%d VMs, capacity %d)", h, v.hostVMs(h)+v.clonesByHost[h], c)}
			continue
		}
		return h, true, Reason{}
	}
	return "", false, why
}

func (v *view) hostCapacity(name string) int {
	for _, h := range v.in.Hosts {
		if h.Name == name {
			return h.Capacity
		}
	}
	return 0
}

func (v *view) hostVMs(name string) int {
	for _, h := range v.in.Hosts {
		if h.Name == name {
			return h.VMs
		}
	}
	return 0
}

// timely applies the guardrails of time and data to a contraction the
// policy wants: metrics, cooldowns, the stabilization window. It returns
// how many nodes may go (0: none).
func (v *view) timely(res *Result) int {
	in, l, d := v.in, v.in.Limits, v.in.Decision
	if !in.Metrics.Available {
		res.refuse(CodeMetricsUnavailable, "metrics unavailable (%s): no contraction", in.Metrics.Reason)
		return 0
	}
	for _, last := range []time.Time{in.Scaling.LastContract, in.Scaling.LastExpand} {
		if wait := l.ScaleDownCooldown - in.Now.Sub(last); !last.IsZero() && wait > 0 {
			res.refuse(CodeCooldown, "scale-down cooldown: %s left", wait)
			return 0
		}
	}
	s := res.Scaling
	if held := in.Now.Sub(s.ContractSince); held < l.ScaleDownStabilization {
		res.refuse(CodeStabilizing, "contraction wanted for %s of the %s stabilization window", held, l.ScaleDownStabilization)
		return 0
	}
	target := v.size - d.Count
	for _, r := range s.Recent {
		target = max(target, r.Size)
	}
	return res.capTo(d.Count, v.size-target, CodeStabilizing, "the most conservative size wanted in the stabilization window is %d", target)
}

func (v *view) contract(res *Result) {
	in, l, d := v.in, v.in.Limits, v.in.Decision
	if d.Count <= 0 {
		return
	}
	n := d.Count
	if !in.Manual {
		if n = v.timely(res); n == 0 {
			return
		}
	}
	floor, code := l.Min, CodeMinSize
	if floor < 1 {
		floor, code = 1, CodeLastNode
	}
	n = res.capTo(n, v.size-floor, code, "size %d may not go below %d", v.size, floor)
	n = res.capTo(n, free(l.MaxOpsPerCluster, v.inFlight()), CodeClusterBudget, "%d operations already in flight (budget %d)", v.inFlight(), l.MaxOpsPerCluster)
	if n == 0 {
		return
	}

	var short []Reason
	for _, id := range dedupe(d.Nodes) {
		if len(res.Proposals) == n {
			break
		}
		nd, ok := v.nodes[id]
		if why := v.victimProtected(id, nd, ok); why != "" {
			short = append(short, Reason{CodeProtectedNode, fmt.Sprintf("node %s %s", id, why)})
			continue
		}
		if free(l.MaxOpsPerHost, v.opsByHost[nd.Host]) == 0 {
			short = append(short, Reason{CodeHostBudget, fmt.Sprintf("host %s has %d operations in flight (budget %d)", nd.Host, v.opsByHost[nd.Host], l.MaxOpsPerHost)})
			continue
		}
		res.Proposals = append(res.Proposals, Proposal{Kind: OpContract, Node: id})
		v.held[id] = true
		v.opsByHost[nd.Host]++
	}
	if len(res.Proposals) < n {
		res.Reasons = append(res.Reasons, short...)
		res.Reasons = append(res.Reasons, Reason{CodeNotEnoughVictims, fmt.Sprintf("%d of %d contractions found an eligible victim", len(res.Proposals), n)})
	}
}

func (v *view) victimProtected(id string, n Node, ok bool) string {
	switch {
	case !ok:
		return "is not a node of the cluster"
	case !v.in.Limits.Scalable(n.Role):
		return fmt.Sprintf("has role %q, which is not scalable", n.Role)
	case v.opsByTemplate[id] > 0:
		return "is in use as a template"
	case v.held[id]:
		return "is held by another operation"
	case n.State != NodeReady && n.State != NodeFailed:
		return fmt.Sprintf("is %s", n.State)
	}
	return ""
}

func (r *Result) refuse(c Code, format string, args ...any) {
	r.Reasons = append(r.Reasons, Reason{c, fmt.Sprintf(format, args...)})
}

// capTo limits n to limit, recording why when it bites.
func (r *Result) capTo(n, limit int, c Code, format string, args ...any) int {
	limit = max(limit, 0)
	if n <= limit {
		return n
	}
	r.Reasons = append(r.Reasons, Reason{c, fmt.Sprintf("%d of %d: ", limit, n) + fmt.Sprintf(format, args...)})
	return limit
}

func dedupe(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if id != "" && !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// Size is the projected size of a cluster: its scalable nodes, plus the
// expansions and minus the contractions in flight.
func Size(l Limits, nodes []Node, ops []Operation) int {
	return newView(Input{Limits: l, Nodes: nodes, Operations: ops}).size
}
