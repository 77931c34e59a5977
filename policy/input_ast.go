package policy

import (
	"fmt"
	"math"
	"strconv"

	"github.com/open-policy-agent/opa/v1/ast"
)

// The input is converted to OPA's AST by hand, field by field: this is the
// hot path of every evaluation (the simulator makes tens of thousands), and
// a JSON round trip or ast.InterfaceToValue over the whole struct costs
// several times more. Keys are shared terms; they are never mutated.
//
// Nil maps and slices become empty objects and arrays, never null, so a
// policy can iterate them without guarding. A metric sample whose value
// is not a finite number (Prometheus' NaN) is left out, as a missing
// sample is; any other float that is not finite becomes null.

func key(s string) *ast.Term { return ast.StringTerm(s) }

var (
	kSchema, kNow, kCluster, kNodes, kHosts, kMetrics = key("schema"), key("now"), key("cluster"), key("nodes"), key("hosts"), key("metrics")
	kHealth, kHistory, kEstimates, kOperations        = key("health"), key("history"), key("estimates"), key("operations")
	kParams, kName, kMin, kMax, kSize, kRoles         = key("params"), key("name"), key("min"), key("max"), key("size"), key("roles")
	kID, kRole, kState, kHost, kVM, kAgeS             = key("id"), key("role"), key("state"), key("host"), key("vm"), key("age_s")
	kParent, kLineageDepth, kValue, kCapacity, kVMs   = key("parent"), key("lineage_depth"), key("value"), key("capacity"), key("vms")
	kMetricsAvailable, kReason                        = key("metrics_available"), key("reason")
	kLastExpand, kLastContract, kRecent               = key("last_expand_s_ago"), key("last_contract_s_ago"), key("recent")
	kLastJoin                                         = key("last_join_s_ago")
	kSAgo, kAction, kCount                            = key("s_ago"), key("action"), key("count")
	kCloneSeconds, kDrainSeconds                      = key("clone_seconds"), key("drain_seconds")
	kKind, kStep, kTemplate, kNode                    = key("kind"), key("step"), key("template"), key("node")
)

// ToValue converts the input to the AST value a policy sees as `input`,
// with the same shape as its JSON encoding. It fails only on params that
// are not JSON-like.
func (in *Input) ToValue() (ast.Value, error) {
	params, err := paramsTerm(in.Params)
	if err != nil {
		return nil, err
	}
	c := newConverter(in, true)
	kvs := make([][2]*ast.Term, 0, len(inputKeys)+1)
	for _, k := range inputKeys {
		kvs = append(kvs, [2]*ast.Term{k.key, k.conv(c, in)})
	}
	return ast.NewObject(append(kvs, [2]*ast.Term{kParams, params})...), nil
}

// inputKey is one top-level key of the input and its conversion. A heavy
// key is one that a policy may decide without (the nodes, history and so
// on): Prepared converts it only if the policy reads it (lazy.go). The
// params, which may fail to convert, are not listed.
type inputKey struct {
	key   *ast.Term
	heavy bool
	conv  func(c *converter, in *Input) *ast.Term
}

var inputKeys = [...]inputKey{
	{kSchema, false, func(_ *converter, in *Input) *ast.Term { return ast.IntNumberTerm(in.Schema) }},
	{kNow, false, func(_ *converter, in *Input) *ast.Term {
		return ast.NewTerm(ast.Number(strconv.FormatInt(in.Now, 10)))
	}},
	{kCluster, false, (*converter).cluster},
	{kNodes, true, (*converter).nodes},
	{kHosts, true, (*converter).hosts},
	// The cluster's metrics are a handful, and a policy may read them on
	// every tick (the default one's surge signal).
	{kMetrics, false, func(c *converter, in *Input) *ast.Term { return c.metrics(in.Metrics) }},
	{kHealth, false, func(c *converter, in *Input) *ast.Term {
		return c.obj(
			[2]*ast.Term{kMetricsAvailable, ast.BooleanTerm(in.Health.MetricsAvailable)},
			[2]*ast.Term{kReason, c.str(in.Health.Reason)},
		)
	}},
	{kHistory, true, (*converter).history},
	{kEstimates, false, func(c *converter, in *Input) *ast.Term {
		return c.obj(
			[2]*ast.Term{kCloneSeconds, c.float(in.Estimates.CloneSeconds)},
			[2]*ast.Term{kDrainSeconds, c.float(in.Estimates.DrainSeconds)},
		)
	}},
	{kOperations, true, (*converter).operations},
	{kNodeStats, false, func(c *converter, in *Input) *ast.Term { return c.stats(in.Stats()) }},
}

func (c *converter) cluster(in *Input) *ast.Term {
	roles := make([]*ast.Term, len(in.Cluster.Roles))
	for i, r := range in.Cluster.Roles {
		roles[i] = c.str(r)
	}
	return c.obj(
		[2]*ast.Term{kName, c.str(in.Cluster.Name)},
		[2]*ast.Term{kMin, ast.IntNumberTerm(in.Cluster.Min)},
		[2]*ast.Term{kMax, ast.IntNumberTerm(in.Cluster.Max)},
		[2]*ast.Term{kSize, ast.IntNumberTerm(in.Cluster.Size)},
		[2]*ast.Term{kRoles, ast.ArrayTerm(roles...)},
	)
}

func (c *converter) nodes(in *Input) *ast.Term {
	nodes := make([]*ast.Term, len(in.Nodes))
	for i := range in.Nodes {
		nodes[i] = c.node(&in.Nodes[i])
	}
	return ast.ArrayTerm(nodes...)
}

func (c *converter) hosts(in *Input) *ast.Term {
	hosts := make([]*ast.Term, len(in.Hosts))
	for i, h := range in.Hosts {
		hosts[i] = c.obj(
			[2]*ast.Term{kName, c.str(h.Name)},
			[2]*ast.Term{kCapacity, ast.IntNumberTerm(h.Capacity)},
			[2]*ast.Term{kVMs, ast.IntNumberTerm(h.VMs)},
		)
	}
	return ast.ArrayTerm(hosts...)
}

func (c *converter) history(in *Input) *ast.Term {
	recent := make([]*ast.Term, len(in.History.Recent))
	for i, r := range in.History.Recent {
		recent[i] = c.obj(
			[2]*ast.Term{kSAgo, c.float(r.SAgo)},
			[2]*ast.Term{kAction, c.str(r.Action)},
			[2]*ast.Term{kCount, ast.IntNumberTerm(r.Count)},
		)
	}
	return c.obj(
		[2]*ast.Term{kLastExpand, c.float(in.History.LastExpandSAgo)},
		[2]*ast.Term{kLastContract, c.float(in.History.LastContractSAgo)},
		[2]*ast.Term{kLastJoin, c.float(in.History.LastJoinSAgo)},
		[2]*ast.Term{kRecent, ast.ArrayTerm(recent...)},
	)
}

func (c *converter) operations(in *Input) *ast.Term {
	ops := make([]*ast.Term, len(in.Operations))
	for i, op := range in.Operations {
		ops[i] = c.obj(
			[2]*ast.Term{kID, c.str(op.ID)},
			[2]*ast.Term{kKind, c.str(op.Kind)},
			[2]*ast.Term{kStep, c.str(op.Step)},
			[2]*ast.Term{kTemplate, c.str(op.Template)},
			[2]*ast.Term{kNode, c.str(op.Node)},
			[2]*ast.Term{kHost, c.str(op.Host)},
			[2]*ast.Term{kAgeS, c.float(op.AgeS)},
		)
	}
	return ast.ArrayTerm(ops...)
}

// converter builds the terms of one input. Its terms come from one slab
// (one allocation instead of one per term), and equal strings share one
// term: thousands of nodes share a handful of roles, states and hosts.
// The terms are never modified once built.
type converter struct {
	strs map[string]*ast.Term
	slab []ast.Term
}

// newConverter sizes the slab for in's light keys, and for its nodes if
// heavy.
func newConverter(in *Input, heavy bool) *converter {
	n := 64
	if heavy {
		// Terms per node: 9 fields, the metrics object, and per sample
		// its object and two numbers.
		n += len(in.Nodes)*(10+3*3) + 4*len(in.History.Recent) + 8*len(in.Operations)
	}
	return &converter{strs: make(map[string]*ast.Term, 16), slab: make([]ast.Term, 0, n)}
}

func (c *converter) term(v ast.Value) *ast.Term {
	if len(c.slab) == cap(c.slab) {
		c.slab = make([]ast.Term, 0, 256)
	}
	c.slab = append(c.slab, ast.Term{Value: v})
	return &c.slab[len(c.slab)-1]
}

func (c *converter) obj(kvs ...[2]*ast.Term) *ast.Term { return c.term(ast.NewObject(kvs...)) }

func (c *converter) str(s string) *ast.Term {
	if t, ok := c.strs[s]; ok {
		return t
	}
	t := c.term(ast.String(s))
	c.strs[s] = t
	return t
}

// id is a string that is unlikely to repeat (a node's id, its VM): not
// worth a look-up.
func (c *converter) id(s string) *ast.Term { return c.term(ast.String(s)) }

func (c *converter) float(f float64) *ast.Term {
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0):
		return ast.NullTerm()
	case f == math.Trunc(f) && math.Abs(f) < 1<<53:
		return ast.IntNumberTerm(int(f))
	}
	// 15 significant digits: every decimal of 15 digits or fewer that a
	// float64 was read from prints back the same, and OPA compares numbers
	// of at most 15 digits without arbitrary-precision arithmetic.
	return c.term(ast.Number(strconv.FormatFloat(f, 'g', 15, 64)))
}

func (c *converter) node(n *Node) *ast.Term {
	return c.obj(
		[2]*ast.Term{kID, c.id(n.ID)},
		[2]*ast.Term{kRole, c.str(n.Role)},
		[2]*ast.Term{kState, c.str(n.State)},
		[2]*ast.Term{kHost, c.str(n.Host)},
		[2]*ast.Term{kVM, c.id(n.VM)},
		[2]*ast.Term{kAgeS, c.float(n.AgeS)},
		[2]*ast.Term{kParent, c.str(n.Parent)},
		[2]*ast.Term{kLineageDepth, ast.IntNumberTerm(n.LineageDepth)},
		[2]*ast.Term{kMetrics, c.metrics(n.Metrics)},
	)
}

func (c *converter) metrics(m map[string]Metric) *ast.Term {
	var buf [8][2]*ast.Term
	kvs := buf[:0]
	for name, s := range m {
		if math.IsNaN(s.Value) || math.IsInf(s.Value, 0) {
			continue
		}
		kvs = append(kvs, [2]*ast.Term{c.str(name), c.obj(
			[2]*ast.Term{kValue, c.float(s.Value)},
			[2]*ast.Term{kAgeS, c.float(s.AgeS)},
		)})
	}
	return c.obj(kvs...)
}

// paramsTerm converts the free-form params, which come from configuration
// (YAML or JSON), with ast.InterfaceToValue: they are few and small.
func paramsTerm(p map[string]any) (*ast.Term, error) {
	if len(p) == 0 {
		return ast.ObjectTerm(), nil
	}
	v, err := ast.InterfaceToValue(p)
	if err != nil {
		return nil, fmt.Errorf("params: %w", err)
	}
	return ast.NewTerm(v), nil
}
