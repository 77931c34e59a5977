package deploy_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/mitosis-autoscaler/mitosis/internal/testenv"
)

// The files under test, relative to this package's directory (deploy/),
// where `go test` runs.
const (
	rulesDir      = "prometheus"
	rulesFile     = "mitosis.rules.yml"
	rulesTestFile = "mitosis.rules.test.yml"
	dashboardFile = "grafana/mitosis.json"
	telemetryDoc  = "../docs/telemetry.md"
)

// The alerts the rules must define, with the severities each comes in.
var wantAlerts = map[string][]string{
	"MitosisOperationsFailing":  {"critical", "warning"},
	"MitosisMetricsUnavailable": {"warning"},
	"MitosisClusterAtMax":       {"warning"},
	"MitosisNotTicking":         {"critical"},
}

func TestRulesPassPromtool(t *testing.T) {
	promtool := testenv.Binary(t, "promtool")

	rules := readRules(t, filepath.Join(rulesDir, rulesFile))
	n := 0
	for _, g := range rules.Groups {
		n += len(g.Rules)
	}
	// From the repository's root, as documented in docs/telemetry.md.
	out, err := runIn("..", promtool, "check", "rules", "deploy/prometheus/"+rulesFile)
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	if want := fmt.Sprintf("SUCCESS: %d rules found", n); !strings.Contains(out, want) {
		t.Errorf("promtool check rules says\n%s\nwant %q", out, want)
	}

	// From the rules' directory, so that the test file's rule_files resolve.
	out, err = runIn(rulesDir, promtool, "test", "rules", rulesTestFile)
	if err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
	if !strings.Contains(out, "SUCCESS") || strings.Contains(out, "FAILED") {
		t.Errorf("promtool test rules says\n%s", out)
	}

	// The unit tests catch a rule that changes: each mutation of the rules
	// must make `promtool test rules` fail.
	original, err := os.ReadFile(filepath.Join(rulesDir, rulesFile))
	if err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile(filepath.Join(rulesDir, rulesTestFile))
	if err != nil {
		t.Fatal(err)
	}
	mutations := []struct{ name, old, new string }{
		{"failures no longer warn", `{result="failed"}[15m])) > 0`, `{result="failed"}[15m])) > 1`},
		{"one operation is enough for critical", `[30m])) >= 2`, `[30m])) >= 1`},
		{"metrics available alerts", `mitosis_metrics_available == 0`, `mitosis_metrics_available == 1`},
		{"at max alerts sooner", "for: 15m", "for: 1m"},
		{"not ticking tolerates more", `(mitosis_last_tick_timestamp_seconds) > 300`, `(mitosis_last_tick_timestamp_seconds) > 3000`},
		{"not ticking per agent, not per cluster", `max by (cluster) (mitosis_last_tick_timestamp_seconds)`, `(mitosis_last_tick_timestamp_seconds)`},
		{"a recording rule's window", `rate(mitosis_metrics_unavailable_total[15m])`, `increase(mitosis_metrics_unavailable_total[15m])`},
	}
	for _, m := range mutations {
		t.Run(m.name, func(t *testing.T) {
			if c := strings.Count(string(original), m.old); c != 1 {
				t.Fatalf("%q occurs %d times in the rules, want once", m.old, c)
			}
			dir := t.TempDir()
			mutated := strings.Replace(string(original), m.old, m.new, 1)
			if err := os.WriteFile(filepath.Join(dir, rulesFile), []byte(mutated), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, rulesTestFile), tests, 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := runIn(dir, promtool, "test", "rules", rulesTestFile)
			if err == nil || !strings.Contains(out, "FAILED") {
				t.Errorf("the unit tests pass with %q replaced by %q (err %v):\n%s", m.old, m.new, err, out)
			}
		})
	}
}

func TestRulesDefineTheAlertsAndTheirTestsCoverThem(t *testing.T) {
	rules := readRules(t, filepath.Join(rulesDir, rulesFile))

	recorded := map[string]bool{}
	severities := map[string][]string{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			switch {
			case r.Record != "":
				if parts := strings.Split(r.Record, ":"); len(parts) != 3 || slices.Contains(parts, "") {
					t.Errorf("recording rule %q is not named level:metric:operations", r.Record)
				}
				recorded[r.Record] = true
			case r.Alert != "":
				severities[r.Alert] = append(severities[r.Alert], r.Labels["severity"])
				if r.For == "" {
					t.Errorf("alert %s (%s) has no for:", r.Alert, r.Labels["severity"])
				}
				for _, a := range []string{"summary", "description"} {
					text := r.Annotations[a]
					if !strings.Contains(text, "$labels.cluster") {
						t.Errorf("alert %s (%s): %s does not name the cluster: %q", r.Alert, r.Labels["severity"], a, text)
					}
				}
				if !strings.Contains(r.Annotations["description"], "$value") {
					t.Errorf("alert %s (%s): the description does not give the value", r.Alert, r.Labels["severity"])
				}
				if !strings.Contains(r.Annotations["description"], "Check") {
					t.Errorf("alert %s (%s): the description does not say what to check", r.Alert, r.Labels["severity"])
				}
			default:
				t.Errorf("group %s: a rule neither records nor alerts", g.Name)
			}
		}
	}
	for _, s := range severities {
		sort.Strings(s)
	}
	for name, want := range wantAlerts {
		if !slices.Equal(severities[name], want) {
			t.Errorf("alert %s has severities %v, want %v", name, severities[name], want)
		}
	}
	for name := range severities {
		if _, ok := wantAlerts[name]; !ok {
			t.Errorf("alert %s is not one this test knows: add it to wantAlerts", name)
		}
	}
	for _, want := range []string{
		"cluster:mitosis_operations_failed:rate15m",
		"cluster:mitosis_operations_failed:ratio_rate15m",
		"cluster_action:mitosis_decisions:rate5m",
		"cluster:mitosis_policy_evaluation_duration_seconds:p90_rate5m",
		"cluster:mitosis_metrics_unavailable:ratio_rate15m",
	} {
		if !recorded[want] {
			t.Errorf("no recording rule %s", want)
		}
	}

	// Every alert is tested firing and not firing; at least two recording
	// rules have their values tested.
	var unit struct {
		RuleFiles []string `yaml:"rule_files"`
		Tests     []struct {
			AlertRuleTests []struct {
				Alertname string           `yaml:"alertname"`
				ExpAlerts []map[string]any `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
			PromQLExprTests []struct {
				Expr       string `yaml:"expr"`
				ExpSamples []any  `yaml:"exp_samples"`
			} `yaml:"promql_expr_test"`
		} `yaml:"tests"`
	}
	readYAML(t, filepath.Join(rulesDir, rulesTestFile), &unit)
	if !slices.Equal(unit.RuleFiles, []string{rulesFile}) {
		t.Errorf("the unit tests load %v, want [%s]", unit.RuleFiles, rulesFile)
	}
	firing, silent := map[string]bool{}, map[string]bool{}
	testedRecords := map[string]bool{}
	for _, tc := range unit.Tests {
		for _, a := range tc.AlertRuleTests {
			if len(a.ExpAlerts) > 0 {
				firing[a.Alertname] = true
			} else {
				silent[a.Alertname] = true
			}
		}
		for _, e := range tc.PromQLExprTests {
			if recorded[strings.TrimSpace(e.Expr)] && len(e.ExpSamples) > 0 {
				testedRecords[strings.TrimSpace(e.Expr)] = true
			}
		}
	}
	for name := range wantAlerts {
		if !firing[name] {
			t.Errorf("no unit test expects %s to fire", name)
		}
		if !silent[name] {
			t.Errorf("no unit test expects %s not to fire", name)
		}
	}
	if len(testedRecords) < 2 {
		t.Errorf("the unit tests check the values of %d recording rules, want at least 2", len(testedRecords))
	}
}

func TestDashboardQueriesUseKnownMetrics(t *testing.T) {
	doc, err := os.ReadFile(telemetryDoc)
	if err != nil {
		t.Fatal(err)
	}
	known, err := telemetryMetrics(string(doc))
	if err != nil {
		t.Fatal(err)
	}
	// The table's shape: a parser that found little would let anything pass.
	for name, typ := range map[string]string{
		"mitosis_cluster_size":                       "gauge",
		"mitosis_cluster_min_size":                   "gauge",
		"mitosis_cluster_max_size":                   "gauge",
		"mitosis_operations_total":                   "counter",
		"mitosis_policy_evaluation_duration_seconds": "histogram",
	} {
		if known[name] != typ {
			t.Errorf("docs/telemetry.md's table: %s is %q, want %q", name, known[name], typ)
		}
	}

	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(raw) {
		t.Fatalf("%s is not valid JSON", dashboardFile)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if d.UID != "mitosis" || d.SchemaVersion != 39 {
		t.Errorf("dashboard uid %q, schemaVersion %d; want mitosis, 39", d.UID, d.SchemaVersion)
	}
	vars := map[string]variable{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v
	}
	if v := vars["datasource"]; v.Type != "datasource" || v.queryText() != "prometheus" {
		t.Errorf("variable datasource: type %q, query %q; want datasource, prometheus", v.Type, v.queryText())
	}
	if v := vars["cluster"]; v.Type != "query" || v.queryText() != "label_values(mitosis_cluster_size, cluster)" ||
		v.Datasource == nil || v.Datasource.UID != "${datasource}" {
		t.Errorf("variable cluster: type %q, query %q, datasource %+v", v.Type, v.queryText(), v.Datasource)
	}

	problems, used := checkDashboard(d, known)
	for _, p := range problems {
		t.Error(p)
	}
	for _, want := range []string{
		"mitosis_cluster_size", "mitosis_cluster_min_size", "mitosis_cluster_max_size",
		"mitosis_cluster_nodes", "mitosis_decisions_total", "mitosis_operations_total",
		"mitosis_operation_duration_seconds_bucket", "mitosis_policy_evaluation_duration_seconds_bucket",
		"mitosis_metrics_query_duration_seconds_bucket", "mitosis_metrics_available",
		"mitosis_operations_in_flight",
	} {
		if !used[want] {
			t.Errorf("no panel shows %s", want)
		}
	}

	rules := readRules(t, filepath.Join(rulesDir, rulesFile))
	for _, p := range checkRules(rules, known) {
		t.Error(p)
	}

	// A metric renamed in docs/telemetry.md without deploy/ following makes
	// these checks fail.
	for old, renamed := range map[string]string{
		"mitosis_cluster_size":                       "mitosis_cluster_projected_size",
		"mitosis_operations_total":                   "mitosis_operations_finished_total",
		"mitosis_policy_evaluation_duration_seconds": "mitosis_policy_duration_seconds",
	} {
		doc := strings.ReplaceAll(string(doc), "`"+old+"`", "`"+renamed+"`")
		known, err := telemetryMetrics(doc)
		if err != nil {
			t.Fatal(err)
		}
		problems, _ := checkDashboard(d, known)
		problems = append(problems, checkRules(rules, known)...)
		if !strings.Contains(strings.Join(problems, "\n"), old) {
			t.Errorf("with %s renamed %s in the docs, the checks report nothing about it: %q", old, renamed, problems)
		}
	}
}

// telemetryMetrics reads the metrics table of docs/telemetry.md: each name
// of its first column (a row may name several) with its type.
func telemetryMetrics(doc string) (map[string]string, error) {
	metrics := map[string]string{}
	inTable := false
	for _, line := range strings.Split(doc, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") {
			if inTable {
				break
			}
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if !inTable {
			if len(cells) >= 2 && cells[0] == "metric" && cells[1] == "type" {
				inTable = true
			}
			continue
		}
		if strings.Trim(cells[0], "-: ") == "" || len(cells) < 2 {
			continue // the separator row
		}
		names := regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(cells[0], -1)
		if len(names) == 0 {
			return nil, fmt.Errorf("docs/telemetry.md: a row of the metrics table names no metric: %q", line)
		}
		for _, n := range names {
			metrics[n[1]] = cells[1]
		}
	}
	if len(metrics) == 0 {
		return nil, fmt.Errorf("docs/telemetry.md has no metrics table (a header | metric | type | ...)")
	}
	return metrics, nil
}

var identifier = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)

// blankStrings replaces the contents of PromQL string literals with spaces,
// keeping every other byte where it is.
func blankStrings(expr string) string {
	b := []byte(expr)
	var quote byte
	for i := 0; i < len(b); i++ {
		switch {
		case quote == 0 && (b[i] == '"' || b[i] == '\'' || b[i] == '`'):
			quote = b[i]
		case quote != 0 && b[i] == '\\' && quote != '`' && i+1 < len(b):
			b[i], b[i+1] = ' ', ' '
			i++
		case quote != 0 && b[i] == quote:
			quote = 0
		case quote != 0:
			b[i] = ' '
		}
	}
	return string(b)
}

// metricRef is a metric name an expression uses, and where.
type metricRef struct {
	name       string
	start, end int
}

// metricRefs returns the names in expr that are mitosis's metrics (or
// recorded series derived from them): identifiers outside string literals
// that contain "mitosis_".
func metricRefs(expr string) []metricRef {
	var refs []metricRef
	for _, loc := range identifier.FindAllStringIndex(blankStrings(expr), -1) {
		name := expr[loc[0]:loc[1]]
		if strings.HasPrefix(name, "mitosis_") || strings.Contains(name, ":mitosis_") {
			refs = append(refs, metricRef{name, loc[0], loc[1]})
		}
	}
	return refs
}

// knownMetric says whether name is a series the agent exports: a metric of
// the table, or a histogram's _bucket, _sum or _count.
func knownMetric(name string, known map[string]string) bool {
	if typ, ok := known[name]; ok {
		return typ != "histogram"
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && known[base] == "histogram" {
			return true
		}
	}
	return false
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Datasource *datasourceRef  `json:"datasource"`
}

// queryText is the variable's query, whether Grafana stored it as a string
// or as an object.
func (v variable) queryText() string {
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s
	}
	var o struct {
		Query string `json:"query"`
	}
	_ = json.Unmarshal(v.Query, &o)
	return o.Query
}

type panel struct {
	ID         int            `json:"id"`
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Datasource *datasourceRef `json:"datasource"`
	Targets    []struct {
		Datasource *datasourceRef `json:"datasource"`
		Expr       string         `json:"expr"`
		RefID      string         `json:"refId"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's
}

type dashboard struct {
	UID           string `json:"uid"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []variable `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

func flatten(panels []panel) []panel {
	var all []panel
	for _, p := range panels {
		if p.Type != "row" {
			all = append(all, p)
		}
		all = append(all, flatten(p.Panels)...)
	}
	return all
}

// checkDashboard returns what is wrong with the dashboard's panels, and the
// metrics they use.
func checkDashboard(d dashboard, known map[string]string) (problems []string, used map[string]bool) {
	used = map[string]bool{}
	panels := flatten(d.Panels)
	if len(panels) == 0 {
		problems = append(problems, "the dashboard has no panel")
	}
	for _, p := range panels {
		where := fmt.Sprintf("panel %d %q", p.ID, p.Title)
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			problems = append(problems, where+": its datasource is not ${datasource}")
		}
		if len(p.Targets) == 0 {
			problems = append(problems, where+": no target")
		}
		for _, tg := range p.Targets {
			where := where + " target " + tg.RefID
			if tg.Datasource == nil || tg.Datasource.UID != "${datasource}" {
				problems = append(problems, where+": its datasource is not ${datasource}")
			}
			refs := metricRefs(tg.Expr)
			if len(refs) == 0 {
				problems = append(problems, fmt.Sprintf("%s: no mitosis metric in %q", where, tg.Expr))
			}
			blank := blankStrings(tg.Expr)
			for _, r := range refs {
				used[r.name] = true
				if !knownMetric(r.name, known) {
					problems = append(problems, fmt.Sprintf("%s: %s is not a metric of docs/telemetry.md", where, r.name))
				}
				// The selector right after the name filters on the cluster variable.
				rest := tg.Expr[r.end:]
				end := strings.IndexByte(blank[r.end:], '}')
				if !strings.HasPrefix(rest, "{") || end < 0 || !strings.Contains(rest[:end], `cluster=~"$cluster"`) {
					problems = append(problems, fmt.Sprintf("%s: %s is not filtered by cluster=~\"$cluster\" in %q", where, r.name, tg.Expr))
				}
			}
		}
	}
	return problems, used
}

type rulesFileT struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Record      string            `yaml:"record"`
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// checkRules returns the rules' expressions' names that are neither metrics
// of docs/telemetry.md nor series the rules record.
func checkRules(rules rulesFileT, known map[string]string) []string {
	recorded := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				recorded[r.Record] = true
			}
		}
	}
	var problems []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			refs := metricRefs(r.Expr)
			if len(refs) == 0 {
				problems = append(problems, fmt.Sprintf("rule %s%s: no mitosis metric in %q", r.Record, r.Alert, r.Expr))
			}
			for _, ref := range refs {
				if !knownMetric(ref.name, known) && !recorded[ref.name] {
					problems = append(problems, fmt.Sprintf("rule %s%s: %s is not a metric of docs/telemetry.md", r.Record, r.Alert, ref.name))
				}
			}
		}
	}
	return problems
}

func readRules(t *testing.T, path string) rulesFileT {
	t.Helper()
	var r rulesFileT
	readYAML(t, path, &r)
	if len(r.Groups) == 0 {
		t.Fatalf("%s: no rule group", path)
	}
	return r
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func runIn(dir, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}
