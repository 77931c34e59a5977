package workload_test

import (
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/sim"
	"github.com/mitosis-autoscaler/mitosis/sim/workload"
)

// A backtest is sent the --config's Prometheus connection (credentials
// included) only when the file names the same server; another server gets
// the URL alone.
func TestABacktestsCredentialsGoOnlyToTheirServer(t *testing.T) {
	fc, err := sim.ParseConfig([]byte("clusters: [{name: web, max: 4}]\nmetrics: {url: 'http://prom:9090/', bearer_token_file: /etc/token, timeout: 7s}\n"), "sim.yaml")
	if err != nil {
		t.Fatal(err)
	}
	same, err := workload.Connection("http://prom:9090", "sim.yaml", fc)
	if err != nil {
		t.Fatal(err)
	}
	if same.URL != "http://prom:9090" || same.BearerTokenFile != "/etc/token" || same.Timeout != 7*time.Second {
		t.Errorf("the configured server: %+v, want its connection", same)
	}
	other, err := workload.Connection("http://elsewhere:9090", "sim.yaml", fc)
	if err != nil {
		t.Fatal(err)
	}
	if other.URL != "http://elsewhere:9090" || other.BearerTokenFile != "" {
		t.Errorf("another server: %+v, want the URL alone", other)
	}
	if none, err := workload.Connection("http://prom:9090", "", sim.DefaultFileConfig()); err != nil || none.BearerTokenFile != "" {
		t.Errorf("without --config: %+v, %v", none, err)
	}
}
