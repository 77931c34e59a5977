package prometheus

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// MaxRangePoints is the most points one query_range request asks for:
// Prometheus refuses a request for more than 11,000.
const MaxRangePoints = 11_000

// DefaultMaxSeriesPoints bounds the length of a range series (the same
// bound as a trace's), so that a mistyped range cannot exhaust memory.
const DefaultMaxSeriesPoints = 5_000_000

// Series is a regular series: Values[i] is the query's value at
// Start + i·Step.
type Series struct {
	Start  time.Time
	Step   time.Duration
	Values []float64
	// Filled counts the steps without a sample, between the first and the
	// last, that took the previous value.
	Filled int
}

// RangeOptions tune QueryRange.
type RangeOptions struct {
	// ChunkPoints is the most points per request; 0 or more than
	// MaxRangePoints means MaxRangePoints.
	ChunkPoints int
	// MaxPoints bounds the whole series; 0 means DefaultMaxSeriesPoints.
	MaxPoints int
}

// QueryRange evaluates query at from, from+step, … (every step before
// to) with Prometheus's query_range API, in as many requests of at most
// MaxRangePoints points as the range needs, consecutive and without
// overlap, each bounded by cfg.Timeout. It connects as the source does:
// cfg's URL, credentials and TLS (its Queries are not used).
//
// The query must give one value per step: a single series (a scalar, or
// an aggregation such as sum(rate(...))). More than one series, or none
// at all over the range, is an error naming the query; so is a NaN or
// infinite value, naming its time. The series runs from the first step
// with a sample to the last one; a step without a sample in between takes
// the previous value, and Series.Filled counts them.
func QueryRange(ctx context.Context, cfg Config, query string, from, to time.Time, step time.Duration, opts RangeOptions) (*Series, error) {
	if query == "" {
		return nil, errors.New("prometheus: no query")
	}
	cfg.Queries = []Query{{Name: "range", Query: query}} // Validate wants one
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("prometheus: %w", err)
	}
	switch {
	case step < time.Millisecond || step%time.Millisecond != 0:
		return nil, fmt.Errorf("prometheus: step %s: must be a whole number of milliseconds, at least 1ms", step)
	case !to.After(from):
		return nil, fmt.Errorf("prometheus: the range [%s, %s) is empty", fmtTime(from), fmtTime(to))
	}
	if opts.ChunkPoints <= 0 || opts.ChunkPoints > MaxRangePoints {
		opts.ChunkPoints = MaxRangePoints
	}
	if opts.MaxPoints <= 0 {
		opts.MaxPoints = DefaultMaxSeriesPoints
	}
	// Prometheus keeps milliseconds: put the grid on them.
	from = from.Truncate(time.Millisecond)
	n64 := (int64(to.Sub(from)) + int64(step) - 1) / int64(step)
	if n64 > int64(opts.MaxPoints) {
		return nil, fmt.Errorf("prometheus: [%s, %s) at step %s is %d points, more than %d", fmtTime(from), fmtTime(to), step, n64, opts.MaxPoints)
	}
	n := int(n64)
	rt, err := transport(cfg)
	if err != nil {
		return nil, fmt.Errorf("prometheus: %w", err)
	}
	c, err := api.NewClient(api.Config{Address: cfg.URL, RoundTripper: rt})
	if err != nil {
		return nil, errors.New("prometheus: url: not usable")
	}
	a := v1.NewAPI(c)

	values := make([]float64, n)
	have := make([]bool, n)
	var (
		seen    model.Metric
		hasSeen bool
	)
	for lo := 0; lo < n; lo += opts.ChunkPoints {
		hi := min(n, lo+opts.ChunkPoints) // points lo..hi-1, both ends inclusive in the request
		r := v1.Range{Start: from.Add(time.Duration(lo) * step), End: from.Add(time.Duration(hi-1) * step), Step: step}
		m, err := queryChunk(ctx, a, cfg.Timeout, query, r)
		if err != nil {
			return nil, err
		}
		if len(m) > 1 {
			return nil, fmt.Errorf("prometheus: query %q returns %d series (%s, %s, …); it must return one value per step (aggregate it, e.g. with sum)", query, len(m), m[0].Metric, m[1].Metric)
		}
		if len(m) == 0 {
			continue
		}
		if hasSeen && !seen.Equal(m[0].Metric) {
			return nil, fmt.Errorf("prometheus: query %q returns more than one series over the range (%s, then %s); it must return one value per step (aggregate it, e.g. with sum)", query, seen, m[0].Metric)
		}
		seen, hasSeen = m[0].Metric, true
		for _, p := range m[0].Values {
			t := p.Timestamp.Time()
			v := float64(p.Value)
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("prometheus: query %q is %v at %s", query, v, fmtTime(t))
			}
			// Round to the nearest step of the grid.
			i := int((t.Sub(from) + step/2) / step)
			if i < lo || i >= hi {
				return nil, fmt.Errorf("prometheus: query %q: a sample at %s, outside the requested [%s, %s]", query, fmtTime(t), fmtTime(r.Start), fmtTime(r.End))
			}
			values[i], have[i] = v, true
		}
	}
	first, last := -1, -1
	for i, ok := range have {
		if ok {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if first < 0 {
		return nil, fmt.Errorf("prometheus: query %q returns no data in [%s, %s)", query, fmtTime(from), fmtTime(to))
	}
	s := &Series{Start: from.Add(time.Duration(first) * step), Step: step, Values: values[first : last+1]}
	for i := first + 1; i <= last; i++ {
		if !have[i] {
			values[i] = values[i-1]
			s.Filled++
		}
	}
	return s, nil
}

func queryChunk(ctx context.Context, a v1.API, timeout time.Duration, query string, r v1.Range) (model.Matrix, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	val, _, _, err := a.QueryRange(ctx, query, r)
	if err != nil {
		return nil, fmt.Errorf("prometheus: query %q over [%s, %s]: %s", query, fmtTime(r.Start), fmtTime(r.End), (&Source{cfg: Config{Timeout: timeout}}).describe(ctx, err))
	}
	m, ok := val.(model.Matrix)
	if !ok {
		return nil, fmt.Errorf("prometheus: query %q returns a %s, not a range of values", query, val.Type())
	}
	return m, nil
}

func fmtTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
