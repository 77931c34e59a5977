package sim

import (
	_ "embed"
	"encoding/csv"
	"fmt"
	"html/template"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteTimelineCSV writes the runs' timelines as one CSV, a row per run
// and minute; the first column names the run.
func WriteTimelineCSV(w io.Writer, runs ...*Result) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"run", "time", "seconds", "demand_rps", "served_rps", "capacity_rps", "dropped",
		"nodes_ready", "nodes_total", "in_flight", "action", "expansions", "contractions", "joined"})
	f := func(v float64, prec int) string { return strconv.FormatFloat(v, 'f', prec, 64) }
	for _, r := range runs {
		for _, row := range r.Timeline {
			_ = cw.Write([]string{
				r.Label, row.Time.UTC().Format(time.RFC3339), f(row.Seconds, 0),
				f(row.Demand, 3), f(row.Served, 3), f(row.Capacity, 3), f(row.Dropped, 1),
				f(row.NodesReady, 2), f(row.NodesTotal, 2), strconv.Itoa(row.InFlight), row.Action,
				strconv.Itoa(row.Expansions), strconv.Itoa(row.Contractions), strconv.Itoa(row.Joined),
			})
		}
	}
	cw.Flush()
	return cw.Error()
}

// summaryLine is one line of the summary table: a label and a value per
// run. An indented line belongs to the line above it.
type summaryLine struct {
	Label  string
	Values []string
	Indent bool
}

// What the summary shows of a Summary, for a run and its ideal follower.
func fmtServed(s Summary) string { return fmt.Sprintf("%.3f %%", s.ServedPct) }

func fmtNotServed(s Summary) string {
	return fmt.Sprintf("%s of %s", thousands(s.NotServed), thousands(s.Requests))
}

func fmtBreach(s Summary) string {
	return fmt.Sprintf("%s min (%s)", thousands(s.BreachMinutes), plural(s.Breaches, "breach", "breaches"))
}

func fmtVsStatic(s Summary) string {
	return fmt.Sprintf("%.1f %% of %s (%s)", s.NodeHoursPct, grouped(s.StaticNodeHours, 1), plural(s.StaticNodes, "node", "nodes"))
}

func fmtNodes(s Summary) string { return fmt.Sprintf("%.1f / %.0f", s.MeanNodes, s.MaxNodes) }

func summaryLines(runs []*Result, ideals []*Ideal) []summaryLine {
	sum := func(f func(Summary) string) func(r *Result) string {
		return func(r *Result) string { return f(r.Summary) }
	}
	lines := []struct {
		label string
		value func(r *Result) string
	}{
		{"policy", func(r *Result) string { return r.PolicyVersion }},
		{"mode", func(r *Result) string { return string(r.Mode) }},
		{"simulated", func(r *Result) string { return fmtDuration(r.Summary.Duration) }},
		{"requests served", sum(fmtServed)},
		{"requests not served", sum(fmtNotServed)},
		{"SLO breach (demand > capacity)", sum(fmtBreach)},
		{"breach start → added capacity", func(r *Result) string {
			s := r.Summary
			if s.AnsweredBreaches == 0 {
				return "-"
			}
			return fmt.Sprintf("%s mean (%s)", fmtDuration(s.MeanTimeToCapacity), plural(s.AnsweredBreaches, "breach", "breaches"))
		}},
		{"node-hours", func(r *Result) string { return grouped(r.Summary.NodeHours, 1) }},
		{"vs static cluster for the peak", sum(fmtVsStatic)},
		{"nodes mean / max", sum(fmtNodes)},
		{"peak demand", func(r *Result) string { return fmt.Sprintf("%s req/s", thousands(r.Summary.PeakDemand)) }},
		{"expansions / contractions", func(r *Result) string {
			return fmt.Sprintf("%d / %d", r.Summary.Expansions, r.Summary.Contractions)
		}},
		{"direction reversals", func(r *Result) string { return strconv.Itoa(r.Summary.Reversals) }},
		{"operation failures", func(r *Result) string { return strconv.Itoa(r.Summary.Failures) }},
		{"utilization p50 / p95", func(r *Result) string {
			return fmt.Sprintf("%.2f / %.2f", r.Summary.UtilP50, r.Summary.UtilP95)
		}},
		{"policy errors", func(r *Result) string {
			if r.TickErrors == 0 {
				return "0"
			}
			return fmt.Sprintf("%d (first: %s)", r.TickErrors, r.FirstTickError)
		}},
		{"run time", func(r *Result) string { return r.Wall.Round(time.Millisecond).String() }},
	}
	var out []summaryLine
	for _, l := range lines {
		sl := summaryLine{Label: l.label}
		for _, r := range runs {
			sl.Values = append(sl.Values, l.value(r))
		}
		out = append(out, sl)
	}
	if len(ideals) == 0 {
		return out
	}

	// Under each run, the ideal follower of its mode.
	idealOf := func(r *Result) *Ideal {
		for _, id := range ideals {
			if id != nil && id.Mode == r.Mode {
				return id
			}
		}
		return nil
	}
	idealLines := []struct {
		label string
		value func(r *Result, id *Ideal) string
	}{
		{"ideal follower", func(_ *Result, id *Ideal) string {
			return fmt.Sprintf("target %g, lag %s", id.Target, fmtDuration(id.Lag))
		}},
		{"requests served", func(_ *Result, id *Ideal) string { return fmtServed(id.Summary) }},
		{"requests not served", func(_ *Result, id *Ideal) string { return fmtNotServed(id.Summary) }},
		{"SLO breach", func(_ *Result, id *Ideal) string { return fmtBreach(id.Summary) }},
		{"node-hours", func(_ *Result, id *Ideal) string { return grouped(id.Summary.NodeHours, 1) }},
		{"vs static cluster", func(_ *Result, id *Ideal) string { return fmtVsStatic(id.Summary) }},
		{"nodes mean / max", func(_ *Result, id *Ideal) string { return fmtNodes(id.Summary) }},
		{"run vs ideal", func(r *Result, id *Ideal) string { return fmtRunVsIdeal(r.Summary, id.Summary) }},
	}
	for i, l := range idealLines {
		sl := summaryLine{Label: l.label, Indent: i > 0}
		for _, r := range runs {
			v := "-"
			if id := idealOf(r); id != nil {
				v = l.value(r, id)
			}
			sl.Values = append(sl.Values, v)
		}
		out = append(out, sl)
	}
	return out
}

// fmtRunVsIdeal says how far a run is from its ideal follower: in points
// of requests served and in percent of node-hours.
func fmtRunVsIdeal(run, ideal Summary) string {
	nh := "-"
	if ideal.NodeHours > 0 {
		nh = fmt.Sprintf("%+.1f %%", 100*(run.NodeHours/ideal.NodeHours-1))
	}
	return fmt.Sprintf("%+.3f pts served, %s node-hours", run.ServedPct-ideal.ServedPct, nh)
}

// WriteSummaryTable writes the runs' summaries side by side as text.
func WriteSummaryTable(w io.Writer, runs ...*Result) error {
	return WriteSummaryTableWithIdeals(w, nil, runs...)
}

// WriteSummaryTableWithIdeals writes the runs' summaries side by side as
// text, with under each run the ideal follower of its mode (of ideals;
// "-" if none).
func WriteSummaryTableWithIdeals(w io.Writer, ideals []*Ideal, runs ...*Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := []string{""}
	for _, r := range runs {
		head = append(head, r.Label)
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, l := range summaryLines(runs, ideals) {
		label := l.Label
		if l.Indent {
			label = "  " + label
		}
		fmt.Fprintln(tw, label+"\t"+strings.Join(l.Values, "\t"))
	}
	return tw.Flush()
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return thousands(float64(n)) + " " + many
}

// thousands formats v rounded to an integer, in groups: 1,234,567.
func thousands(v float64) string { return grouped(v, 0) }

// grouped formats v with prec decimals and its integer part in groups of
// three digits.
func grouped(v float64, prec int) string {
	s := strconv.FormatFloat(v, 'f', prec, 64)
	sign := ""
	if strings.HasPrefix(s, "-") {
		sign, s = "-", s[1:]
	}
	whole, frac, _ := strings.Cut(s, ".")
	var b strings.Builder
	for i, c := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if frac != "" {
		return sign + b.String() + "." + frac
	}
	return sign + b.String()
}

func fmtDuration(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%.1f days", d.Hours()/24)
	case d >= 2*time.Hour:
		return fmt.Sprintf("%.1f h", d.Hours())
	case d >= 2*time.Minute:
		return fmt.Sprintf("%.1f min", d.Minutes())
	}
	return d.Round(time.Second).String()
}

//go:embed report.html.tmpl
var reportHTML string

var reportTmpl = template.Must(template.New("report").Parse(reportHTML))

// chart geometry, in SVG user units.
const (
	chartW, chartH         = 1100.0, 420.0
	padL, padR, padT, padB = 70.0, 60.0, 20.0, 56.0
	maxChartPoints         = 2000
)

var runColors = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd"}

type chartLine struct {
	Label, Color, Dash, Points string
	Width                      float64
}

type chartTick struct {
	Pos   float64
	Label string
}

type chartRect struct{ X, Y, W, H float64 }

type chartBand struct {
	Color string
	Rects []chartRect
}

type chartData struct {
	W, H, Left, Right, Top, Bottom float64
	Lines                          []chartLine
	XTicks, YTicks, NTicks         []chartTick
	Bands                          []chartBand
	Legend                         []chartLine
}

type reportData struct {
	Title        string
	Subtitle     string
	Runs         []*Result
	Lines        []summaryLine
	Chart        chartData
	NodeCapacity float64
	Ideals       bool
}

// WriteHTML writes a self-contained HTML report of the runs: a chart of
// demand, serving capacity and nodes over time, and the summaries side
// by side. Long runs are downsampled to about 2,000 points per line,
// keeping each bucket's highest demand and node count and lowest
// capacity, so that breaches stay visible.
func WriteHTML(w io.Writer, title string, runs ...*Result) error {
	return WriteHTMLWithIdeals(w, title, nil, runs...)
}

// WriteHTMLWithIdeals writes the report of WriteHTML with, in the
// summaries, the ideal follower of each run's mode (of ideals) under it.
func WriteHTMLWithIdeals(w io.Writer, title string, ideals []*Ideal, runs ...*Result) error {
	if len(runs) == 0 {
		return fmt.Errorf("no runs to report")
	}
	r0 := runs[0]
	d := reportData{Title: title, Runs: runs, Lines: summaryLines(runs, ideals), Chart: chart(runs, r0.NodeCapacity),
		NodeCapacity: r0.NodeCapacity, Ideals: len(ideals) > 0}
	d.Subtitle = fmt.Sprintf("%s × %g, node capacity %g req/s", r0.Workload, r0.Scale, r0.NodeCapacity)
	return reportTmpl.Execute(w, d)
}

type bucket struct {
	t                  time.Time
	demand, cap, nodes float64
	breach             bool
}

// downsample folds rows into at most maxChartPoints buckets.
func downsample(rows []Row) []bucket {
	per := max(1, (len(rows)+maxChartPoints-1)/maxChartPoints)
	var out []bucket
	for i := 0; i < len(rows); i += per {
		b := bucket{t: rows[i].Time, cap: math.Inf(1)}
		for _, r := range rows[i:min(i+per, len(rows))] {
			b.demand = max(b.demand, r.Demand)
			b.cap = min(b.cap, r.Capacity)
			b.nodes = max(b.nodes, r.NodesTotal)
			b.breach = b.breach || breach(r)
		}
		out = append(out, b)
	}
	return out
}

// chart draws the runs. The nodes axis is the requests axis divided by
// the node capacity, so that n warm nodes sit on their capacity.
func chart(runs []*Result, nodeCapacity float64) chartData {
	c := chartData{W: chartW, H: chartH, Left: padL, Right: chartW - padR, Top: padT, Bottom: chartH - padB}
	if !(nodeCapacity > 0) || math.IsInf(nodeCapacity, 0) {
		nodeCapacity = 1 // a result made by hand: without this the nodes axis has no end
	}
	var start, end time.Time
	maxRPS := 1.0
	series := make([][]bucket, len(runs))
	for i, r := range runs {
		series[i] = downsample(r.Timeline)
		if n := len(r.Timeline); n > 0 {
			if start.IsZero() || r.Timeline[0].Time.Before(start) {
				start = r.Timeline[0].Time
			}
			last := r.Timeline[n-1]
			if e := last.Time.Add(time.Duration(last.Seconds * float64(time.Second))); e.After(end) {
				end = e
			}
		}
		for _, b := range series[i] {
			maxRPS = max(maxRPS, b.demand, b.cap, b.nodes*nodeCapacity)
		}
	}
	if !end.After(start) {
		end = start.Add(time.Minute)
	}
	span := end.Sub(start).Seconds()
	x := func(t time.Time) float64 { return c.Left + (c.Right-c.Left)*t.Sub(start).Seconds()/span }
	rpsTop, rpsStep := niceScale(maxRPS)
	nodesTop := rpsTop / nodeCapacity
	_, nodesStep := niceScale(nodesTop)
	yR := func(v float64) float64 { return c.Bottom - (c.Bottom-c.Top)*v/rpsTop }
	yN := func(v float64) float64 { return c.Bottom - (c.Bottom-c.Top)*v/nodesTop }
	for v := 0.0; v <= rpsTop+1e-9; v += rpsStep {
		c.YTicks = append(c.YTicks, chartTick{yR(v), thousands(v)})
	}
	for v := 0.0; v <= nodesTop+1e-9; v += nodesStep {
		c.NTicks = append(c.NTicks, chartTick{yN(v), thousands(v)})
	}
	c.XTicks = timeTicks(start, end, x)

	pts := func(bs []bucket, val func(bucket) float64, y func(float64) float64, step bool) string {
		var sb strings.Builder
		for i, b := range bs {
			if step && i > 0 {
				fmt.Fprintf(&sb, "%.1f,%.1f ", x(b.t), y(val(bs[i-1])))
			}
			fmt.Fprintf(&sb, "%.1f,%.1f ", x(b.t), y(val(b)))
		}
		return strings.TrimSpace(sb.String())
	}
	if len(series) > 0 {
		l := chartLine{Label: "demand", Color: "#555", Width: 1,
			Points: pts(series[0], func(b bucket) float64 { return b.demand }, yR, false)}
		c.Lines = append(c.Lines, l)
		c.Legend = append(c.Legend, l)
	}
	for i, r := range runs {
		color := runColors[i%len(runColors)]
		capLine := chartLine{Label: r.Label + ": serving capacity", Color: color, Width: 1.6,
			Points: pts(series[i], func(b bucket) float64 { return b.cap }, yR, false)}
		nodeLine := chartLine{Label: r.Label + ": nodes (right axis)", Color: color, Width: 1.2, Dash: "5 3",
			Points: pts(series[i], func(b bucket) float64 { return b.nodes }, yN, true)}
		c.Lines = append(c.Lines, capLine, nodeLine)
		c.Legend = append(c.Legend, capLine, nodeLine)
		band := chartBand{Color: color}
		for j, b := range series[i] {
			if !b.breach {
				continue
			}
			x1 := c.Right
			if j+1 < len(series[i]) {
				x1 = x(series[i][j+1].t)
			}
			band.Rects = append(band.Rects, chartRect{X: x(b.t), Y: c.Bottom + 4 + 5*float64(i), W: max(1, x1-x(b.t)), H: 4})
		}
		c.Bands = append(c.Bands, band)
	}
	return c
}

// niceScale returns an axis top at or above v and a tick step of 1, 2 or
// 5 times a power of ten, for about five ticks.
func niceScale(v float64) (top, step float64) {
	raw := v / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if step = m * mag; step >= raw {
			break
		}
	}
	return math.Ceil(v/step) * step, step
}

// timeTicks labels the time axis at a round interval, about 6-12 ticks.
func timeTicks(start, end time.Time, x func(time.Time) float64) []chartTick {
	span := end.Sub(start)
	steps := []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour,
		3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour, 2 * 24 * time.Hour, 7 * 24 * time.Hour, 14 * 24 * time.Hour}
	step := steps[len(steps)-1]
	for _, s := range steps {
		if span/s <= 12 {
			step = s
			break
		}
	}
	layout := "15:04"
	if step >= 24*time.Hour {
		layout = "Jan 2"
	} else if span > 24*time.Hour {
		layout = "Jan 2 15:04"
	}
	var ticks []chartTick
	for t := start.Truncate(step); !t.After(end); t = t.Add(step) {
		if t.Before(start) {
			continue
		}
		ticks = append(ticks, chartTick{x(t), t.UTC().Format(layout)})
	}
	return ticks
}
