package plan

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// The properties below drive Plan through random clusters and random
// sequences of decisions, applying its proposals as the controller would
// (an expansion becomes a ready node some ticks later, a contraction
// removes its victim some ticks later, either may be compensated instead)
// and carrying Result.Scaling from tick to tick, with LastJoin set when a
// clone joins as the registry does. After every tick they
// check the guardrails against the input Plan was given, using naive
// re-implementations rather than Plan's own helpers.
//
// Run more checks with: go test ./plan/ -run Property -rapid.checks=2000

var (
	// "app" and "batch" may be scalable; "central" and "db" never are.
	propRoles  = []string{"app", "app", "app", "batch", "batch", "central", "db"}
	propStates = []NodeState{NodeReady, NodeReady, NodeReady, NodeReady, NodeFailed, NodeDraining, NodePreparing}
	propWaits  = []time.Duration{0, 30 * time.Second, time.Minute, 3 * time.Minute}
	propTicks  = []time.Duration{10 * time.Second, 30 * time.Second, time.Minute, 2 * time.Minute}
	// 0 is unlimited; 1.5 rounds down, and lets a cluster of one have one clone.
	propGrowths = []float64{0, 1.5, 2, 3}
	propCodes   = []Code{CodeMetricsUnavailable, CodeCooldown, CodeStabilizing, CodeMaxSize, CodeMinSize,
		CodeLastNode, CodeClusterBudget, CodeTemplateBudget, CodeHostBudget, CodeHostFull, CodeGrowth,
		CodeIneligibleTemplate, CodeProtectedNode, CodeNotEnoughVictims}
)

// deepCopyInput copies in so that nothing is shared with it.
func deepCopyInput(in Input) Input {
	out := in
	out.Limits.ScalableRoles = slices.Clone(in.Limits.ScalableRoles)
	out.Nodes = slices.Clone(in.Nodes)
	out.Hosts = slices.Clone(in.Hosts)
	out.Operations = slices.Clone(in.Operations)
	for i := range out.Operations {
		out.Operations[i].Journal = slices.Clone(in.Operations[i].Journal)
	}
	out.Scaling.Recent = slices.Clone(in.Scaling.Recent)
	out.Decision.Templates = slices.Clone(in.Decision.Templates)
	out.Decision.Hosts = slices.Clone(in.Decision.Hosts)
	out.Decision.Nodes = slices.Clone(in.Decision.Nodes)
	return out
}

func unfinished(op Operation) bool {
	return op.Status != OpDone && op.Status != OpCompensated && op.Status != OpFailed
}

func scalable(l Limits, role string) bool { return slices.Contains(l.ScalableRoles, role) }

// naiveSize is the projected size, counted the long way.
func naiveSize(in Input) int {
	size := 0
	for _, n := range in.Nodes {
		if scalable(in.Limits, n.Role) {
			size++
		}
	}
	for _, op := range in.Operations {
		if unfinished(op) && op.Kind == OpExpand {
			size++
		}
		if unfinished(op) && op.Kind == OpContract {
			size--
		}
	}
	return size
}

func drawLimits(t *rapid.T) Limits {
	lo := rapid.IntRange(0, 5).Draw(t, "min")
	l := Limits{
		Min:                    lo,
		Max:                    rapid.IntRange(max(lo, 1), 10).Draw(t, "max"),
		ScalableRoles:          rapid.SliceOfNDistinct(rapid.SampledFrom([]string{"app", "batch"}), 1, 2, rapid.ID[string]).Draw(t, "scalable"),
		ScaleUpCooldown:        rapid.SampledFrom(propWaits).Draw(t, "up_cooldown"),
		ScaleDownCooldown:      rapid.SampledFrom(propWaits).Draw(t, "down_cooldown"),
		ScaleDownStabilization: rapid.SampledFrom(propWaits).Draw(t, "stabilization"),
		MaxOpsPerCluster:       rapid.IntRange(0, 4).Draw(t, "cluster_budget"),
		MaxOpsPerTemplate:      rapid.IntRange(0, 3).Draw(t, "template_budget"),
		MaxOpsPerHost:          rapid.IntRange(0, 3).Draw(t, "host_budget"),
		MaxGrowth:              rapid.SampledFrom(propGrowths).Draw(t, "growth"),
	}
	if err := l.Validate(); err != nil {
		t.Fatalf("generated invalid limits %+v: %v", l, err)
	}
	return l
}

// simOp is an operation in flight in the simulation.
type simOp struct {
	Operation
	age   int    // ticks since it was proposed
	delay int    // ticks before its first step runs
	left  int    // ticks until it finishes
	ok    bool   // whether it finishes done rather than compensated
	role  string // expand: the role the clone will have
}

// sim is a cluster the properties drive Plan through.
type sim struct {
	now    time.Time
	limits Limits
	nodes  []Node
	hosts  []Host // as configured; VMs is counted from nodes on every tick
	ops    []*simOp
	// lingering are operations that finished on this tick; the registry
	// might still list them, and Plan must ignore them.
	lingering []Operation
	scaling   ScalingState
	prepared  map[string]bool // nodes the simulation set preparing as templates
	// fits holds the hosts that have had room for their VMs and the clones
	// coming to them; they must keep it.
	fits   map[string]bool
	seq    int
	target int // the size a policy-like decision steers towards

	// The stabilization model: the current unbroken run of ticks that
	// wanted contraction, and the size each of them wanted.
	runSince time.Time
	run      []Recommendation
}

func newSim(t *rapid.T) *sim {
	s := &sim{now: t0, limits: drawLimits(t), prepared: map[string]bool{}, fits: map[string]bool{}}
	s.target = s.drawTarget(t)
	var names []string
	for i := range rapid.IntRange(1, 3).Draw(t, "hosts") {
		h := Host{Name: fmt.Sprintf("h%d", i), Capacity: rapid.IntRange(0, 8).Draw(t, "capacity")}
		s.hosts = append(s.hosts, h)
		names = append(names, h.Name)
	}
	for i := range rapid.IntRange(0, 12).Draw(t, "nodes") {
		s.nodes = append(s.nodes, Node{
			ID: fmt.Sprintf("n%d", i), Cluster: "c",
			Role:  rapid.SampledFrom(propRoles).Draw(t, "role"),
			State: rapid.SampledFrom(propStates).Draw(t, "state"),
			Host:  rapid.SampledFrom(names).Draw(t, "host"),
		})
	}
	// Most clusters have a node to clone; a few have none and must stay put.
	if rapid.IntRange(0, 9).Draw(t, "no_template") > 0 {
		s.nodes = append(s.nodes, Node{ID: "seed", Cluster: "c", Role: s.limits.ScalableRoles[0], State: NodeReady,
			Host: rapid.SampledFrom(names).Draw(t, "seed_host")})
	}
	// Some clusters start with operations in flight.
	for range rapid.IntRange(0, 2).Draw(t, "initial_ops") {
		if len(s.nodes) == 0 {
			break
		}
		n := s.nodes[rapid.IntRange(0, len(s.nodes)-1).Draw(t, "initial_op_node")]
		if n.State != NodeReady || !scalable(s.limits, n.Role) || s.inUse(n.ID) {
			continue
		}
		kind := rapid.SampledFrom([]OpKind{OpExpand, OpContract}).Draw(t, "initial_op_kind")
		if kind == OpExpand {
			s.start(t, Proposal{Kind: OpExpand, Template: n.ID, Host: n.Host})
		} else {
			s.start(t, Proposal{Kind: OpContract, Node: n.ID})
		}
	}
	return s
}

func (s *sim) node(id string) (int, bool) {
	for i, n := range s.nodes {
		if n.ID == id {
			return i, true
		}
	}
	return -1, false
}

// inUse reports whether an operation in flight works on node id.
func (s *sim) inUse(id string) bool {
	for _, o := range s.ops {
		if o.Template == id || o.Node == id {
			return true
		}
	}
	return false
}

// start turns a proposal into an operation in flight, as the controller
// and the first steps of the sagas do.
func (s *sim) start(t *rapid.T, p Proposal) {
	s.seq++
	o := &simOp{
		Operation: Operation{
			ID: fmt.Sprintf("op%d", s.seq), Kind: p.Kind, Cluster: "c", Status: OpRunning, Step: "start",
			Template: p.Template, Host: p.Host, Node: p.Node, Force: p.Force, CreatedAt: s.now, StepAt: s.now,
			Journal: []JournalItem{{Step: "start", At: s.now, Note: "proposed"}},
		},
		left:  rapid.IntRange(1, 5).Draw(t, "op_ticks"),
		delay: rapid.IntRange(0, 1).Draw(t, "op_delay"),
		ok:    rapid.IntRange(0, 4).Draw(t, "op_fails") > 0,
	}
	if p.Kind == OpExpand {
		o.Node = fmt.Sprintf("clone%d", s.seq)
		if i, ok := s.node(p.Template); ok {
			o.role = s.nodes[i].Role
		}
	}
	s.ops = append(s.ops, o)
}

// step moves node states along with the operations in flight, as the
// sagas do: a contraction's victim drains from its first step on; an
// expansion's template is preparing from its first step until it is
// resumed, one tick before the clone joins. Until an operation's first
// step has run, its nodes keep their state (the operation is committed
// before its first side effect).
func (s *sim) step() {
	preparing := map[string]bool{}
	for _, o := range s.ops {
		if o.age <= o.delay {
			continue
		}
		i, ok := s.node(o.Node)
		switch {
		case o.Kind == OpContract && ok && s.nodes[i].State != NodeDraining:
			s.nodes[i].State = NodeDraining
		case o.Kind == OpExpand && o.left > 1:
			preparing[o.Template] = true
		}
	}
	for i, n := range s.nodes {
		switch {
		case preparing[n.ID] && n.State == NodeReady:
			s.nodes[i].State = NodePreparing
			s.prepared[n.ID] = true
		case !preparing[n.ID] && s.prepared[n.ID]:
			if n.State == NodePreparing {
				s.nodes[i].State = NodeReady
			}
			delete(s.prepared, n.ID)
		}
	}
}

// advance moves time on, finishes the operations whose time has come and
// lets a node fail or recover.
func (s *sim) advance(t *rapid.T) {
	s.now = s.now.Add(rapid.SampledFrom(propTicks).Draw(t, "dt"))
	s.lingering = nil
	var still []*simOp
	for _, o := range s.ops {
		o.age++
		if o.left--; o.left > 0 {
			still = append(still, o)
			continue
		}
		o.Status = OpCompensated
		if o.ok {
			o.Status = OpDone
		}
		i, exists := s.node(o.Node)
		switch {
		case o.Kind == OpExpand && o.ok:
			s.nodes = append(s.nodes, Node{ID: o.Node, Cluster: "c", Role: o.role, State: NodeReady, Host: o.Host,
				Parent: o.Template, CreatedAt: s.now})
			s.scaling.LastJoin = s.now // as Ledger.Transition does
		case o.Kind == OpContract && o.ok && exists:
			s.nodes = slices.Delete(s.nodes, i, i+1)
		case o.Kind == OpContract && exists && s.nodes[i].State == NodeDraining:
			s.nodes[i].State = NodeReady
		}
		if rapid.Bool().Draw(t, "linger") {
			s.lingering = append(s.lingering, o.Operation)
		}
	}
	s.ops = still
	s.step()
	if len(s.nodes) > 0 && rapid.IntRange(0, 3).Draw(t, "event") == 0 {
		i := rapid.IntRange(0, len(s.nodes)-1).Draw(t, "event_node")
		switch s.nodes[i].State {
		case NodeReady:
			s.nodes[i].State = NodeFailed
		case NodeFailed:
			s.nodes[i].State = NodeReady
		}
	}
}

// input builds this tick's Input with a random decision.
func (s *sim) input(t *rapid.T) Input {
	vms := map[string]int{}
	for _, n := range s.nodes {
		vms[n.Host]++
	}
	var hosts []Host
	hostNames := []string{"elsewhere"} // a host Plan knows nothing about
	listed := map[string]bool{}
	for _, h := range s.hosts {
		hosts = append(hosts, Host{Name: h.Name, Capacity: h.Capacity, VMs: vms[h.Name]})
		hostNames = append(hostNames, h.Name)
		listed[h.Name] = true
	}
	var extra []string
	for h := range vms {
		if !listed[h] {
			extra = append(extra, h)
		}
	}
	sort.Strings(extra)
	for _, h := range extra {
		hosts = append(hosts, Host{Name: h, VMs: vms[h]})
	}

	var ops []Operation
	for _, o := range s.ops {
		ops = append(ops, o.Operation)
	}
	ops = append(ops, s.lingering...)

	metrics := MetricsHealth{Available: true}
	if rapid.IntRange(0, 4).Draw(t, "metrics_down") == 0 {
		metrics = MetricsHealth{Reason: "stale"}
	}
	in := Input{
		Now: s.now, Limits: s.limits, Nodes: slices.Clone(s.nodes), Hosts: hosts, Operations: ops,
		Scaling: s.scaling, Metrics: metrics,
	}
	if rapid.Bool().Draw(t, "policy_like") {
		in.Decision = s.policyDecision(t, naiveSize(in), hostNames)
	} else {
		in.Decision = s.randomDecision(t, hostNames)
	}
	// Now and then an operator's selection instead of the policy's.
	in.Manual = rapid.IntRange(0, 7).Draw(t, "manual") == 0
	return in
}

// drawTarget draws a size for policy-like decisions to steer towards,
// mostly inside the limits.
func (s *sim) drawTarget(t *rapid.T) int {
	inside := rapid.IntRange(max(s.limits.Min, 1), s.limits.Max)
	return rapid.OneOf(inside, inside, rapid.IntRange(0, 12)).Draw(t, "target")
}

// policyDecision is what a sensible policy might ask: move towards a
// target size that changes now and then, cloning ready nodes and ranking every scalable node as a
// victim (some of them protected).
func (s *sim) policyDecision(t *rapid.T, size int, hostNames []string) Decision {
	var ready, scalableIDs []string
	for _, n := range s.nodes {
		if scalable(s.limits, n.Role) {
			scalableIDs = append(scalableIDs, n.ID)
			if n.State == NodeReady {
				ready = append(ready, n.ID)
			}
		}
	}
	d := Decision{FailSafe: rapid.Bool().Draw(t, "fail_safe")}
	if rapid.IntRange(0, 4).Draw(t, "new_target") == 0 {
		s.target = s.drawTarget(t)
	}
	switch {
	case s.target > size:
		d.Action, d.Count = ActionExpand, s.target-size
	case s.target < size:
		d.Action, d.Count = ActionContract, size-s.target
	default:
		d.Action = ActionNone
	}
	ready = rapid.Permutation(ready).Draw(t, "ready")
	if len(ready) > 0 {
		d.Template, d.Templates = ready[0], ready[1:]
	}
	if rapid.Bool().Draw(t, "rank_hosts") {
		d.Hosts = rapid.Permutation(hostNames).Draw(t, "ranked_hosts")
	}
	d.Nodes = rapid.Permutation(scalableIDs).Draw(t, "ranked_victims")
	return d
}

// randomDecision is anything at all, naming mostly scalable nodes but
// also any node, and a node that does not exist.
func (s *sim) randomDecision(t *rapid.T, hostNames []string) Decision {
	ids, good := []string{"ghost"}, []string(nil)
	for _, n := range s.nodes {
		ids = append(ids, n.ID)
		if scalable(s.limits, n.Role) {
			good = append(good, n.ID)
		}
	}
	pick := rapid.SampledFrom(ids)
	if len(good) > 0 {
		pick = rapid.OneOf(rapid.SampledFrom(good), rapid.SampledFrom(good), rapid.SampledFrom(good), pick)
	}
	return Decision{
		Action:    rapid.SampledFrom([]Action{ActionContract, ActionExpand, ActionNone, ActionContract, ActionExpand, "bogus"}).Draw(t, "action"),
		Count:     rapid.IntRange(-1, 4).Draw(t, "count"),
		Template:  rapid.OneOf(pick, pick, pick, rapid.Just("")).Draw(t, "template"),
		Templates: rapid.SliceOfN(pick, 0, 3).Draw(t, "templates"),
		Hosts:     rapid.SliceOfN(rapid.SampledFrom(hostNames), 0, 3).Draw(t, "decision_hosts"),
		Nodes:     rapid.SliceOfN(pick, 0, 6).Draw(t, "victims"),
		Force:     rapid.Bool().Draw(t, "force"),
		FailSafe:  rapid.Bool().Draw(t, "fail_safe"),
	}
}

// observe updates the stabilization model with this tick's wish (an
// operator's selection is none).
func (s *sim) observe(in Input) {
	if in.Manual {
		return
	}
	d := in.Decision
	if d.Action != ActionContract || d.Count <= 0 || !in.Metrics.Available {
		s.runSince, s.run = time.Time{}, nil
		return
	}
	if s.runSince.IsZero() {
		s.runSince = in.Now
	}
	s.run = append(s.run, Recommendation{At: in.Now, Size: naiveSize(in) - d.Count})
}

// inWindow is the part of the run inside the stabilization window.
func (s *sim) inWindow(in Input) []Recommendation {
	var out []Recommendation
	for _, r := range s.run {
		if in.Now.Sub(r.At) <= in.Limits.ScaleDownStabilization {
			out = append(out, r)
		}
	}
	return out
}

func TestPropertyPlanGuardrails(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := newSim(t)
		for tick := range rapid.IntRange(1, 40).Draw(t, "ticks") {
			s.advance(t)
			in := s.input(t)
			before := deepCopyInput(in)

			res := Plan(in)

			if !reflect.DeepEqual(in, before) {
				t.Fatalf("tick %d: Plan changed its input", tick)
			}
			if again := Plan(deepCopyInput(before)); !reflect.DeepEqual(res, again) {
				t.Fatalf("tick %d: Plan is not deterministic:\n%+v\n%+v", tick, res, again)
			}
			s.observe(in)
			checkGuardrails(t, s, in, res)

			// The result shares no memory with the input.
			probe := Plan(in)
			for i := range probe.Scaling.Recent {
				probe.Scaling.Recent[i].Size = -1000
			}
			if !reflect.DeepEqual(in, before) {
				t.Fatalf("tick %d: the result aliases the input", tick)
			}

			for _, p := range res.Proposals {
				s.start(t, p)
			}
			s.scaling = res.Scaling
			s.checkHostsKeepRoom(t, tick)
		}
	})
}

// checkHostsKeepRoom: a host with a capacity, once it has room for its
// VMs and the clones coming to it, keeps it for the whole run. Nothing
// but Plan adds clones, and a clone lands where it was planned.
func (s *sim) checkHostsKeepRoom(t *rapid.T, tick int) {
	for _, h := range s.hosts {
		if h.Capacity == 0 {
			continue
		}
		used := 0
		for _, n := range s.nodes {
			if n.Host == h.Name {
				used++
			}
		}
		for _, o := range s.ops {
			if o.Kind == OpExpand && o.Host == h.Name {
				used++
			}
		}
		switch {
		case used <= h.Capacity:
			s.fits[h.Name] = true
		case s.fits[h.Name]:
			t.Fatalf("tick %d: host %s over capacity %d: %d VMs and clones coming", tick, h.Name, h.Capacity, used)
		}
	}
}

// checkGuardrails checks one tick's result against the input it came from.
func checkGuardrails(t *rapid.T, s *sim, in Input, res Result) {
	l, d := in.Limits, in.Decision
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("%s\ninput: %+v\nresult: %+v", fmt.Sprintf(format, args...), in, res)
	}

	nodes := map[string]Node{}
	for _, n := range in.Nodes {
		nodes[n.ID] = n
	}
	var nExp, nCon int
	for _, p := range res.Proposals {
		switch p.Kind {
		case OpExpand:
			nExp++
		case OpContract:
			nCon++
		default:
			fail("proposal of unknown kind %q", p.Kind)
		}
	}

	// Plan reports the projected size.
	size := naiveSize(in)
	if res.Size != size {
		fail("size %d, want %d", res.Size, size)
	}

	// Proposals follow the decision, and never exceed what it asked.
	asked := (d.Action == ActionExpand || d.Action == ActionContract) && d.Count > 0
	switch {
	case !asked && len(res.Proposals) > 0:
		fail("proposals without a decision asking for them")
	case d.Action == ActionExpand && nCon > 0, d.Action == ActionContract && nExp > 0:
		fail("proposals of the wrong kind for %s", d.Action)
	case len(res.Proposals) > max(d.Count, 0):
		fail("%d proposals for a count of %d", len(res.Proposals), d.Count)
	}

	// Every shortfall is explained, and nothing else is.
	short := asked && len(res.Proposals) < d.Count
	if short != (len(res.Reasons) > 0) {
		fail("asked=%v, %d of %d proposed, but %d reasons", asked, len(res.Proposals), d.Count, len(res.Reasons))
	}
	for _, r := range res.Reasons {
		if !slices.Contains(propCodes, r.Code) || r.Message == "" {
			fail("reason %q with an unknown code or no message", r)
		}
	}

	// Size stays in [max(Min,1), Max], or does not move further out.
	lo := max(l.Min, 1)
	after := size + nExp - nCon
	if nExp > 0 && after > l.Max {
		fail("expansion from %d to %d passes max %d", size, after, l.Max)
	}
	if nCon > 0 && after < lo {
		fail("contraction from %d to %d passes floor %d", size, after, lo)
	}
	switch {
	case size >= lo && size <= l.Max && (after < lo || after > l.Max):
		fail("size left [%d, %d]: %d → %d", lo, l.Max, size, after)
	case size > l.Max && after > size, size < lo && after < size:
		fail("size outside [%d, %d] moved further out: %d → %d", lo, l.Max, size, after)
	}

	// Metrics: nothing without them, except fail-safe expansion (and an
	// operator's selection).
	if !in.Manual && !in.Metrics.Available && (nCon > 0 || (nExp > 0 && !d.FailSafe)) {
		fail("proposals without metrics (fail-safe %v)", d.FailSafe)
	}

	// What operations in flight hold, and use, counted the long way.
	held := map[string]bool{}
	templateInUse := map[string]bool{}
	inflight, byTemplate, byHost, clonesTo := 0, map[string]int{}, map[string]int{}, map[string]int{}
	for _, op := range in.Operations {
		if !unfinished(op) {
			continue
		}
		inflight++
		held[op.Node] = true
		switch op.Kind {
		case OpExpand:
			held[op.Template] = true
			templateInUse[op.Template] = true
			byTemplate[op.Template]++
			byHost[op.Host]++
			clonesTo[op.Host]++
		case OpContract:
			byHost[nodes[op.Node].Host]++
		}
	}

	// Victims: ranked, existing, scalable, ready or failed, held by no one.
	seen := map[string]bool{}
	lastRank := -1
	for _, p := range res.Proposals {
		if p.Kind != OpContract {
			continue
		}
		n, ok := nodes[p.Node]
		rank := slices.Index(d.Nodes, p.Node)
		switch {
		case !ok:
			fail("victim %s does not exist", p.Node)
		case !scalable(l, n.Role):
			fail("victim %s has non-scalable role %s", p.Node, n.Role)
		case templateInUse[p.Node]:
			fail("victim %s is a template in use", p.Node)
		case held[p.Node]:
			fail("victim %s is held by another operation", p.Node)
		case n.State != NodeReady && n.State != NodeFailed:
			fail("victim %s is %s", p.Node, n.State)
		case seen[p.Node]:
			fail("victim %s proposed twice", p.Node)
		case rank < 0:
			fail("victim %s was not ranked by the decision", p.Node)
		case rank < lastRank:
			fail("victim %s proposed out of rank order", p.Node)
		}
		seen[p.Node], lastRank = true, rank
	}

	// Templates: ranked, existing, scalable, not being contracted, ready
	// (or preparing for another clone); hosts as ranked or the template's.
	ranked := append([]string{d.Template}, d.Templates...)
	lastRank = -1
	for _, p := range res.Proposals {
		if p.Kind != OpExpand {
			continue
		}
		n, ok := nodes[p.Template]
		rank := slices.Index(ranked, p.Template)
		switch {
		case !ok:
			fail("template %s does not exist", p.Template)
		case !scalable(l, n.Role):
			fail("template %s has non-scalable role %s", p.Template, n.Role)
		case held[p.Template] && !templateInUse[p.Template]:
			fail("template %s is being contracted", p.Template)
		case n.State != NodeReady && !(n.State == NodePreparing && templateInUse[p.Template]):
			fail("template %s is %s", p.Template, n.State)
		case rank < 0:
			fail("template %s was not ranked by the decision", p.Template)
		case rank < lastRank:
			fail("template %s proposed out of rank order", p.Template)
		case len(d.Hosts) == 0 && p.Host != n.Host:
			fail("clone of %s placed on %s, not on the template's host %s", p.Template, p.Host, n.Host)
		case len(d.Hosts) > 0 && !slices.Contains(d.Hosts, p.Host):
			fail("clone placed on %s, which the decision did not rank", p.Host)
		case p.Force != d.Force:
			fail("force not passed on")
		}
		lastRank = rank
	}

	// Budgets and host capacity.
	newByTemplate, newByHost, newClonesTo := map[string]int{}, map[string]int{}, map[string]int{}
	for _, p := range res.Proposals {
		if p.Kind == OpExpand {
			newByTemplate[p.Template]++
			newByHost[p.Host]++
			newClonesTo[p.Host]++
		} else {
			newByHost[nodes[p.Node].Host]++
		}
	}
	if l.MaxOpsPerCluster > 0 && len(res.Proposals) > 0 && inflight+len(res.Proposals) > l.MaxOpsPerCluster {
		fail("cluster budget %d exceeded: %d in flight + %d", l.MaxOpsPerCluster, inflight, len(res.Proposals))
	}
	for tpl, k := range newByTemplate {
		if l.MaxOpsPerTemplate > 0 && byTemplate[tpl]+k > l.MaxOpsPerTemplate {
			fail("template budget %d exceeded for %s: %d + %d", l.MaxOpsPerTemplate, tpl, byTemplate[tpl], k)
		}
	}
	for h, k := range newByHost {
		if l.MaxOpsPerHost > 0 && byHost[h]+k > l.MaxOpsPerHost {
			fail("host budget %d exceeded on %s: %d + %d", l.MaxOpsPerHost, h, byHost[h], k)
		}
	}
	// No host over capacity: a clone goes only where the VMs, the clones
	// in flight to it and this round's all fit.
	for _, host := range in.Hosts {
		k := newClonesTo[host.Name]
		if k > 0 && host.Capacity > 0 && host.VMs+clonesTo[host.Name]+k > host.Capacity {
			fail("host %s over capacity %d: %d VMs + %d cloning + %d", host.Name, host.Capacity, host.VMs, clonesTo[host.Name], k)
		}
	}

	// Growth: clones in flight after the round stay within what the ready
	// nodes allow, so that with growth 2 no round more than doubles.
	ready, clones := 0, 0
	for _, n := range in.Nodes {
		if scalable(l, n.Role) && n.State == NodeReady {
			ready++
		}
	}
	for _, op := range in.Operations {
		if unfinished(op) && op.Kind == OpExpand {
			clones++
		}
	}
	if !in.Manual && nExp > 0 && l.MaxGrowth > 0 {
		if allowed := naiveGrowthAllowance(l.MaxGrowth, ready); clones+nExp > allowed {
			fail("growth %g: %d clones in flight + %d for %d ready nodes, allowed %d", l.MaxGrowth, clones, nExp, ready, allowed)
		}
		if l.MaxGrowth == 2 && clones+nExp > max(1, ready) {
			fail("a round more than doubles: %d clones in flight + %d for %d ready nodes", clones, nExp, ready)
		}
	}
	for _, r := range res.Reasons {
		if r.Code == CodeGrowth && (in.Manual || l.MaxGrowth == 0 || clones+d.Count <= naiveGrowthAllowance(l.MaxGrowth, ready)) {
			fail("growth blamed, but %d clones in flight + %d asked fit growth %g of %d ready nodes (manual %v)", clones, d.Count, l.MaxGrowth, ready, in.Manual)
		}
	}

	// Cooldowns: up from the last join, down from the last decision.
	since := func(at time.Time) time.Duration {
		if at.IsZero() {
			return time.Duration(1<<63 - 1)
		}
		return in.Now.Sub(at)
	}
	if !in.Manual && nExp > 0 && since(in.Scaling.LastJoin) < l.ScaleUpCooldown {
		fail("expansion %s after the last join, inside the up cooldown", since(in.Scaling.LastJoin))
	}
	if !in.Manual && nCon > 0 && (since(in.Scaling.LastContract) < l.ScaleDownCooldown || since(in.Scaling.LastExpand) < l.ScaleDownCooldown) {
		fail("contraction inside the down cooldown")
	}

	// Stabilization, against the model's record of the run.
	window := s.inWindow(in)
	if !in.Manual && nCon > 0 {
		if in.Now.Sub(s.runSince) < l.ScaleDownStabilization {
			fail("contraction wanted only since %s, window %s", s.runSince, l.ScaleDownStabilization)
		}
		for _, r := range window {
			if after < r.Size {
				fail("contraction to %d, below the size %d wanted at %s in the window", after, r.Size, r.At)
			}
		}
	}

	// The scaling state to store.
	want := in.Scaling
	if !in.Manual {
		want.ContractSince, want.Recent = s.runSince, window
	}
	if nExp > 0 {
		want.LastExpand = in.Now
	}
	if nCon > 0 {
		want.LastContract = in.Now
	}
	if !reflect.DeepEqual(res.Scaling, want) {
		fail("scaling state %+v, want %+v", res.Scaling, want)
	}
}

// naiveGrowthAllowance is how many clones growth g lets ready nodes have
// in flight, counted up one at a time while (g-1)×ready still holds the
// next; one for a cluster with any ready node.
func naiveGrowthAllowance(g float64, ready int) int {
	if ready == 0 {
		return 0
	}
	k := 0
	for float64(k+1) <= (g-1)*float64(ready) {
		k++
	}
	return max(k, 1)
}

// naiveCount is how many operations the size guardrails alone allow:
// one at a time, while the size stays within bounds.
func naiveCount(l Limits, size int, d Decision) int {
	n := 0
	switch d.Action {
	case ActionExpand:
		for n < d.Count && size+n+1 <= l.Max {
			n++
		}
	case ActionContract:
		floor := l.Min
		if floor < 1 {
			floor = 1
		}
		for n < d.Count && size-n-1 >= floor {
			n++
		}
	}
	return n
}

// TestPropertySizeCapMatchesNaive checks Plan's size arithmetic against
// naiveCount on clusters where nothing else can bind: no budgets, no
// cooldowns, no window, unlimited hosts, enough eligible victims.
func TestPropertySizeCapMatchesNaive(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		lo := rapid.IntRange(0, 8).Draw(t, "min")
		l := Limits{Min: lo, Max: rapid.IntRange(max(lo, 1), 12).Draw(t, "max"), ScalableRoles: []string{"app"}}
		in := Input{Now: t0, Limits: l, Metrics: MetricsHealth{Available: true}}
		in.Nodes = append(in.Nodes, appNode("tpl", "h1"), Node{ID: "ci", Role: "central", State: NodeReady, Host: "h1"})
		free := rapid.IntRange(0, 14).Draw(t, "free")
		for i := range free {
			id := fmt.Sprintf("a%d", i)
			in.Nodes = append(in.Nodes, appNode(id, "h1"))
			in.Decision.Nodes = append(in.Decision.Nodes, id)
		}
		for i := range rapid.IntRange(0, 3).Draw(t, "contracting") {
			id := fmt.Sprintf("gone%d", i)
			in.Nodes = append(in.Nodes, appNode(id, "h2"))
			in.Operations = append(in.Operations, contractOp(id))
		}
		for range rapid.IntRange(0, 3).Draw(t, "cloning") {
			in.Operations = append(in.Operations, expandOp("tpl", "h1"))
		}
		in.Decision.Action = rapid.SampledFrom([]Action{ActionExpand, ActionContract}).Draw(t, "action")
		in.Decision.Count = rapid.IntRange(0, 16).Draw(t, "count")
		in.Decision.Template = "tpl"

		size := free + 1 + countKind(in.Operations, OpExpand) // contracting nodes net out
		want := naiveCount(l, size, in.Decision)
		if in.Decision.Action == ActionContract {
			want = min(want, free)
		}
		res := Plan(in)
		if res.Size != size || len(res.Proposals) != want {
			t.Fatalf("size %d (Plan %d), min %d max %d, %s %d: %d proposals, naive %d; reasons:\n%s",
				size, res.Size, l.Min, l.Max, in.Decision.Action, in.Decision.Count, len(res.Proposals), want, reasonsText(res.Reasons))
		}
	})
}

func countKind(ops []Operation, k OpKind) int {
	n := 0
	for _, op := range ops {
		if op.Kind == k {
			n++
		}
	}
	return n
}

// TestPropertyUpCooldownRunsFromLastJoin: an expansion inside the up
// cooldown of the last join is refused for the cooldown, one after it is
// not, whatever the last expansion or contraction decision was.
func TestPropertyUpCooldownRunsFromLastJoin(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		in := fixture()
		in.Limits.ScaleUpCooldown = rapid.SampledFrom(propWaits).Draw(t, "up_cooldown")
		in.Limits.ScaleDownCooldown = rapid.SampledFrom(propWaits).Draw(t, "down_cooldown")
		in.Limits.MaxGrowth = rapid.SampledFrom(propGrowths).Draw(t, "growth")
		when := func(label string) time.Time {
			if rapid.IntRange(0, 4).Draw(t, label+"_never") == 0 {
				return time.Time{}
			}
			return ago(time.Duration(rapid.IntRange(0, 600).Draw(t, label+"_s_ago")) * time.Second)
		}
		in.Scaling = ScalingState{LastExpand: when("last_expand"), LastContract: when("last_contract"), LastJoin: when("last_join")}
		in.Decision = Decision{Action: ActionExpand, Count: 1, Template: "a1"}

		res := Plan(in)

		cooling := !in.Scaling.LastJoin.IsZero() && t0.Sub(in.Scaling.LastJoin) < in.Limits.ScaleUpCooldown
		switch codes := reasonCodes(res.Reasons); {
		case cooling && (len(res.Proposals) > 0 || !slices.Equal(codes, []Code{CodeCooldown})):
			t.Fatalf("joined %s ago, cooldown %s: want a refusal for the cooldown, got %d proposals, reasons:\n%s",
				t0.Sub(in.Scaling.LastJoin), in.Limits.ScaleUpCooldown, len(res.Proposals), reasonsText(res.Reasons))
		case !cooling && (len(res.Proposals) != 1 || len(codes) > 0):
			t.Fatalf("joined at %s, cooldown %s: want the clone, got %d proposals, reasons:\n%s",
				in.Scaling.LastJoin, in.Limits.ScaleUpCooldown, len(res.Proposals), reasonsText(res.Reasons))
		}
		if res.Scaling.LastJoin != in.Scaling.LastJoin {
			t.Fatalf("Plan moved LastJoin from %s to %s; only the registry sets it", in.Scaling.LastJoin, res.Scaling.LastJoin)
		}
	})
}

// TestPropertyGrowthCapMatchesNaive checks the growth cap against integer
// arithmetic on clusters where nothing else binds, with growth factors in
// tenths, some of which (1.2 × 5) floating point gets a hair wrong.
func TestPropertyGrowthCapMatchesNaive(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		tenths := rapid.IntRange(11, 40).Draw(t, "growth_tenths")
		in := Input{Now: t0, Metrics: MetricsHealth{Available: true},
			Limits: Limits{Min: 1, Max: 1000, ScalableRoles: []string{"app"}, MaxGrowth: float64(tenths) / 10}}
		ready := rapid.IntRange(1, 60).Draw(t, "ready")
		for i := range ready {
			in.Nodes = append(in.Nodes, appNode(fmt.Sprintf("a%d", i), "h1"))
		}
		for i := range rapid.IntRange(0, 5).Draw(t, "failed") {
			n := appNode(fmt.Sprintf("f%d", i), "h1")
			n.State = NodeFailed
			in.Nodes = append(in.Nodes, n)
		}
		clones := rapid.IntRange(0, 20).Draw(t, "cloning")
		for range clones {
			in.Operations = append(in.Operations, expandOp("a0", "h1"))
		}
		in.Decision = Decision{Action: ActionExpand, Count: rapid.IntRange(1, 100).Draw(t, "count"), Template: "a0"}

		allowed := max(1, (tenths-10)*ready/10)
		want := min(in.Decision.Count, max(0, allowed-clones))
		res := Plan(in)
		capped := slices.Contains(reasonCodes(res.Reasons), CodeGrowth)
		if len(res.Proposals) != want || capped != (want < in.Decision.Count) {
			t.Fatalf("growth %d/10, %d ready, %d cloning, %d asked: %d proposals, naive %d; reasons:\n%s",
				tenths, ready, clones, in.Decision.Count, len(res.Proposals), want, reasonsText(res.Reasons))
		}
	})
}
