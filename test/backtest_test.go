package test

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/internal/testenv"
	"github.com/mitosis-autoscaler/mitosis/sim"
)

// backtestLoad is two days of requests per minute: 24 and 25 June 1998
// of the World Cup trace (sim/testdata), four matches a day, sharp rises
// at kick-off.
func backtestLoad(t *testing.T) *sim.Workload {
	t.Helper()
	fh, err := os.Open("../sim/testdata/worldcup98-requests-per-minute.csv.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	z, err := gzip.NewReader(fh)
	if err != nil {
		t.Fatal(err)
	}
	w, err := sim.ReadTrace(z, "worldcup98", sim.TraceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(1998, 6, 24, 0, 0, 0, 0, time.UTC)
	return w.Slice(from, from.Add(2*24*time.Hour))
}

// TestBacktestOnARealPrometheus writes a trace as the counter a server
// would have exported, turns it into TSDB blocks with the real promtool,
// serves them with a real Prometheus, and simulates the same policy twice:
// on the trace (mitosis simulate --trace) and on Prometheus's rate of the
// counter (mitosis simulate --prometheus). The two summaries must agree.
func TestBacktestOnARealPrometheus(t *testing.T) {
	promtool := testenv.Binary(t, "promtool")
	promBin := testenv.Binary(t, "prometheus")
	mitosis, err := buildMitosis()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	load := backtestLoad(t)
	step := load.Step
	if step != time.Minute {
		t.Fatalf("the load's step is %s, want 1m", step)
	}
	peak := 0.0
	for _, v := range load.Values {
		peak = max(peak, v)
	}
	// Scale the load so that its peak needs 7 of the default cluster's 10
	// nodes of 100 req/s.
	scale := strconv.FormatFloat(700*60/peak, 'g', 6, 64)

	// The trace, as CSV for --trace, and as the counter
	// http_requests_total sampled every minute: at start + k minutes it has
	// counted the requests of the k minutes before.
	var csv, om strings.Builder
	csv.WriteString("time,requests\n")
	om.WriteString("# HELP http_requests Requests served.\n# TYPE http_requests counter\n")
	total := 0.0
	for k, v := range load.Values {
		ts := load.Start.Add(time.Duration(k) * step)
		fmt.Fprintf(&csv, "%d,%s\n", ts.Unix(), strconv.FormatFloat(v, 'f', -1, 64))
		fmt.Fprintf(&om, "http_requests_total %s %d\n", strconv.FormatFloat(total, 'f', -1, 64), ts.Unix())
		total += v
	}
	end := load.Start.Add(time.Duration(len(load.Values)) * step)
	fmt.Fprintf(&om, "http_requests_total %s %d\n# EOF\n", strconv.FormatFloat(total, 'f', -1, 64), end.Unix())
	tracePath, omPath := filepath.Join(dir, "trace.csv"), filepath.Join(dir, "requests.om")
	for p, s := range map[string]string{tracePath: csv.String(), omPath: om.String()} {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	data := filepath.Join(dir, "tsdb")
	if out, err := exec.Command(promtool, "tsdb", "create-blocks-from", "openmetrics", omPath, data).CombinedOutput(); err != nil {
		t.Fatalf("promtool tsdb create-blocks-from openmetrics: %v\n%s", err, out)
	}
	addr := startBacktestPrometheus(t, promBin, dir, data)

	// The same run, on the trace and on Prometheus.
	run := func(workload ...string) (backtestSummary, string) {
		t.Helper()
		args := append([]string{"simulate", "--scale", scale, "--seed", "1", "--out", t.TempDir()}, workload...)
		out, err := exec.Command(mitosis, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("mitosis %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return parseBacktestSummary(t, string(out)), string(out)
	}
	fromTrace, traceOut := run("--trace", tracePath)
	// rate() over [1m] at t is the increase of the minute that ends at t:
	// the minute the trace gives at t - 1m. The range ends a minute after
	// the trace so that its last minute is in; at its start, the rate has
	// a single sample and no value, so the series begins a minute later.
	query := "sum(rate(http_requests_total[1m]))"
	fromProm, promOut := run("--prometheus", "http://"+addr, "--query", query,
		"--from", load.Start.Format(time.RFC3339), "--to", strconv.FormatInt(end.Add(step).Unix(), 10), "--step", "1m")
	t.Logf("on the trace:\n%s", traceOut)
	t.Logf("on Prometheus:\n%s", promOut)

	// They may differ a little: Prometheus's rate() is a difference of the
	// counter's floats divided by the window (rounding), and it
	// extrapolates to the window's edges when the samples do not fall on
	// them — here they do, except at the range's ends, where the first
	// minute has no rate (one sample) and the series starts a minute
	// later. Hence tolerances: served within 0.1 points, node-hours and
	// requests within 2 %.
	if d := math.Abs(fromTrace.servedPct - fromProm.servedPct); d > 0.1 {
		t.Errorf("requests served: %.3f %% on the trace, %.3f %% on Prometheus (%.3f points apart, more than 0.1)", fromTrace.servedPct, fromProm.servedPct, d)
	}
	if r := math.Abs(fromProm.nodeHours/fromTrace.nodeHours - 1); r > 0.02 {
		t.Errorf("node-hours: %.1f on the trace, %.1f on Prometheus (%.2f %% apart, more than 2 %%)", fromTrace.nodeHours, fromProm.nodeHours, 100*r)
	}
	if r := math.Abs(fromProm.requests/fromTrace.requests - 1); r > 0.02 {
		t.Errorf("requests: %.0f on the trace, %.0f on Prometheus (%.2f %% apart)", fromTrace.requests, fromProm.requests, 100*r)
	}
	if fromTrace.requests == 0 || fromTrace.nodeHours == 0 {
		t.Errorf("an empty run: %+v", fromTrace)
	}
}

// startBacktestPrometheus serves the TSDB in data on a free loopback port, with no
// scrape targets, and stops it (SIGTERM, by its PID) when the test ends.
func startBacktestPrometheus(t *testing.T, bin, dir, data string) string {
	t.Helper()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte("global:\n  scrape_interval: 1m\nscrape_configs: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := testenv.FreeAddr(t)
	logPath := filepath.Join(dir, "prometheus.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.tsdb.path="+data, "--web.listen-address="+addr,
		"--storage.tsdb.retention.time=100y")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("prometheus (pid %d) did not stop within 15 s of SIGTERM", cmd.Process.Pid)
		}
		logFile.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				t.Logf("prometheus's log:\n%s", b)
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/-/ready", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return addr
			}
		}
		select {
		case err := <-exited:
			exited <- err // for the cleanup
			t.Fatalf("prometheus exited before it was ready: %v", err)
		case <-ctx.Done():
			t.Fatalf("prometheus was not ready at %s within 30 s", addr)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// backtestSummary is what the test compares of `mitosis simulate`'s summary table
// (one run).
type backtestSummary struct {
	servedPct, nodeHours, requests float64
}

func parseBacktestSummary(t *testing.T, out string) backtestSummary {
	t.Helper()
	var s backtestSummary
	var found int
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		// The run's lines, not the ideal follower's indented ones.
		line := strings.TrimRight(sc.Text(), " ")
		fields := strings.Fields(line)
		num := func(f string) float64 {
			v, err := strconv.ParseFloat(strings.ReplaceAll(f, ",", ""), 64)
			if err != nil {
				t.Fatalf("%q in %q: %v", f, line, err)
			}
			return v
		}
		switch {
		case strings.HasPrefix(line, "requests served") && len(fields) >= 3:
			s.servedPct = num(fields[2])
			found++
		case strings.HasPrefix(line, "node-hours") && len(fields) >= 2:
			s.nodeHours = num(fields[1])
			found++
		case strings.HasPrefix(line, "requests not served") && len(fields) >= 6:
			s.requests = num(fields[5])
			found++
		}
	}
	if found != 3 {
		t.Fatal(errors.New("the summary lacks requests served, not served or node-hours:\n" + out))
	}
	return s
}
