package sim

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func dayRuns(t *testing.T) []*Result {
	t.Helper()
	load, err := Synthetic(Diurnal, SyntheticParams{}, 24*time.Hour, 1)
	if err != nil {
		t.Fatal(err)
	}
	var runs []*Result
	for _, mode := range []Mode{LiveClone, ColdBoot} {
		res, err := Run(context.Background(), Options{
			Workload: load, Config: testConfig(1, 20), Params: DefaultParams(), Mode: mode,
			Policy: targetPolicy{0.7, 0.35}, Seed: 1,
		})
		if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, res)
	}
	return runs
}

func TestReports(t *testing.T) {
	runs := dayRuns(t)

	var csvOut bytes.Buffer
	if err := WriteTimelineCSV(&csvOut, runs...); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&csvOut).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(recs), 1+len(runs[0].Timeline)+len(runs[1].Timeline); got != want || len(runs[0].Timeline) != 24*60 {
		t.Errorf("%d CSV records, want %d (a header and a row per run and minute)", got, want)
	}
	if recs[0][0] != "run" || recs[1][0] != "live-clone" || recs[len(recs)-1][0] != "cold-boot" {
		t.Errorf("header %v, first %v", recs[0], recs[1])
	}

	var table bytes.Buffer
	if err := WriteSummaryTable(&table, runs...); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"live-clone", "cold-boot", "requests served", "node-hours", "direction reversals"} {
		if !strings.Contains(table.String(), s) {
			t.Errorf("summary table lacks %q:\n%s", s, table.String())
		}
	}

	var html bytes.Buffer
	if err := WriteHTML(&html, "diurnal <day>", runs...); err != nil {
		t.Fatal(err)
	}
	page := html.String()
	for _, s := range []string{"<svg", "<polyline", "diurnal &lt;day&gt;", "live-clone: serving capacity", "cold-boot: nodes", "requests served"} {
		if !strings.Contains(page, s) {
			t.Errorf("report lacks %q", s)
		}
	}
	if strings.Contains(page, "<script") || strings.Contains(page, "http://") || strings.Contains(page, "https://") {
		t.Error("the report is not self-contained")
	}
	// The SVG must be well-formed XML.
	svg := page[strings.Index(page, "<svg viewBox"):]
	svg = svg[:strings.Index(svg, "</svg>")+len("</svg>")]
	d := xml.NewDecoder(strings.NewReader(svg))
	for {
		if _, err := d.Token(); err != nil {
			if err.Error() != "EOF" {
				t.Errorf("chart SVG: %v", err)
			}
			break
		}
	}
	if dir := os.Getenv("SIM_REPORT_DIR"); dir != "" {
		writeReports(t, dir, "diurnal day", runs...)
	}
}

func TestDownsampleKeepsPeaksAndDips(t *testing.T) {
	rows := make([]Row, 10_000)
	for i := range rows {
		rows[i] = Row{Time: at(float64(i)), Seconds: 60, Demand: 100, Capacity: 200, NodesTotal: 2}
	}
	rows[4321].Demand = 900
	rows[7777].Capacity = 5
	b := downsample(rows)
	if len(b) > maxChartPoints {
		t.Fatalf("%d points", len(b))
	}
	peak, dip, breaches := 0.0, 1e9, 0
	for _, x := range b {
		peak, dip = max(peak, x.demand), min(dip, x.cap)
		if x.breach {
			breaches++
		}
	}
	if peak != 900 || dip != 5 || breaches != 2 {
		t.Errorf("peak %g, dip %g, breaches %d", peak, dip, breaches)
	}
}

func TestNiceScale(t *testing.T) {
	for _, c := range []struct{ v, top, step float64 }{
		{1, 1, 0.2}, {38, 40, 10}, {933.8, 1000, 200}, {4000, 4000, 1000}, {41, 50, 10},
	} {
		if top, step := niceScale(c.v); top != c.top || step != c.step {
			t.Errorf("niceScale(%g) = %g, %g; want %g, %g", c.v, top, step, c.top, c.step)
		}
	}
}

// writeReports writes a report of the runs to dir, for a person to look at.
func writeReports(t *testing.T, dir, title string, runs ...*Result) {
	t.Helper()
	var html, tl bytes.Buffer
	if err := WriteHTML(&html, title, runs...); err != nil {
		t.Fatal(err)
	}
	if err := WriteTimelineCSV(&tl, runs...); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(dir, "report.html"), html.Bytes(), 0o644)
	_ = os.WriteFile(filepath.Join(dir, "timeline.csv"), tl.Bytes(), 0o644)
}

func TestGrouped(t *testing.T) {
	for _, c := range []struct {
		v    float64
		prec int
		want string
	}{
		{0, 0, "0"}, {999, 0, "999"}, {1000, 0, "1,000"}, {1406919106, 0, "1,406,919,106"},
		{-12345.678, 1, "-12,345.7"}, {83540, 1, "83,540.0"}, {3.96, 1, "4.0"},
	} {
		if got := grouped(c.v, c.prec); got != c.want {
			t.Errorf("grouped(%g, %d) = %q, want %q", c.v, c.prec, got, c.want)
		}
	}
}

// The summary counts in words that agree with the number.
func TestTheSummarySaysOneNodeInTheSingular(t *testing.T) {
	r := &Result{Summary: Summary{StaticNodes: 1, StaticNodeHours: 24, NodeHoursPct: 50}}
	for _, l := range summaryLines([]*Result{r}, nil) {
		if l.Label == "vs static cluster for the peak" {
			if !strings.HasSuffix(l.Values[0], "(1 node)") {
				t.Errorf("%s: %q, want it to end in (1 node)", l.Label, l.Values[0])
			}
			return
		}
	}
	t.Error("no line compares with a static cluster")
}

// Under each run the summary shows the ideal follower of its mode, and
// how far the run is from it; without ideals, no such line.
func TestTheSummaryShowsEachRunsIdealFollower(t *testing.T) {
	runs := []*Result{
		{Label: "a", Mode: LiveClone, NodeCapacity: 100, Summary: Summary{ServedPct: 99.5, NodeHours: 110}},
		{Label: "b", Mode: ColdBoot, NodeCapacity: 100, Summary: Summary{ServedPct: 99, NodeHours: 90}},
		{Label: "c", Mode: LiveClone, NodeCapacity: 100, Summary: Summary{ServedPct: 100, NodeHours: 100}},
	}
	ideals := []*Ideal{
		{Mode: ColdBoot, Target: 0.6, Lag: 2 * time.Minute, Summary: Summary{ServedPct: 99.25, NodeHours: 100}},
		{Mode: LiveClone, Target: 0.6, Lag: 15 * time.Second, Summary: Summary{ServedPct: 99.75, NodeHours: 100}},
	}
	values := map[string][]string{}
	for _, l := range summaryLines(runs, ideals) {
		if l.Label == "requests served" && l.Indent || l.Label == "run vs ideal" || l.Label == "ideal follower" {
			values[l.Label] = l.Values
		}
	}
	for label, want := range map[string][]string{
		"ideal follower":  {"target 0.6, lag 15s", "target 0.6, lag 2.0 min", "target 0.6, lag 15s"},
		"requests served": {"99.750 %", "99.250 %", "99.750 %"},
		"run vs ideal": {"-0.250 pts served, +10.0 % node-hours", "-0.250 pts served, -10.0 % node-hours",
			"+0.250 pts served, +0.0 % node-hours"},
	} {
		if got := strings.Join(values[label], " | "); got != strings.Join(want, " | ") {
			t.Errorf("%s: %s\nwant %s", label, got, strings.Join(want, " | "))
		}
	}

	// A run whose mode has no ideal shows none.
	for _, l := range summaryLines(runs, ideals[:1]) {
		if l.Label == "run vs ideal" && (l.Values[0] != "-" || l.Values[1] == "-") {
			t.Errorf("with the cold-boot follower alone: %q", l.Values)
		}
	}
	for _, l := range summaryLines(runs, nil) {
		if strings.Contains(l.Label, "ideal") {
			t.Errorf("without ideals, a line %q", l.Label)
		}
	}

	var table, html bytes.Buffer
	if err := WriteSummaryTableWithIdeals(&table, ideals, runs...); err != nil {
		t.Fatal(err)
	}
	if err := WriteHTMLWithIdeals(&html, "t", ideals, runs...); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"\nideal follower ", "\n  requests served ", "\n  run vs ideal "} {
		if !strings.Contains(table.String(), s) {
			t.Errorf("the table lacks %q:\n%s", s, table.String())
		}
	}
	for _, s := range []string{`<td class="k">ideal follower</td>`, `<td class="k sub">run vs ideal</td>`, "The ideal follower is"} {
		if !strings.Contains(html.String(), s) {
			t.Errorf("the report lacks %q", s)
		}
	}
}
