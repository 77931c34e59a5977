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
	"sync/atomic"
	"time"

	"github.com/mitosis-autoscaler/mitosis/autoscaler"
	"github.com/mitosis-autoscaler/mitosis/metrics/prometheus"
	"github.com/mitosis-autoscaler/mitosis/plan"
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
	ctl       *autoscaler.Controller
	telemetry *Telemetry
	ln        net.Listener
	ready     atomic.Bool
}

// New assembles an agent and binds its HTTP address. Until the
// dispatcher section lands (the agent's issue), an agent can only run
// dry: it decides and records on real metrics and acts on nothing.
func New(cfg Config, opt Options) (*Agent, error) {
	if opt.DryRun {
		cfg.DryRun = true
	}
	if !cfg.DryRun {
		return nil, errors.New("agent: acting needs a dispatcher, which the agent cannot be configured with yet; run it with --dry-run (or dry_run: true)")
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
	src, err := prometheus.New(cfg.Metrics, log)
	if err != nil {
		return nil, fmt.Errorf("agent: metrics: %w", err)
	}
	a := &Agent{cfg: cfg, opt: opt, log: log, reg: autoscaler.NewMemRegistry(), telemetry: NewTelemetry(opt.Version)}
	a.ctl, err = autoscaler.New(cfg.Config, autoscaler.Deps{
		Registry: a.reg, Metrics: a.telemetry.Source(src), Policy: a.telemetry.Policy(opt.Policy),
		Clock: wallClock{}, Log: log, Observer: a.telemetry,
	})
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	now := time.Now()
	for _, n := range cfg.Nodes {
		err := a.reg.PutNode(context.Background(), plan.Node{
			ID: n.ID, Cluster: n.Cluster, Role: n.Role, State: plan.NodeReady,
			Host: n.Host, VM: n.VM, Address: n.Address, CreatedAt: now,
		})
		if err != nil {
			return nil, fmt.Errorf("agent: registering node %s: %w", n.ID, err)
		}
	}
	if a.ln, err = net.Listen("tcp", opt.Listen); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	return a, nil
}

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

// Addr is the address the HTTP server listens on.
func (a *Agent) Addr() string { return a.ln.Addr().String() }

// Run ticks every cfg.Tick (the first at once) and serves HTTP until ctx
// ends. A failed tick is logged and recorded; the loop goes on.
func (a *Agent) Run(ctx context.Context) error {
	srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(a.ln) }()
	a.log.Info("agent started", "listen", a.Addr(), "dry_run", a.cfg.DryRun, "tick", a.cfg.Tick.Duration, "clusters", len(a.cfg.Clusters))

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
		a.ready.Store(true)
		select {
		case <-ctx.Done():
			shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(shut)
			<-served
			return nil
		case err := <-served:
			return fmt.Errorf("agent: http: %w", err)
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
	mux.HandleFunc("GET /-/ready", func(w http.ResponseWriter, _ *http.Request) {
		if !a.ready.Load() {
			http.Error(w, "mitosis is starting: no tick yet", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "mitosis is ready\n")
	})
	mux.Handle("GET /metrics", a.telemetry.Handler())
	mux.Handle("GET /v1/decisions", a.authorized(http.HandlerFunc(a.decisions)))
	return mux
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
