package main

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io/fs"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/policies"
)

// runCLI runs the command in process and returns its output, the exit
// code it would end with, and the error.
func runCLI(t *testing.T, args ...string) (string, int, error) {
	t.Helper()
	cmd := newRootCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err := cmd.Execute()
	code := 0
	if err != nil {
		code = 2
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		} else {
			code = 1
		}
	}
	return out.String(), code, err
}

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSimulateBadInputExitsTwoNamingFileAndLine(t *testing.T) {
	trace := writeTemp(t, "load.csv", "period,count\n2026-01-01 00:00:00,10\n2026-01-01 00:01:00,ten\n")
	badKey := writeTemp(t, "sim.yaml", "tick: 30s\nclusters:\n  - name: app\n    min: 1\n    max: 4\nsimulation:\n  node_capacity: 50\n  warmpu: 5m\n")
	minMax := writeTemp(t, "minmax.yaml", "clusters:\n  - name: web\n    min: 5\n    max: 3\n")
	badPolicyParam := writeTemp(t, "pp.yaml", "clusters:\n  - name: web\n    max: 3\n    policy_params:\n      traget: 0.6\n")
	badInitial := writeTemp(t, "initial.yaml", "clusters:\n  - name: web\n    max: 3\nsimulation:\n  initial_nodes: 5\n")
	badParam := writeTemp(t, "param.yaml", "clusters:\n  - name: web\n    max: 3\nsimulation:\n  cold_fraction: 1.5\n")
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"a malformed trace line", []string{"simulate", "--trace", trace}, []string{trace + `:3: "ten" is not a number`}},
		{"a missing trace", []string{"simulate", "--trace", trace + ".nope"}, []string{"load.csv.nope"}},
		{"an unknown key in the simulation section", []string{"simulate", "--synthetic", "ramp", "--config", badKey}, []string{badKey, `line 8: unknown key "warmpu"`}},
		{"min above max", []string{"simulate", "--synthetic", "ramp", "--config", minMax}, []string{minMax, "clusters[0] (web).min: 5 is above max 3"}},
		{"a bad world parameter", []string{"simulate", "--synthetic", "ramp", "--config", badParam}, []string{"simulation.cold_fraction"}},
		{"a param the policy does not know", []string{"simulate", "--synthetic", "ramp", "--config", badPolicyParam}, []string{badPolicyParam + `: cluster web: policy_params: invalid policy params: unknown param "traget"`}},
		{"more initial nodes than the max", []string{"simulate", "--synthetic", "ramp", "--config", badInitial}, []string{badInitial, "simulation.initial_nodes: 5 is above cluster web's max 3"}},
		{"no workload", []string{"simulate"}, []string{"--trace FILE, --synthetic", "--prometheus URL"}},
		{"an unknown synthetic workload", []string{"simulate", "--synthetic", "tides"}, []string{`unknown synthetic workload "tides"`}},
		{"an unknown mode", []string{"simulate", "--synthetic", "ramp", "--mode", "teleport"}, []string{`--mode "teleport": want live-clone, cold-boot or both`}},
		{"compare with one directory", []string{"simulate", "--synthetic", "ramp", "--compare", "a"}, []string{"--compare takes two policy directories"}},
		{"bare numbers without a step", []string{"simulate", "--trace", writeTemp(t, "n.txt", "1 2 3\n")}, []string{"n.txt:1: a trace of bare numbers needs a step"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, code, err := runCLI(t, c.args...)
			if code != 2 {
				t.Fatalf("exit code %d (%v), want 2", code, err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
}

// Each case once ran, silently dropping, replacing or ignoring part of its
// input, or failed for the wrong reason or only after the whole run.
func TestSimulateRefusesBadInputNamingItBeforeRunning(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rows := "2026-01-01T00:01:00Z,1\n2026-01-01T00:02:00Z,2\n"
	badDate := file("bad-date.csv", "2026-13-01T00:00:00Z,5000\n"+rows)
	badValue := file("bad-value.csv", "2026-01-01T00:00:00Z,abc\n"+rows)
	huge := file("huge.csv", "t,v\n2026-01-01T00:00:00Z,1e300\n"+rows)
	ok := file("ok.csv", "t,v\n2026-01-01T00:00:00Z,1\n"+rows)
	ms := file("ms.csv", "t,v\n2026-01-01T00:00:00.000Z,1\n2026-01-01T00:00:00.001Z,1\n")
	one := file("one.csv", "t,v\n2026-01-01T00:00:00Z,1\n")
	gap := file("gap.csv", "2026-01-01T00:00:00Z,1\n2036-01-01T00:01:00Z,1\n")
	semi := file("semi.csv", "time;value\n2026-01-01T00:00:00Z;5\n")
	garbage := file("garbage.bin", "\x89PNG\r\n\x1a\n\x00\x00")
	bare := file("bare.txt", "1 2 3\n")
	aFile := file("afile", "")
	zeroCap := file("zero.yaml", "clusters:\n  - name: app\n    max: 4\nsimulation: {node_capacity: 0}\n")
	zeroRPS := file("zero-rps.yaml", "clusters:\n  - name: app\n    max: 4\nsimulation: {requests_per_session: 0}\n")
	slowWorld := file("slow.yaml", "clusters:\n  - name: app\n    max: 4\nsimulation: {step: 2m, window: 10m}\n")
	prom := httptest.NewServer(&promFake{rps: func(time.Time) float64 { return 10 }})
	defer prom.Close()
	u := prom.URL
	q := []string{"--query", "x", "--from", "1700000000", "--to", "1700003600"}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"a first row with a bad date", []string{"--trace", badDate}, badDate + `:1: "2026-13-01T00:00:00Z" is not a timestamp`},
		{"a first row with a bad value", []string{"--trace", badValue}, badValue + `:1: "abc" is not a number`},
		{"a huge value", []string{"--trace", huge}, huge + ":2: value 1e+300 per 1m0s is 1.667e+298 requests per second, above the most the simulator takes"},
		{"a huge --scale on a trace", []string{"--trace", ok, "--scale", "1e300"}, ok + ":2: value 1 per 1m0s × scale 1e+300"},
		{"a huge --scale on a synthetic workload", []string{"--synthetic", "ramp", "--scale", "1e300"}, "--scale 1e+300: makes the workload's peak demand"},
		{"an infinite --scale", []string{"--synthetic", "ramp", "--scale", "Inf"}, "--scale +Inf: must be a positive finite number"},
		{"a --step below the world's", []string{"--trace", bare, "--step", "1ns"}, "--step 1ns: must be at least the world's step, 5s (simulation.step)"},
		{"a --step below a configured world step", []string{"--trace", bare, "--step", "1m", "--config", slowWorld}, "--step 1m0s: must be at least the world's step, 2m0s"},
		{"timestamps a millisecond apart", []string{"--trace", ms}, ms + ":3: the interval from the first row (line 2), 1ms is shorter than the world's step, 5s"},
		{"a trace finer than a configured world step", []string{"--trace", ok, "--config", slowWorld}, ok + ":3: the interval from the first row (line 2), 1m0s is shorter than the world's step, 2m0s"},
		{"a backtest finer than a configured world step", append([]string{"--prometheus", u, "--config", slowWorld}, q...), "the workload's interval 1m0s is shorter than the world's step, 2m0s"},
		{"a single row", []string{"--trace", one}, one + ":2: a single row: a trace needs two rows to know its interval, or a step (--step)"},
		{"an interval of ten years", []string{"--trace", gap}, gap + ":2: the interval from the first row (line 1), 87648h1m0s is longer than 24h0m0s"},
		{"a gap of ten years", []string{"--trace", file("gap2.csv", "t,v\n2026-01-01T00:00:00Z,1\n2026-01-01T00:01:00Z,1\n2036-01-01T00:01:00Z,1\n")}, ":4: timestamp 2036-01-01T00:01:00Z is 87648h0m0s after the previous one (2026-01-01T00:01:00Z): a gap longer than both 1000 intervals of 1m0s and 24h0m0s is not filled"},
		{"semicolons", []string{"--trace", semi}, semi + `:1: "time;value" is neither two comma-separated fields (timestamp,value) nor bare numbers`},
		{"binary garbage", []string{"--trace", garbage}, garbage + `:1: "\x89PNG" is neither two comma-separated fields`},
		{"an unknown mode", []string{"--synthetic", "ramp", "--mode", "warp"}, `--mode "warp": want live-clone, cold-boot or both`},
		{"a negative --duration with a trace", []string{"--trace", ok, "--duration", "-5m"}, "--duration -5m0s: must be positive"},
		{"a zero --duration with a trace", []string{"--trace", ok, "--duration", "0"}, "--duration 0s: must be positive"},
		{"a zero --duration with a synthetic workload", []string{"--synthetic", "ramp", "--duration", "0"}, "--duration 0s: must be positive"},
		{"a --duration not in whole minutes with a synthetic workload", []string{"--synthetic", "ramp", "--duration", "90s"}, "--duration 1m30s: a synthetic workload has a point a minute"},
		{"a --duration not a whole number of a trace's interval", []string{"--trace", ok, "--duration", "30s"}, "--duration 30s: must be a whole number of the workload's interval, 1m0s"},
		{"a --duration longer than the trace", []string{"--trace", ok, "--duration", "1h"}, "--duration 1h0m0s: longer than the workload, 3m0s"},
		{"an --out that is a file", []string{"--synthetic", "ramp", "--out", aFile}, "--out " + aFile + ": not a directory"},
		{"an empty --out", []string{"--synthetic", "ramp", "--out", ""}, "--out is empty"},
		{"an --out that cannot be made", []string{"--synthetic", "ramp", "--out", filepath.Join(aFile, "sub")}, "--out " + filepath.Join(aFile, "sub") + ": "},
		{"a negative --step with a synthetic workload", []string{"--synthetic", "ramp", "--step", "-1m"}, "--step -1m0s: must be positive"},
		{"a zero --step with a synthetic workload", []string{"--synthetic", "ramp", "--step", "0"}, "--step 0s: must be positive"},
		{"a --step with a synthetic workload", []string{"--synthetic", "ramp", "--step", "1m"}, "--step goes with --trace or --prometheus"},
		{"a negative --step with a backtest", append([]string{"--prometheus", u, "--step", "-1m"}, q...), "--step -1m0s: must be positive"},
		{"node_capacity given as 0", []string{"--synthetic", "ramp", "--config", zeroCap}, "simulation.node_capacity: must be positive"},
		{"requests_per_session given as 0", []string{"--synthetic", "ramp", "--config", zeroRPS}, "simulation.requests_per_session: must be positive"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"simulate"}, c.args...)
			if !strings.Contains(strings.Join(c.args, " "), "--out") {
				args = append(args, "--out", t.TempDir())
			}
			stdout, code, err := runCLI(t, args...)
			if code != 2 || err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("exit %d, %v; want 2 and an error with %q", code, err, c.want)
			}
			if stdout != "" {
				t.Errorf("it ran:\n%s", stdout)
			}
		})
	}
}

// --duration cuts a trace, and sets a synthetic workload's length, to
// exactly what it says.
func TestSimulateRunsExactlyTheDurationAsked(t *testing.T) {
	var rows strings.Builder
	for i := range 60 {
		fmt.Fprintf(&rows, "2026-01-01T00:%02d:00Z,600\n", i)
	}
	trace := writeTemp(t, "t.csv", "t,v\n"+rows.String())
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--trace", trace, "--duration", "30m"}, "30.0 min"},
		{[]string{"--trace", trace, "--duration", "1h"}, "60.0 min"},
		{[]string{"--synthetic", "ramp", "--duration", "90m"}, "90.0 min"},
	} {
		stdout, code, err := runCLI(t, append(append([]string{"simulate"}, c.args...), "--out", t.TempDir())...)
		if code != 0 || !strings.Contains(stdout, "simulated                       "+c.want) {
			t.Errorf("%v: exit %d, %v; want %s simulated:\n%s", c.args, code, err, c.want, stdout)
		}
	}
}

func TestSimulateWritesAReport(t *testing.T) {
	out := t.TempDir()
	stdout, code, err := runCLI(t, "simulate", "--synthetic", "spike", "--duration", "3h", "--seed", "7", "--mode", "both", "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %v", code, err)
	}
	for _, s := range []string{"live-clone", "cold-boot", "requests served", "node-hours", "report.html",
		"ideal follower", "target 0.6, lag 15s", "target 0.6, lag 2.0 min", "run vs ideal"} {
		if !strings.Contains(stdout, s) {
			t.Errorf("output lacks %q:\n%s", s, stdout)
		}
	}
	page, err := os.ReadFile(filepath.Join(out, "report.html"))
	if err != nil || !strings.Contains(string(page), "<svg") || !strings.Contains(string(page), "ideal follower") {
		t.Errorf("report.html: %v; want a chart and the ideal follower", err)
	}
	csv, err := os.ReadFile(filepath.Join(out, "timeline.csv"))
	if err != nil || strings.Count(string(csv), "\n") != 1+2*180 {
		t.Errorf("timeline.csv: %d lines, %v", strings.Count(string(csv), "\n"), err)
	}
}

func TestSimulateReadsATraceOfBareNumbers(t *testing.T) {
	trace := writeTemp(t, "n.txt", strings.Repeat("3000 4000 5000 30000\n", 15))
	stdout, code, err := runCLI(t, "simulate", "--trace", trace, "--step", "1m", "--scale", "0.5", "--out", t.TempDir())
	if code != 0 {
		t.Fatalf("exit %d: %v", code, err)
	}
	if !strings.Contains(stdout, "60.0 min") {
		t.Errorf("an hour of trace was not simulated:\n%s", stdout)
	}
}

// A trace ending in .gz is read through gzip; one that is not gzip is an
// error naming the file.
func TestSimulateReadsAGzippedTrace(t *testing.T) {
	var b bytes.Buffer
	z := gzip.NewWriter(&b)
	_, _ = z.Write([]byte(strings.Repeat("3000 4000 5000 30000\n", 15)))
	_ = z.Close()
	trace := writeTemp(t, "n.txt.gz", b.String())
	stdout, code, err := runCLI(t, "simulate", "--trace", trace, "--step", "1m", "--out", t.TempDir())
	if code != 0 || !strings.Contains(stdout, "60.0 min") {
		t.Fatalf("exit %d (%v); an hour of trace was not simulated:\n%s", code, err, stdout)
	}
	bad := writeTemp(t, "plain.csv.gz", "3000 4000\n")
	if _, code, err := runCLI(t, "simulate", "--trace", bad, "--step", "1m", "--out", t.TempDir()); code == 0 || err == nil || !strings.Contains(err.Error(), "plain.csv.gz") {
		t.Errorf("a .gz trace that is not gzip: exit %d, %v; want an error naming it", code, err)
	}
}

func TestSimulateComparesTwoPolicies(t *testing.T) {
	// Two copies of the default policy, side by side; then one against a
	// policy whose decisions break the contract, which fails the command.
	src, err := fs.ReadFile(policies.FS, "target_tracking.rego")
	if err != nil {
		t.Fatal(err)
	}
	// A directory may have a comma in its name: --compare takes two arguments.
	a, b := filepath.Join(t.TempDir(), "policy,a"), t.TempDir()
	if err := os.Mkdir(a, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(a, "p.rego"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b, "p.rego"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	stdout, code, err := runCLI(t, "simulate", "--synthetic", "ramp", "--duration", "2h", "--compare", a, b, "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %v", code, err)
	}
	if !strings.Contains(stdout, a) || !strings.Contains(stdout, b) {
		t.Errorf("the summary does not show both policies:\n%s", stdout)
	}
	// The follower depends on the mode, not the policy: the same under both.
	if l := line(stdout, "ideal follower"); strings.Count(l, "target 0.6, lag 15s") != 2 {
		t.Errorf("the ideal follower is not under both policies: %q", l)
	}
	page, _ := os.ReadFile(filepath.Join(out, "report.html"))
	if strings.Count(string(page), ": serving capacity") < 2 {
		t.Error("the chart lacks a capacity line per policy")
	}

	broken := t.TempDir()
	if err := os.WriteFile(filepath.Join(broken, "p.rego"), []byte("package mitosis\n\ndecision := {\"action\": \"jump\"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, code, err = runCLI(t, "simulate", "--synthetic", "ramp", "--duration", "1h", "--compare", a, broken, "--out", t.TempDir())
	if code != 1 || !strings.Contains(err.Error(), "policy evaluations failed") {
		t.Errorf("a policy whose decisions are invalid: exit %d, %v", code, err)
	}
}

// A measured clone time replaces the world's: slow clones serve less of a
// spike than fast ones.
func TestSimulateTakesAMeasuredCloneTime(t *testing.T) {
	served := func(cloneTime string) float64 {
		t.Helper()
		stdout, code, err := runCLI(t, "simulate", "--synthetic", "spike", "--duration", "3h", "--seed", "7",
			"--clone-time", cloneTime, "--out", t.TempDir())
		if code != 0 {
			t.Fatalf("--clone-time %s: exit %d: %v", cloneTime, code, err)
		}
		for line := range strings.Lines(stdout) {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "requests served"); ok {
				var pct float64
				if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%f", &pct); err == nil {
					return pct
				}
			}
		}
		t.Fatalf("no requests served line:\n%s", stdout)
		return 0
	}
	fast, slow := served("600ms"), served("10m")
	if !(fast > slow) {
		t.Errorf("served %.3f %% with 600 ms clones, %.3f %% with 10 min ones: want more with fast clones", fast, slow)
	}
	if _, code, _ := runCLI(t, "simulate", "--synthetic", "spike", "--clone-time", "-1s"); code != 2 {
		t.Errorf("a negative clone time: exit %d, want 2", code)
	}
}

// The agent's own configuration file simulates: its hypervisor and metrics
// sections are the agent's, and the simulator brings its own.
func TestSimulateTakesTheAgentsConfiguration(t *testing.T) {
	cfg := writeTemp(t, "agent.yaml", "clusters:\n  - name: web\n    max: 4\nhypervisor:\n  kind: libvirt\n  libvirt: {uri: \"qemu:///system\", image_dir: /var/lib/mitosis}\n"+
		"metrics:\n  url: http://127.0.0.1:9090\n  queries: [{name: utilization, query: up, per_node: true}]\n")
	if _, code, err := runCLI(t, "simulate", "--synthetic", "ramp", "--duration", "1h", "--config", cfg, "--out", t.TempDir()); code != 0 {
		t.Errorf("exit %d: %v", code, err)
	}
}
func line(out, label string) string {
	for l := range strings.Lines(out) {
		if strings.HasPrefix(strings.TrimSpace(l), label) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

// The ideal follower tracks the policy's target: the config's, else the
// default policy's.
func TestSimulateShowsTheIdealFollowerAtThePolicysTarget(t *testing.T) {
	cfg := writeTemp(t, "sim.yaml", "clusters:\n  - name: web\n    max: 10\n    policy_params: {target: 0.8, high: 0.9}\n")
	nodeHours := func(stdout string) float64 {
		l := strings.Fields(line(stdout, "node-hours"))
		v, _ := strconv.ParseFloat(strings.ReplaceAll(l[len(l)-1], ",", ""), 64)
		return v
	}
	var hours []float64
	for _, c := range []struct{ args []string }{{nil}, {[]string{"--config", cfg}}} {
		args := append([]string{"simulate", "--synthetic", "ramp", "--duration", "2h", "--out", t.TempDir()}, c.args...)
		stdout, code, err := runCLI(t, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %v", c.args, code, err)
		}
		target := "0.6"
		if c.args != nil {
			target = "0.8"
		}
		if l := line(stdout, "ideal follower"); !strings.Contains(l, "target "+target+", lag 15s") {
			t.Errorf("%v: %q, want the follower at target %s", c.args, l, target)
		}
		// The ideal's node-hours are the indented line after the run's.
		_, rest, _ := strings.Cut(stdout, "ideal follower")
		hours = append(hours, nodeHours(rest))
	}
	if !(hours[1] < hours[0]) {
		t.Errorf("the ideal follower used %.1f node-hours at target 0.8, %.1f at 0.6: want fewer at 0.8", hours[1], hours[0])
	}
}
