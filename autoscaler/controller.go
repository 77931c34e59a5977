// Package autoscaler is the controller: the leader tick (metrics → policy
// → plan → record) and the actuator that runs recorded operations as
// sagas, step by step. It declares the small interfaces it uses (ports.go)
// and never knows whether its backends are real or simulated.
package autoscaler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"time"

	"github.com/mitosis-autoscaler/mitosis/metrics"
	"github.com/mitosis-autoscaler/mitosis/plan"
	"github.com/mitosis-autoscaler/mitosis/policy"
)

// Deps are the controller's backends.
type Deps struct {
	Registry   ControllerRegistry
	Metrics    MetricsSource
	Policy     PolicyEngine
	Hypervisor Hypervisor
	// Dispatcher is the load balancer of every cluster that Dispatchers
	// does not name: each cluster is served by one of the two.
	Dispatcher  Dispatcher
	Dispatchers map[string]Dispatcher
	Nodes       NodeAPI
	Clock       Clock
	// Log receives structured logs; nil discards them.
	Log *slog.Logger
	// Observer is told what the controller did; nil tells no one.
	Observer Observer
	// Fence, if set, gives the fencing token new operations carry (and
	// the VMs they make): with raft, the leader's term.
	Fence func() uint64
}

// dispatcher is the load balancer of cluster, nil if none.
func (d Deps) dispatcher(cluster string) Dispatcher {
	if disp, ok := d.Dispatchers[cluster]; ok && disp != nil {
		return disp
	}
	return d.Dispatcher
}

// Controller decides and acts for every configured cluster.
type Controller struct {
	cfg      Config
	d        Deps
	log      *slog.Logger
	clusters map[string]ClusterConfig
	// lastIDs is the time in the ids of each cluster's latest operations.
	lastIDs map[string]time.Time
}

// New checks the configuration and the dependencies.
func New(cfg Config, d Deps) (*Controller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	switch {
	case d.Registry == nil, d.Metrics == nil, d.Policy == nil, d.Clock == nil:
		return nil, errors.New("autoscaler: the registry, metrics source, policy engine and clock are required")
	case !cfg.DryRun && (d.Hypervisor == nil || d.Nodes == nil):
		// A dry run decides and records, and never acts.
		return nil, errors.New("autoscaler: acting needs a hypervisor, a dispatcher and the node API (or dry_run)")
	}
	for _, cl := range cfg.Clusters {
		if !cfg.DryRun && d.dispatcher(cl.Name) == nil {
			return nil, fmt.Errorf("autoscaler: acting needs a dispatcher for cluster %s (or dry_run)", cl.Name)
		}
	}
	for name := range d.Dispatchers {
		if !slices.ContainsFunc(cfg.Clusters, func(cl ClusterConfig) bool { return cl.Name == name }) {
			return nil, fmt.Errorf("autoscaler: a dispatcher for %s, which is not a configured cluster", name)
		}
	}
	log := d.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c := &Controller{cfg: cfg, d: d, log: log, clusters: map[string]ClusterConfig{}, lastIDs: map[string]time.Time{}}
	for _, cl := range cfg.Clusters {
		c.clusters[cl.Name] = cl
	}
	return c, nil
}

// upCooldown is the longest scale-up cooldown of clusters: how long after
// a clone of one of them joined an expansion may start again.
func (c *Controller) upCooldown(clusters []string) time.Duration {
	var d time.Duration
	for _, name := range clusters {
		d = max(d, c.clusters[name].Cooldown.Up.Duration)
	}
	return d
}

// Now is the controller's time, by its clock: a simulated world's in a
// simulation.
func (c *Controller) Now() time.Time { return c.d.Clock.Now() }

// Tick runs one leader tick for every cluster and returns the decisions
// it recorded. A cluster whose tick fails still gets a record saying why
// (no action is taken for it); the error is returned too.
func (c *Controller) Tick(ctx context.Context) ([]plan.DecisionRecord, error) {
	return c.TickOnly(ctx, nil)
}

// TickOnly is Tick for the clusters named (nil: every cluster): the
// decision a clone's join triggers concerns its own cluster alone.
func (c *Controller) TickOnly(ctx context.Context, clusters []string) ([]plan.DecisionRecord, error) {
	var recs []plan.DecisionRecord
	var errs []error
	for _, cl := range c.cfg.Clusters {
		if clusters != nil && !slices.Contains(clusters, cl.Name) {
			continue
		}
		rec, err := c.tick(ctx, cl)
		if err != nil {
			errs = append(errs, fmt.Errorf("cluster %s: %w", cl.Name, err))
		}
		if rec != nil {
			recs = append(recs, *rec)
		}
	}
	return recs, errors.Join(errs...)
}

func (c *Controller) tick(ctx context.Context, cl ClusterConfig) (*plan.DecisionRecord, error) {
	now := c.d.Clock.Now()
	st, err := c.d.Registry.State(ctx, cl.Name)
	if err != nil {
		return nil, fmt.Errorf("reading registry: %w", err)
	}
	limits := cl.Limits()
	dry := c.dryRun(st.Settings)
	if st.Settings.Paused {
		// Paused by an operator: no metrics, no policy; the record says so.
		rec := plan.DecisionRecord{
			Cluster: cl.Name, At: now, DryRun: dry, PolicyVersion: c.d.Policy.Version(),
			Size: plan.Size(limits, st.Nodes, st.Operations), Metrics: plan.MetricsHealth{Available: true},
			Decision: plan.Decision{Action: plan.ActionNone, Reason: pausedReason(st.Settings)},
		}
		// The scaling state is kept: a pause is no tick that wanted nothing.
		if rec, err = c.d.Registry.RecordDecision(ctx, rec, st.Scaling, nil); err != nil {
			return nil, fmt.Errorf("recording decision: %w", err)
		}
		if c.d.Observer != nil {
			c.d.Observer.Ticked(TickReport{Record: rec, State: st, Limits: limits})
		}
		return &rec, nil
	}
	snap := c.d.Metrics.Snapshot(ctx, cl.Name, st.Nodes)
	health := plan.MetricsHealth{Available: snap.Unavailable == "", Reason: snap.Unavailable}
	hosts := hosts(cl, st.Nodes)
	in := policy.BuildInput(policy.Facts{
		Now: now, Cluster: cl.Name, Limits: limits, State: st, Hosts: hosts,
		Metrics:     samples(snap.Cluster),
		NodeMetrics: func(id string) map[string]policy.Metric { return samples(snap.Nodes[id]) },
		Unavailable: snap.Unavailable, Params: cl.PolicyParams,
	})

	rec := plan.DecisionRecord{
		Cluster: cl.Name, At: now, DryRun: dry, PolicyVersion: c.d.Policy.Version(),
		InputDigest: in.Digest(), Metrics: health, Size: in.Cluster.Size, Observed: in.Observed(),
	}
	pctx, cancel := policy.WithDeadline(ctx, c.cfg.PolicyDeadline())
	dec, perr := c.d.Policy.Decide(pctx, in, now)
	cancel()
	if perr != nil {
		// A failed evaluation is a tick that wanted nothing: it also breaks
		// a run of contraction wishes.
		dec = plan.Decision{Action: plan.ActionNone}
		rec.Error = perr.Error()
	}
	res := plan.Plan(plan.Input{
		Now: now, Limits: limits, Nodes: st.Nodes, Hosts: hosts,
		Operations: st.Operations, Scaling: st.Scaling, Metrics: health, Decision: dec,
	})
	rec.Decision, rec.Proposals, rec.Reasons = dec, res.Proposals, res.Reasons

	ops := c.operations(cl.Name, now, dec, res.Proposals, "", dry)
	plan.NameClones(ops, &res.Scaling, plan.Taken(st.Nodes, st.Operations))
	for _, op := range ops {
		rec.Operations = append(rec.Operations, op.ID)
	}
	if rec, err = c.d.Registry.RecordDecision(ctx, rec, res.Scaling, ops); err != nil {
		return nil, fmt.Errorf("recording decision: %w", err)
	}
	if c.d.Observer != nil {
		c.d.Observer.Ticked(TickReport{Record: rec, State: st, Limits: limits})
	}
	level := slog.LevelInfo
	if rec.Error != "" { // the policy failed: the cluster does not scale until it is fixed
		level = slog.LevelWarn
	}
	c.log.Log(ctx, level, "decision", "cluster", cl.Name, "action", dec.Action, "count", dec.Count,
		"operations", len(ops), "dry_run", dry, "reason", dec.Reason, "capped", len(res.Reasons), "error", rec.Error)
	if perr != nil {
		return &rec, fmt.Errorf("policy: %w", perr)
	}
	return &rec, nil
}

// ManualRequest is an operator's selection: clone Template, or detach
// Node, in Cluster; By says who asked (for the record).
type ManualRequest struct {
	Cluster  string
	Action   plan.Action // expand (clone) or contract (detach)
	Template string
	Node     string
	By       string
}

// Manual records an operator's selection as a decision and starts its
// operation, through the plan's guardrails of size, budgets, eligibility
// and protection (not those of time and data: plan.Input.Manual). It
// returns the record; an operation refused says why in its Reasons. Call
// it from the goroutine that calls Tick, never at the same time.
func (c *Controller) Manual(ctx context.Context, req ManualRequest) (plan.DecisionRecord, error) {
	cl, ok := c.clusters[req.Cluster]
	if !ok {
		return plan.DecisionRecord{}, fmt.Errorf("cluster %q is not configured", req.Cluster)
	}
	dec := plan.Decision{Action: req.Action, Count: 1}
	switch req.Action {
	case plan.ActionExpand:
		if req.Template == "" {
			return plan.DecisionRecord{}, errors.New("a clone needs a template node")
		}
		dec.Template, dec.Reason = req.Template, fmt.Sprintf("manual clone of %s by %s", req.Template, req.By)
	case plan.ActionContract:
		if req.Node == "" {
			return plan.DecisionRecord{}, errors.New("a detach needs a node")
		}
		dec.Nodes, dec.Reason = []string{req.Node}, fmt.Sprintf("manual detach of %s by %s", req.Node, req.By)
	default:
		return plan.DecisionRecord{}, fmt.Errorf("manual action %q: want expand or contract", req.Action)
	}
	now := c.d.Clock.Now()
	st, err := c.d.Registry.State(ctx, cl.Name)
	if err != nil {
		return plan.DecisionRecord{}, fmt.Errorf("reading registry: %w", err)
	}
	res := plan.Plan(plan.Input{
		Now: now, Limits: cl.Limits(), Nodes: st.Nodes, Hosts: hosts(cl, st.Nodes),
		Operations: st.Operations, Scaling: st.Scaling, Decision: dec, Manual: true,
	})
	dry := c.dryRun(st.Settings)
	rec := plan.DecisionRecord{
		Cluster: cl.Name, At: now, DryRun: dry, PolicyVersion: "manual", By: req.By,
		Size: res.Size, Decision: dec, Proposals: res.Proposals, Reasons: res.Reasons,
	}
	ops := c.operations(cl.Name, now, dec, res.Proposals, "m", dry)
	plan.NameClones(ops, &res.Scaling, plan.Taken(st.Nodes, st.Operations))
	for _, op := range ops {
		rec.Operations = append(rec.Operations, op.ID)
	}
	// The record as stored has its sequence number.
	if rec, err = c.d.Registry.RecordDecision(ctx, rec, res.Scaling, ops); err != nil {
		return plan.DecisionRecord{}, fmt.Errorf("recording decision: %w", err)
	}
	c.log.Info("manual decision", "cluster", cl.Name, "action", dec.Action, "by", req.By,
		"operations", len(ops), "dry_run", dry, "reasons", len(res.Reasons))
	return rec, nil
}

// dryRun says whether a cluster runs dry: as an operator switched it, or
// else as configured. A controller configured dry never acts, whatever
// the switch says (it may have no actuators).
func (c *Controller) dryRun(s plan.ClusterSettings) bool {
	if c.cfg.DryRun || s.DryRun == nil {
		return c.cfg.DryRun
	}
	return *s.DryRun
}

func pausedReason(s plan.ClusterSettings) string {
	if s.By == "" {
		return "paused: no decision"
	}
	return fmt.Sprintf("paused by %s at %s: no decision", s.By, s.At.UTC().Format(time.RFC3339))
}

// operations makes the operations of a decision's proposals (none in a
// dry run); tag keeps ids of manual and policy decisions of the same
// millisecond apart.
func (c *Controller) operations(cluster string, now time.Time, dec plan.Decision, ps []plan.Proposal, tag string, dry bool) []plan.Operation {
	if dry {
		return nil
	}
	var ops []plan.Operation
	// Two decisions of one instant (a tick, then the decision a join
	// triggers, on a simulated clock) name their operations a millisecond
	// apart: ids are unique and still sort by time.
	at := now.Truncate(time.Millisecond)
	if last := c.lastIDs[cluster]; !at.After(last) && len(ps) > 0 {
		at = last.Add(time.Millisecond)
	}
	if len(ps) > 0 {
		c.lastIDs[cluster] = at
	}
	for i, p := range ps {
		op := plan.Operation{
			ID: opID(cluster, at, i) + tag, Kind: p.Kind, Cluster: cluster, Status: plan.OpRunning,
			Step: FirstStep(p.Kind), Template: p.Template, Host: p.Host, Node: p.Node, Force: p.Force,
			Reason: dec.Reason, CreatedAt: now, StepAt: now,
		}
		if c.d.Fence != nil {
			op.Fence = c.d.Fence()
		}
		op.Journal = []plan.JournalItem{{Step: op.Step, At: now, Note: "proposed"}}
		ops = append(ops, op)
	}
	return ops
}

// Actuate advances every unfinished operation as far as it can go now; in
// a dry run it does nothing (Advance, without the account).
func (c *Controller) Actuate(ctx context.Context) error {
	_, err := c.Advance(ctx)
	return err
}

// Progress is what one pass of the actuator did.
type Progress struct {
	// Steps is how many steps it committed.
	Steps int
	// Joined are the clusters a clone joined in this pass.
	Joined []string
	// Unfinished is how many operations are still unfinished after it.
	Unfinished int
}

// Advance advances every unfinished operation as far as it can go now,
// and says what it did; in a dry run it does nothing.
// It returns when each one waits for something (a template settling, a
// clone booting, sessions finishing); the next call carries on.
func (c *Controller) Advance(ctx context.Context) (Progress, error) {
	var p Progress
	if c.cfg.DryRun {
		return p, nil // a dry run never acts, not even on operations left from before
	}
	ops, err := c.d.Registry.Unfinished(ctx)
	if err != nil || len(ops) == 0 {
		return p, err
	}
	var errs []error
	sagas := map[string]*saga{}
	for _, op := range ops {
		s, ok := sagas[op.Cluster]
		if !ok {
			cl, known := c.clusters[op.Cluster]
			if !known {
				errs = append(errs, fmt.Errorf("operation %s: cluster %s is not configured", op.ID, op.Cluster))
				continue
			}
			st, err := c.d.Registry.State(ctx, op.Cluster)
			if err != nil {
				errs = append(errs, err)
				p.Unfinished++
				continue
			}
			s = &saga{c: c, cl: cl, nodes: make(map[string]plan.Node, len(st.Nodes))}
			for _, n := range st.Nodes {
				s.nodes[n.ID] = n
			}
			sagas[op.Cluster] = s
		}
		last, steps, err := s.advance(ctx, op)
		if err != nil {
			errs = append(errs, err)
		}
		p.Steps += steps
		switch {
		case !last.Status.Finished():
			p.Unfinished++
		case last.Kind == plan.OpExpand && last.Status == plan.OpDone && steps > 0 && !slices.Contains(p.Joined, op.Cluster):
			p.Joined = append(p.Joined, op.Cluster)
		}
	}
	return p, errors.Join(errs...)
}

// samples converts a snapshot's samples to the policy's metrics.
func samples(m map[string]metrics.Sample) map[string]policy.Metric {
	out := make(map[string]policy.Metric, len(m))
	for k, s := range m {
		out[k] = policy.Metric{Value: s.Value, AgeS: s.Age.Seconds()}
	}
	return out
}

// hosts are the configured hosts with the VMs the registry places on them,
// plus any host a node runs on that the configuration does not list.
func hosts(cl ClusterConfig, nodes []plan.Node) []plan.Host {
	vms := map[string]int{}
	for _, n := range nodes {
		vms[n.Host]++
	}
	out := make([]plan.Host, 0, len(cl.Hosts))
	listed := map[string]bool{}
	for _, h := range cl.Hosts {
		out = append(out, plan.Host{Name: h.Name, Capacity: h.Capacity, VMs: vms[h.Name]})
		listed[h.Name] = true
	}
	var extra []string
	for h := range vms {
		if !listed[h] && h != "" {
			extra = append(extra, h)
		}
	}
	sort.Strings(extra)
	for _, h := range extra {
		out = append(out, plan.Host{Name: h, VMs: vms[h]})
	}
	return out
}

// opID names an operation after its cluster, the tick's time to the
// millisecond and its index in the tick, so ids sort by time and read
// well in logs. Milliseconds keep apart the operations of ticks and
// operators' selections of the same second, and those a new leader
// starts just after its predecessor's (the registry refuses a duplicate).
func opID(cluster string, now time.Time, i int) string {
	now = now.UTC()
	return fmt.Sprintf("%s-%s%03d-%d", cluster, now.Format("20060102t150405"), now.Nanosecond()/1e6, i+1)
}
