package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// mitosis simulate backtesting a Prometheus series, against a fake
// Prometheus that answers range queries.

// promFake answers /api/v1/query_range with one series: rps(t) requests
// per second at every step, and records the requests' forms.
type promFake struct {
	rps   func(t time.Time) float64
	auth  string // the Authorization header to require, if set
	mu    sync.Mutex
	forms []url.Values
}

func (p *promFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	if r.URL.Path != "/api/v1/query_range" || (p.auth != "" && r.Header.Get("Authorization") != p.auth) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"status":"error","errorType":"unauthorized","error":"no"}`))
		return
	}
	p.mu.Lock()
	p.forms = append(p.forms, r.Form)
	p.mu.Unlock()
	start, _ := strconv.ParseFloat(r.Form.Get("start"), 64)
	end, _ := strconv.ParseFloat(r.Form.Get("end"), 64)
	step, _ := strconv.ParseFloat(r.Form.Get("step"), 64)
	var vals []string
	for s := start; s <= end+1e-9; s += step {
		vals = append(vals, fmt.Sprintf(`[%s,"%g"]`, strconv.FormatFloat(s, 'f', -1, 64), p.rps(time.Unix(int64(s), 0))))
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[%s]}]}}`, strings.Join(vals, ","))
}

func TestSimulateBacktestsAPrometheusSeries(t *testing.T) {
	from := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	p := &promFake{rps: func(t time.Time) float64 {
		if t.Sub(from) >= 30*time.Minute {
			return 250
		}
		return 50
	}}
	srv := httptest.NewServer(p)
	defer srv.Close()
	out := t.TempDir()
	query := "sum(rate(http_requests_total[1m]))"
	stdout, code, err := runCLI(t, "simulate", "--prometheus", srv.URL, "--query", query,
		"--from", "2026-11-01T00:00:00Z", "--to", strconv.FormatInt(from.Add(2*time.Hour).Unix(), 10), "--step", "30s", "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %v", code, err)
	}
	// Two hours at 30 s; the peak is the query's 250 req/s, not 250 per
	// step; 50 req/s for half an hour, then 250 for an hour and a half.
	for _, s := range []string{"2.0 h", "peak demand                     250 req/s", "of 1,440,000"} {
		if !strings.Contains(stdout, s) {
			t.Errorf("output lacks %q:\n%s", s, stdout)
		}
	}
	if len(p.forms) != 1 || p.forms[0].Get("query") != query || p.forms[0].Get("step") != "30" {
		t.Errorf("requests: %v", p.forms)
	}
	page, _ := os.ReadFile(filepath.Join(out, "report.html"))
	if !strings.Contains(string(page), srv.URL) || !strings.Contains(string(page), "http_requests_total") {
		t.Error("the report does not say where the workload came from")
	}

	// The credentials of the --config's metrics section go with its url.
	tokenFile := writeTemp(t, "token", "tok\n")
	p.auth = "Bearer tok"
	cfg := writeTemp(t, "agent.yaml", "clusters:\n  - name: web\n    max: 4\n"+
		"metrics:\n  url: "+srv.URL+"\n  bearer_token_file: "+tokenFile+"\n  queries: [{name: rps, query: up}]\n")
	args := []string{"simulate", "--prometheus", srv.URL, "--query", query, "--from", "2026-11-01T00:00:00Z", "--to", "2026-11-01T01:00:00Z", "--out", t.TempDir()}
	if _, code, err := runCLI(t, append(args, "--config", cfg)...); code != 0 {
		t.Errorf("with the config's token: exit %d: %v", code, err)
	}
	if _, code, err := runCLI(t, args...); code != 2 || !strings.Contains(err.Error(), "401") {
		t.Errorf("without it: exit %d: %v", code, err)
	}

	// A negative rate is refused, with its time.
	p.auth = ""
	p.rps = func(t time.Time) float64 {
		if t.Equal(from.Add(7 * time.Minute)) {
			return -3
		}
		return 10
	}
	if _, code, err := runCLI(t, args...); code != 2 || !strings.Contains(err.Error(), "is -3 at 2026-11-01T00:07:00Z") {
		t.Errorf("a negative rate: exit %d: %v", code, err)
	}
}

func TestSimulateBacktestFlagErrorsExitTwo(t *testing.T) {
	u := "http://127.0.0.1:1"
	q := []string{"--query", "sum(rate(x[1m]))", "--from", "1700000000", "--to", "1700003600"}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"with --trace", append([]string{"simulate", "--prometheus", u, "--trace", "t.csv"}, q...), "--prometheus, --trace or --synthetic, not several"},
		{"with --synthetic", append([]string{"simulate", "--prometheus", u, "--synthetic", "ramp"}, q...), "--prometheus, --trace or --synthetic, not several"},
		{"no query", []string{"simulate", "--prometheus", u, "--from", "1700000000", "--to", "1700003600"}, "--prometheus needs --query"},
		{"no range", []string{"simulate", "--prometheus", u, "--query", "x"}, "--prometheus needs --from and --to"},
		{"a bad time", []string{"simulate", "--prometheus", u, "--query", "x", "--from", "yesterday", "--to", "1700003600"}, `--from: "yesterday" is not a time`},
		{"an empty range", []string{"simulate", "--prometheus", u, "--query", "x", "--from", "2026-01-02T00:00:00Z", "--to", "2026-01-01T00:00:00Z"}, "must be after --from"},
		{"a query without --prometheus", []string{"simulate", "--synthetic", "ramp", "--query", "x"}, "--query goes with --prometheus"},
		{"a step in fractions of a second", append([]string{"simulate", "--prometheus", u, "--step", "7500ms"}, q...), "whole number of seconds"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, code, err := runCLI(t, c.args...)
			if code != 2 || err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("exit %d, %v; want 2 and an error with %q", code, err, c.want)
			}
		})
	}
}

// Points a trace lacks are filled with the previous value, and the
// command says how many: a result that rests on filled minutes says so.
func TestSimulateSaysHowManyMissingPointsItFilled(t *testing.T) {
	trace := writeTemp(t, "gaps.csv", "t,v\n2026-01-01T00:00:00Z,100\n2026-01-01T00:01:00Z,100\n2026-01-01T00:05:00Z,100\n")
	cmd := newRootCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs([]string{"simulate", "--trace", trace, "--out", t.TempDir()})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errOut.String(), "3 missing points filled with the previous value") {
		t.Errorf("standard error does not say what was filled:\n%s", errOut.String())
	}
}

// line is the first line of out that starts with label, after spaces.
