// Package workload makes the load a simulation replays from what
// `mitosis simulate` is given: a trace file, a synthetic shape, or a
// backtest, a PromQL query over a range of a Prometheus, reached with the
// credentials of the --config's metrics section only when it names the
// same server. Its errors name the command's flags.
package workload

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/mitosis-autoscaler/mitosis/metrics/prometheus"
	"github.com/mitosis-autoscaler/mitosis/sim"
)

// Spec is what the command line says of the load.
type Spec struct {
	// One of Trace (a file), Synthetic (a shape) or Prometheus (a URL,
	// with Query over [From, To)).
	Trace, Synthetic            string
	Prometheus, Query, From, To string
	// Config is the --config file whose metrics section (in the
	// FileConfig given to Make) may hold Prometheus' credentials.
	Config string
	// Duration cuts a trace or backtest to its beginning, or is the
	// synthetic workload's length; DurationSet: it was given.
	Duration    time.Duration
	DurationSet bool
	// Step is a trace's or backtest's interval; StepSet: it was given.
	Step    time.Duration
	StepSet bool
	Scale   float64
	Seed    uint64
}

// cut replays only the first --duration of a trace or backtest, which must
// be a whole number of its interval and no longer than it.
func cut(w *sim.Workload, s Spec) (*sim.Workload, error) {
	switch {
	case !s.DurationSet:
		return w, nil
	case s.Duration%w.Step != 0:
		return nil, fmt.Errorf("--duration %s: must be a whole number of the workload's interval, %s", s.Duration, w.Step)
	case s.Duration > w.Duration():
		return nil, fmt.Errorf("--duration %s: longer than the workload, %s (%s)", s.Duration, w.Duration(), w.Name)
	case s.Duration < w.Duration():
		return w.Slice(w.Start, w.Start.Add(s.Duration)), nil
	}
	return w, nil
}

// Make reads the trace, queries Prometheus or makes the synthetic
// workload s asks for, for the world of fc; its errors name the flags.
func Make(ctx context.Context, s Spec, fc sim.FileConfig) (*sim.Workload, error) {
	if s.Prometheus == "" {
		for _, fl := range []struct{ name, v string }{{"--query", s.Query}, {"--from", s.From}, {"--to", s.To}} {
			if fl.v != "" {
				return nil, fmt.Errorf("%s goes with --prometheus", fl.name)
			}
		}
	}
	switch {
	case s.Prometheus != "" && (s.Trace != "" || s.Synthetic != ""):
		return nil, errors.New("give one workload: --prometheus, --trace or --synthetic, not several")
	case s.Trace != "" && s.Synthetic != "":
		return nil, errors.New("give either --trace or --synthetic, not both")
	case s.Prometheus != "":
		w, err := prometheusWorkload(ctx, s, fc)
		if err != nil {
			return nil, err
		}
		return cut(w, s)
	case s.Trace != "":
		fh, err := os.Open(s.Trace)
		if err != nil {
			return nil, err
		}
		defer fh.Close()
		var r io.Reader = fh
		if strings.HasSuffix(s.Trace, ".gz") { // traces are big: gzipped as they are kept
			z, err := gzip.NewReader(fh)
			if err != nil {
				return nil, fmt.Errorf("--trace %s: %w", s.Trace, err)
			}
			r = z
		}
		w, err := sim.ReadTrace(r, s.Trace, sim.TraceOptions{Step: s.Step, MinStep: fc.Simulation.Step.Duration, Scale: s.Scale})
		if err != nil {
			return nil, err
		}
		return cut(w, s)
	case s.Synthetic != "":
		w, err := sim.Synthetic(s.Synthetic, fc.Simulation.Synthetic, s.Duration, s.Seed)
		if err != nil && strings.HasPrefix(err.Error(), "duration ") {
			return nil, fmt.Errorf("--%w", err)
		}
		return w, err
	}
	return nil, errors.New("give a workload: --trace FILE, --synthetic diurnal|spike|ramp or --prometheus URL --query PROMQL --from T --to T")
}

// defaultPrometheusStep is a backtest's step when --step is not given.
const defaultPrometheusStep = time.Minute

// prometheusWorkload runs the backtest's query over [--from, --to): a
// series of requests per second, which the workload holds as requests per
// step.
func prometheusWorkload(ctx context.Context, s Spec, fc sim.FileConfig) (*sim.Workload, error) {
	if s.Query == "" {
		return nil, errors.New("--prometheus needs --query PROMQL, one series of requests per second (e.g. 'sum(rate(http_requests_total[1m]))')")
	}
	if s.From == "" || s.To == "" {
		return nil, errors.New("--prometheus needs --from and --to (RFC 3339 or Unix seconds)")
	}
	from, err := parseTime(s.From)
	if err != nil {
		return nil, fmt.Errorf("--from: %w", err)
	}
	to, err := parseTime(s.To)
	if err != nil {
		return nil, fmt.Errorf("--to: %w", err)
	}
	if !to.After(from) {
		return nil, fmt.Errorf("--to %s: must be after --from %s", s.To, s.From)
	}
	step := s.Step
	if !s.StepSet {
		step = defaultPrometheusStep
	}
	if step%time.Second != 0 {
		return nil, fmt.Errorf("--step %s: a backtest's step must be a whole number of seconds", step)
	}
	cfg, err := Connection(s.Prometheus, s.Config, fc)
	if err != nil {
		return nil, err
	}
	series, err := prometheus.QueryRange(ctx, cfg, s.Query, from, to, step, prometheus.RangeOptions{})
	if err != nil {
		return nil, err
	}
	w := &sim.Workload{
		Name:   fmt.Sprintf("%s %s", s.Prometheus, s.Query),
		Start:  series.Start,
		Step:   series.Step,
		Values: make([]float64, len(series.Values)),
		Filled: series.Filled,
	}
	for i, v := range series.Values {
		if v < 0 {
			return nil, fmt.Errorf("query %q is %g at %s: requests per second must not be negative", s.Query, v, series.Start.Add(time.Duration(i)*series.Step).UTC().Format(time.RFC3339))
		}
		w.Values[i] = v * step.Seconds() // per second → per step
	}
	return w, nil
}

// Connection is how to reach the Prometheus at url: the metrics
// section's connection (timeout, credentials, TLS) of the --config file
// (fc, read from file) when its url is the same, else the URL alone with
// the defaults. Credentials are never sent to another server than the one
// they are configured for.
func Connection(url, file string, fc sim.FileConfig) (prometheus.Config, error) {
	cfg := prometheus.Config{URL: url}
	if file == "" || fc.Metrics.IsZero() {
		return cfg, nil
	}
	var m prometheus.Config
	if err := fc.Metrics.Decode(&m); err != nil {
		return cfg, fmt.Errorf("%s: metrics: %w", file, err)
	}
	if strings.TrimSuffix(m.URL, "/") != strings.TrimSuffix(url, "/") {
		return cfg, nil
	}
	m.URL = url
	return m, nil
}

// parseTime reads RFC 3339 or Unix seconds (fractions allowed).
func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) && math.Abs(f) < 1e11 {
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(math.Round(frac*1e9))).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a time (want RFC 3339, e.g. 2026-11-01T00:00:00Z, or Unix seconds)", s)
}
