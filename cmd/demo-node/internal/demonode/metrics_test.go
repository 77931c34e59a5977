package demonode

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"

	"github.com/mitosis-autoscaler/mitosis/node"
)

// value reads one metric's value (a counter's or gauge's) with labels.
func value(t *testing.T, h *harness, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := h.n.metrics.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if matches(m, labels) {
				if c := m.GetCounter(); c != nil {
					return c.GetValue()
				}
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no metric %s%v", name, labels)
	return 0
}

func matches(m *dto.Metric, labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		found := false
		for _, l := range m.GetLabel() {
			found = found || (l.GetName() == labels[i] && l.GetValue() == labels[i+1])
		}
		if !found {
			return false
		}
	}
	return true
}

func TestMetricsFollowTheNode(t *testing.T) {
	h := start(t, testConfig(t))
	s1 := h.work(t, "a", "").cookie
	h.work(t, "a", s1)
	h.work(t, "b", "")
	h.work(t, "", "")
	for name, want := range map[string]float64{
		"demo_node_sessions": 2, "demo_node_cache_entries": 2, "demo_node_ready": 1,
		"demo_node_work_units_total": 11, // two misses of 5, a hit of 1
	} {
		if got := value(t, h, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := value(t, h, "demo_node_cache_hit_ratio"); got < 0.33 || got > 0.34 {
		t.Errorf("demo_node_cache_hit_ratio = %v, want 1/3", got)
	}
	for result, want := range map[string]float64{"hit": 1, "miss": 2, "bad_request": 1, "unavailable": 0} {
		if got := value(t, h, "demo_node_requests_total", "result", result); got != want {
			t.Errorf("requests_total{result=%q} = %v, want %v", result, got, want)
		}
	}
	h.prepare(t, "op-1", node.PrepareSuspend)
	if got := value(t, h, "demo_node_ready"); got != 0 {
		t.Errorf("demo_node_ready = %v while prepared, want 0", got)
	}
	if err := h.api.Resume(t.Context(), h.addr, "op-1"); err != nil {
		t.Fatal(err)
	}
	if err := h.api.Detach(t.Context(), h.addr, "op-2"); err != nil {
		t.Fatal(err)
	}
	h.work(t, "c", "")
	if got := value(t, h, "demo_node_requests_total", "result", "unavailable"); got != 1 {
		t.Errorf("unavailable = %v, want the new session refused while detaching", got)
	}

	// promtool check metrics runs the same linter.
	mfs, err := h.n.metrics.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil || len(problems) != 0 {
		t.Errorf("lint: %v %v", problems, err)
	}

	// /metrics answers without a token, with the Go and process collectors.
	resp, err := http.Get(h.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{"demo_node_request_duration_seconds_bucket", "go_goroutines", "process_cpu_seconds_total"} {
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("/metrics: %s, want %s in it", resp.Status, want)
		}
	}
}
