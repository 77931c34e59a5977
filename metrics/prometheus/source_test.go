package prometheus_test

import (
	"bytes"
	"context"
	"encoding/pem"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/autoscaler"
	"github.com/mitosis-autoscaler/mitosis/metrics"
	"github.com/mitosis-autoscaler/mitosis/metrics/prometheus"
	"github.com/mitosis-autoscaler/mitosis/plan"
)

// The source is the controller's metrics port.
var _ autoscaler.MetricsSource = (*prometheus.Source)(nil)

var threeNodes = []plan.Node{
	{ID: "n1", Address: "10.0.0.1:9100"},
	{ID: "n2", Address: "10.0.0.2:9100"},
	{ID: "n3", Address: "10.0.0.3:9100"},
}

func queries() []prometheus.Query {
	return []prometheus.Query{
		{Name: "sessions", Query: "sum(sessions)"},
		{Name: "cpu", Query: "cpu", PerNode: true}, // instance = address
		{Name: "queue", Query: "queue", PerNode: true, NodeLabel: "node", Match: prometheus.MatchID},
	}
}

func newSource(t *testing.T, url string, mod func(*prometheus.Config)) *prometheus.Source {
	t.Helper()
	cfg := prometheus.Config{URL: url, Timeout: 2 * time.Second, Staleness: 10 * time.Second, Queries: queries()}
	if mod != nil {
		mod(&cfg)
	}
	s, err := prometheus.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// good fills the fake with fresh, complete data.
func good(f *fakeProm) {
	f.set("sum(sessions)", one(42, time.Second))
	f.set("cpu",
		node("instance", "10.0.0.1:9100", 0.5, 2*time.Second),
		node("instance", "10.0.0.2:9100", 0.7, time.Second),
		node("instance", "10.0.0.3:9100", 0.9, 0),
		node("instance", "10.9.9.9:9100", 0.1, 0)) // another cluster's node
	f.set("queue",
		node("node", "n1", 3, time.Second),
		node("node", "n2", 4, time.Second),
		node("node", "n3", 5, time.Second))
}

// near checks an age against what the fake was told, allowing for the
// request's own time and the millisecond rounding.
func near(t *testing.T, what string, got metrics.Sample, value float64, age time.Duration) {
	t.Helper()
	if got.Value != value || got.Age < age-time.Millisecond || got.Age > age+time.Second {
		t.Errorf("%s = %+v, want value %v age ~%s", what, got, value, age)
	}
}

func TestSnapshotMapsClusterAndPerNodeValuesWithTheirAges(t *testing.T) {
	f := newFake()
	good(f)
	s := newSource(t, f.serve(t).URL, nil)
	snap := s.Snapshot(context.Background(), "c", threeNodes)
	if snap.Unavailable != "" {
		t.Fatalf("unavailable: %s", snap.Unavailable)
	}
	near(t, "sessions", snap.Cluster["sessions"], 42, time.Second)
	near(t, "n1 cpu", snap.Nodes["n1"]["cpu"], 0.5, 2*time.Second)
	near(t, "n2 cpu", snap.Nodes["n2"]["cpu"], 0.7, time.Second)
	near(t, "n3 cpu", snap.Nodes["n3"]["cpu"], 0.9, 0)
	near(t, "n3 queue", snap.Nodes["n3"]["queue"], 5, time.Second)
	if len(snap.Nodes) != 3 || len(snap.Cluster) != 1 {
		t.Errorf("snapshot %+v: want exactly the three nodes and one cluster value", snap)
	}
}

func TestSnapshotTakesAScalarForAClusterQuery(t *testing.T) {
	f := newFake()
	good(f)
	f.scalars["scalar(sum(sessions))"] = 7
	s := newSource(t, f.serve(t).URL, func(c *prometheus.Config) {
		c.Queries = []prometheus.Query{{Name: "sessions", Query: "scalar(sum(sessions))"}}
	})
	snap := s.Snapshot(context.Background(), "c", threeNodes)
	if snap.Unavailable != "" || snap.Cluster["sessions"] != (metrics.Sample{Value: 7}) {
		t.Fatalf("snapshot %+v", snap)
	}
}

func TestANodeWithoutAUsableSampleIsMissingNotZero(t *testing.T) {
	f := newFake()
	good(f)
	f.set("cpu",
		node("instance", "10.0.0.1:9100", 0.5, time.Second),
		node("instance", "10.0.0.2:9100", math.NaN(), time.Second),
		node("instance", "10.0.0.3:9100", 0.9, time.Minute)) // stale
	f.set("queue", node("node", "n1", 3, time.Second), node("node", "n2", math.Inf(1), 0))
	s := newSource(t, f.serve(t).URL, nil)
	snap := s.Snapshot(context.Background(), "c", threeNodes)
	if snap.Unavailable != "" {
		t.Fatalf("unavailable: %s", snap.Unavailable)
	}
	near(t, "n1 cpu", snap.Nodes["n1"]["cpu"], 0.5, time.Second)
	near(t, "n1 queue", snap.Nodes["n1"]["queue"], 3, time.Second)
	for _, miss := range []struct{ node, metric string }{{"n2", "cpu"}, {"n3", "cpu"}, {"n2", "queue"}, {"n3", "queue"}} {
		if v, ok := snap.Nodes[miss.node][miss.metric]; ok {
			t.Errorf("%s %s = %+v, want it missing", miss.node, miss.metric, v)
		}
	}
	if _, ok := snap.Nodes["n2"]; ok {
		t.Errorf("n2 has no usable sample at all but is in the snapshot: %+v", snap.Nodes["n2"])
	}
}

func TestBadDataMakesTheSnapshotUnavailableWithTheReason(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(f *fakeProm)
		want  string
	}{
		{"cluster query empty", func(f *fakeProm) { f.set("sum(sessions)") }, `query "sessions": no sample (empty result)`},
		{"cluster NaN", func(f *fakeProm) { f.set("sum(sessions)", one(math.NaN(), 0)) }, `query "sessions": value is NaN`},
		{"cluster +Inf", func(f *fakeProm) { f.set("sum(sessions)", one(math.Inf(1), 0)) }, `query "sessions": value is +Inf`},
		{"cluster -Inf", func(f *fakeProm) { f.set("sum(sessions)", one(math.Inf(-1), 0)) }, `query "sessions": value is -Inf`},
		{"cluster stale", func(f *fakeProm) { f.set("sum(sessions)", one(1, 30*time.Second)) },
			`query "sessions": sample is 30s old, older than the staleness 10s`},
		{"cluster two series", func(f *fakeProm) {
			f.set("sum(sessions)", node("instance", "a", 1, 0), node("instance", "b", 1, 0))
		}, `query "sessions": 2 series, want one (aggregate the query)`},
		{"query error", func(f *fakeProm) { f.fail["cpu"] = 400 }, `query "cpu": prometheus answered with an error: bad_data: parse error at char 3: boom`},
		{"server error", func(f *fakeProm) { f.fail["sum(sessions)"] = 503 }, `query "sessions": prometheus answered with an error: server_error`},
		{"per-node no series", func(f *fakeProm) { f.set("queue") }, `query "queue": no series (empty result)`},
		{"per-node matches no node", func(f *fakeProm) { f.set("cpu", node("instance", "10.9.9.9:9100", 1, 0)) },
			`query "cpu": none of its 1 series matches a node by address (label instance)`},
		{"per-node every sample unusable", func(f *fakeProm) {
			f.set("queue", node("node", "n1", math.NaN(), 0), node("node", "n2", 1, time.Hour))
		}, `query "queue": no node has a usable sample: n1: value is NaN; n2: sample is 1h0m0s old`},
		{"per-node two series for a node", func(f *fakeProm) {
			f.set("cpu", node("instance", "10.0.0.1:9100", 1, 0), fakeSeries{labels: map[string]string{"instance": "10.0.0.1:9100", "cpu": "1"}, value: 2})
		}, `query "cpu": two series for node n1 (instance="10.0.0.1:9100"): aggregate the query by instance`},
		{"per-node scalar", func(f *fakeProm) { f.scalars["cpu"] = 1 }, `query "cpu": returned a scalar, want a vector with a series per node`},
		{"timeout", func(f *fakeProm) { f.delay = time.Second }, `timed out after 300ms`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake()
			good(f)
			tc.setup(f)
			s := newSource(t, f.serve(t).URL, func(c *prometheus.Config) {
				if tc.name == "timeout" {
					c.Timeout = 300 * time.Millisecond
				}
			})
			start := time.Now()
			snap := s.Snapshot(context.Background(), "c", threeNodes)
			if !strings.Contains(snap.Unavailable, tc.want) {
				t.Errorf("Unavailable = %q, want it to contain %q", snap.Unavailable, tc.want)
			}
			if tc.name == "timeout" && time.Since(start) > 2*time.Second {
				t.Errorf("the snapshot took %s with a 300ms timeout", time.Since(start))
			}
		})
	}
}

func TestUnreachablePrometheusAndAutomaticRecovery(t *testing.T) {
	f := newFake()
	good(f)
	srv := httptest.NewUnstartedServer(f)
	addr := srv.Listener.Addr().String()
	srv.Close() // nothing listens there now
	s := newSource(t, "http://"+addr, nil)

	snap := s.Snapshot(context.Background(), "c", threeNodes)
	for _, q := range []string{"sessions", "cpu", "queue"} {
		if !strings.Contains(snap.Unavailable, `query "`+q+`": prometheus unreachable`) {
			t.Errorf("Unavailable = %q, want query %s unreachable", snap.Unavailable, q)
		}
	}

	// Prometheus comes back at the same address: the next snapshot is good.
	srv = httptest.NewUnstartedServer(f)
	l, err := listenAgain(addr)
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener = l
	srv.Start()
	defer srv.Close()
	if snap := s.Snapshot(context.Background(), "c", threeNodes); snap.Unavailable != "" || len(snap.Nodes) != 3 {
		t.Fatalf("after recovery: %+v", snap)
	}

	// Bad data, then good data again, through the same source.
	f.set("sum(sessions)", one(math.NaN(), 0))
	if snap := s.Snapshot(context.Background(), "c", threeNodes); snap.Unavailable == "" {
		t.Fatal("NaN was accepted")
	}
	good(f)
	if snap := s.Snapshot(context.Background(), "c", threeNodes); snap.Unavailable != "" {
		t.Fatalf("not recovered: %s", snap.Unavailable)
	}
}

func TestPerNodeQueriesAreNotRunForAClusterWithoutNodes(t *testing.T) {
	f := newFake()
	good(f)
	s := newSource(t, f.serve(t).URL, nil)
	snap := s.Snapshot(context.Background(), "c", nil)
	if snap.Unavailable != "" || len(snap.Nodes) != 0 || len(snap.Cluster) != 1 {
		t.Fatalf("snapshot %+v", snap)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.requests != 2 { // the cluster query and its timestamp()
		t.Errorf("%d requests, want 2", f.requests)
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const canary = "canary-s3cr3t-7f1e2d"

func TestBasicAuthFromAFileRotatesAndIsNeverLogged(t *testing.T) {
	f := newFake()
	good(f)
	pwFile := writeFile(t, "pw", canary+"\n")
	want := canary
	f.check = func(r *http.Request) bool {
		u, p, ok := r.BasicAuth()
		return ok && u == "mitosis" && p == want
	}
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := prometheus.Config{URL: f.serve(t).URL, Staleness: 10 * time.Second, Queries: queries(),
		BasicAuth: &prometheus.BasicAuth{Username: "mitosis", PasswordFile: pwFile}}
	s, err := prometheus.New(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	snap := s.Snapshot(context.Background(), "c", threeNodes)
	if snap.Unavailable != "" {
		t.Fatalf("with the right password: %s", snap.Unavailable)
	}
	// The password changes on the server: refused, and said so.
	want = "another"
	snap = s.Snapshot(context.Background(), "c", threeNodes)
	if !strings.Contains(snap.Unavailable, "client_error") {
		t.Errorf("with a wrong password: %q", snap.Unavailable)
	}
	seen = append(seen, snap.Unavailable)
	// The file is rotated: picked up without a restart.
	if err := os.WriteFile(pwFile, []byte("another"), 0o600); err != nil {
		t.Fatal(err)
	}
	if snap := s.Snapshot(context.Background(), "c", threeNodes); snap.Unavailable != "" {
		t.Errorf("after rotation: %s", snap.Unavailable)
	}
	if err := os.WriteFile(pwFile, []byte(canary), 0o600); err != nil {
		t.Fatal(err)
	}
	// The file vanishes: unavailable, naming the file.
	if err := os.Remove(pwFile); err != nil {
		t.Fatal(err)
	}
	snap = s.Snapshot(context.Background(), "c", threeNodes)
	if !strings.Contains(snap.Unavailable, "basic_auth.password_file") {
		t.Errorf("without the file: %q", snap.Unavailable)
	}
	seen = append(seen, snap.Unavailable)
	// Configuration errors.
	for _, bad := range []prometheus.Config{
		{URL: "http://mitosis:" + canary + "@127.0.0.1:1", Queries: queries()},
		{URL: "http://127.0.0.1:1/?token=" + canary, Queries: queries()},
		{URL: "http://127.0.0.1:1", Queries: queries(), BearerTokenFile: "/nonexistent/" + "x"},
	} {
		_, err := prometheus.New(bad, logger)
		if err == nil {
			t.Errorf("%+v was accepted", bad.BearerTokenFile)
			continue
		}
		seen = append(seen, err.Error())
	}
	seen = append(seen, logs.String())
	if !strings.Contains(logs.String(), "level=DEBUG") {
		t.Error("no debug log was written: the scan below would prove nothing")
	}
	for _, s := range seen {
		if strings.Contains(s, canary) {
			t.Errorf("the secret leaked: %s", s)
		}
	}
}

func TestBearerTokenAndTLSFromFiles(t *testing.T) {
	f := newFake()
	good(f)
	f.check = func(r *http.Request) bool { return r.Header.Get("Authorization") == "Bearer "+canary }
	srv := httptest.NewTLSServer(f)
	t.Cleanup(srv.Close)
	ca := writeFile(t, "ca.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})))
	tok := writeFile(t, "token", canary+"\n")
	mk := func(tlsCfg prometheus.TLS) metrics.Snapshot {
		s := newSource(t, srv.URL, func(c *prometheus.Config) { c.BearerTokenFile, c.TLS = tok, tlsCfg })
		return s.Snapshot(context.Background(), "c", threeNodes)
	}
	if snap := mk(prometheus.TLS{CAFile: ca}); snap.Unavailable != "" {
		t.Fatalf("with the CA: %s", snap.Unavailable)
	}
	// Without the CA, the system roots do not trust httptest's certificate.
	if snap := mk(prometheus.TLS{}); !strings.Contains(snap.Unavailable, "certificate") {
		t.Errorf("without the CA: %q", snap.Unavailable)
	}
	if snap := mk(prometheus.TLS{InsecureSkipVerify: true}); snap.Unavailable != "" {
		t.Errorf("insecure_skip_verify: %s", snap.Unavailable)
	}
}

func TestValidateNamesTheBadField(t *testing.T) {
	pw := writeFile(t, "pw", "x")
	base := func() prometheus.Config {
		return prometheus.Config{URL: "http://127.0.0.1:9090", Queries: queries()}
	}
	for _, tc := range []struct {
		want string
		mod  func(c *prometheus.Config)
	}{
		{"url: required", func(c *prometheus.Config) { c.URL = "" }},
		{"url: the scheme", func(c *prometheus.Config) { c.URL = "ftp://x" }},
		{"url: must not carry credentials", func(c *prometheus.Config) { c.URL = "http://u:p@x" }},
		{"timeout: must be positive", func(c *prometheus.Config) { c.Timeout = -1 }},
		{"staleness: must be positive", func(c *prometheus.Config) { c.Staleness = -1 }},
		{"scrape_interval: must be positive", func(c *prometheus.Config) { c.ScrapeInterval = -1 }},
		{"basic_auth: not with bearer_token_file", func(c *prometheus.Config) {
			c.BasicAuth, c.BearerTokenFile = &prometheus.BasicAuth{Username: "u", PasswordFile: pw}, pw
		}},
		{"basic_auth.username: required", func(c *prometheus.Config) { c.BasicAuth = &prometheus.BasicAuth{PasswordFile: pw} }},
		{"basic_auth.password_file: required", func(c *prometheus.Config) { c.BasicAuth = &prometheus.BasicAuth{Username: "u"} }},
		{"basic_auth.password_file: cannot open", func(c *prometheus.Config) {
			c.BasicAuth = &prometheus.BasicAuth{Username: "u", PasswordFile: "/nonexistent"}
		}},
		{"bearer_token_file: cannot open", func(c *prometheus.Config) { c.BearerTokenFile = "/nonexistent" }},
		{"tls: given, but url is http", func(c *prometheus.Config) { c.TLS.InsecureSkipVerify = true }},
		{"tls.cert_file: cert_file and key_file go together", func(c *prometheus.Config) { c.URL = "https://x"; c.TLS.CertFile = pw }},
		{"queries: at least one", func(c *prometheus.Config) { c.Queries = nil }},
		{"queries[1].name: required", func(c *prometheus.Config) { c.Queries[1].Name = "" }},
		{`queries[1].name: "sessions" is used twice`, func(c *prometheus.Config) { c.Queries[1].Name = "sessions" }},
		{"queries[0].query: required", func(c *prometheus.Config) { c.Queries[0].Query = "" }},
		{"queries[0].node_label: only for a per_node query", func(c *prometheus.Config) { c.Queries[0].NodeLabel = "instance" }},
		{"queries[0].match: only for a per_node query", func(c *prometheus.Config) { c.Queries[0].Match = "id" }},
		{`queries[2].match: "ip" is neither id nor address`, func(c *prometheus.Config) { c.Queries[2].Match = "ip" }},
	} {
		c := base()
		c.Queries = queries()
		tc.mod(&c)
		_, err := prometheus.New(c, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v", tc.want, err)
		}
	}
}

func TestDefaults(t *testing.T) {
	c := prometheus.Config{URL: "http://x", Queries: queries()}
	c.ApplyDefaults()
	if c.Timeout != prometheus.DefaultTimeout || c.ScrapeInterval != time.Minute || c.Staleness != 2*time.Minute {
		t.Errorf("defaults %+v", c)
	}
	if q := c.Queries[1]; q.NodeLabel != "instance" || q.Match != prometheus.MatchAddress {
		t.Errorf("per-node defaults %+v", q)
	}
	c = prometheus.Config{ScrapeInterval: 200 * time.Millisecond}
	c.ApplyDefaults()
	if c.Staleness != 400*time.Millisecond {
		t.Errorf("staleness %s, want twice the scrape interval", c.Staleness)
	}
}

// One query serves every cluster: $cluster is replaced by the name of the
// cluster the snapshot is for.
func TestAQueryNamesItsClusterWithTheClusterVariable(t *testing.T) {
	f := newFake()
	f.set(`sum(sessions{cluster="web"})`, one(42, time.Second))
	f.set(`sum(sessions{cluster="shop"})`, one(7, time.Second))
	s := newSource(t, f.serve(t).URL, func(c *prometheus.Config) {
		c.Queries = []prometheus.Query{{Name: "sessions", Query: `sum(sessions{cluster="$cluster"})`}}
	})
	for cluster, want := range map[string]float64{"web": 42, "shop": 7} {
		snap := s.Snapshot(context.Background(), cluster, threeNodes)
		if got := snap.Cluster["sessions"].Value; snap.Unavailable != "" || got != want {
			t.Errorf("cluster %s: sessions %v (unavailable %q), want %v", cluster, got, snap.Unavailable, want)
		}
	}
}

// An ambiguous per-node query makes the snapshot unavailable, and the
// value of a node with two series is not kept for the record: neither of
// them is good. The other nodes' values are.
func TestANodeWithTwoSeriesKeepsNoValueForTheQuery(t *testing.T) {
	f := newFake()
	good(f)
	f.set("cpu",
		node("instance", "10.0.0.1:9100", 0, 0), // first: would have been written before the second was seen
		node("instance", "10.0.0.2:9100", 0.7, time.Second),
		fakeSeries{labels: map[string]string{"instance": "10.0.0.1:9100", "cpu": "1"}, value: 2},
		node("instance", "10.0.0.3:9100", 0.9, 0),
		fakeSeries{labels: map[string]string{"instance": "10.0.0.3:9100", "cpu": "1"}, value: 3})
	s := newSource(t, f.serve(t).URL, nil)
	snap := s.Snapshot(context.Background(), "c", threeNodes)
	if want := `query "cpu": two series for node n1 (instance="10.0.0.1:9100"): aggregate the query by instance`; snap.Unavailable != want {
		t.Errorf("Unavailable = %q, want %q", snap.Unavailable, want)
	}
	for _, id := range []string{"n1", "n3"} {
		if v, ok := snap.Nodes[id]["cpu"]; ok {
			t.Errorf("%s cpu = %+v from one of its two series, want it missing", id, v)
		}
		near(t, id+" queue", snap.Nodes[id]["queue"], map[string]float64{"n1": 3, "n3": 5}[id], time.Second)
	}
	near(t, "n2 cpu", snap.Nodes["n2"]["cpu"], 0.7, time.Second)
}
