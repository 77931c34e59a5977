// Package prometheus is the metrics source that reads a Prometheus server
// through client_golang's API client: named PromQL queries from the
// configuration, cluster-level or per node, each value with its sample's
// age. A snapshot that cannot be trusted (Prometheus unreachable, a query
// failing or coming back empty, a value NaN, infinite or stale) says why
// in metrics.Snapshot.Unavailable; the next good snapshot is trusted
// again. docs/metrics.md describes the configuration and every reason.
package prometheus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/mitosis-autoscaler/mitosis/metrics"
	"github.com/mitosis-autoscaler/mitosis/plan"
)

// Source takes snapshots from one Prometheus server. It is safe for
// concurrent use.
type Source struct {
	cfg Config
	api v1.API
	log *slog.Logger
}

// New checks cfg (after applying its defaults) and makes the source; it
// does not contact Prometheus. A nil logger discards.
func New(cfg Config, logger *slog.Logger) (*Source, error) {
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("prometheus: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	rt, err := transport(cfg)
	if err != nil {
		return nil, fmt.Errorf("prometheus: %w", err)
	}
	c, err := api.NewClient(api.Config{Address: cfg.URL, RoundTripper: rt})
	if err != nil {
		return nil, errors.New("prometheus: url: not usable")
	}
	return &Source{cfg: cfg, api: v1.NewAPI(c), log: logger}, nil
}

// transport builds the HTTP transport: TLS from files, and the
// credentials added to every request.
func transport(cfg Config) (http.RoundTripper, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	tc, err := cfg.TLS.config()
	if err != nil {
		return nil, err
	}
	if tc != nil {
		t.TLSClientConfig = tc
	}
	return &authTransport{next: t, basic: cfg.BasicAuth, tokenFile: cfg.BearerTokenFile}, nil
}

// authTransport adds the credentials, read from their files on every
// request so that a rotated secret is picked up without a restart.
type authTransport struct {
	next      http.RoundTripper
	basic     *BasicAuth
	tokenFile string
}

func (a *authTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if a.basic == nil && a.tokenFile == "" {
		return a.next.RoundTrip(r)
	}
	r = r.Clone(r.Context())
	if a.basic != nil {
		pw, err := readSecret(a.basic.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("basic_auth.password_file: %w", err)
		}
		r.SetBasicAuth(a.basic.Username, pw)
	} else {
		tok, err := readSecret(a.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("bearer_token_file: %w", err)
		}
		r.Header.Set("Authorization", "Bearer "+tok)
	}
	return a.next.RoundTrip(r)
}

// ClusterVar in a query is replaced by the name of the cluster the
// snapshot is for, so that one query serves every cluster (cluster names
// are restricted to characters that need no escaping in PromQL).
const ClusterVar = "$cluster"

// Snapshot runs every configured query (concurrently, all within the
// timeout) and maps the results to the cluster's nodes. Problems do not
// fail it: they are joined, one per query in configuration order, in
// Snapshot.Unavailable. Values that were good are kept alongside, for the
// record. With no nodes, the per-node queries are not run.
func (s *Source) Snapshot(ctx context.Context, cluster string, nodes []plan.Node) metrics.Snapshot {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	snap := metrics.Snapshot{Cluster: map[string]metrics.Sample{}, Nodes: map[string]map[string]metrics.Sample{}}
	problems := make([]string, len(s.cfg.Queries))
	results := make([]result, len(s.cfg.Queries))
	var wg sync.WaitGroup
	for i, q := range s.cfg.Queries {
		if q.PerNode && len(nodes) == 0 {
			continue
		}
		q.Query = strings.ReplaceAll(q.Query, ClusterVar, cluster)
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], problems[i] = s.run(ctx, q)
		}()
	}
	wg.Wait()
	for i, q := range s.cfg.Queries {
		if problems[i] != "" || (q.PerNode && len(nodes) == 0) {
			continue
		}
		if q.PerNode {
			problems[i] = s.perNode(q, results[i], nodes, snap.Nodes)
		} else {
			problems[i] = s.clusterLevel(q, results[i], snap.Cluster)
		}
	}
	var reasons []string
	for i, p := range problems {
		if p != "" {
			reasons = append(reasons, fmt.Sprintf("query %q: %s", s.cfg.Queries[i].Name, p))
		}
	}
	snap.Unavailable = strings.Join(reasons, "; ")
	if snap.Unavailable != "" {
		s.log.Warn("metrics unavailable", "cluster", cluster, "reason", snap.Unavailable)
	}
	return snap
}

// series is one result series: its labels, value and sample age.
type series struct {
	labels model.Metric
	value  float64
	age    time.Duration
	// aged reports whether the age is known (false for a scalar).
	aged bool
}

// result is what one query returned.
type result struct {
	scalar bool
	series []series
}

// run evaluates a query and, alongside, timestamp(query), whose values
// are the samples' own timestamps (for a plain selector or a recorded
// series; an expression computed at query time has the evaluation's).
// The age is the evaluation time minus the sample's, both Prometheus's
// clock, so the clocks of mitosis and Prometheus need not agree.
func (s *Source) run(ctx context.Context, q Query) (result, string) {
	start := time.Now()
	var (
		val, ts         model.Value
		valErr, tsErr   error
		valWarn, tsWarn v1.Warnings
		wg              sync.WaitGroup
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		val, valWarn, _, valErr = s.api.Query(ctx, q.Query, time.Time{}, v1.WithTimeout(s.cfg.Timeout))
	}()
	go func() {
		defer wg.Done()
		ts, tsWarn, _, tsErr = s.api.Query(ctx, timestampOf(q.Query), time.Time{}, v1.WithTimeout(s.cfg.Timeout))
	}()
	wg.Wait()
	for _, w := range append(valWarn, tsWarn...) {
		s.log.Warn("prometheus warning", "query", q.Name, "warning", w)
	}
	s.log.Debug("prometheus query", "query", q.Name, "took", time.Since(start), "error", valErr)
	if valErr != nil {
		return result{}, s.describe(ctx, valErr)
	}
	switch v := val.(type) {
	case *model.Scalar:
		// timestamp() takes no scalar: its error is expected, and a
		// scalar's age is unknown (its timestamp is the evaluation's).
		if q.PerNode {
			return result{}, "returned a scalar, want a vector with a series per node"
		}
		return result{scalar: true, series: []series{{value: float64(v.Value)}}}, ""
	case model.Vector:
		if tsErr != nil {
			return result{}, "timestamp(): " + s.describe(ctx, tsErr)
		}
		tv, ok := ts.(model.Vector)
		if !ok {
			return result{}, fmt.Sprintf("timestamp() returned a %s, want a vector", ts.Type())
		}
		// Join the two by their labels; timestamp() drops the name.
		times := make(map[model.Fingerprint]*model.Sample, len(tv))
		for _, smp := range tv {
			times[withoutName(smp.Metric).Fingerprint()] = smp
		}
		r := result{series: make([]series, 0, len(v))}
		for _, smp := range v {
			se := series{labels: smp.Metric, value: float64(smp.Value)}
			if t, ok := times[withoutName(smp.Metric).Fingerprint()]; ok {
				se.aged = true
				se.age = max(0, t.Timestamp.Time().Sub(time.UnixMilli(int64(math.Round(float64(t.Value)*1000)))))
			}
			r.series = append(r.series, se)
		}
		return r, ""
	default:
		return result{}, fmt.Sprintf("returned a %s, want a vector or a scalar", val.Type())
	}
}

// timestampOf wraps a query in timestamp(). The closing parenthesis goes
// on a line of its own: a query may end in a # comment (a YAML block
// scalar invites one), which would otherwise swallow it.
func timestampOf(query string) string {
	return "timestamp(" + query + "\n)"
}

func withoutName(m model.Metric) model.Metric {
	if _, ok := m[model.MetricNameLabel]; !ok {
		return m
	}
	c := m.Clone()
	delete(c, model.MetricNameLabel)
	return c
}

// describe says what went wrong with a request.
func (s *Source) describe(ctx context.Context, err error) string {
	var apiErr *v1.Error
	var netErr net.Error
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("timed out after %s", s.cfg.Timeout)
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.As(err, &apiErr):
		// client_golang decodes only scalars, vectors and matrices: a
		// string result comes back as its bad_response, which is the
		// query's fault, not Prometheus's.
		if t, ok := strings.CutPrefix(apiErr.Msg, "unexpected value type "); ok && apiErr.Type == v1.ErrBadResponse {
			return fmt.Sprintf("returned a %s, want a vector or a scalar", strings.Trim(t, `"`))
		}
		return fmt.Sprintf("prometheus answered with an error: %s", apiErr.Error())
	case errors.As(err, &netErr):
		return fmt.Sprintf("prometheus unreachable: %v", err)
	default:
		return fmt.Sprintf("prometheus unreachable: %v", err)
	}
}

// check says what is wrong with one sample, or "".
func (s *Source) check(se series) string {
	switch {
	case math.IsNaN(se.value):
		return "value is NaN"
	case math.IsInf(se.value, 0):
		return fmt.Sprintf("value is %v", se.value)
	case se.aged && se.age > s.cfg.Staleness:
		return fmt.Sprintf("sample is %s old, older than the staleness %s", se.age.Round(time.Millisecond), s.cfg.Staleness)
	}
	return ""
}

func (s *Source) clusterLevel(q Query, r result, out map[string]metrics.Sample) string {
	switch len(r.series) {
	case 0:
		return "no sample (empty result)"
	case 1:
	default:
		return fmt.Sprintf("%d series, want one (aggregate the query)", len(r.series))
	}
	se := r.series[0]
	if p := s.check(se); p != "" {
		return p
	}
	out[q.Name] = metrics.Sample{Value: se.value, Age: se.age}
	return ""
}

// perNode maps a vector to the nodes. A node without a usable sample
// (none, NaN, infinite, stale) is left out: missing, never zero. The
// snapshot is unavailable when the query returns no series at all, or no
// node has a usable sample (the policy could not decide on it), or a node
// has two series (the query is ambiguous: aggregate it by the label).
// An ambiguous node gets no value for the query, whichever series came
// first; the other nodes' good values are kept, for the record.
func (s *Source) perNode(q Query, r result, nodes []plan.Node, out map[string]map[string]metrics.Sample) string {
	if len(r.series) == 0 {
		return "no series (empty result)"
	}
	byKey := make(map[string][]string, len(nodes))
	for _, n := range nodes {
		k := n.Address
		if q.Match == MatchID {
			k = n.ID
		}
		if k != "" {
			byKey[k] = append(byKey[k], n.ID)
		}
	}
	// Group the series by node first: a node with two series is
	// ambiguous, and neither value may be kept for it.
	perID := map[string][]series{}
	var order []string // node ids in the order of their first series
	var unmatched int
	for _, se := range r.series {
		ids := byKey[string(se.labels[model.LabelName(q.NodeLabel)])]
		if len(ids) == 0 {
			unmatched++
			continue
		}
		for _, id := range ids {
			if perID[id] == nil {
				order = append(order, id)
			}
			perID[id] = append(perID[id], se)
		}
	}
	var ambiguous string
	var bad int
	var badWhy []string
	for _, id := range order {
		ss := perID[id]
		if len(ss) > 1 {
			if ambiguous == "" {
				v := ss[1].labels[model.LabelName(q.NodeLabel)]
				ambiguous = fmt.Sprintf("two series for node %s (%s=%q): aggregate the query by %s", id, q.NodeLabel, v, q.NodeLabel)
			}
			continue
		}
		se := ss[0]
		if p := s.check(se); p != "" {
			bad++
			badWhy = append(badWhy, fmt.Sprintf("%s: %s", id, p))
			continue
		}
		m := out[id]
		if m == nil {
			m = map[string]metrics.Sample{}
			out[id] = m
		}
		m[q.Name] = metrics.Sample{Value: se.value, Age: se.age}
	}
	sort.Strings(badWhy)
	s.log.Debug("per-node query mapped", "query", q.Name, "series", len(r.series), "nodes", len(perID),
		"unmatched_series", unmatched, "unusable", badWhy)
	switch {
	case ambiguous != "":
		return ambiguous
	case len(perID) == 0:
		return fmt.Sprintf("none of its %d series matches a node by %s (label %s)", len(r.series), q.Match, q.NodeLabel)
	case len(perID) == bad:
		return "no node has a usable sample: " + strings.Join(badWhy, "; ")
	}
	return ""
}
