package prometheus_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/metrics"
	"github.com/mitosis-autoscaler/mitosis/metrics/prometheus"
	"github.com/mitosis-autoscaler/mitosis/plan"
)

// realSource starts a real Prometheus scraping targets and makes a source
// of the queries against it; it returns the targets' nodes and the URL.
func realSource(t *testing.T, targets []*target, groups string, staleness time.Duration, qs ...prometheus.Query) (*prometheus.Source, []plan.Node, string) {
	t.Helper()
	var nodes []plan.Node
	for i, tg := range targets {
		nodes = append(nodes, plan.Node{ID: fmt.Sprintf("n%d", i+1), Address: tg.addr})
	}
	url := startPrometheusWithRules(t, targets, groups)
	src, err := prometheus.New(prometheus.Config{
		URL: url, Timeout: 5 * time.Second,
		ScrapeInterval: 200 * time.Millisecond, Staleness: staleness, Queries: qs,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return src, nodes, url
}

// A query may end in a # comment, as a YAML block scalar invites: the
// timestamp() it is sent in still closes.
func TestAQueryEndingInACommentIsAnsweredByARealPrometheus(t *testing.T) {
	t.Parallel()
	targets := []*target{newTarget(t, "n1", 1, true), newTarget(t, "n2", 2, false)}
	src, nodes, _ := realSource(t, targets, "", 1500*time.Millisecond,
		prometheus.Query{Name: "load", Query: "sum by (instance) (app_load) / 100  # units/s", PerNode: true},
		prometheus.Query{Name: "sessions", Query: "app_sessions # a recorded gauge"},
		prometheus.Query{Name: "total", Query: "sum(app_load) # the whole cluster\n# and a last line of comment"})
	snap := poll(t, "a full snapshot", 20*time.Second, src, nodes, func(s metrics.Snapshot) bool {
		return s.Unavailable == "" && len(s.Nodes) == 2
	})
	if got := snap.Nodes["n2"]["load"].Value; got != 0.02 {
		t.Errorf("n2 load %v, want 0.02", got)
	}
	if v := snap.Cluster["sessions"]; v.Value != 42 || v.Age > 1500*time.Millisecond {
		t.Errorf("sessions %+v", v)
	}
	if v := snap.Cluster["total"]; v.Value != 3 {
		t.Errorf("total %+v", v)
	}
}

// A query of the wrong kind is named in the operator's words: a string
// is a string, a range vector a matrix.
func TestAStringOrARangeVectorIsNamedByARealPrometheus(t *testing.T) {
	t.Parallel()
	src, nodes, _ := realSource(t, nil, "", time.Second,
		prometheus.Query{Name: "word", Query: `"foo"`},
		prometheus.Query{Name: "range", Query: `up[1m]`})
	snap := src.Snapshot(context.Background(), "c", nodes)
	// Prometheus is starting: it does not listen yet, then answers 503
	// until its storage is ready.
	for i := 0; i < 100 && (strings.Contains(snap.Unavailable, "unreachable") || strings.Contains(snap.Unavailable, "503")); i++ {
		time.Sleep(100 * time.Millisecond)
		snap = src.Snapshot(context.Background(), "c", nodes)
	}
	want := `query "word": returned a string, want a vector or a scalar; query "range": returned a matrix, want a vector or a scalar`
	if snap.Unavailable != want {
		t.Errorf("Unavailable = %q, want %q", snap.Unavailable, want)
	}
}

// docs/metrics.md, "Ages and staleness": a range query keeps a stopped
// target's value for up to its range, aged 0; "and on(instance) up == 1"
// drops it at the first failed scrape.
func TestARangeQueryOutlivesAStoppedTargetUnlessJoinedWithUp(t *testing.T) {
	t.Parallel()
	targets := []*target{newTarget(t, "n1", 1, false), newTarget(t, "n2", 2, false)}
	src, nodes, _ := realSource(t, targets, "", 1500*time.Millisecond,
		prometheus.Query{Name: "plain", Query: "max_over_time(app_load[5s])", PerNode: true},
		prometheus.Query{Name: "guarded", Query: "max_over_time(app_load[5s]) and on(instance) up == 1", PerNode: true})
	poll(t, "both nodes in both queries", 20*time.Second, src, nodes, func(s metrics.Snapshot) bool {
		return s.Unavailable == "" && len(s.Nodes["n1"]) == 2 && len(s.Nodes["n2"]) == 2
	})
	targets[1].stop()
	stopped := time.Now()
	snap := poll(t, "n2 dropped by the guarded query", 3*time.Second, src, nodes, func(s metrics.Snapshot) bool {
		_, has := s.Nodes["n2"]["guarded"]
		return !has
	})
	if v, has := snap.Nodes["n2"]["plain"]; !has || v.Age != 0 || v.Value != 2 {
		t.Errorf("%s after the stop, the plain range query gives n2 %+v (present %v), want 2 aged 0", time.Since(stopped).Round(time.Millisecond), v, has)
	}
	poll(t, "n2 gone from the plain query after its range", 10*time.Second, src, nodes, func(s metrics.Snapshot) bool {
		_, has := s.Nodes["n2"]["plain"]
		return !has
	})
	if d := time.Since(stopped); d < 4*time.Second {
		t.Errorf("the plain range query dropped n2 %s after the stop, before its 5s range", d)
	}
}

// docs/metrics.md, "Recording rules": a recorded series is as old as its
// rule group's last evaluation, so a group evaluated less often than the
// staleness flaps between trusted and unavailable; a staleness above the
// group's interval does not.
func TestARecordingRuleEvaluatedLessOftenThanTheStalenessFlaps(t *testing.T) {
	t.Parallel()
	targets := []*target{newTarget(t, "n1", 1, false)}
	groups := "  - name: mitosis\n    interval: 2s\n    rules:\n      - record: cluster:app_load:sum\n        expr: sum(app_load)\n"
	q := prometheus.Query{Name: "load", Query: "cluster:app_load:sum"}
	tight, nodes, url := realSource(t, targets, groups, 400*time.Millisecond, q) // the default: twice the 200ms scrape interval
	loose, err := prometheus.New(prometheus.Config{URL: url, Staleness: 2500 * time.Millisecond, Queries: []prometheus.Query{q}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	poll(t, "the recorded series", 20*time.Second, loose, nodes, func(s metrics.Snapshot) bool { return s.Unavailable == "" })
	var tightBad, looseBad int
	for end := time.Now().Add(4 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if s := tight.Snapshot(context.Background(), "c", nodes); s.Unavailable != "" {
			tightBad++
		}
		if s := loose.Snapshot(context.Background(), "c", nodes); s.Unavailable != "" {
			looseBad++
			t.Logf("staleness 2.5s: %s", s.Unavailable)
		}
	}
	if tightBad == 0 || looseBad != 0 {
		t.Errorf("unavailable snapshots over 4s: %d with staleness 400ms (want some), %d with 2.5s (want none)", tightBad, looseBad)
	}
}
