package policy_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/plan"
	"github.com/mitosis-autoscaler/mitosis/policies"
	"github.com/mitosis-autoscaler/mitosis/policy"
)

// clusterInput makes a realistic input of n scalable nodes (and a central
// node of another role): mostly ready, a few being prepared or drained,
// each with utilization around mean, a cache hit ratio, sessions; a host
// per 20 nodes; a clone and a detach in flight.
func clusterInput(n int, mean float64, seed uint64) *policy.Input {
	r := rand.New(rand.NewPCG(seed, 1))
	in := &policy.Input{
		Schema:  policy.SchemaVersion,
		Now:     1767258000,
		Cluster: policy.Cluster{Name: "web", Min: 2, Max: 2 * n, Size: n, Roles: []string{"app"}},
		Metrics: map[string]policy.Metric{"utilization": {Value: mean, AgeS: 5}, "queue_length": {Value: 12, AgeS: 5}},
		Health:  policy.Health{MetricsAvailable: true},
		History: policy.History{LastExpandSAgo: 600, LastContractSAgo: -1, LastJoinSAgo: 590,
			Recent: []policy.RecentDecision{{SAgo: 30, Action: "none"}, {SAgo: 60, Action: "none"}}},
		Estimates: policy.Estimates{CloneSeconds: 40, DrainSeconds: 90},
		Params:    map[string]any{"target": 0.6},
	}
	hosts := max(1, n/20)
	for h := range hosts {
		in.Hosts = append(in.Hosts, policy.Host{Name: fmt.Sprintf("esx%03d", h), Capacity: 32, VMs: 20})
	}
	in.Nodes = append(in.Nodes, policy.Node{ID: "central", Role: "central", State: "ready", Host: "esx000", VM: "vm-central", AgeS: 864000,
		Metrics: map[string]policy.Metric{"utilization": {Value: 0.3, AgeS: 5}}})
	for i := range n {
		state := "ready"
		switch i % 97 {
		case 13:
			state = "preparing"
		case 41:
			state = "draining"
		}
		parent, depth := "", 0
		if i > 3 {
			parent, depth = fmt.Sprintf("app-%05d", r.IntN(i)), 1+r.IntN(4)
		}
		age := 60 + r.Float64()*86400
		in.Nodes = append(in.Nodes, policy.Node{
			ID: fmt.Sprintf("app-%05d", i), Role: "app", State: state,
			Host: fmt.Sprintf("esx%03d", i%hosts), VM: fmt.Sprintf("vm-app-%05d", i),
			AgeS: age, Parent: parent, LineageDepth: depth,
			Metrics: map[string]policy.Metric{
				"utilization":     {Value: clamp(mean + r.NormFloat64()*0.1), AgeS: 5},
				"cache_hit_ratio": {Value: clamp(0.5 + age/172800 + r.NormFloat64()*0.05), AgeS: 5},
				"sessions":        {Value: float64(r.IntN(400)), AgeS: 5},
			},
		})
	}
	in.Operations = []policy.Operation{
		{ID: "op-1", Kind: "expand", Step: "clone", Template: "app-00001", Host: "esx000", AgeS: 12},
		{ID: "op-2", Kind: "contract", Step: "drain", Node: "app-00002", Host: "esx000", AgeS: 30},
	}
	return in
}

func clamp(x float64) float64 { return min(max(x, 0), 1) }

// ticks makes k consecutive inputs of one cluster, as a controller sees
// them tick after tick: the same nodes, 15 s older each tick, with new
// samples.
func ticks(n int, mean float64, k int) []*policy.Input {
	base := clusterInput(n, mean, 1)
	out := make([]*policy.Input, k)
	for t := range k {
		in := clusterInput(n, mean, uint64(t+2))
		for i := range in.Nodes {
			in.Nodes[i].AgeS = base.Nodes[i].AgeS + float64(15*t)
			in.Nodes[i].ID, in.Nodes[i].Parent = base.Nodes[i].ID, base.Nodes[i].Parent
			in.Nodes[i].LineageDepth, in.Nodes[i].Host, in.Nodes[i].VM = base.Nodes[i].LineageDepth, base.Nodes[i].Host, base.Nodes[i].VM
		}
		in.Now = base.Now + int64(15*t)
		out[t] = in
	}
	return out
}

func defaultEngine(tb testing.TB) *policy.Engine {
	tb.Helper()
	e, err := policy.LoadFS(policies.FS, "policies")
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

// BenchmarkDecide evaluates the default policy on a busy cluster (mean
// utilization 0.8, so it expands and ranks every ready node as a
// template: the most work the policy does).
func BenchmarkDecide(b *testing.B) {
	e := defaultEngine(b)
	for _, n := range benchSizes {
		benchTicks(b, e, fmt.Sprintf("nodes=%d", n), ticks(n, 0.8, 8), plan.ActionExpand)
	}
}

// BenchmarkDecideAction splits the cost by outcome: none (within the
// band: one pass over the nodes), expand (scores every template),
// contract (scores every victim).
func BenchmarkDecideAction(b *testing.B) {
	e := defaultEngine(b)
	for _, c := range []struct {
		action plan.Action
		mean   float64
	}{{plan.ActionNone, 0.6}, {plan.ActionExpand, 0.8}, {plan.ActionContract, 0.25}} {
		for _, n := range benchSizes {
			benchTicks(b, e, fmt.Sprintf("%s/nodes=%d", c.action, n), ticks(n, c.mean, 8), c.action)
		}
	}
}

// benchTicks decides on the inputs in turn, as consecutive ticks.
func benchTicks(b *testing.B, e *policy.Engine, name string, ins []*policy.Input, want plan.Action) {
	b.Run(name, func(b *testing.B) {
		for _, in := range ins {
			d, err := e.Decide(context.Background(), in, time.Unix(in.Now, 0))
			if err != nil || d.Action != want {
				b.Fatalf("decision %+v, error %v", d, err)
			}
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			in := ins[i%len(ins)]
			i++
			if _, err := e.Decide(context.Background(), in, time.Unix(in.Now, 0)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkDecidePrepared is BenchmarkDecideAction on inputs converted
// beforehand (policy.Prepare): the evaluation alone, without the input
// conversion that BenchmarkToValue measures.
func BenchmarkDecidePrepared(b *testing.B) {
	e := defaultEngine(b)
	for _, c := range []struct {
		action plan.Action
		mean   float64
	}{{plan.ActionNone, 0.6}, {plan.ActionExpand, 0.8}, {plan.ActionContract, 0.25}} {
		for _, n := range benchSizes {
			ins := ticks(n, c.mean, 8)
			prepared := make([]*policy.Prepared, len(ins))
			for i, in := range ins {
				p, err := policy.Prepare(in)
				if err != nil {
					b.Fatal(err)
				}
				prepared[i] = p
				// Once: an acting evaluation converts the whole input on
				// first use, which BenchmarkToValue measures.
				if _, err := e.DecidePrepared(context.Background(), p, time.Unix(in.Now, 0)); err != nil {
					b.Fatal(err)
				}
			}
			b.Run(fmt.Sprintf("%s/nodes=%d", c.action, n), func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					k := i % len(ins)
					i++
					d, err := e.DecidePrepared(context.Background(), prepared[k], time.Unix(ins[k].Now, 0))
					if err != nil || d.Action != c.action {
						b.Fatalf("decision %+v, error %v", d, err)
					}
				}
			})
		}
	}
}

// BenchmarkToValue is the input conversion alone.
func BenchmarkToValue(b *testing.B) {
	for _, n := range benchSizes[1:] {
		in := clusterInput(n, 0.8, 1)
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := in.ToValue(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

var benchSizes = []int{10, 1000, 10000}

// BenchmarkFloor is what the engine costs on its own, whatever the
// policy: whole Decides of a policy that reads nothing (empty) and of one
// that reads one field of every node (walk), which any policy ranking
// templates or victims in Rego pays at least (the conversion of every
// node, and OPA's evaluator visiting each).
func BenchmarkFloor(b *testing.B) {
	for _, name := range []string{"empty", "walk"} {
		e, err := policy.Load("testdata/floor-" + name)
		if err != nil {
			b.Fatal(err)
		}
		for _, n := range benchSizes {
			benchTicks(b, e, fmt.Sprintf("%s/nodes=%d", name, n), ticks(n, 0.6, 8), plan.ActionNone)
		}
	}
}

// BenchmarkBuildInput is the building of a tick's input from the
// registry's state (what the controller does before Digest and Decide).
func BenchmarkBuildInput(b *testing.B) {
	for _, n := range benchSizes[1:] {
		f := clusterFacts(n)
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				policy.BuildInput(f)
			}
		})
	}
}

// BenchmarkDigest is the input's digest alone.
func BenchmarkDigest(b *testing.B) {
	for _, n := range benchSizes[1:] {
		in := clusterInput(n, 0.8, 1)
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = in.Digest()
			}
		})
	}
}

// clusterFacts are the facts of clusterInput's cluster, roughly.
func clusterFacts(n int) policy.Facts {
	now := time.Unix(1767258000, 0)
	in := clusterInput(n, 0.8, 1)
	f := policy.Facts{Now: now, Cluster: "web", Limits: plan.Limits{Min: 2, Max: 2 * n, ScalableRoles: []string{"app"}},
		Metrics: in.Metrics, Params: in.Params}
	byID := map[string]map[string]policy.Metric{}
	for _, nd := range in.Nodes {
		byID[nd.ID] = nd.Metrics
		f.State.Nodes = append(f.State.Nodes, plan.Node{ID: nd.ID, Cluster: "web", Role: nd.Role, State: plan.NodeState(nd.State),
			Host: nd.Host, VM: nd.VM, Parent: nd.Parent, LineageDepth: nd.LineageDepth, CreatedAt: now.Add(-time.Duration(nd.AgeS) * time.Second)})
	}
	f.NodeMetrics = func(id string) map[string]policy.Metric { return byID[id] }
	for _, h := range in.Hosts {
		f.Hosts = append(f.Hosts, plan.Host{Name: h.Name, Capacity: h.Capacity, VMs: h.VMs})
	}
	return f
}
