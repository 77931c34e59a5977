package policy

import (
	"math"
	"time"

	"github.com/mitosis-autoscaler/mitosis/plan"
)

// Facts are what one tick knows of a cluster, from which its policy input
// is built: the registry's state, the metric snapshot and the cluster's
// configuration, in the core's terms.
type Facts struct {
	Now     time.Time
	Cluster string
	// Limits are the cluster's configured limits: min, max and the
	// scalable roles go into the input, and with them its size.
	Limits plan.Limits
	State  plan.ClusterState
	// Hosts are the cluster's hosts with the VMs placed on them, as the
	// plan sees them.
	Hosts []plan.Host
	// Metrics are the cluster-level samples; NodeMetrics gives one node's
	// (nil: none). A function, so that the snapshot's samples are
	// converted once, node by node, straight into the input.
	Metrics     map[string]Metric
	NodeMetrics func(node string) map[string]Metric
	// Unavailable is why the metrics cannot be trusted ("" when they can).
	Unavailable string
	// Params are the cluster's policy parameters, as configured.
	Params map[string]any
}

// BuildInput makes the policy input of one tick. It also summarizes the
// nodes' metrics once (Input.Stats), for both the engine and the record.
func BuildInput(f Facts) *Input {
	now, st := f.Now, f.State
	in := &Input{
		Schema: SchemaVersion,
		Now:    now.Unix(),
		Cluster: Cluster{
			Name: f.Cluster, Min: f.Limits.Min, Max: f.Limits.Max, Roles: f.Limits.ScalableRoles,
			Size: plan.Size(f.Limits, st.Nodes, st.Operations),
		},
		Nodes:     make([]Node, 0, len(st.Nodes)),
		Metrics:   f.Metrics,
		Health:    Health{MetricsAvailable: f.Unavailable == "", Reason: f.Unavailable},
		Estimates: Estimates{CloneSeconds: st.Estimates.CloneSeconds, DrainSeconds: st.Estimates.DrainSeconds},
		History: History{
			LastExpandSAgo:   secondsAgo(now, st.Scaling.LastExpand),
			LastContractSAgo: secondsAgo(now, st.Scaling.LastContract),
			LastJoinSAgo:     secondsAgo(now, st.Scaling.LastJoin),
		},
		Operations: make([]Operation, 0, len(st.Operations)),
		Params:     f.Params,
	}
	if in.Metrics == nil {
		in.Metrics = map[string]Metric{}
	}
	for _, n := range st.Nodes {
		var samples map[string]Metric
		if f.NodeMetrics != nil {
			samples = f.NodeMetrics(n.ID)
		}
		if samples == nil {
			samples = map[string]Metric{}
		}
		in.Nodes = append(in.Nodes, Node{
			ID: n.ID, Role: n.Role, State: string(n.State), Host: n.Host, VM: n.VM,
			AgeS: now.Sub(n.CreatedAt).Seconds(), Parent: n.Parent, LineageDepth: n.LineageDepth,
			Metrics: samples,
		})
	}
	for _, h := range f.Hosts {
		in.Hosts = append(in.Hosts, Host{Name: h.Name, Capacity: h.Capacity, VMs: h.VMs})
	}
	for _, r := range st.Recent {
		in.History.Recent = append(in.History.Recent, RecentDecision{
			SAgo: now.Sub(r.At).Seconds(), Action: string(r.Action), Count: r.Count,
		})
	}
	for _, op := range st.Operations {
		in.Operations = append(in.Operations, Operation{
			ID: op.ID, Kind: string(op.Kind), Step: string(op.Step), Template: op.Template,
			Node: op.Node, Host: op.Host, AgeS: now.Sub(op.CreatedAt).Seconds(),
		})
	}
	stats := in.computeStats()
	in.stats = &stats
	return in
}

// secondsAgo is how long before now t was, to the millisecond; -1 for
// never (a zero t).
func secondsAgo(now, t time.Time) float64 {
	if t.IsZero() {
		return -1
	}
	return math.Round(now.Sub(t).Seconds()*1000) / 1000
}

// Observed summarizes the input's metrics for the decision record: the
// cluster-level values that are finite numbers, and the mean of each
// node metric over the ready nodes of scalable roles (Stats).
func (in *Input) Observed() plan.Observed {
	st := in.Stats()
	o := plan.Observed{ReadyNodes: st.Ready}
	for name, s := range in.Metrics {
		if !math.IsNaN(s.Value) && !math.IsInf(s.Value, 0) {
			if o.Cluster == nil {
				o.Cluster = map[string]float64{}
			}
			o.Cluster[name] = s.Value
		}
	}
	for name, m := range st.Metrics {
		if o.NodeMeans == nil {
			o.NodeMeans, o.NodeCounts = map[string]float64{}, map[string]int{}
		}
		o.NodeMeans[name], o.NodeCounts[name] = m.Mean, m.Count
	}
	return o
}
