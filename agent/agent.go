package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mitosis-autoscaler/mitosis/autoscaler"
	"github.com/mitosis-autoscaler/mitosis/metrics/prometheus"
	"github.com/mitosis-autoscaler/mitosis/plan"
	"github.com/mitosis-autoscaler/mitosis/raftstore"
	"github.com/mitosis-autoscaler/mitosis/sim"
)

// Options are what the command line adds to the configuration file.
type Options struct {
	// Listen is the HTTP address of the API (docs/api.md), /metrics,
	// /-/healthy and /-/ready (host:port; port 0 picks one).
	Listen string
	// DryRun forces a dry run whatever the file says.
	DryRun bool
	// Token is an admin token (besides the file's api.tokens), from
	// --token-file or made for a simulated run.
	Token string
	// Policy decides until one is pushed; the command loads it.
	Policy autoscaler.PolicyEngine
	// PolicyFiles are its sources by file name, for GET /v1/policy
	// (optional).
	PolicyFiles map[string]string
	// Version is the agent's build, for mitosis_build_info.
	Version string
	Log     *slog.Logger
}

// Agent runs the controller on a timer and serves what it did.
type Agent struct {
	cfg Config
	opt Options
	log *slog.Logger
	reg autoscaler.Registry
	// raft is the replicated registry when the file has a raft section
	// (then reg is it); nil when the registry is in memory.
	raft      *raftstore.Store
	ctl       *autoscaler.Controller // on real machines; the simulation makes its own
	telemetry *Telemetry
	ln        net.Listener
	tokens    tokens
	// manual carries operators' selections to the loop's goroutine, the
	// only one that may call the controller.
	manual chan manualCall
	// policy is the one decided with: the command's, or the last pushed.
	policy livePolicy
	// loop decides and acts until its context ends: on a timer against
	// Prometheus (tickLoop), or in a simulated world (simulate).
	loop func(ctx context.Context) error
	// closeActors releases the hypervisor when the agent acts.
	closeActors func(context.Context) error
	// simNow is the simulated world's time (Unix ns) after its latest
	// step, 0 on real machines: what the API stamps writes with, so that
	// they sort with the decisions.
	simNow atomic.Int64
}

// New assembles an agent, connects what it acts on (nothing in a dry run)
// and binds its HTTP address.
func New(cfg Config, opt Options) (*Agent, error) {
	if opt.DryRun {
		cfg.DryRun = true
	}
	if opt.Policy == nil {
		return nil, errors.New("agent: no policy")
	}
	if opt.Token == "" && len(cfg.API.Tokens) == 0 {
		return nil, errors.New("agent: no API token (api.tokens in the file, or --token-file)")
	}
	log := opt.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	a := &Agent{cfg: cfg, opt: opt, log: log, reg: autoscaler.NewMemRegistry(), telemetry: NewTelemetry(opt.Version),
		manual: make(chan manualCall)}
	a.usePolicy(opt.Policy, opt.PolicyFiles)
	names := make([]string, len(cfg.Clusters))
	for i, cl := range cfg.Clusters {
		names[i] = cl.Name
	}
	a.telemetry.forClusters(names)
	if cfg.Raft != nil {
		st, err := cfg.Raft.open(log)
		if err != nil {
			return nil, fmt.Errorf("agent: raft: %w", err)
		}
		a.raft, a.reg = st, st
		a.telemetry.watchRaft(st)
	}
	fail := func(err error) (*Agent, error) {
		a.release()
		return nil, err
	}
	if cfg.Simulated() {
		a.loop = a.simulate
	} else if err := a.assemble(); err != nil {
		return fail(err)
	}
	extra := map[string]principal{}
	if opt.Token != "" {
		extra[opt.Token] = principal{Name: "admin", Role: RoleAdmin}
	}
	var err error
	if a.tokens, err = loadTokens(cfg.API, extra); err != nil {
		return fail(fmt.Errorf("agent: %w", err))
	}
	tlsCfg, err := cfg.API.tlsConfig()
	if err != nil {
		return fail(fmt.Errorf("agent: %w", err))
	}
	if a.ln, err = net.Listen("tcp", opt.Listen); err != nil {
		return fail(fmt.Errorf("agent: %w", err))
	}
	if tlsCfg != nil {
		a.ln = tls.NewListener(a.ln, tlsCfg)
	}
	return a, nil
}

// assemble wires the controller to Prometheus and, unless it runs dry, to
// the hypervisor, the dispatcher and the node API.
func (a *Agent) assemble() error {
	src, err := prometheus.New(a.cfg.Metrics, a.log)
	if err != nil {
		return fmt.Errorf("agent: metrics: %w", err)
	}
	deps := autoscaler.Deps{
		Registry: failpoints(a.reg, a.log), Metrics: a.telemetry.Source(src), Policy: a.telemetry.Policy(&a.policy),
		Clock: wallClock{}, Log: a.log, Observer: a.telemetry, Fence: a.fence,
	}
	if !a.cfg.DryRun {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		act, err := openActors(ctx, a.cfg, a.log)
		cancel()
		if err != nil {
			return fmt.Errorf("agent: %w", err)
		}
		a.closeActors = act.close
		deps.Hypervisor, deps.Dispatchers, deps.Nodes = act.hv, act.disps, act.nodes
	}
	if a.ctl, err = autoscaler.New(a.cfg.Config, deps); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	a.loop = a.tickLoop
	return nil
}

// release closes what New opened: the raft store and the back-ends.
func (a *Agent) release() error {
	var err error
	if a.closeActors != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if cerr := a.closeActors(ctx); cerr != nil {
			err = fmt.Errorf("agent: closing the hypervisor: %w", cerr)
		}
		cancel()
	}
	if a.raft != nil {
		if cerr := a.raft.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("agent: closing raft: %w", cerr)
		}
	}
	return err
}

// fence is the fencing token operations carry into the VMs they make:
// the raft term they were decided in (0 without raft).
func (a *Agent) fence() uint64 {
	if a.raft == nil {
		return 0
	}
	return a.raft.Term()
}

// registerNodes registers the nodes the file lists that the registry does
// not hold yet (a node it holds may have moved on: it is left alone).
func (a *Agent) registerNodes(ctx context.Context) error {
	now := time.Now()
	for _, n := range a.cfg.Nodes {
		st, err := a.reg.State(ctx, n.Cluster)
		if err != nil {
			return err
		}
		if slices.ContainsFunc(st.Nodes, func(m plan.Node) bool { return m.ID == n.ID }) {
			continue
		}
		err = a.reg.PutNode(ctx, plan.Node{
			ID: n.ID, Cluster: n.Cluster, Role: n.Role, State: plan.NodeReady,
			Host: n.Host, VM: n.VM, Address: n.Address, CreatedAt: now,
		})
		if err != nil {
			return fmt.Errorf("registering node %s: %w", n.ID, err)
		}
	}
	return nil
}

// simulate runs the simulated world in real time (sped up) with the
// controller, as `mitosis simulate` does, recording into the agent's
// registry and telemetry. It returns when the load ends.
func (a *Agent) simulate(ctx context.Context) error {
	sc := a.cfg.Hypervisor.Sim
	load, err := sim.Synthetic(sc.Workload, a.cfg.Simulation.Synthetic, sc.Duration.Duration, sc.Seed)
	if err != nil {
		return fmt.Errorf("agent: simulated load: %w", err)
	}
	pace, err := sim.RealTime(sc.Speed)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	res, err := sim.Run(ctx, sim.Options{
		Label: "agent", Workload: load, Config: a.cfg.Config, Params: a.cfg.Simulation, Mode: sc.Mode,
		Seed: sc.Seed, Policy: a.telemetry.Policy(&a.policy), Log: a.log,
		Registry: a.reg, Observer: a.telemetry, Pace: pace, AfterStep: a.serveManual,
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("agent: simulation: %w", err)
	}
	a.log.Info("simulated load ended", "served_pct", res.Summary.ServedPct, "node_hours", res.Summary.NodeHours)
	return nil
}

// resumePolicy decides with the policy pushed last, if the registry holds
// one (a replica, or a restart over a kept registry): every replica
// decides with the same.
func (a *Agent) resumePolicy() error {
	p, ok, err := a.reg.Policy(context.Background())
	if err != nil || !ok || p.Version == a.policy.Version() {
		return err
	}
	engine, res, err := a.check(context.Background(), p.Files)
	if err != nil || engine == nil {
		return fmt.Errorf("agent: the policy pushed last (%s by %s) no longer loads: %v %v", p.Version, p.By, err, res.Problems)
	}
	a.usePolicy(engine, p.Files)
	return nil
}

// now is the agent's time: the simulated world's in a simulation, this
// machine's otherwise. Decisions are stamped with it, and so are the
// API's writes and its default "now".
func (a *Agent) now() time.Time {
	if ns := a.simNow.Load(); ns != 0 {
		return time.Unix(0, ns).UTC()
	}
	return time.Now().UTC()
}

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

// Addr is the address the HTTP server listens on.
func (a *Agent) Addr() string { return a.ln.Addr().String() }

// Run serves HTTP and runs the loop until ctx ends (or, in a simulated
// world, its load ends).
func (a *Agent) Run(ctx context.Context) error {
	srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(a.ln) }()
	a.log.Info("agent started", "listen", a.Addr(), "dry_run", a.cfg.DryRun, "simulated", a.cfg.Simulated(),
		"tick", a.cfg.Tick.Duration.String(), "clusters", len(a.cfg.Clusters))
	loopCtx, stop := context.WithCancel(ctx)
	defer stop()
	looped := make(chan error, 1)
	go func() { looped <- a.loop(loopCtx) }()
	var err error
	select {
	case err = <-looped:
	case err = <-served:
		err = fmt.Errorf("agent: http: %w", err)
		stop()
		<-looped
	}
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shut)
	if rerr := a.release(); err == nil {
		err = rerr
	}
	return err
}

// tickLoop ticks every cfg.Tick, the first at once, while the agent
// leads (always, without raft). On becoming leader it first takes over.
// A failed tick is logged and recorded; the loop goes on.
func (a *Agent) tickLoop(ctx context.Context) error {
	t := time.NewTicker(a.cfg.Tick.Duration)
	defer t.Stop()
	led := false
	for {
		switch {
		case !a.leading():
			if led {
				a.telemetry.steppedDown()
			}
			led = false
		case !led:
			if err := a.lead(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				a.log.Warn("taking over as leader", "error", err)
				break
			}
			led = true
			fallthrough
		default:
			a.tick(ctx)
		}
		// Until the next tick, run the operators' selections as they come.
		for waiting := true; waiting; {
			select {
			case <-ctx.Done():
				return nil
			case m := <-a.manual:
				a.runManual(ctx, a.ctl, m)
			case <-t.C:
				waiting = false
			}
		}
	}
}

// tick decides for every cluster, then advances the operations in flight
// (a new leader's first tick resumes those its predecessor left, each
// from its last committed step; a dry run advances none).
func (a *Agent) tick(ctx context.Context) {
	recs, err := a.ctl.Tick(ctx)
	if err != nil && ctx.Err() == nil {
		a.log.Warn("tick", "error", notLeader(err))
	}
	for _, r := range recs {
		if r.DryRun && len(r.Proposals) > 0 {
			a.log.Info("dry run: would have acted", "cluster", r.Cluster, "proposals", proposals(r.Proposals), "reason", r.Decision.Reason)
		}
	}
	if err := a.ctl.Actuate(ctx); err != nil && ctx.Err() == nil {
		a.log.Warn("actuate", "error", notLeader(err))
	}
}

// lead prepares the agent to decide: with raft, everything committed
// before is applied first (the new leader decides on the whole registry)
// and the policy pushed last is the one decided with; then the file's
// nodes are registered.
func (a *Agent) lead(ctx context.Context) error {
	if a.raft != nil {
		if err := a.takeOver(ctx); err != nil {
			return err
		}
		if err := a.resumePolicy(); err != nil {
			return err
		}
	}
	return a.registerNodes(ctx)
}

// manualCall is an operator's selection on its way to the loop.
type manualCall struct {
	req   autoscaler.ManualRequest
	reply chan manualResult
}

type manualResult struct {
	rec plan.DecisionRecord
	err error
}

// serveManual runs the selections waiting, without waiting for more.
func (a *Agent) serveManual(ctx context.Context, c *autoscaler.Controller) {
	a.simNow.Store(c.Now().UnixNano())
	for {
		select {
		case m := <-a.manual:
			a.runManual(ctx, c, m)
		default:
			return
		}
	}
}

func (a *Agent) runManual(ctx context.Context, c *autoscaler.Controller, m manualCall) {
	rec, err := c.Manual(ctx, m.req)
	m.reply <- manualResult{rec, err}
}

// submit hands a selection to the loop and waits for its record.
func (a *Agent) submit(ctx context.Context, req autoscaler.ManualRequest) (plan.DecisionRecord, error) {
	m := manualCall{req: req, reply: make(chan manualResult, 1)}
	select {
	case a.manual <- m:
	case <-ctx.Done():
		return plan.DecisionRecord{}, ctx.Err()
	}
	select {
	case r := <-m.reply:
		return r.rec, r.err
	case <-ctx.Done():
		return plan.DecisionRecord{}, ctx.Err()
	}
}

func proposals(ps []plan.Proposal) string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(string(p.Kind))
		if p.Template != "" {
			b.WriteString(" from " + p.Template)
		}
		if p.Node != "" {
			b.WriteString(" " + p.Node)
		}
	}
	return b.String()
}

// ready: every cluster has a decision recorded.
func (a *Agent) ready(ctx context.Context) bool {
	if !a.raftServes() { // removed from the cluster: it serves nothing current
		return false
	}
	for _, cl := range a.cfg.Clusters {
		if recs, err := a.reg.Decisions(ctx, cl.Name, 1); err != nil || len(recs) == 0 {
			return false
		}
	}
	return true
}
