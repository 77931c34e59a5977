package agent

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mitosis-autoscaler/mitosis/autoscaler"
	"github.com/mitosis-autoscaler/mitosis/metrics/prometheus"
	"github.com/mitosis-autoscaler/mitosis/plan"
	"github.com/mitosis-autoscaler/mitosis/sim"
)

// Options are what the command line adds to the configuration file.
type Options struct {
	// Listen is the HTTP address of /metrics, /-/healthy, /-/ready and
	// /v1/decisions (host:port; port 0 picks one).
	Listen string
	// DryRun forces a dry run whatever the file says.
	DryRun bool
	// Token guards /v1/: a request must carry it as a bearer token. The
	// health and metrics endpoints are open, as Prometheus expects.
	Token string
	// Policy decides; the command loads it.
	Policy autoscaler.PolicyEngine
	// Version is the agent's build, for mitosis_build_info.
	Version string
	Log     *slog.Logger
}

// Agent runs the controller on a timer and serves what it did.
type Agent struct {
	cfg       Config
	opt       Options
	log       *slog.Logger
	reg       *autoscaler.MemRegistry
	ctl       *autoscaler.Controller // on real machines; the simulation makes its own
	telemetry *Telemetry
	ln        net.Listener
	// loop decides and acts until its context ends: on a timer against
	// Prometheus (tickLoop), or in a simulated world (simulate).
	loop func(ctx context.Context) error
}

// New assembles an agent and binds its HTTP address. On real machines it
// can so far only run dry (the file cannot yet configure the dispatcher
// acting needs); in a simulated world (hypervisor.kind sim) it acts.
func New(cfg Config, opt Options) (*Agent, error) {
	if opt.DryRun {
		cfg.DryRun = true
	}
	if !cfg.DryRun && !cfg.Simulated() {
		return nil, errors.New("agent: acting on real machines needs a dispatcher, which the agent cannot be configured with yet; run it with --dry-run (or dry_run: true), or on a simulated world (hypervisor.kind: sim)")
	}
	if opt.Policy == nil {
		return nil, errors.New("agent: no policy")
	}
	if opt.Token == "" {
		return nil, errors.New("agent: no API token")
	}
	log := opt.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	a := &Agent{cfg: cfg, opt: opt, log: log, reg: autoscaler.NewMemRegistry(), telemetry: NewTelemetry(opt.Version)}
	if cfg.Simulated() {
		a.loop = a.simulate
	} else if err := a.assemble(); err != nil {
		return nil, err
	}
	var err error
	if a.ln, err = net.Listen("tcp", opt.Listen); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	return a, nil
}

// assemble wires the controller to Prometheus and registers the nodes the
// file lists.
func (a *Agent) assemble() error {
	src, err := prometheus.New(a.cfg.Metrics, a.log)
	if err != nil {
		return fmt.Errorf("agent: metrics: %w", err)
	}
	a.ctl, err = autoscaler.New(a.cfg.Config, autoscaler.Deps{
		Registry: a.reg, Metrics: a.telemetry.Source(src), Policy: a.telemetry.Policy(a.opt.Policy),
		Clock: wallClock{}, Log: a.log, Observer: a.telemetry,
	})
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	now := time.Now()
	for _, n := range a.cfg.Nodes {
		err := a.reg.PutNode(context.Background(), plan.Node{
			ID: n.ID, Cluster: n.Cluster, Role: n.Role, State: plan.NodeReady,
			Host: n.Host, VM: n.VM, Address: n.Address, CreatedAt: now,
		})
		if err != nil {
			return fmt.Errorf("agent: registering node %s: %w", n.ID, err)
		}
	}
	a.loop = a.tickLoop
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
		Seed: sc.Seed, Policy: a.telemetry.Policy(a.opt.Policy), Log: a.log,
		Registry: a.reg, Observer: a.telemetry, Pace: pace,
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

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

// Addr is the address the HTTP server listens on.
func (a *Agent) Addr() string { return a.ln.Addr().String() }

// Run serves HTTP and runs the loop until ctx ends (or, in a simulated
// world, its load ends).
func (a *Agent) Run(ctx context.Context) error {
	srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 5 * time.Second}
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
	return err
}

// tickLoop ticks every cfg.Tick, the first at once. A failed tick is
// logged and recorded; the loop goes on.
func (a *Agent) tickLoop(ctx context.Context) error {
	t := time.NewTicker(a.cfg.Tick.Duration)
	defer t.Stop()
	for {
		recs, err := a.ctl.Tick(ctx)
		if err != nil && ctx.Err() == nil {
			a.log.Warn("tick", "error", err)
		}
		for _, r := range recs {
			if r.DryRun && len(r.Proposals) > 0 {
				a.log.Info("dry run: would have acted", "cluster", r.Cluster, "proposals", proposals(r.Proposals), "reason", r.Decision.Reason)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
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

// Handler serves:
//
//	GET /-/healthy      200 while the process runs
//	GET /-/ready        200 once every cluster has ticked, else 503
//	GET /metrics        the agent's own metrics (docs/telemetry.md)
//	GET /v1/decisions?cluster=NAME[&limit=N]   the latest decisions, newest first (bearer token)
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /-/healthy", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "mitosis is healthy\n") })
	mux.HandleFunc("GET /-/ready", func(w http.ResponseWriter, r *http.Request) {
		if !a.ready(r.Context()) {
			http.Error(w, "mitosis is starting: no tick yet", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "mitosis is ready\n")
	})
	mux.Handle("GET /metrics", a.telemetry.Handler())
	mux.Handle("GET /v1/decisions", a.authorized(http.HandlerFunc(a.decisions)))
	return mux
}

// ready: every cluster has a decision recorded.
func (a *Agent) ready(ctx context.Context) bool {
	for _, cl := range a.cfg.Clusters {
		if recs, err := a.reg.Decisions(ctx, cl.Name, 1); err != nil || len(recs) == 0 {
			return false
		}
	}
	return true
}

func (a *Agent) authorized(h http.Handler) http.Handler {
	want := []byte("Bearer " + a.opt.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="mitosis"`)
			http.Error(w, "a valid bearer token is required", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (a *Agent) decisions(w http.ResponseWriter, r *http.Request) {
	cluster := r.URL.Query().Get("cluster")
	known := false
	for _, cl := range a.cfg.Clusters {
		known = known || cl.Name == cluster
	}
	if !known {
		http.Error(w, fmt.Sprintf("cluster: %q is not a configured cluster", cluster), http.StatusBadRequest)
		return
	}
	limit := 20
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			http.Error(w, fmt.Sprintf("limit: %q is not a number from 1 to 1000", s), http.StatusBadRequest)
			return
		}
		limit = n
	}
	recs, err := a.reg.Decisions(r.Context(), cluster, limit)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(recs)
}
