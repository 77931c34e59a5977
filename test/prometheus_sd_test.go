package test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/internal/testenv"
)

// TestPrometheusDiscoversTheNodesFromTheAgent: a real Prometheus whose
// only source of targets is the agent's GET /v1/targets (http_sd_configs,
// with the scrape config docs/metrics.md gives operators) finds the two
// demo nodes the agent's file names, labels their series with cluster,
// node and the relabelled __meta_mitosis_role, and scrapes them: up is 1.
func TestPrometheusDiscoversTheNodesFromTheAgent(t *testing.T) {
	promBin := testenv.Binary(t, "prometheus")
	demo, mitosis := built(t, buildDemoNode), built(t, buildMitosis)
	dir := t.TempDir()
	tokenFile := tokenIn(t, dir)

	nodes := map[string]string{} // id → address
	for _, id := range []string{"web-1", "web-2"} {
		addr := testenv.FreeAddr(t)
		start(t, id, demo, "--id", id, "--listen", addr, "--token-file", tokenFile, "--state-dir", dir)
		nodes[id] = addr
	}
	agentAddr, promAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	// Prometheus's own token, of the read role as docs/metrics.md asks.
	promToken := filepath.Join(dir, "prometheus.token")
	if err := os.WriteFile(promToken, []byte("sd-read-token-8c3e\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// The agent, dry: it registers its file's nodes and acts on nothing.
	conf := filepath.Join(dir, "mitosis.yaml")
	if err := os.WriteFile(conf, fmt.Appendf(nil, `tick: 1s
dry_run: true
clusters:
  - name: web
    min: 2
    max: 6
    scalable_roles: [app]
    hosts: [{name: esx-1}]
nodes:
  - {cluster: web, id: web-1, role: app, address: "%s", host: esx-1, vm: web-1}
  - {cluster: web, id: web-2, role: app, address: "%s", host: esx-1, vm: web-2}
metrics:
  url: http://%s
  scrape_interval: 1s
  queries:
    - {name: up, query: up, per_node: true}
api:
  tokens:
    - {name: prometheus, role: read, file: %s}
`, nodes["web-1"], nodes["web-2"], promAddr, promToken), 0o600); err != nil {
		t.Fatal(err)
	}
	start(t, "mitosis agent", mitosis, "agent", "--config", conf, "--token-file", tokenFile, "--listen", agentAddr)
	waitHTTP(t, "http://"+agentAddr+"/-/healthy", 10*time.Second)

	// Prometheus, with no target but those the agent gives it.
	promConf := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(promConf, fmt.Appendf(nil, `global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: app
    http_sd_configs:
      - url: http://%s/v1/targets
        refresh_interval: 1s
        authorization:
          type: Bearer
          credentials_file: %s
    relabel_configs:
      - source_labels: [__meta_mitosis_role]
        target_label: role
`, agentAddr, promToken), 0o600); err != nil {
		t.Fatal(err)
	}
	start(t, "prometheus", promBin, "--config.file="+promConf, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+promAddr, "--log.level=warn")
	waitHTTP(t, "http://"+promAddr+"/-/ready", 10*time.Second)

	// Both nodes discovered, with their labels, and scraped.
	var targets []promTarget
	deadline := time.Now().Add(15 * time.Second)
	for {
		targets = activeTargets(t, promAddr)
		if len(targets) == 2 && targets[0].Health == "up" && targets[1].Health == "up" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus has not scraped both nodes within 15 s; its targets: %+v", targets)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, tg := range targets {
		id := tg.Labels["node"]
		if nodes[id] == "" {
			t.Errorf("target %s: node label %q, want web-1 or web-2 (labels %v)", tg.ScrapeURL, id, tg.Labels)
			continue
		}
		want := map[string]string{"job": "app", "cluster": "web", "role": "app", "instance": nodes[id]}
		for k, v := range want {
			if tg.Labels[k] != v {
				t.Errorf("target %s: label %s is %q, want %q (labels %v)", tg.ScrapeURL, k, tg.Labels[k], v, tg.Labels)
			}
		}
		for k, v := range map[string]string{"__meta_mitosis_state": "ready", "__meta_mitosis_host": "esx-1", "__meta_mitosis_vm": id} {
			if tg.DiscoveredLabels[k] != v {
				t.Errorf("target %s: discovered %s is %q, want %q", tg.ScrapeURL, k, tg.DiscoveredLabels[k], v)
			}
		}
	}

	// What a query sees: up is 1 for each node, under its labels.
	var up []string
	for _, s := range promQuery(t, promAddr, `up{job="app"}`) {
		if s.Metric["cluster"] != "web" || len(s.Value) != 2 || s.Value[1] != "1" {
			t.Errorf("up %v = %v, want 1 in cluster web", s.Metric, s.Value)
		}
		up = append(up, s.Metric["node"])
	}
	slices.Sort(up)
	if !slices.Equal(up, []string{"web-1", "web-2"}) {
		t.Errorf("up for nodes %v, want web-1 and web-2", up)
	}
}

// promTarget is one of Prometheus's active targets (/api/v1/targets).
type promTarget struct {
	DiscoveredLabels map[string]string `json:"discoveredLabels"`
	Labels           map[string]string `json:"labels"`
	ScrapeURL        string            `json:"scrapeUrl"`
	Health           string            `json:"health"`
	LastError        string            `json:"lastError"`
}

// activeTargets are Prometheus's active targets, by node label.
func activeTargets(t *testing.T, promAddr string) []promTarget {
	t.Helper()
	var data struct {
		ActiveTargets []promTarget `json:"activeTargets"`
	}
	promAPI(t, promAddr, "/api/v1/targets?state=active", &data)
	slices.SortFunc(data.ActiveTargets, func(x, y promTarget) int { return strings.Compare(x.Labels["node"], y.Labels["node"]) })
	return data.ActiveTargets
}

// promSample is one series of an instant query's vector.
type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  []any             `json:"value"`
}

// promQuery runs an instant PromQL query that returns a vector.
func promQuery(t *testing.T, promAddr, query string) []promSample {
	t.Helper()
	var data struct {
		ResultType string       `json:"resultType"`
		Result     []promSample `json:"result"`
	}
	promAPI(t, promAddr, "/api/v1/query?query="+url.QueryEscape(query), &data)
	if data.ResultType != "vector" {
		t.Fatalf("%s: a %s, want a vector", query, data.ResultType)
	}
	return data.Result
}

// promAPI decodes the data of a successful answer of Prometheus's API.
func promAPI(t *testing.T, promAddr, path string, data any) {
	t.Helper()
	resp, err := http.Get("http://" + promAddr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	env := struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}{}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if env.Status != "success" {
		t.Fatalf("%s: %s %s", path, env.Status, env.Error)
	}
	if err := json.Unmarshal(env.Data, data); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
