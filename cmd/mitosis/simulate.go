package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/mitosis-autoscaler/mitosis/autoscaler"
	"github.com/mitosis-autoscaler/mitosis/config"
	"github.com/mitosis-autoscaler/mitosis/policies"
	"github.com/mitosis-autoscaler/mitosis/policy"
	"github.com/mitosis-autoscaler/mitosis/sim"
	"github.com/mitosis-autoscaler/mitosis/sim/workload"
)

type simulateFlags struct {
	trace, synthetic string
	duration         time.Duration
	seed             uint64
	policy, config   string
	scale            float64
	step             time.Duration
	mode             string
	compare          string
	compareWith      string // the second directory of --compare, its argument
	out              string
	// prometheus, query, from, to: a backtest on a Prometheus series.
	prometheus, query, from, to string
	// cloneTime, when set, is a measured live-clone time (how long a clone
	// takes to answer its node API) that replaces the world's.
	cloneTime time.Duration
	// durationSet: --duration was given (a trace is then cut to it);
	// stepSet: --step was given.
	durationSet, stepSet bool
}

func newSimulateCmd() *cobra.Command {
	var f simulateFlags
	cmd := &cobra.Command{
		Use:   "simulate (--trace FILE | --synthetic diurnal|spike|ramp | --prometheus URL --query PROMQL --from T --to T) [flags]",
		Short: "Run a policy against recorded or synthetic load",
		Long: `Simulate runs the same controller as the agent (policy, plan, sagas) against a
simulated cluster and a virtual clock, replaying a trace of requests per interval or a
synthetic workload, or a series from Prometheus (a backtest). It prints a summary and writes
timeline.csv and report.html to --out.

A trace is CSV "timestamp,value" with an optional header row (timestamps RFC 3339,
"YYYY-MM-DD HH:MM:SS" or Unix seconds; a one-row trace needs --step), or bare numbers
with --step. Its interval is at least the world's step (5s) and at most a day, and
--duration, if given, is a whole number of it. --config is the
agent's configuration with an optional "simulation:" section for the world's
parameters (docs/simulation.md).

A backtest (--prometheus) replays a PromQL query over [--from, --to) at --step (default 1m).
The query must return one series of requests per second, e.g. sum(rate(http_requests_total[1m])).
Times are RFC 3339 or Unix seconds. The connection's credentials and TLS are the --config's
metrics section's when its url is the same as --prometheus.`,
		Example: `  mitosis simulate --synthetic diurnal --duration 24h --mode both
  mitosis simulate --trace requests.csv --scale 2 --config sim.yaml --out out/mine
  mitosis simulate --trace requests.csv --compare policies/ my-policies/
  mitosis simulate --prometheus http://prometheus:9090 --query 'sum(rate(http_requests_total[1m]))' \
    --from 2026-11-01T00:00:00Z --to 2026-11-08T00:00:00Z --step 1m --mode both`,
		Args: func(cmd *cobra.Command, args []string) error {
			if f.compare != "" {
				if len(args) != 1 {
					return withCode(2, errors.New("--compare takes two policy directories: --compare DIR_A DIR_B"))
				}
				return nil
			}
			if len(args) > 0 {
				return withCode(2, fmt.Errorf("unexpected argument %q", args[0]))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			f.durationSet = cmd.Flags().Changed("duration")
			f.stepSet = cmd.Flags().Changed("step")
			if f.compare != "" && len(args) == 1 {
				f.compareWith = args[0]
			}
			return runSimulate(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.trace, "trace", "", "trace `FILE` of requests per interval (CSV timestamp,value, or bare numbers with --step)")
	fl.StringVar(&f.synthetic, "synthetic", "", "synthetic workload: diurnal, spike or ramp")
	fl.DurationVar(&f.duration, "duration", 24*time.Hour, "length of a synthetic workload (whole minutes); with --trace or --prometheus, replay only its beginning (a whole number of its interval)")
	fl.Uint64Var(&f.seed, "seed", 1, "seed of the synthetic workload and of the simulated faults")
	fl.StringVar(&f.policy, "policy", "", "policy `DIR` (default: the embedded default policies)")
	fl.StringVar(&f.config, "config", "", "configuration `FILE` (the agent's, plus a simulation: section)")
	fl.Float64Var(&f.scale, "scale", 1, "requests per unit of the trace")
	fl.DurationVar(&f.step, "step", 0, "interval of each value of a trace (e.g. 1m; needed for bare numbers or a one-row CSV), or of the --prometheus query's series (default 1m); at least the world's step (5s)")
	fl.StringVar(&f.prometheus, "prometheus", "", "backtest: replay a series from the Prometheus at `URL` (with --query, --from, --to)")
	fl.StringVar(&f.query, "query", "", "with --prometheus: the `PROMQL` query, one series of requests per second (e.g. 'sum(rate(http_requests_total[1m]))')")
	fl.StringVar(&f.from, "from", "", "with --prometheus: the start of the range, RFC 3339 or Unix seconds")
	fl.StringVar(&f.to, "to", "", "with --prometheus: the end of the range (excluded), RFC 3339 or Unix seconds")
	fl.StringVar(&f.mode, "mode", string(sim.LiveClone), "how new nodes are made: live-clone, cold-boot, or both side by side")
	fl.StringVar(&f.compare, "compare", "", "compare two policies on the same workload: --compare `DIR_A DIR_B`")
	fl.StringVar(&f.out, "out", filepath.Join("out", "simulate"), "`DIR` to write timeline.csv and report.html to")
	fl.DurationVar(&f.cloneTime, "clone-time", 0, "a measured live-clone time (e.g. 600ms from the libvirt back-end) in place of the config's simulation.live_clone")
	return cmd
}

// run is one simulation to do: a label, a mode and a policy.
type simRun struct {
	label     string
	mode      sim.Mode
	policyDir string // "" = the embedded default
}

func runSimulate(ctx context.Context, stdout, stderr io.Writer, f simulateFlags) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if err := checkSimulateFlags(f); err != nil {
		return withCode(2, err)
	}
	runs, err := simRuns(f)
	if err != nil {
		return withCode(2, err)
	}
	fc := sim.DefaultFileConfig()
	if f.config != "" {
		if fc, err = sim.LoadConfig(f.config); err != nil {
			return withCode(2, err)
		}
	}
	if f.cloneTime > 0 {
		fc.Simulation.LiveClone = autoscaler.Dur(f.cloneTime)
	}
	worldStep := fc.Simulation.Step.Duration
	switch {
	case f.stepSet && f.step < worldStep:
		return withCode(2, fmt.Errorf("--step %s: must be at least the world's step, %s (simulation.step)", f.step, worldStep))
	case f.stepSet && f.step > sim.MaxStep:
		return withCode(2, fmt.Errorf("--step %s: must be at most %s", f.step, sim.MaxStep))
	}
	load, err := workload.Make(ctx, f.workload(), fc)
	if err != nil {
		return withCode(2, err)
	}
	if err := sim.CheckWorkload(load, worldStep, 1); err != nil {
		return withCode(2, fmt.Errorf("%s: %w", load.Name, err))
	}
	if load.Filled > 0 {
		fmt.Fprintf(stderr, "%s: %d missing points filled with the previous value\n", load.Name, load.Filled)
	}
	if d := load.PeakRPS() * f.scale; d > sim.MaxDemandRPS {
		return withCode(2, fmt.Errorf("--scale %g: makes the workload's peak demand, %.4g requests per second, %.4g: above the most the simulator takes (%g)", f.scale, load.PeakRPS(), d, float64(sim.MaxDemandRPS)))
	}
	opts := make([]sim.Options, len(runs))
	for i, r := range runs {
		engine, err := loadPolicy(r.policyDir)
		if err != nil {
			return withCode(2, err)
		}
		// Refuse params the policy rejects now, not as an error on every tick.
		if err := config.CheckPolicyParams(ctx, engine, fc.Clusters); err != nil {
			where := "the default cluster"
			if f.config != "" {
				where = f.config
			}
			pe := err.(*config.ParamsError)
			return withCode(2, fmt.Errorf("%s: cluster %s: policy_params: %w", where, pe.Cluster, pe.Err))
		}
		opts[i] = sim.Options{
			Label: r.label, Workload: load, Config: fc.Config, Params: fc.Simulation, Mode: r.mode,
			Scale: f.scale, Seed: f.seed, Policy: engine,
		}
	}

	// Refuse an --out that cannot be written before the run, not after.
	if err := os.MkdirAll(f.out, 0o755); err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = fmt.Errorf("%s: %w", pe.Path, pe.Err)
		}
		return withCode(2, fmt.Errorf("--out %s: %w", f.out, err))
	}

	bar := newProgress(stderr, load.Duration(), len(runs))
	results := make([]*sim.Result, len(runs))
	errs := make([]error, len(runs))
	var wg sync.WaitGroup
	for i := range opts {
		opts[i].Progress = bar.report(i)
		wg.Go(func() { results[i], errs[i] = sim.Run(ctx, opts[i]) })
	}
	// Beside the runs, the ideal follower of each of their modes.
	modes := idealModes(runs)
	ideals := make([]*sim.Ideal, len(modes))
	idealErrs := make([]error, len(modes))
	cl := fc.Clusters[0]
	target := sim.PolicyTarget(cl.PolicyParams)
	for i, m := range modes {
		wg.Go(func() {
			ideals[i], idealErrs[i] = sim.IdealFollower(load, fc.Simulation, m, f.scale, target, cl.Min, cl.Max)
		})
	}
	wg.Wait()
	bar.finish()
	if err := errors.Join(append(errs, idealErrs...)...); err != nil {
		return err
	}

	if err := sim.WriteSummaryTableWithIdeals(stdout, ideals, results...); err != nil {
		return err
	}
	title := "mitosis simulate: " + load.Name
	for _, w := range []struct {
		name  string
		write func(io.Writer) error
	}{
		{"timeline.csv", func(w io.Writer) error { return sim.WriteTimelineCSV(w, results...) }},
		{"report.html", func(w io.Writer) error { return sim.WriteHTMLWithIdeals(w, title, ideals, results...) }},
	} {
		if err := writeFile(filepath.Join(f.out, w.name), w.write); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "\nwrote %s and %s\n", filepath.Join(f.out, "timeline.csv"), filepath.Join(f.out, "report.html"))
	for _, r := range results {
		if r.TickErrors > 0 {
			return fmt.Errorf("%s: %d policy evaluations failed; first: %s", r.Label, r.TickErrors, r.FirstTickError)
		}
	}
	return nil
}

// workload is what the flags say of the load.
func (f simulateFlags) workload() workload.Spec {
	return workload.Spec{
		Trace: f.trace, Synthetic: f.synthetic, Prometheus: f.prometheus, Query: f.query, From: f.from, To: f.to,
		Config: f.config, Duration: f.duration, DurationSet: f.durationSet, Step: f.step, StepSet: f.stepSet,
		Scale: f.scale, Seed: f.seed,
	}
}

func writeFile(path string, write func(io.Writer) error) error {
	fh, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(fh); err != nil {
		fh.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return fh.Close()
}

// checkSimulateFlags checks what the flags say on their own, before
// anything is read or run, naming the flag at fault.
func checkSimulateFlags(f simulateFlags) error {
	switch {
	case !(f.scale > 0) || math.IsInf(f.scale, 0):
		return fmt.Errorf("--scale %g: must be a positive finite number", f.scale)
	case f.stepSet && f.step <= 0:
		return fmt.Errorf("--step %s: must be positive", f.step)
	case f.stepSet && f.synthetic != "":
		return errors.New("--step goes with --trace or --prometheus: a synthetic workload has a point a minute")
	case f.durationSet && f.duration <= 0:
		return fmt.Errorf("--duration %s: must be positive", f.duration)
	case f.synthetic != "" && f.duration%time.Minute != 0:
		return fmt.Errorf("--duration %s: a synthetic workload has a point a minute: give a whole number of minutes", f.duration)
	case f.cloneTime < 0:
		return fmt.Errorf("--clone-time %s: must not be negative", f.cloneTime)
	case f.out == "":
		return errors.New("--out is empty: give the directory to write timeline.csv and report.html to")
	}
	if fi, err := os.Stat(f.out); err == nil && !fi.IsDir() {
		return fmt.Errorf("--out %s: not a directory", f.out)
	}
	return nil
}

// simRuns are the runs the flags ask for.
func simRuns(f simulateFlags) ([]simRun, error) {
	modes := []sim.Mode{}
	if f.mode == "both" {
		modes = append(modes, sim.LiveClone, sim.ColdBoot)
	} else {
		m, err := sim.ParseMode(f.mode)
		if err != nil {
			return nil, fmt.Errorf("--mode %q: want %s, %s or both", f.mode, sim.LiveClone, sim.ColdBoot)
		}
		modes = append(modes, m)
	}
	if f.compare == "" {
		var runs []simRun
		for _, m := range modes {
			runs = append(runs, simRun{label: string(m), mode: m, policyDir: f.policy})
		}
		return runs, nil
	}
	dirs := []string{f.compare, f.compareWith}
	if dirs[1] == "" {
		return nil, errors.New("--compare takes two policy directories: --compare DIR_A DIR_B")
	}
	if len(modes) != 1 {
		return nil, errors.New("--compare runs one mode: give --mode live-clone or cold-boot")
	}
	if f.policy != "" {
		return nil, errors.New("give either --policy or --compare, not both")
	}
	a, b := filepath.Clean(dirs[0]), filepath.Clean(dirs[1])
	la, lb := a, b
	if la == lb {
		la, lb = "A: "+a, "B: "+b
	}
	return []simRun{{label: la, mode: modes[0], policyDir: a}, {label: lb, mode: modes[0], policyDir: b}}, nil
}

// idealModes are the distinct modes of the runs, in their order: the ideal
// follower depends on the mode, not on the policy.
func idealModes(runs []simRun) []sim.Mode {
	var modes []sim.Mode
	for _, r := range runs {
		if !slices.Contains(modes, r.mode) {
			modes = append(modes, r.mode)
		}
	}
	return modes
}

// progress draws one bar for all runs on stderr, only when it is a terminal.
type progress struct {
	mu   sync.Mutex
	bar  *progressbar.ProgressBar
	done []time.Duration
}

func newProgress(stderr io.Writer, total time.Duration, runs int) *progress {
	p := &progress{done: make([]time.Duration, runs)}
	fh, ok := stderr.(*os.File)
	if !ok || !term.IsTerminal(int(fh.Fd())) {
		return p
	}
	p.bar = progressbar.NewOptions64(int64(total.Minutes())*int64(runs),
		progressbar.OptionSetWriter(stderr),
		progressbar.OptionSetDescription("simulating"),
		progressbar.OptionSetItsString("sim-min"),
		progressbar.OptionShowIts(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
	return p
}

func (p *progress) report(i int) func(done, total time.Duration) {
	if p.bar == nil {
		return nil
	}
	return func(done, _ time.Duration) {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.done[i] = done
		var sum time.Duration
		for _, d := range p.done {
			sum += d
		}
		_ = p.bar.Set64(int64(sum.Minutes()))
	}
}

func (p *progress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}

// loadPolicy compiles the policies in dir, or the embedded defaults.
func loadPolicy(dir string) (*policy.Engine, error) {
	if dir == "" {
		return policy.LoadFS(policies.FS, "policies")
	}
	return policy.Load(dir)
}
