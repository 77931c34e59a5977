package policy

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/mitosis-autoscaler/mitosis/plan"
)

// The decision's keys (contract version 1).
var decisionKeys = []string{"action", "count", "template", "templates", "hosts", "nodes", "force", "fail_safe", "reason"}

// decode reads a decision from its AST and checks it against the policy
// contract and the input it was made from:
//
//   - an object with only the keys above; action one of expand, contract,
//     none; every key of its type (count an integer, force and fail_safe
//     booleans, reason a string, the lists arrays of strings);
//   - expand: 1 <= count <= cluster.max; template, and each of templates,
//     a ready node of a scalable role; hosts, if given, hosts of the input;
//   - contract: 1 <= count <= cluster.size; nodes, at least one, each a
//     node of a scalable role.
//
// Keys that do not apply to the action (a template on a contraction, a
// count on none) are type-checked, then dropped from the result.
func decode(t *ast.Term, in *Input) (plan.Decision, *DecisionError) {
	var d plan.Decision
	if t == nil {
		return d, bad("", "undefined")
	}
	obj, ok := t.Value.(ast.Object)
	if !ok {
		return d, bad("", "must be an object, got %s %s", ast.ValueName(t.Value), short(t))
	}
	var unknown []string
	obj.Foreach(func(k, _ *ast.Term) {
		s, ok := k.Value.(ast.String)
		if !ok || !slices.Contains(decisionKeys, string(s)) {
			unknown = append(unknown, k.String())
		}
	})
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return d, bad(unknown[0], "unknown key %s (the keys are %s)", unknown[0], strings.Join(decisionKeys, ", "))
	}

	f := fields{obj: obj}
	action, present := f.str("action")
	switch {
	case f.err != nil:
		return d, f.err
	case !present:
		return d, bad("action", "action is missing (expand, contract or none)")
	case !plan.Action(action).Valid():
		return d, bad("action", "action %q is not one of expand, contract, none", action)
	}
	d.Action = plan.Action(action)
	count, hasCount := f.integer("count")
	d.Template, _ = f.str("template")
	d.Templates = f.strs("templates")
	d.Hosts = f.strs("hosts")
	d.Nodes = f.strs("nodes")
	d.Force = f.boolean("force")
	d.FailSafe = f.boolean("fail_safe")
	reason, _ := f.str("reason")
	// The reason is free text the policy controls: capped, so that a
	// careless policy cannot make every record, log line and raft entry huge.
	d.Reason = plan.CutText(reason, plan.MaxReason)
	if f.err != nil {
		return plan.Decision{}, f.err
	}

	nodes := finder{in: in}
	switch d.Action {
	case plan.ActionExpand:
		d.Nodes = nil
		if err := checkCount(count, hasCount, "cluster.max", in.Cluster.Max); err != nil {
			return plan.Decision{}, err
		}
		d.Count = int(count)
		if d.Template == "" {
			return plan.Decision{}, bad("template", "template is missing: expand must name the node to clone")
		}
		if err := nodes.template("template", d.Template); err != nil {
			return plan.Decision{}, err
		}
		for i, id := range d.Templates {
			if err := nodes.template(fmt.Sprintf("templates[%d]", i), id); err != nil {
				return plan.Decision{}, err
			}
		}
		for i, h := range d.Hosts {
			if !slices.ContainsFunc(in.Hosts, func(x Host) bool { return x.Name == h }) {
				return plan.Decision{}, bad("hosts", "hosts[%d] %q is not a host of the input", i, h)
			}
		}
	case plan.ActionContract:
		d.Template, d.Templates, d.Hosts, d.Force, d.FailSafe = "", nil, nil, false, false
		if err := checkCount(count, hasCount, "cluster.size", in.Cluster.Size); err != nil {
			return plan.Decision{}, err
		}
		d.Count = int(count)
		if len(d.Nodes) == 0 {
			return plan.Decision{}, bad("nodes", "nodes is missing: contract must name its victims, best first")
		}
		for i, id := range d.Nodes {
			if err := nodes.victim(fmt.Sprintf("nodes[%d]", i), id); err != nil {
				return plan.Decision{}, err
			}
		}
	default:
		d = plan.Decision{Action: plan.ActionNone, Reason: d.Reason}
	}
	return d, nil
}

func checkCount(n int64, present bool, limitName string, limit int) *DecisionError {
	switch {
	case !present:
		return bad("count", "count is missing: an integer >= 1")
	case n < 1:
		return bad("count", "count %d is below 1", n)
	case n > int64(limit):
		return bad("count", "count %d is above %s %d", n, limitName, limit)
	}
	return nil
}

func bad(field, format string, args ...any) *DecisionError {
	return &DecisionError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// short renders a value for an error message, cut to a readable length.
func short(t *ast.Term) string {
	s := t.String()
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}

// fields reads typed keys of the decision object, keeping the first error.
type fields struct {
	obj ast.Object
	err *DecisionError
}

func (f *fields) get(k string) *ast.Term {
	if f.err != nil {
		return nil
	}
	return f.obj.Get(ast.InternedTerm(k))
}

func (f *fields) typeErr(k, want string, t *ast.Term) {
	f.err = bad(k, "%s must be %s, got %s %s", k, want, ast.ValueName(t.Value), short(t))
}

func (f *fields) str(k string) (string, bool) {
	t := f.get(k)
	if t == nil {
		return "", false
	}
	s, ok := t.Value.(ast.String)
	if !ok {
		f.typeErr(k, "a string", t)
		return "", false
	}
	return string(s), true
}

func (f *fields) boolean(k string) bool {
	t := f.get(k)
	if t == nil {
		return false
	}
	b, ok := t.Value.(ast.Boolean)
	if !ok {
		f.typeErr(k, "a boolean", t)
		return false
	}
	return bool(b)
}

func (f *fields) integer(k string) (int64, bool) {
	t := f.get(k)
	if t == nil {
		return 0, false
	}
	n, ok := t.Value.(ast.Number)
	if !ok {
		f.typeErr(k, "an integer", t)
		return 0, false
	}
	if i, ok := n.Int64(); ok {
		return i, true
	}
	if x, ok := n.Float64(); ok && x == math.Trunc(x) && math.Abs(x) < 1<<53 {
		return int64(x), true
	}
	f.typeErr(k, "an integer", t)
	return 0, false
}

func (f *fields) strs(k string) []string {
	t := f.get(k)
	if t == nil {
		return nil
	}
	a, ok := t.Value.(*ast.Array)
	if !ok {
		f.typeErr(k, "an array of strings", t)
		return nil
	}
	out := make([]string, 0, a.Len())
	for i := range a.Len() {
		e := a.Elem(i)
		s, ok := e.Value.(ast.String)
		if !ok {
			f.err = bad(k, "%s[%d] must be a string, got %s %s", k, i, ast.ValueName(e.Value), short(e))
			return nil
		}
		out = append(out, string(s))
	}
	return out
}

// finder looks nodes of the input up by id: by a scan for the first few,
// then through an index, so that a decision ranking every node of a large
// cluster is checked in linear time.
type finder struct {
	in      *Input
	lookups int
	index   map[string]int
}

func (f *finder) node(id string) (*Node, bool) {
	f.lookups++
	if f.index == nil && f.lookups > 8 {
		f.index = make(map[string]int, len(f.in.Nodes))
		for i := len(f.in.Nodes) - 1; i >= 0; i-- {
			f.index[f.in.Nodes[i].ID] = i
		}
	}
	if f.index != nil {
		i, ok := f.index[id]
		if !ok {
			return nil, false
		}
		return &f.in.Nodes[i], true
	}
	for i := range f.in.Nodes {
		if f.in.Nodes[i].ID == id {
			return &f.in.Nodes[i], true
		}
	}
	return nil, false
}

func (f *finder) scalable(field, what, id string, n *Node) *DecisionError {
	if slices.Contains(f.in.Cluster.Roles, n.Role) {
		return nil
	}
	return bad(field, "%s %q has role %q, which is not scalable (cluster.roles: %s)", what, id, n.Role, strings.Join(f.in.Cluster.Roles, ", "))
}

func (f *finder) template(field, id string) *DecisionError {
	what := field
	n, ok := f.node(id)
	switch {
	case !ok:
		return bad(field, "%s %q is not a ready node of the cluster: there is no such node", what, id)
	case n.State != string(plan.NodeReady):
		return bad(field, "%s %q is not a ready node of the cluster: it is %s", what, id, n.State)
	}
	return f.scalable(field, what, id, n)
}

func (f *finder) victim(field, id string) *DecisionError {
	n, ok := f.node(id)
	if !ok {
		return bad(field, "%s %q is not a node of the cluster", field, id)
	}
	return f.scalable(field, field, id, n)
}
