package prometheus_test

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/metrics/prometheus"
)

// rangeFake speaks /api/v1/query_range: every series of series answers
// value(t) at each step of [start, end] (both ends included, as
// Prometheus does), except at the times in gaps. It refuses a request for
// more than 11,000 points, as Prometheus does, and records the requests.
type rangeFake struct {
	mu     sync.Mutex
	series []map[string]string
	value  func(t time.Time) float64
	gaps   map[int64]bool // Unix milliseconds without a sample
	reqs   []rangeReq
	check  func(*http.Request) bool
}

type rangeReq struct {
	query            string
	start, end, step float64 // seconds, as sent
}

func parseSeconds(s string) (float64, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return d.Seconds(), nil
	}
	return strconv.ParseFloat(s, 64)
}

func (f *rangeFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/api/v1/query_range" {
		http.NotFound(w, r)
		return
	}
	if f.check != nil && !f.check(r) {
		apiError(w, http.StatusUnauthorized, "", "unauthorized")
		return
	}
	if err := r.ParseForm(); err != nil {
		apiError(w, 400, "bad_data", err.Error())
		return
	}
	var q rangeReq
	q.query = r.Form.Get("query")
	var err1, err2, err3 error
	q.start, err1 = parseSeconds(r.Form.Get("start"))
	q.end, err2 = parseSeconds(r.Form.Get("end"))
	q.step, err3 = parseSeconds(r.Form.Get("step"))
	if err1 != nil || err2 != nil || err3 != nil || q.step <= 0 || q.end < q.start {
		apiError(w, 400, "bad_data", "bad start, end or step")
		return
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, q)
	f.mu.Unlock()
	startMS, endMS, stepMS := int64(math.Round(q.start*1000)), int64(math.Round(q.end*1000)), int64(math.Round(q.step*1000))
	if (endMS-startMS)/stepMS+1 > 11000 {
		apiError(w, 400, "bad_data", "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)")
		return
	}
	res := []any{}
	for _, labels := range f.series {
		vals := []any{}
		for ms := startMS; ms <= endMS; ms += stepMS {
			if f.gaps[ms] {
				continue
			}
			v := f.value(time.UnixMilli(ms))
			vals = append(vals, []any{float64(ms) / 1000, strconv.FormatFloat(v, 'f', -1, 64)})
		}
		if len(vals) > 0 {
			res = append(res, map[string]any{"metric": labels, "values": vals})
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": map[string]any{"resultType": "matrix", "result": res}})
}

func (f *rangeFake) serve(t *testing.T) string {
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return srv.URL
}

var t0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// linear is a value that says its own time: minutes since t0.
func linear(t time.Time) float64 { return t.Sub(t0).Minutes() }

// A month at 15 s steps is 172,800 points: 16 requests of at most 11,000,
// which cover the range exactly once, in order, without overlap or holes.
func TestQueryRangeChunksAMonthAt15s(t *testing.T) {
	f := &rangeFake{series: []map[string]string{{}}, value: linear}
	url := f.serve(t)
	from, to, step := t0, t0.Add(30*24*time.Hour), 15*time.Second
	s, err := prometheus.QueryRange(context.Background(), prometheus.Config{URL: url}, "sum(rate(x[1m]))", from, to, step, prometheus.RangeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 30 * 24 * 60 * 4
	if len(s.Values) != n || !s.Start.Equal(from) || s.Step != step || s.Filled != 0 {
		t.Fatalf("got %d values from %s at %s (%d filled), want %d from %s at %s", len(s.Values), s.Start, s.Step, s.Filled, n, from, step)
	}
	for i, v := range s.Values {
		if want := float64(i) / 4; v != want {
			t.Fatalf("value %d is %g, want %g", i, v, want)
		}
	}
	if len(f.reqs) != (n+10999)/11000 {
		t.Errorf("%d requests, want %d", len(f.reqs), (n+10999)/11000)
	}
	checkCover(t, f.reqs, from, step, n)
}

// checkCover checks that the requests ask for the n points from, from+step, …
// each exactly once.
func checkCover(t *testing.T, reqs []rangeReq, from time.Time, step time.Duration, n int) {
	t.Helper()
	sort.Slice(reqs, func(i, j int) bool { return reqs[i].start < reqs[j].start })
	next := from.UnixMilli() // the next point not yet asked for
	stepMS := step.Milliseconds()
	for i, r := range reqs {
		start, end := int64(math.Round(r.start*1000)), int64(math.Round(r.end*1000))
		if int64(math.Round(r.step*1000)) != stepMS {
			t.Fatalf("request %d: step %gs, want %s", i, r.step, step)
		}
		if start != next {
			t.Fatalf("request %d starts at %s, want %s (overlap or hole)", i, time.UnixMilli(start).UTC(), time.UnixMilli(next).UTC())
		}
		if (end-start)%stepMS != 0 {
			t.Fatalf("request %d: [%d, %d] is not a whole number of steps", i, start, end)
		}
		if pts := (end-start)/stepMS + 1; pts > 11000 {
			t.Fatalf("request %d asks for %d points", i, pts)
		}
		next = end + stepMS
	}
	if want := from.UnixMilli() + int64(n)*stepMS; next != want {
		t.Fatalf("the requests end before %s, want before %s", time.UnixMilli(next).UTC(), time.UnixMilli(want).UTC())
	}
}

// Small chunks, a range that is not a whole number of steps, and gaps:
// inside, across a chunk's boundary, a whole chunk, and at both ends.
func TestQueryRangeFillsGaps(t *testing.T) {
	step := time.Minute
	at := func(i int) int64 { return t0.Add(time.Duration(i) * step).UnixMilli() }
	gaps := map[int64]bool{}
	for _, i := range []int{0, 1, 5, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 34} {
		gaps[at(i)] = true
	}
	f := &rangeFake{series: []map[string]string{{"job": "app"}}, value: linear, gaps: gaps}
	url := f.serve(t)
	to := t0.Add(34*step + 30*time.Second) // points 0..34
	s, err := prometheus.QueryRange(context.Background(), prometheus.Config{URL: url}, "q", t0, to, step, prometheus.RangeOptions{ChunkPoints: 7})
	if err != nil {
		t.Fatal(err)
	}
	checkCover(t, f.reqs, t0, step, 35)
	// Points 2..33: 0 and 1 lead (dropped), 34 trails (dropped).
	if !s.Start.Equal(t0.Add(2*step)) || len(s.Values) != 32 {
		t.Fatalf("series from %s, %d values; want from %s, 32", s.Start, len(s.Values), t0.Add(2*step))
	}
	want := map[int]float64{5: 4, 9: 8, 10: 8, 21: 8}
	filled := 0
	for i := 2; i <= 33; i++ {
		w, ok := want[i]
		if !ok && gaps[at(i)] {
			w, ok = 8, true
		}
		if !ok {
			w = float64(i)
		} else {
			filled++
		}
		if got := s.Values[i-2]; got != w {
			t.Errorf("point %d: %g, want %g", i, got, w)
		}
	}
	if s.Filled != filled || filled != 14 {
		t.Errorf("filled %d, want %d (14)", s.Filled, filled)
	}
}

func TestQueryRangeRefusesWhatIsNotOneValuePerStep(t *testing.T) {
	ctx := context.Background()
	from, to := t0, t0.Add(time.Hour)
	cases := []struct {
		name string
		f    *rangeFake
		want []string
	}{
		{"two series", &rangeFake{series: []map[string]string{{"instance": "a"}, {"instance": "b"}}, value: linear},
			[]string{`query "my_query" returns 2 series`, `instance="a"`, "sum"}},
		{"no series", &rangeFake{value: linear}, []string{`query "my_query" returns no data`}},
		{"NaN", &rangeFake{series: []map[string]string{{}}, value: func(t time.Time) float64 {
			if t.Equal(t0.Add(17 * time.Minute)) {
				return math.NaN()
			}
			return 1
		}}, []string{`query "my_query" is NaN at 2026-03-01T00:17:00Z`}},
		{"+Inf", &rangeFake{series: []map[string]string{{}}, value: func(t time.Time) float64 {
			if t.Equal(t0.Add(40 * time.Minute)) {
				return math.Inf(1)
			}
			return 1
		}}, []string{`query "my_query" is +Inf at 2026-03-01T00:40:00Z`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := prometheus.QueryRange(ctx, prometheus.Config{URL: c.f.serve(t)}, "my_query", from, to, time.Minute, prometheus.RangeOptions{})
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	// A series in one chunk and another in the next are two series.
	f := &rangeFake{value: linear}
	url := f.serve(t)
	f.series = []map[string]string{{"instance": "a"}}
	f.gaps = map[int64]bool{}
	for i := 30; i < 60; i++ {
		f.gaps[t0.Add(time.Duration(i)*time.Minute).UnixMilli()] = true
	}
	calls := 0
	f.check = func(*http.Request) bool {
		calls++
		if calls == 2 {
			f.series = []map[string]string{{"instance": "b"}}
			f.gaps = nil
		}
		return true
	}
	_, err := prometheus.QueryRange(ctx, prometheus.Config{URL: url}, "my_query", from, to, time.Minute, prometheus.RangeOptions{ChunkPoints: 30})
	if err == nil || !strings.Contains(err.Error(), "more than one series over the range") {
		t.Errorf("a series per chunk: %v", err)
	}
}

func TestQueryRangeChecksItsArguments(t *testing.T) {
	ctx := context.Background()
	cfg := prometheus.Config{URL: "http://127.0.0.1:1"}
	for _, c := range []struct {
		name      string
		cfg       prometheus.Config
		query     string
		from, to  time.Time
		step      time.Duration
		opts      prometheus.RangeOptions
		wantError string
	}{
		{"no query", cfg, "", t0, t0.Add(time.Hour), time.Minute, prometheus.RangeOptions{}, "no query"},
		{"an empty range", cfg, "q", t0, t0, time.Minute, prometheus.RangeOptions{}, "is empty"},
		{"no step", cfg, "q", t0, t0.Add(time.Hour), 0, prometheus.RangeOptions{}, "step 0s"},
		{"too many points", cfg, "q", t0, t0.Add(time.Hour), time.Second, prometheus.RangeOptions{MaxPoints: 100}, "3600 points, more than 100"},
		{"no url", prometheus.Config{}, "q", t0, t0.Add(time.Hour), time.Minute, prometheus.RangeOptions{}, "url: required"},
		{"unreachable", cfg, "q", t0, t0.Add(time.Hour), time.Minute, prometheus.RangeOptions{}, "prometheus unreachable"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := prometheus.QueryRange(ctx, c.cfg, c.query, c.from, c.to, c.step, c.opts)
			if err == nil || !strings.Contains(err.Error(), c.wantError) {
				t.Errorf("error %v, want one with %q", err, c.wantError)
			}
		})
	}
}

// The range query connects as the source does: here, with a bearer token
// read from its file.
func TestQueryRangeSendsTheCredentials(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := &rangeFake{series: []map[string]string{{}}, value: linear,
		check: func(r *http.Request) bool { return r.Header.Get("Authorization") == "Bearer s3cret" }}
	url := f.serve(t)
	if _, err := prometheus.QueryRange(context.Background(), prometheus.Config{URL: url, BearerTokenFile: tokenFile}, "q", t0, t0.Add(time.Hour), time.Minute, prometheus.RangeOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := prometheus.QueryRange(context.Background(), prometheus.Config{URL: url}, "q", t0, t0.Add(time.Hour), time.Minute, prometheus.RangeOptions{}); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("without the token: %v", err)
	}
}
