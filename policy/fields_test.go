package policy_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/plan"
	"github.com/mitosis-autoscaler/mitosis/policy"
)

// The input contract is written once, as the Input struct and its json
// tags. Its readers are written by hand where speed matters: the builder
// (BuildInput), the Rego conversion (ToValue), the digest (Digest); the
// strict JSON reader (ReadInput) walks the struct's tags. This test walks
// the struct too, so a field added to the contract and forgotten by any
// of them fails here.

// leaf is one field of the contract ("nodes[].metrics.*.value") and how
// to change it in an input filled by fill.
type leaf struct {
	path   string
	change func(v reflect.Value)
}

// leaves lists every leaf field of t, with a change for each. Slices are
// reached through their first element, maps of structs through their one
// entry (whose key is a leaf too), other maps are leaves.
func leaves(t reflect.Type, path string) []leaf {
	switch t.Kind() {
	case reflect.Struct:
		var out []leaf
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !f.IsExported() || name == "-" {
				continue
			}
			for _, l := range leaves(f.Type, join(path, name)) {
				out = append(out, leaf{l.path, func(v reflect.Value) { l.change(v.Field(i)) }})
			}
		}
		return out
	case reflect.Slice:
		var out []leaf
		for _, l := range leaves(t.Elem(), path+"[]") {
			out = append(out, leaf{l.path, func(v reflect.Value) { l.change(v.Index(0)) }})
		}
		return out
	case reflect.Map:
		if t.Elem().Kind() != reflect.Struct {
			return []leaf{{path, func(v reflect.Value) { v.SetMapIndex(reflect.ValueOf("added"), reflect.ValueOf(any(1.5))) }}}
		}
		out := []leaf{{path + ".<key>", func(v reflect.Value) {
			k := v.MapKeys()[0]
			e := v.MapIndex(k)
			v.SetMapIndex(k, reflect.Value{})
			v.SetMapIndex(reflect.ValueOf(k.String()+"-renamed"), e)
		}}}
		for _, l := range leaves(t.Elem(), path+".*") {
			out = append(out, leaf{l.path, func(v reflect.Value) {
				k := v.MapKeys()[0]
				e := reflect.New(t.Elem()).Elem()
				e.Set(v.MapIndex(k))
				l.change(e)
				v.SetMapIndex(k, e)
			}})
		}
		return out
	}
	return []leaf{{path, func(v reflect.Value) {
		switch v.Kind() {
		case reflect.String:
			v.SetString(v.String() + "-changed")
		case reflect.Int, reflect.Int64:
			v.SetInt(v.Int() + 1)
		case reflect.Float64:
			v.SetFloat(v.Float() + 0.25)
		case reflect.Bool:
			v.SetBool(!v.Bool())
		default:
			panic("leaves: add a change for " + v.Kind().String())
		}
	}}}
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// fill sets every field of v to a value of its own, not zero: one element
// in each slice, one entry in each map.
func fill(v reflect.Value, n *int) {
	*n++
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), n)
			}
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0), n)
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		e := reflect.New(v.Type().Elem()).Elem()
		if e.Kind() == reflect.Interface {
			e.Set(reflect.ValueOf(float64(*n)))
		} else {
			fill(e, n)
		}
		v.SetMapIndex(reflect.ValueOf(fmt.Sprintf("k%d", *n)), e)
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d", *n))
	case reflect.Int, reflect.Int64:
		v.SetInt(int64(*n))
	case reflect.Float64:
		v.SetFloat(float64(*n) + 0.5)
	case reflect.Bool:
		v.SetBool(true)
	default:
		panic("fill: add a value for " + v.Kind().String())
	}
}

// filled is an input with every field set, that ReadInput accepts.
func filled() *policy.Input {
	var in policy.Input
	n := 0
	fill(reflect.ValueOf(&in).Elem(), &n)
	in.Schema = policy.SchemaVersion
	in.Cluster.Min, in.Cluster.Max = 1, 100
	in.Nodes[0].State = "ready"
	in.Nodes[0].Role = in.Cluster.Roles[0] // so that node_stats summarize it
	return &in
}

func inputLeaves(t *testing.T) []leaf {
	ls := leaves(reflect.TypeFor[policy.Input](), "")
	if len(ls) < 40 {
		t.Fatalf("only %d leaves found in the input: the walk is broken", len(ls))
	}
	return ls
}

func TestEveryReaderCoversEveryField(t *testing.T) {
	t.Run("ToValue converts every field", func(t *testing.T) {
		in := filled()
		got, err := in.ToValue()
		if err != nil {
			t.Fatal(err)
		}
		if want := viaJSON(t, in); got.Compare(want) != 0 {
			t.Errorf("ToValue:\n%v\nwant (JSON):\n%v", got, want)
		}
		for _, l := range inputLeaves(t) {
			changed := filled()
			l.change(reflect.ValueOf(changed).Elem())
			v, err := changed.ToValue()
			if err != nil {
				t.Fatal(err)
			}
			if v.Compare(got) == 0 {
				t.Errorf("%s: changing it leaves ToValue's value the same", l.path)
			}
		}
	})
	t.Run("Digest hashes every field", func(t *testing.T) {
		base := filled().Digest()
		if filled().Digest() != base {
			t.Fatal("the digest of one input differs from itself")
		}
		for _, l := range inputLeaves(t) {
			changed := filled()
			l.change(reflect.ValueOf(changed).Elem())
			if changed.Digest() == base {
				t.Errorf("%s: changing it leaves the digest the same", l.path)
			}
		}
	})
	t.Run("ReadInput reads every field and wants each", func(t *testing.T) {
		in := filled()
		doc, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		got, err := policy.ReadInput(bytes.NewReader(doc), "filled.json")
		if err != nil {
			t.Fatal(err)
		}
		if again, _ := json.Marshal(got); !bytes.Equal(again, doc) {
			t.Errorf("read back:\n%s\nwant:\n%s", again, doc)
		}
		var tree map[string]any
		if err := json.Unmarshal(doc, &tree); err != nil {
			t.Fatal(err)
		}
		// drop takes each field out of the document in turn (tree, edited
		// in place) and puts it back.
		var missing int
		var drop func(x any, path string)
		drop = func(x any, path string) {
			m, ok := x.(map[string]any)
			if !ok || strings.HasSuffix(path, "metrics") || path == "params" {
				return // free-form: any key, none required
			}
			for k, v := range m {
				delete(m, k)
				b, _ := json.Marshal(tree)
				if _, err := policy.ReadInput(bytes.NewReader(b), "x.json"); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("missing field %q", k)) {
					t.Errorf("%s: without it, ReadInput says %v", join(path, k), err)
				}
				missing++
				m[k] = v
				if arr, ok := v.([]any); ok && len(arr) > 0 {
					drop(arr[0], join(path, k)+"[]")
				} else {
					drop(v, join(path, k))
				}
			}
		}
		drop(tree, "")
		if missing < 30 {
			t.Errorf("only %d fields tried", missing)
		}
	})
	t.Run("BuildInput sets every field", func(t *testing.T) {
		now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		ago := func(s int) time.Time { return now.Add(-time.Duration(s) * time.Second) }
		in := policy.BuildInput(policy.Facts{
			Now: now, Cluster: "web",
			Limits: plan.Limits{Min: 1, Max: 9, ScalableRoles: []string{"app"}},
			State: plan.ClusterState{
				Nodes: []plan.Node{{ID: "a1", Cluster: "web", Role: "app", State: plan.NodeReady, Host: "h1", VM: "vm-a1",
					Parent: "a0", LineageDepth: 2, CreatedAt: ago(60)}},
				Operations: []plan.Operation{{ID: "op1", Kind: plan.OpExpand, Cluster: "web", Status: plan.OpRunning,
					Step: "prepare", Template: "a1", Node: "a2", Host: "h1", CreatedAt: ago(5)}},
				Scaling:   plan.ScalingState{LastExpand: ago(5), LastContract: ago(900), LastJoin: ago(300)},
				Recent:    []plan.RecentDecision{{At: ago(15), Action: plan.ActionExpand, Count: 1}},
				Estimates: plan.Estimates{CloneSeconds: 40, DrainSeconds: 90},
			},
			Hosts:       []plan.Host{{Name: "h1", Capacity: 4, VMs: 1}},
			Metrics:     map[string]policy.Metric{"load": {Value: 0.5, AgeS: 3}},
			NodeMetrics: func(string) map[string]policy.Metric { return map[string]policy.Metric{"cpu": {Value: 0.7, AgeS: 2}} },
			Unavailable: "stale",
			Params:      map[string]any{"target": 0.6},
		})
		// Health.MetricsAvailable is false when a reason is given: the one
		// field that is zero here by design.
		zeroes := zeroLeaves(reflect.ValueOf(in).Elem(), "")
		if want := []string{"health.metrics_available"}; !reflect.DeepEqual(zeroes, want) {
			t.Errorf("BuildInput left %v at zero, want only %v", zeroes, want)
		}
	})
}

// zeroLeaves lists the leaf fields of v that hold their zero value (an
// empty slice or map counts as zero, and its elements are not visited).
func zeroLeaves(v reflect.Value, path string) []string {
	switch v.Kind() {
	case reflect.Struct:
		var out []string
		for i := range v.NumField() {
			f := v.Type().Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if f.IsExported() && name != "-" {
				out = append(out, zeroLeaves(v.Field(i), join(path, name))...)
			}
		}
		return out
	case reflect.Slice:
		if v.Len() == 0 {
			return []string{path}
		}
		return zeroLeaves(v.Index(0), path+"[]")
	case reflect.Map:
		if v.Len() == 0 {
			return []string{path}
		}
		if v.Type().Elem().Kind() == reflect.Struct {
			return zeroLeaves(v.MapIndex(v.MapKeys()[0]), path+".*")
		}
		return nil
	}
	if v.IsZero() {
		return []string{path}
	}
	return nil
}
