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
	"time"

	"github.com/mitosis-autoscaler/mitosis/agent/backends"
	"github.com/mitosis-autoscaler/mitosis/agent/telemetry"
	"github.com/mitosis-autoscaler/mitosis/autoscaler"
	"github.com/mitosis-autoscaler/mitosis/config"
	"github.com/mitosis-autoscaler/mitosis/plan"
	"github.com/mitosis-autoscaler/mitosis/raftstore"
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
	// IgnorePushedPolicy starts with Policy even when the registry holds
	// a pushed one (a pushed policy that wedges the agent, say).
	IgnorePushedPolicy bool
	// World is the simulated world a file whose world.kind is sim acts on
	// (the command makes it from the file's sections with package sim);
	// nil on machines.
	World World
}

// Agent runs the controller's loop and serves what it did.
type Agent struct {
	cfg config.File
	opt Options
	log *slog.Logger
	reg autoscaler.Registry
	// raft is the replicated registry when the file has a raft section
	// (then reg is it); nil when the registry is in memory.
	raft *raftstore.Store
	ctl  *autoscaler.Controller
	// loop decides and acts, on the machine's clock or a simulated
	// world's; operators' selections go through it (it alone may call
	// the controller).
	loop      *autoscaler.Loop
	clock     autoscaler.Sleeper
	telemetry *telemetry.Telemetry
	ln        net.Listener
	tokens    tokens
	// policy is the one decided with: the command's, or the last pushed.
	policy livePolicy
	// led: the loop's last pass led (the loop's goroutine's alone).
	led bool
	// timing is how long it waits on its HTTP server and its loop.
	timing timing
	// backends are what the agent acts on machines through (nil on a
	// simulated world); release closes them.
	backends *backends.Backends
}

// New assembles an agent, connects what it acts on (nothing in a dry run)
// and binds its HTTP address.
func New(cfg config.File, opt Options) (*Agent, error) {
	if opt.DryRun {
		cfg.DryRun = true
	}
	if opt.Policy == nil {
		return nil, errors.New("agent: no policy")
	}
	if cfg.Simulated() && opt.World == nil {
		return nil, errors.New("world.kind: sim: this program cannot make a simulated world (mitosis agent can)")
	}
	if opt.Token == "" && len(cfg.API.Tokens) == 0 {
		return nil, errors.New("agent: no API token (api.tokens in the file, or --token-file)")
	}
	log := opt.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	a := &Agent{cfg: cfg, opt: opt, log: log, reg: autoscaler.NewMemRegistry(), telemetry: telemetry.New(opt.Version),
		timing: defaultTiming(cfg)}
	a.policy.deadline = cfg.Config.PolicyDeadline()
	a.useOwnPolicy()
	names := make([]string, len(cfg.Clusters))
	for i, cl := range cfg.Clusters {
		names[i] = cl.Name
	}
	a.telemetry.ForClusters(names)
	if cfg.Raft != nil {
		st, err := openRaft(cfg.Raft, log)
		if err != nil {
			return nil, fmt.Errorf("agent: raft: %w", err)
		}
		a.raft, a.reg = st, st
		a.telemetry.WatchRaft(st)
	}
	fail := func(err error) (*Agent, error) {
		a.release()
		return nil, err
	}
	if err := a.assemble(); err != nil {
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
	tlsCfg, err := apiTLS(cfg.API)
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

// assemble wires the controller and its loop: in a simulated world, to
// the world's backends and clock; on machines, to Prometheus and, unless
// it runs dry, to the hypervisor, the dispatcher and the node API.
func (a *Agent) assemble() error {
	var deps autoscaler.Deps
	if a.cfg.Simulated() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		wd, clock, err := a.opt.World.Open(ctx, a.reg)
		cancel()
		if err != nil {
			return fmt.Errorf("agent: simulated world: %w", err)
		}
		deps, a.clock = wd, clock
		deps.Metrics = a.telemetry.Source(deps.Metrics)
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		b, err := backends.Open(ctx, a.cfg, a.log)
		cancel()
		if err != nil {
			return fmt.Errorf("agent: %w", err)
		}
		a.backends = b
		deps = autoscaler.Deps{Registry: failpoints(a.reg, a.log), Metrics: a.telemetry.Source(b.Metrics), Clock: autoscaler.WallClock{}, Fence: a.fence}
		a.clock = autoscaler.WallClock{}
		if !a.cfg.DryRun {
			deps.Hypervisor, deps.Dispatchers, deps.Nodes = b.Hypervisor, b.Dispatchers, b.Nodes
		}
	}
	deps.Policy, deps.Log, deps.Observer = a.telemetry.Policy(&a.policy), a.log, a.telemetry
	var err error
	if a.ctl, err = autoscaler.New(a.cfg.Config, deps); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	if a.loop, err = autoscaler.NewLoop(a.ctl, a.clock, a.cfg.Config.Loop()); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	a.loop.Lead, a.loop.Decided, a.loop.Advanced = a.leads, a.decided, a.advanced
	return nil
}

// release closes what New opened: the raft store and the back-ends.
func (a *Agent) release() error {
	var err error
	if a.backends != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if cerr := a.backends.Close(ctx); cerr != nil {
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

// resumePolicy decides with the policy pushed last, if the registry holds
// one (a replica, or a restart over a kept registry): every replica
// decides with the same.
func (a *Agent) resumePolicy() error {
	p, ok, err := a.reg.Policy(context.Background())
	if err != nil || !ok || p.Version == a.policy.Version() {
		return err
	}
	// The flag ignores the policy the registry held when the agent started,
	// not one pushed since.
	if a.opt.IgnorePushedPolicy && (a.policy.ignored == "" || a.policy.ignored == p.Version) {
		a.policy.ignored = p.Version
		a.log.Warn("--ignore-pushed-policy: deciding with the agent's own policy, not the one pushed last",
			"own", a.policy.Version(), "pushed", p.Version, "by", p.By)
		return nil
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
func (a *Agent) now() time.Time { return a.clock.Now().UTC() }

// Addr is the address the HTTP server listens on.
func (a *Agent) Addr() string { return a.ln.Addr().String() }

// Run serves HTTP and runs the loop until ctx ends (or, in a simulated
// world, its load ends).
func (a *Agent) Run(ctx context.Context) error {
	srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: a.timing.writeTimeout, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(a.ln) }()
	a.log.Info("agent started", "listen", a.Addr(), "dry_run", a.cfg.DryRun, "simulated", a.cfg.Simulated(),
		"tick", a.cfg.Tick.Duration.String(), "clusters", len(a.cfg.Clusters))
	loopCtx, stop := context.WithCancel(ctx)
	defer stop()
	looped := make(chan error, 1)
	go func() { looped <- a.run(loopCtx) }()
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

// run runs the loop until ctx ends or a simulated world's load does.
func (a *Agent) run(ctx context.Context) error {
	if err := a.loop.Run(ctx); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	if a.cfg.Simulated() && ctx.Err() == nil {
		a.log.Info("simulated load ended", a.opt.World.Ended()...)
	}
	return nil
}

// leads says whether the loop's pass may decide and act: while the agent
// leads (always, without raft). On becoming leader it first takes over.
func (a *Agent) leads(ctx context.Context) bool {
	if !a.leading() {
		if a.led {
			a.telemetry.SteppedDown()
		}
		a.led = false
		return false
	}
	if !a.led {
		if err := a.lead(ctx); err != nil {
			if ctx.Err() == nil {
				a.log.Warn("taking over as leader", "error", err)
			}
			return false
		}
		a.led = true
	}
	return true
}

// decided logs a tick's failure and what a dry run would have done.
func (a *Agent) decided(recs []plan.DecisionRecord, err error) {
	a.watchPolicy(recs)
	if err != nil {
		a.log.Warn("tick", "error", notLeader(err))
	}
	for _, r := range recs {
		if r.DryRun && len(r.Proposals) > 0 {
			a.log.Info("dry run: would have acted", "cluster", r.Cluster, "proposals", proposals(r.Proposals), "reason", r.Decision.Reason)
		}
	}
}

// advanced logs a failed pass of the actuator.
func (a *Agent) advanced(err error) {
	if err != nil {
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
