package prometheus_test

import (
	"bytes"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/mitosis-autoscaler/mitosis/metrics/prometheus"
)

func TestConfigReadsFromYAML(t *testing.T) {
	src := `
url: https://prometheus.example:9090
timeout: 5s
scrape_interval: 15s
bearer_token_file: /etc/mitosis/prometheus.token
tls: {ca_file: /etc/mitosis/ca.pem, server_name: prom}
queries:
  - {name: sessions, query: 'sum(app_sessions)'}
  - {name: queue, query: app_queue, per_node: true, node_label: node, match: id}
`
	var c prometheus.Config
	dec := yaml.NewDecoder(bytes.NewReader([]byte(src)))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	c.ApplyDefaults()
	want := prometheus.Query{Name: "queue", Query: "app_queue", PerNode: true, NodeLabel: "node", Match: "id"}
	if c.Timeout != 5*time.Second || c.Staleness != 30*time.Second || c.BearerTokenFile != "/etc/mitosis/prometheus.token" ||
		c.TLS.CAFile != "/etc/mitosis/ca.pem" || c.TLS.ServerName != "prom" || len(c.Queries) != 2 || c.Queries[1] != want {
		t.Errorf("decoded %+v", c)
	}
}
