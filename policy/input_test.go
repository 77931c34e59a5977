package policy_test

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/mitosis-autoscaler/mitosis/policy"
)

// viaJSON is the slow, obviously right conversion: JSON and back, with
// floats given 15 significant digits, as the engine gives them.
func viaJSON(t *testing.T, in *policy.Input) ast.Value {
	t.Helper()
	var doc any
	// node_stats is derived: the engine adds it to what the JSON holds.
	b, err := json.Marshal(struct {
		*policy.Input
		NodeStats policy.NodeStats `json:"node_stats"`
	}{in, in.Stats()})
	if err != nil {
		t.Fatal(err)
	}
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.UseNumber()
	if err := d.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	b, err = json.Marshal(round15(doc))
	if err != nil {
		t.Fatal(err)
	}
	v, err := ast.ValueFromReader(strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestToValueIsTheJSONShape: the hand-written conversion gives what a JSON
// round trip gives, with empty collections instead of null.
func round15(x any) any {
	switch v := x.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = round15(e)
		}
	case []any:
		for i, e := range v {
			v[i] = round15(e)
		}
	case json.Number:
		f, err := v.Float64()
		if err == nil && f != math.Trunc(f) {
			return json.Number(strconv.FormatFloat(f, 'g', 15, 64))
		}
	}
	return x
}

func TestToValueIsTheJSONShape(t *testing.T) {
	full := clusterInput(30, 0.7, 3)
	full.Params = map[string]any{"target": 0.5, "metric": "utilization", "nested": map[string]any{"list": []any{1, "two"}}}
	full.History.Recent = []policy.RecentDecision{{SAgo: 12.5, Action: "expand", Count: 2}}
	empty := &policy.Input{
		Schema:     policy.SchemaVersion,
		Cluster:    policy.Cluster{Roles: []string{}},
		Nodes:      []policy.Node{{ID: "n", Metrics: map[string]policy.Metric{}}},
		Hosts:      []policy.Host{},
		Metrics:    map[string]policy.Metric{},
		History:    policy.History{Recent: []policy.RecentDecision{}},
		Operations: []policy.Operation{},
		Params:     map[string]any{},
	}
	for name, in := range map[string]*policy.Input{"a busy cluster": full, "empty collections": empty} {
		t.Run(name, func(t *testing.T) {
			got, err := in.ToValue()
			if err != nil {
				t.Fatal(err)
			}
			want := viaJSON(t, in)
			if got.Compare(want) != 0 {
				t.Errorf("ToValue:\n%v\nwant (JSON):\n%v", got, want)
			}
			if got.Hash() != want.Hash() {
				t.Error("equal values with different hashes")
			}
		})
	}
	t.Run("nil collections are empty, not null", func(t *testing.T) {
		v, err := (&policy.Input{Nodes: []policy.Node{{ID: "n"}}}).ToValue()
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range []string{"nodes", "hosts", "metrics", "operations", "params", "cluster.roles", "history.recent", "nodes[0].metrics"} {
			ref := ast.MustParseRef("x." + path)[1:]
			x, err := v.Find(ref)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if _, null := x.(ast.Null); null {
				t.Errorf("%s is null", path)
			}
		}
	})
	t.Run("NaN samples are left out, other non-finite numbers are null", func(t *testing.T) {
		in := &policy.Input{Nodes: []policy.Node{{
			ID: "n", AgeS: math.Inf(1),
			Metrics: map[string]policy.Metric{"nan": {Value: math.NaN()}, "ok": {Value: 0.5}},
		}}}
		v, err := in.ToValue()
		if err != nil {
			t.Fatal(err)
		}
		metrics, _ := v.Find(ast.MustParseRef("x.nodes[0].metrics")[1:])
		if metrics.(ast.Object).Len() != 1 {
			t.Errorf("metrics %v, want only ok", metrics)
		}
		age, _ := v.Find(ast.MustParseRef("x.nodes[0].age_s")[1:])
		if _, null := age.(ast.Null); !null {
			t.Errorf("age_s %v, want null", age)
		}
	})
	t.Run("params that are not JSON-like are an error", func(t *testing.T) {
		in := &policy.Input{Params: map[string]any{"f": func() {}}}
		if _, err := in.ToValue(); err == nil {
			t.Error("no error")
		}
	})
}

func TestReadInput(t *testing.T) {
	f, err := os.Open("testdata/input-4-nodes.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	in, err := policy.ReadInput(f, "input-4-nodes.json")
	if err != nil {
		t.Fatal(err)
	}
	if in.Schema != 1 || len(in.Nodes) != 5 || in.Nodes[1].Metrics["cache_hit_ratio"].Value != 0.94 {
		t.Errorf("read %+v", in)
	}

	for _, c := range []struct {
		name, doc string
		want      string // the error, exactly
	}{
		{
			name: "an unknown top-level field",
			doc:  "{\n  \"schema\": 1,\n  \"clusters\": {}\n}",
			want: `in.json:3:3: unknown field "clusters" (the fields are "schema", "now", "cluster", "nodes", "hosts", "metrics", "health", "history", "estimates", "operations", "params")`,
		},
		{
			name: "an unknown field deep in a node",
			doc:  "{\"nodes\": [{\"id\": \"a\"},\n {\"id\": \"b\", \"metrics\": {\"cpu\": {\"value\": 1, \"agee\": 2}}}]}",
			want: `in.json:2:46: nodes[1].metrics.cpu: unknown field "agee" (the fields are "value", "age_s")`,
		},
		{
			name: "params are free-form",
			doc:  `{"params": {"anything": {"goes": [1, {"here": true}]}}}`,
		},
		{
			name: "bad JSON names line and column",
			doc:  "{\n  \"schema\": 1,\n  \"now\": ,\n}",
			want: "in.json:3:10: now: invalid JSON: invalid character ',' looking for beginning of value",
		},
		{
			name: "a truncated document",
			doc:  "{\"nodes\": [",
			want: "in.json:1:12: nodes: invalid JSON: unexpected end of the document",
		},
		{
			name: "a value of the wrong type",
			doc:  "{\"cluster\": {\n \"max\": \"ten\"}}",
			want: "in.json:2:14: cluster.max: cannot use a JSON string as int",
		},
		{
			name: "data after the document",
			doc:  "{} {}",
			want: "in.json:1:4: unexpected data after the input document",
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			in, err := policy.ReadInput(strings.NewReader(c.doc), "in.json")
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if in.Schema != policy.SchemaVersion {
					t.Errorf("schema %d, want the default %d", in.Schema, policy.SchemaVersion)
				}
				return
			}
			var ie *policy.InputError
			if !errors.As(err, &ie) {
				t.Fatalf("got %v, want an *InputError", err)
			}
			if err.Error() != c.want {
				t.Errorf("error\n%s\nwant\n%s", err, c.want)
			}
		})
	}
}

func TestStatsSummarizesTheReadyNodesOfScalableRoles(t *testing.T) {
	m := func(v float64, age float64) policy.Metric { return policy.Metric{Value: v, AgeS: age} }
	in := &policy.Input{
		Cluster: policy.Cluster{Roles: []string{"app", "worker"}},
		Nodes: []policy.Node{
			{ID: "a", Role: "app", State: "ready", Metrics: map[string]policy.Metric{"util": m(0.2, 5), "hits": m(0.9, 5)}},
			{ID: "b", Role: "worker", State: "ready", Metrics: map[string]policy.Metric{"util": m(0.8, 30)}},
			{ID: "c", Role: "app", State: "ready", Metrics: map[string]policy.Metric{"util": m(math.NaN(), 5)}},
			{ID: "d", Role: "app", State: "draining", Metrics: map[string]policy.Metric{"util": m(5, 5)}},
			{ID: "e", Role: "central", State: "ready", Metrics: map[string]policy.Metric{"util": m(9, 5)}},
		},
	}
	got := in.Stats()
	want := policy.NodeStats{Ready: 3, Metrics: map[string]policy.MetricStats{
		// c's NaN counts as missing; d is not ready; e is not scalable.
		"util": {Count: 2, Missing: 1, Sum: 1, Mean: 0.5, Min: 0.2, Max: 0.8, MaxAgeS: 30},
		"hits": {Count: 1, Missing: 2, Sum: 0.9, Mean: 0.9, Min: 0.9, Max: 0.9, MaxAgeS: 5},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Stats:\n got %+v\nwant %+v", got, want)
	}
	if empty := (&policy.Input{}).Stats(); empty.Ready != 0 || len(empty.Metrics) != 0 {
		t.Errorf("no nodes: %+v", empty)
	}
}
