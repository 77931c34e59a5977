package sim

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// Workload is the demand a simulation replays: a regular series of
// request counts, one per Step, starting at Start.
type Workload struct {
	// Name says where the workload came from (a file, "diurnal seed 1").
	Name  string
	Start time.Time
	Step  time.Duration
	// Values are the requests that arrive during each Step interval,
	// spread evenly over it.
	Values []float64
	// Filled counts the points missing from a trace (gaps in its
	// timestamps) that were filled with the previous value.
	Filled int
}

// Duration is how long the workload lasts.
func (w *Workload) Duration() time.Duration { return time.Duration(len(w.Values)) * w.Step }

// PeakRPS is the highest request rate of any point, in requests per second.
func (w *Workload) PeakRPS() float64 {
	peak := 0.0
	for _, v := range w.Values {
		peak = max(peak, v)
	}
	return peak / w.Step.Seconds()
}

// Slice returns the part of the workload between from and to (clipped to
// the workload), sharing its values.
func (w *Workload) Slice(from, to time.Time) *Workload {
	i := max(0, int(from.Sub(w.Start)/w.Step))
	j := min(len(w.Values), int((to.Sub(w.Start)+w.Step-1)/w.Step))
	if j < i {
		j = i
	}
	return &Workload{
		Name:   fmt.Sprintf("%s [%s, %s)", w.Name, from.UTC().Format(time.DateTime), to.UTC().Format(time.DateTime)),
		Start:  w.Start.Add(time.Duration(i) * w.Step),
		Step:   w.Step,
		Values: w.Values[i:j],
	}
}

// TraceOptions say how to read a trace.
type TraceOptions struct {
	// Step is the interval of each value. It is required for a trace of
	// bare numbers and for a CSV trace of a single row; for a CSV trace it
	// overrides the step inferred from the first two timestamps.
	Step time.Duration
	// MinStep is the shortest interval a trace may have: the world's step
	// (default 5s, DefaultParams' step), which cannot resolve less.
	MinStep time.Duration
	// Scale is what the simulation multiplies every value by (default 1);
	// a value whose demand, scaled, is above MaxDemandRPS is refused.
	Scale float64
	// Start is when a trace of bare numbers begins (default TraceEpoch).
	Start time.Time
	// MaxPoints bounds the length of the series, gaps included
	// (default 5,000,000), so that a stray timestamp cannot exhaust memory.
	MaxPoints int
}

// TraceEpoch is where a trace without timestamps starts.
var TraceEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

const defaultMaxPoints = 5_000_000

// Limits on what a workload may ask of the simulator.
const (
	// MaxDemandRPS is the highest demand, in requests per second after
	// scaling, that the simulator takes: far above any cluster, and far
	// below where its sums lose their meaning.
	MaxDemandRPS = 1e12
	// MaxStep is the longest interval of a workload: a coarser series
	// cannot show what an autoscaler does.
	MaxStep = 24 * time.Hour
	// A gap in a CSV trace may last at most maxGapSteps intervals or
	// maxGap, whichever is longer; a longer one is a stray timestamp,
	// not missing points to fill.
	maxGapSteps = 1000
	maxGap      = 24 * time.Hour
)

// TraceError is a trace that cannot be used, with the file and line at
// fault (Line 0 for the file as a whole).
type TraceError struct {
	File string
	Line int
	Msg  string
}

func (e *TraceError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// ReadTrace reads a trace of request counts, one per interval, in one of
// two formats:
//
//   - CSV "timestamp,value", with an optional header row: the first row
//     is a header when its first field holds no digit (e.g. "t,v"); a
//     first row that looks like data must parse as data. A timestamp is
//     RFC 3339, "YYYY-MM-DD HH:MM:SS" (UTC) or Unix seconds. The step is
//     the gap between the first two timestamps unless opts.Step is set (a
//     single row needs it); timestamps must increase, and a missing point
//     takes the previous value (Workload.Filled counts them). A gap longer
//     than both 1000 steps and a day is an error.
//   - Bare numbers separated by white space, one per opts.Step.
//
// Blank lines and lines starting with '#' are skipped. A value must be a
// finite number >= 0 whose demand, times opts.Scale, is at most
// MaxDemandRPS; the step must be within [opts.MinStep, MaxStep]. Any
// malformed line is a *TraceError naming the file (name) and line.
func ReadTrace(r io.Reader, name string, opts TraceOptions) (*Workload, error) {
	if opts.MaxPoints <= 0 {
		opts.MaxPoints = defaultMaxPoints
	}
	if opts.MinStep <= 0 {
		opts.MinStep = DefaultParams().Step.Duration
	}
	if opts.Scale == 0 {
		opts.Scale = 1
	}
	switch {
	case opts.Step < 0:
		return nil, &TraceError{File: name, Msg: fmt.Sprintf("step %s is negative", opts.Step)}
	case opts.Step > 0:
		if err := checkStep(opts.Step, opts.MinStep); err != nil {
			return nil, &TraceError{File: name, Msg: "step " + err.Error()}
		}
	}
	if !(opts.Scale > 0) || math.IsInf(opts.Scale, 0) {
		return nil, &TraceError{File: name, Msg: fmt.Sprintf("scale %g: must be a positive finite number", opts.Scale)}
	}
	p := traceParser{name: name, opts: opts, sc: bufio.NewScanner(r)}
	p.sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	return p.parse()
}

// checkStep says what is wrong with the interval of a workload, if
// anything: below minStep (the world's step) or above MaxStep.
func checkStep(step, minStep time.Duration) error {
	switch {
	case step < minStep:
		return fmt.Errorf("%s is shorter than the world's step, %s (the shortest interval a trace may have)", step, minStep)
	case step > MaxStep:
		return fmt.Errorf("%s is longer than %s (the longest interval a trace may have)", step, MaxStep)
	}
	return nil
}

// CheckWorkload says what is wrong with a workload for a world of the
// given step at the given scale, if anything: an interval outside
// [worldStep, MaxStep], or a peak demand, scaled, above MaxDemandRPS.
func CheckWorkload(w *Workload, worldStep time.Duration, scale float64) error {
	if w == nil || len(w.Values) == 0 || w.Step <= 0 {
		return errors.New("the workload is empty")
	}
	if err := checkStep(w.Step, worldStep); err != nil {
		return fmt.Errorf("the workload's interval %w", err)
	}
	if d := w.PeakRPS() * scale; !(d <= MaxDemandRPS) {
		return fmt.Errorf("the workload's peak demand, %.4g requests per second × scale %g, is %.4g, above the most the simulator takes (%g)", w.PeakRPS(), scale, d, float64(MaxDemandRPS))
	}
	return nil
}

type traceParser struct {
	name string
	opts TraceOptions
	sc   *bufio.Scanner
	line int
}

// demand checks that value v, over one step, scaled, is not more demand
// than the simulator takes.
func (p *traceParser) demand(v float64, step time.Duration, line int) error {
	if d := v * p.opts.Scale / step.Seconds(); !(d <= MaxDemandRPS) {
		scaled := ""
		if p.opts.Scale != 1 {
			scaled = fmt.Sprintf(" × scale %g", p.opts.Scale)
		}
		return &TraceError{File: p.name, Line: line, Msg: fmt.Sprintf("value %g per %s%s is %.4g requests per second, above the most the simulator takes (%g)", v, step, scaled, d, float64(MaxDemandRPS))}
	}
	return nil
}

func (p *traceParser) errorf(format string, args ...any) error {
	return &TraceError{File: p.name, Line: p.line, Msg: fmt.Sprintf(format, args...)}
}

// next returns the next significant line, trimmed.
func (p *traceParser) next() (string, bool, error) {
	for p.sc.Scan() {
		p.line++
		s := strings.TrimSpace(p.sc.Text())
		if s == "" || s[0] == '#' {
			continue
		}
		return s, true, nil
	}
	if err := p.sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			p.line++
			return "", false, p.errorf("line longer than 1 MiB")
		}
		return "", false, fmt.Errorf("reading %s: %w", p.name, err)
	}
	return "", false, nil
}

func (p *traceParser) parse() (*Workload, error) {
	first, ok, err := p.next()
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, &TraceError{File: p.name, Msg: "no data"}
	}
	if strings.Contains(first, ",") {
		return p.parseCSV(first)
	}
	return p.parseNumbers(first)
}

// notATrace is the error for a line that is neither CSV nor bare numbers.
func (p *traceParser) notATrace(line string) error {
	return p.errorf("%q is neither two comma-separated fields (timestamp,value) nor bare numbers separated by white space (with --step)", clip(line))
}

func (p *traceParser) parseNumbers(line string) (*Workload, error) {
	for _, f := range strings.Fields(line) {
		if _, err := strconv.ParseFloat(f, 64); err != nil && !errors.Is(err, strconv.ErrRange) {
			return nil, p.notATrace(line)
		}
	}
	if p.opts.Step == 0 {
		return nil, &TraceError{File: p.name, Line: p.line, Msg: "a trace of bare numbers needs a step (--step, e.g. 1m)"}
	}
	start := p.opts.Start
	if start.IsZero() {
		start = TraceEpoch
	}
	w := &Workload{Name: p.name, Start: start, Step: p.opts.Step}
	for {
		if strings.Contains(line, ",") {
			return nil, p.errorf("%q has a comma, in a trace of bare numbers", clip(line))
		}
		for _, f := range strings.Fields(line) {
			v, err := p.value(f)
			if err != nil {
				return nil, err
			}
			if err := p.demand(v, w.Step, p.line); err != nil {
				return nil, err
			}
			if len(w.Values) >= p.opts.MaxPoints {
				return nil, p.errorf("more than %d points", p.opts.MaxPoints)
			}
			w.Values = append(w.Values, v)
		}
		var ok bool
		var err error
		if line, ok, err = p.next(); err != nil {
			return nil, err
		} else if !ok {
			return w, nil
		}
	}
}

func (p *traceParser) parseCSV(line string) (*Workload, error) {
	c := csvSeries{p: p, w: &Workload{Name: p.name, Step: p.opts.Step}}
	if !isHeader(line) {
		t, v, err := p.row(line)
		if err != nil {
			return nil, err
		}
		if err := c.add(t, v); err != nil {
			return nil, err
		}
	}
	for {
		line, ok, err := p.next()
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		t, v, err := p.row(line)
		if err != nil {
			return nil, err
		}
		if err := c.add(t, v); err != nil {
			return nil, err
		}
	}
	if c.pending { // a single row and no step given
		return nil, &TraceError{File: p.name, Line: c.firstLine, Msg: "a single row: a trace needs two rows to know its interval, or a step (--step)"}
	}
	if len(c.w.Values) == 0 {
		return nil, &TraceError{File: p.name, Msg: "no data rows after the header"}
	}
	return c.w, nil
}

// csvSeries places timestamped points on a regular grid.
type csvSeries struct {
	p *traceParser
	w *Workload
	// pending: the first point waits for the second to fix the step.
	pending bool
	prevT   time.Time
	prevV   float64
	slot    int
	// firstLine is the line of the first point.
	firstLine int
}

func (c *csvSeries) begin() error {
	if err := c.p.demand(c.prevV, c.w.Step, c.firstLine); err != nil {
		return err
	}
	c.w.Start = c.prevT
	c.w.Values = append(c.w.Values, c.prevV)
	c.pending = false
	return nil
}

// isHeader tells a header row from data: a header's first field holds no
// digit (a timestamp always does).
func isHeader(line string) bool {
	first, _, _ := strings.Cut(line, ",")
	return !strings.ContainsAny(first, "0123456789")
}

func (c *csvSeries) add(t time.Time, v float64) error {
	p, w := c.p, c.w
	switch {
	case len(w.Values) == 0 && !c.pending && w.Step > 0:
		c.prevT, c.prevV, c.firstLine = t, v, p.line
		return c.begin()
	case len(w.Values) == 0 && !c.pending:
		c.prevT, c.prevV, c.pending, c.firstLine = t, v, true, p.line
		return nil
	}
	if !t.After(c.prevT) {
		return p.errorf("timestamp %s is not after the previous one (%s)", fmtTime(t), fmtTime(c.prevT))
	}
	if c.pending {
		w.Step = t.Sub(c.prevT)
		if err := checkStep(w.Step, p.opts.MinStep); err != nil {
			return p.errorf("the interval from the first row (line %d), %v", c.firstLine, err)
		}
		if err := c.begin(); err != nil {
			return err
		}
	}
	if gap := t.Sub(c.prevT); gap > maxGapSteps*w.Step && gap > maxGap {
		return p.errorf("timestamp %s is %s after the previous one (%s): a gap longer than both %d intervals of %s and %s is not filled", fmtTime(t), gap, fmtTime(c.prevT), maxGapSteps, w.Step, maxGap)
	}
	if err := p.demand(v, w.Step, p.line); err != nil {
		return err
	}
	// Round to the nearest step, so that a little jitter is harmless.
	off := t.Sub(w.Start)
	s := int64(off / w.Step)
	if off%w.Step >= (w.Step+1)/2 {
		s++
	}
	if s <= int64(c.slot) {
		return p.errorf("timestamp %s is less than a step (%s) after the previous one (%s)", fmtTime(t), w.Step, fmtTime(c.prevT))
	}
	if s >= int64(p.opts.MaxPoints) {
		return p.errorf("timestamp %s is more than %d steps of %s after the first", fmtTime(t), p.opts.MaxPoints, w.Step)
	}
	for len(w.Values) < int(s) {
		w.Values = append(w.Values, c.prevV)
		w.Filled++
	}
	w.Values = append(w.Values, v)
	c.prevT, c.prevV, c.slot = t, v, int(s)
	return nil
}

func fmtTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// row parses "timestamp,value".
func (p *traceParser) row(line string) (time.Time, float64, error) {
	fields := strings.Split(line, ",")
	if len(fields) != 2 {
		return time.Time{}, 0, p.errorf("want 2 fields (timestamp,value), got %d", len(fields))
	}
	t, err := p.timestamp(unquote(fields[0]))
	if err != nil {
		return time.Time{}, 0, err
	}
	v, err := p.value(unquote(fields[1]))
	return t, v, err
}

func unquote(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = strings.TrimSpace(s[1 : len(s)-1])
	}
	return s
}

var timeLayouts = []string{time.RFC3339Nano, time.DateTime, "2006-01-02T15:04:05"}

func (p *traceParser) timestamp(s string) (time.Time, error) {
	if s != "" && strings.Trim(s, "0123456789.") == "" {
		f, err := strconv.ParseFloat(s, 64)
		if err == nil && f < 1e11 {
			sec, frac := math.Modf(f)
			return time.Unix(int64(sec), int64(math.Round(frac*1e9))).UTC(), nil
		}
	}
	if len(s) == len(time.DateTime) && s[10] == ' ' { // the common case first: no failed parse per row
		if t, err := time.Parse(time.DateTime, s); err == nil {
			return t, nil
		}
	}
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, p.errorf("%q is not a timestamp (want RFC 3339, YYYY-MM-DD HH:MM:SS or Unix seconds)", clip(s))
}

func (p *traceParser) value(s string) (float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	switch {
	case err != nil && !errors.Is(err, strconv.ErrRange):
		return 0, p.errorf("%q is not a number", clip(s))
	case err != nil, math.IsInf(v, 0):
		return 0, p.errorf("%q is out of range", clip(s))
	case math.IsNaN(v):
		return 0, p.errorf("value is NaN")
	case v < 0:
		return 0, p.errorf("value %s is negative", clip(s))
	}
	return v, nil
}

// clip shortens what an error quotes from the input.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
