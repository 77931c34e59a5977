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
			doc:  "{\"nodes\": [" + nodeA + ",\n {\"id\": \"b\", \"metrics\": {\"cpu\": {\"value\": 1, \"agee\": 2}}}]}",
			want: `in.json:2:46: nodes[1].metrics.cpu: unknown field "agee" (the fields are "value", "age_s")`,
		},
		{
			name: "params are free-form",
			doc:  strings.Replace(complete, `"params": {}`, `"params": {"anything": {"goes": [1, {"here": true}], "even": null}}`, 1),
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
			want: "in.json:2:9: cluster.max: cannot use a JSON string as int",
		},
		{
			name: "a metric's value of the wrong type names the node and the metric",
			doc:  "{\"nodes\": [" + nodeA + ",\n {\"metrics\": {\"utilization\": {\"value\": \"high\"}}}]}",
			want: "in.json:2:40: nodes[1].metrics.utilization.value: cannot use a JSON string as float64",
		},
		{
			name: "data after the document",
			doc:  complete + " {}",
			want: "in.json:1:" + strconv.Itoa(len(complete)+2) + ": unexpected data after the input document",
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			in, err := policy.ReadInput(strings.NewReader(c.doc), "in.json")
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if in.Schema != policy.SchemaVersion {
					t.Errorf("schema %d, want %d", in.Schema, policy.SchemaVersion)
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

// complete is a whole input document on one line, nodeA and nodeB its
// nodes.
const (
	nodeB    = `{"id": "b", "role": "app", "state": "ready", "host": "h1", "vm": "vm-b", "age_s": 60, "parent": "a", "lineage_depth": 1, "metrics": {}}`
	nodeA    = `{"id": "a", "role": "app", "state": "ready", "host": "h1", "vm": "vm-a", "age_s": 60, "parent": "", "lineage_depth": 0, "metrics": {"utilization": {"value": 0.5, "age_s": 4}}}`
	complete = `{"schema": 1, "now": 1767258000, "cluster": {"name": "web", "min": 1, "max": 4, "size": 2, "roles": ["app"]}, ` +
		`"nodes": [` + nodeA + `, ` + nodeB + `], ` +
		`"hosts": [{"name": "h1", "capacity": 0, "vms": 2}], "metrics": {}, "health": {"metrics_available": true, "reason": ""}, ` +
		`"history": {"last_expand_s_ago": -1, "last_contract_s_ago": -1, "last_join_s_ago": -1, "recent": []}, "estimates": {"clone_seconds": 0, "drain_seconds": 0}, ` +
		`"operations": [], "params": {}}`
)

// TestReadInputRefusesWhatBreaksTheContract: every field is always present,
// the schema is 1, no key is given twice, nothing is null where the
// contract wants a value, and the fields the engine relies on agree with
// each other; each error names the field and its place.
func TestReadInputRefusesWhatBreaksTheContract(t *testing.T) {
	if _, err := policy.ReadInput(strings.NewReader(complete), "in.json"); err != nil {
		t.Fatalf("the complete document: %v", err)
	}
	for _, c := range []struct {
		name     string
		doc      string
		old, new string // replaced in doc (complete when doc is "")
		want     string // the error, after "in.json:"
	}{
		{name: "null", doc: "null", want: "1:1: the input must be a JSON object, not null"},
		{name: "an array", doc: "[]", want: "1:1: the input must be a JSON object, not an array"},
		{name: "an empty object", doc: "{}", want: `1:1: missing field "schema": every field of the contract is always present`},
		{name: "schema 0", old: `"schema": 1`, new: `"schema": 0`, want: "1:12: schema: contract version 0 is not supported: want 1"},
		{name: "schema 2", old: `"schema": 1`, new: `"schema": 2`, want: "schema: contract version 2 is not supported: want 1"},
		{name: "no schema", old: `"schema": 1, `, want: `1:1: missing field "schema"`},
		{name: "no now", old: `"now": 1767258000, `, want: `1:1: missing field "now"`},
		{name: "no nodes", old: `"nodes": [` + nodeA + `, ` + nodeB + `], `, want: `1:1: missing field "nodes"`},
		{name: "no health", old: `"health": {"metrics_available": true, "reason": ""}, `, want: `1:1: missing field "health"`},
		{name: "no metrics", old: `"metrics": {}, "health"`, new: `"health"`, want: `1:1: missing field "metrics"`},
		{name: "a node without its state", old: `"state": "ready", "host": "h1", "vm": "vm-a"`, new: `"host": "h1", "vm": "vm-a"`, want: `nodes[0]: missing field "state"`},
		{name: "a health without its flag", old: `"metrics_available": true, `, want: `health: missing field "metrics_available"`},
		{name: "null nodes", old: `[` + nodeA + `, ` + nodeB + `]`, new: "null", want: "nodes: cannot use a JSON null as an array"},
		{name: "a null number", old: `"now": 1767258000`, new: `"now": null`, want: "now: cannot use a JSON null as int64"},
		{name: "a fraction where a count is wanted", old: `"size": 2`, new: `"size": 2.5`, want: "cluster.size: cannot use the JSON number 2.5 as int: want a whole number"},
		{name: "a key given twice", old: `"schema": 1, `, new: `"schema": 1, "schema": 1, `, want: `1:15: field "schema" is given twice`},
		{name: "a metric given twice", old: `"metrics": {"utilization": {"value": 0.5, "age_s": 4}}`, new: `"metrics": {"utilization": {"value": 0.5, "age_s": 4}, "utilization": {"value": 0.9, "age_s": 4}}`, want: `nodes[0].metrics: field "utilization" is given twice`},
		{name: "two nodes with one id", old: `"id": "b"`, new: `"id": "a"`, want: `nodes[1].id: "a" is also the id of nodes[0]: node ids are unique`},
		{name: "an unknown node state", old: `"state": "ready", "host": "h1", "vm": "vm-b"`, new: `"state": "running", "host": "h1", "vm": "vm-b"`, want: `nodes[1].state: "running" is not a node state (ready, preparing, draining, failed)`},
		{name: "min above max", old: `"min": 1, "max": 4`, new: `"min": 5, "max": 4`, want: "cluster.max: 4 is below cluster.min, 5"},
		{name: "a negative min", old: `"min": 1`, new: `"min": -1`, want: "cluster.min: -1 is negative"},
		{name: "a negative size", old: `"size": 2`, new: `"size": -1`, want: "cluster.size: -1 is negative"},
	} {
		t.Run(c.name, func(t *testing.T) {
			doc := c.doc
			if doc == "" {
				if !strings.Contains(complete, c.old) {
					t.Fatalf("%q is not in the document", c.old)
				}
				doc = strings.Replace(complete, c.old, c.new, 1)
			}
			_, err := policy.ReadInput(strings.NewReader(doc), "in.json")
			var ie *policy.InputError
			if !errors.As(err, &ie) {
				t.Fatalf("got %v, want an *InputError", err)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "in.json:") {
				t.Errorf("error\n%s\nwant it to hold\n%s", err, c.want)
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
