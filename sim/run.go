package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"time"

	"github.com/mitosis-autoscaler/mitosis/autoscaler"
	"github.com/mitosis-autoscaler/mitosis/plan"
)

// Options describe one simulation run.
type Options struct {
	// Label names the run in reports (default: the mode).
	Label    string
	Workload *Workload
	// Config is the autoscaler configuration; it must hold exactly one
	// cluster.
	Config autoscaler.Config
	Params Params
	Mode   Mode
	// Scale multiplies the workload: requests per unit of the trace
	// (default 1).
	Scale float64
	Seed  uint64
	// Policy is the compiled policy the controller evaluates (Run needs
	// it; a Cluster only names it in its Result).
	Policy autoscaler.PolicyEngine
	// Progress, if set, is called now and then with the simulated time
	// done and the total.
	Progress func(done, total time.Duration)
	// Log receives the controller's logs (nil discards them).
	Log *slog.Logger
	// Registry, if set, is where the run records its nodes, operations
	// and decisions (it must not hold the cluster yet): for a run that
	// others watch, like the agent's simulated mode. Default: in memory.
	Registry autoscaler.Registry
	// Observer, if set, is told what the controller did.
	Observer autoscaler.Observer
	// Pace, if set, is called after every step of the world with its
	// time: a run in real time sleeps there (RealTime). An error ends
	// the run with it.
	Pace func(ctx context.Context, now time.Time) error
}

// Result is what a run produced.
type Result struct {
	Label         string
	Mode          Mode
	PolicyVersion string
	Workload      string
	Scale         float64
	NodeCapacity  float64
	Timeline      []Row
	Ops           []OpRecord
	Summary       Summary
	// TickErrors counts ticks that failed (their decisions were recorded
	// with the error and did nothing); FirstTickError is the first.
	TickErrors     int
	FirstTickError string
	// ActuateErrors counts failed Actuate calls.
	ActuateErrors int
	// Wall is how long the run took in real time.
	Wall time.Duration
}

// Row is one minute of a run (the last row may be shorter). Rates are
// means over the row.
type Row struct {
	Time    time.Time
	Seconds float64
	// Demand, Served and Capacity are requests per second: offered,
	// served, and what the serving nodes could have served.
	Demand, Served, Capacity float64
	// Dropped is how many requests gave up waiting (not served).
	Dropped float64
	// NodesReady is the mean number of nodes taking work; NodesTotal the
	// mean number of VMs (booting, serving, draining).
	NodesReady, NodesTotal float64
	// InFlight is the number of unfinished operations at the row's end.
	InFlight int
	// Action is the last decision the policy took in the row ("" if the
	// row had no tick).
	Action string
	// Expansions and Contractions are the operations started in the row;
	// Joined the clones that joined.
	Expansions, Contractions, Joined int
}

// OpRecord is one operation as the run saw it.
type OpRecord struct {
	ID       string
	Kind     plan.OpKind
	Started  time.Time
	Finished time.Time // zero if unfinished at the end
	Status   plan.OpStatus
	Error    string
}

// Run simulates the workload against the same controller, and the same
// loop, as the agent's: the world's clock is the loop's, and waiting for
// the next tick or poll advances the world (Cluster).
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Policy == nil {
		return nil, errors.New("simulation: no policy")
	}
	c, err := NewCluster(ctx, o)
	if err != nil {
		return nil, err
	}
	deps := c.Deps()
	deps.Policy, deps.Log, deps.Observer = o.Policy, o.Log, o.Observer
	ctrl, err := autoscaler.New(o.Config, deps)
	if err != nil {
		return nil, err
	}
	loop, err := autoscaler.NewLoop(ctrl, c, o.Config.Loop())
	if err != nil {
		return nil, err
	}
	loop.Decided, loop.Advanced = c.Decided, c.Advanced
	if err := loop.Run(ctx); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return c.Result(), nil
}

// Cluster is a simulated cluster: a World, the registry it records into,
// and the world's clock for the controller's loop (autoscaler.Sleeper),
// whose Wait advances the world step by step and keeps the timeline. Run
// drives one to the end of its workload; an agent acts on one in place of
// machines.
type Cluster struct {
	o        Options
	world    *World
	reg      *trackingRegistry
	res      *Result
	began    time.Time
	row      Row
	nextRow  time.Time
	progress time.Time // when Progress was last called
	steps    int
}

// NewCluster makes the world of o with its first nodes registered, and
// steps it once (a first decision then has samples to read).
func NewCluster(ctx context.Context, o Options) (*Cluster, error) {
	began := time.Now()
	if o.Scale == 0 {
		o.Scale = 1
	}
	if o.Mode == "" {
		o.Mode = LiveClone
	}
	if o.Label == "" {
		o.Label = string(o.Mode)
	}
	if n := len(o.Config.Clusters); n != 1 {
		return nil, fmt.Errorf("simulation: exactly one cluster is simulated, the config has %d", n)
	}
	o.Params.ApplyDefaults()
	cl := o.Config.Clusters[0]
	world, err := NewWorld(o.Params, o.Mode, o.Workload, o.Scale, cl.Hosts, o.Seed)
	if err != nil {
		return nil, err
	}
	var inner autoscaler.Registry = autoscaler.NewMemRegistry()
	if o.Registry != nil {
		inner = o.Registry
	}
	reg := &trackingRegistry{Registry: inner, byID: map[string]int{}}
	if err := addInitialNodes(ctx, world, reg, cl, o.Params.InitialNodes); err != nil {
		return nil, err
	}
	c := &Cluster{
		o: o, world: world, reg: reg, began: began, row: Row{Time: world.Now()},
		nextRow: world.Now().Add(time.Minute), progress: time.Now(),
		res: &Result{
			Label: o.Label, Mode: o.Mode, Workload: o.Workload.Name,
			Scale: o.Scale, NodeCapacity: o.Params.NodeCapacity,
		},
	}
	if o.Policy != nil {
		c.res.PolicyVersion = o.Policy.Version()
	}
	if err := c.step(ctx); err != nil && !errors.Is(err, autoscaler.ErrWorldEnded) {
		return nil, err
	}
	return c, nil
}

// Deps are the controller's backends in this world: all but the policy,
// the log and the observer.
func (c *Cluster) Deps() autoscaler.Deps {
	return autoscaler.Deps{Registry: c.reg, Metrics: c.world, Hypervisor: c.world,
		Dispatcher: c.world, Nodes: c.world, Clock: c}
}

// Now is the world's time.
func (c *Cluster) Now() time.Time { return c.world.Now() }

// Wait advances the world, at least one step, until until or a wake; at
// the end of the workload it returns autoscaler.ErrWorldEnded.
func (c *Cluster) Wait(ctx context.Context, until time.Time, wake <-chan struct{}) error {
	for {
		if err := c.step(ctx); err != nil {
			return err
		}
		if !c.world.Now().Before(until) {
			return nil
		}
		select {
		case <-wake:
			return nil
		default:
		}
	}
}

// step advances the world one step and closes the timeline's row if it
// ends there: what the controller does next belongs to the next row.
func (c *Cluster) step(ctx context.Context) error {
	if c.world.Done() {
		return autoscaler.ErrWorldEnded
	}
	if c.steps++; c.steps%4096 == 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		if c.o.Progress != nil && time.Since(c.progress) > 100*time.Millisecond {
			c.o.Progress(c.world.Now().Sub(c.o.Workload.Start), c.o.Workload.Duration())
			c.progress = time.Now()
		}
	}
	c.world.Step()
	now := c.world.Now()
	if c.o.Pace != nil {
		if err := c.o.Pace(ctx, now); err != nil {
			return err
		}
	}
	if !now.Before(c.nextRow) || c.world.Done() {
		c.res.Timeline = append(c.res.Timeline, closeRow(c.row, c.world, c.reg))
		c.row = Row{Time: now}
		c.nextRow = now.Add(time.Minute)
	}
	if c.world.Done() {
		return autoscaler.ErrWorldEnded
	}
	return nil
}

// Decided records a tick in the timeline (Loop.Decided).
func (c *Cluster) Decided(recs []plan.DecisionRecord, err error) {
	if err != nil {
		c.res.TickErrors++
		if c.res.FirstTickError == "" {
			c.res.FirstTickError = fmt.Sprintf("%s: %v", c.Now().Format(time.RFC3339), err)
		}
	}
	for _, r := range recs {
		c.row.Action = string(r.Decision.Action)
	}
}

// Advanced counts the actuator's failed passes (Loop.Advanced).
func (c *Cluster) Advanced(err error) {
	if err != nil {
		c.res.ActuateErrors++
	}
}

// Result is the run so far: the timeline's closed rows, the operations
// and their summary.
func (c *Cluster) Result() *Result {
	res := *c.res
	res.Timeline = slices.Clone(c.res.Timeline)
	if c.o.Progress != nil && c.world.Done() {
		c.o.Progress(c.o.Workload.Duration(), c.o.Workload.Duration())
	}
	// Requests still waiting when the workload ends were not served.
	if n := len(res.Timeline); n > 0 && c.world.Done() {
		res.Timeline[n-1].Dropped += c.world.Backlog()
	}
	res.Ops = slices.Clone(c.reg.records)
	res.Summary = Summarize(res.Timeline, res.Ops, c.o.Params.NodeCapacity)
	res.Wall = time.Since(c.began)
	return &res
}

// closeRow fills a row from the world's accumulator and the registry's
// operations since the row began.
func closeRow(row Row, w *World, reg *trackingRegistry) Row {
	row = accumulatedRow(row, w.TakeAccumulator(), reg.unfinished)
	row.Expansions, row.Contractions, row.Joined = reg.expansions, reg.contractions, reg.joined
	reg.expansions, reg.contractions, reg.joined = 0, 0, 0
	return row
}

// accumulatedRow fills a row's rates from a world's accumulator (a run's
// rows and the ideal follower's alike).
func accumulatedRow(row Row, a Accumulator, inFlight int) Row {
	row.Seconds = a.Seconds
	if a.Seconds > 0 {
		row.Demand = a.Demand / a.Seconds
		row.Served = a.Served / a.Seconds
		row.Capacity = a.CapSeconds / a.Seconds
		row.NodesReady = a.ReadySeconds / a.Seconds
		row.NodesTotal = a.VMSeconds / a.Seconds
	}
	row.Dropped = a.Dropped
	row.InFlight = inFlight
	return row
}

// addInitialNodes starts the cluster with warm nodes spread over its hosts.
func addInitialNodes(ctx context.Context, w *World, reg autoscaler.Registry, cl autoscaler.ClusterConfig, n int) error {
	if n == 0 {
		n = max(cl.Min, 1)
	}
	if n > cl.Max {
		return fmt.Errorf("simulation.initial_nodes: %d is above the cluster's max %d", n, cl.Max)
	}
	hosts := []string{"host-1"}
	if len(cl.Hosts) > 0 {
		hosts = hosts[:0]
		for _, h := range cl.Hosts {
			hosts = append(hosts, h.Name)
		}
	}
	role := cl.ScalableRoles[0]
	for i := range n {
		var err error
		var nd plan.Node
		// Round-robin over the hosts that still have room.
		for k := range hosts {
			nd, err = w.AddNode(fmt.Sprintf("%s-%d", cl.Name, i+1), role, hosts[(i+k)%len(hosts)])
			if err == nil {
				break
			}
		}
		if err != nil {
			return fmt.Errorf("placing initial node %d: %w", i+1, err)
		}
		nd.Cluster = cl.Name
		if err := reg.PutNode(ctx, nd); err != nil {
			return err
		}
	}
	return nil
}

// trackingRegistry is the run's registry, watched: it counts the
// unfinished operations (so the runner calls Actuate only when there is
// something to do) and records each operation's life for the summary.
type trackingRegistry struct {
	autoscaler.Registry
	unfinished                       int
	records                          []OpRecord
	byID                             map[string]int
	expansions, contractions, joined int
}

func (r *trackingRegistry) RecordDecision(ctx context.Context, rec plan.DecisionRecord, s plan.ScalingState, ops []plan.Operation) (plan.DecisionRecord, error) {
	rec, err := r.Registry.RecordDecision(ctx, rec, s, ops)
	if err != nil {
		return rec, err
	}
	for _, op := range ops {
		r.byID[op.ID] = len(r.records)
		r.records = append(r.records, OpRecord{ID: op.ID, Kind: op.Kind, Started: op.CreatedAt, Status: op.Status})
		if !op.Status.Finished() {
			r.unfinished++
		}
		if op.Kind == plan.OpExpand {
			r.expansions++
		} else {
			r.contractions++
		}
	}
	return rec, nil
}

func (r *trackingRegistry) Transition(ctx context.Context, id string, t plan.Transition) (plan.Operation, error) {
	op, err := r.Registry.Transition(ctx, id, t)
	if err != nil || !op.Status.Finished() {
		return op, err
	}
	if i, ok := r.byID[id]; ok && r.records[i].Finished.IsZero() {
		rec := &r.records[i]
		rec.Finished, rec.Status, rec.Error = t.At, op.Status, op.Error
		r.unfinished--
		if op.Kind == plan.OpExpand && op.Status == plan.OpDone {
			r.joined++
		}
	}
	return op, nil
}

// StaticNodes is the size of a static cluster that serves a peak demand
// (requests per second) with warm nodes of the given capacity.
func StaticNodes(peakRPS, nodeCapacity float64) int {
	return int(math.Ceil(peakRPS/nodeCapacity - 1e-9))
}
