package policy_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/plan"
	"github.com/mitosis-autoscaler/mitosis/policies"
	"github.com/mitosis-autoscaler/mitosis/policy"
)

// writeDir writes files (name: contents) into a new temporary directory.
func writeDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const noneRego = `package mitosis

decision := {"action": "none", "reason": "steady"}
`

func TestLoad(t *testing.T) {
	for _, c := range []struct {
		name  string
		files map[string]string
		// want is "" for success, else file:line and a part of the
		// message of the first problem.
		wantAt, wantMsg string
	}{
		{name: "a minimal policy loads", files: map[string]string{"p.rego": noneRego}},
		{
			name: "helper files in other packages load with it",
			files: map[string]string{
				"p.rego":   "package mitosis\n\nimport data.lib\n\ndecision := {\"action\": lib.action}\n",
				"lib.rego": "package lib\n\naction := \"none\"\n",
			},
		},
		{
			name:  "test files are not compiled",
			files: map[string]string{"p.rego": noneRego, "p_test.rego": "package mitosis_test\n\ntest_x if {\n"},
		},
		{
			name:   "a syntax error names file and line",
			files:  map[string]string{"p.rego": "package mitosis\n\ndecision := {\"action\" \"none\"}\n\nother := 1\n"},
			wantAt: "p.rego:3", wantMsg: "rego_parse_error",
		},
		{
			name:   "strict mode refuses an unused local",
			files:  map[string]string{"p.rego": "package mitosis\n\ndecision := {\"action\": \"none\"} if {\n\tx := 1\n}\n"},
			wantAt: "p.rego:4", wantMsg: "assigned var x unused",
		},
		{
			name:   "strict mode refuses an unused import",
			files:  map[string]string{"p.rego": "package mitosis\n\nimport data.foo\n\n" + strings.TrimPrefix(noneRego, "package mitosis\n\n")},
			wantAt: "p.rego:3", wantMsg: "import data.foo unused",
		},
		{
			name:   "a type error names file and line",
			files:  map[string]string{"p.rego": "package mitosis\n\ndecision := {\"action\": concat(\"\", 1)}\n"},
			wantAt: "p.rego:3", wantMsg: "rego_type_error",
		},
		{
			name:    "a policy without a decision is refused",
			files:   map[string]string{"p.rego": "package mitosis\n\nverdict := \"none\"\n"},
			wantMsg: "no decision",
		},
		{
			name:    "a directory without policies is refused",
			files:   map[string]string{"README": "nothing here"},
			wantMsg: "no policy files",
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := writeDir(t, c.files)
			e, err := policy.Load(dir)
			if c.wantMsg == "" {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				if e.Version() == "" {
					t.Error("no version")
				}
				return
			}
			var le *policy.LoadError
			if !errors.As(err, &le) {
				t.Fatalf("Load: got %v (%T), want a *LoadError", err, err)
			}
			if !strings.Contains(err.Error(), c.wantMsg) {
				t.Errorf("error %q does not say %q", err, c.wantMsg)
			}
			if c.wantAt != "" && !strings.HasPrefix(err.Error(), filepath.ToSlash(filepath.Join(dir, c.wantAt))+":") {
				t.Errorf("error %q is not at %s", err, c.wantAt)
			}
		})
	}
}

// TestForbiddenBuiltins: a policy cannot reach the network, read the
// runtime nor decide at random; calling such a built-in fails at load
// time, at the call.
func TestForbiddenBuiltins(t *testing.T) {
	for _, call := range []string{
		`http.send({"method": "get", "url": "http://127.0.0.1:1"})`,
		`net.lookup_ip_addr("localhost")`,
		`net.cidr_contains("10.0.0.0/8", "10.1.2.3")`,
		`opa.runtime()`,
		`rand.intn("x", 100)`,
		`uuid.rfc4122("x")`,
		`io.jwt.encode_sign_raw("{}", "{}", "{}")`,
		`json.match_schema({}, {"$ref": "http://127.0.0.1:1/s.json"})`,
		`crypto.x509.parse_and_verify_certificates("")`,
	} {
		name, _, _ := strings.Cut(call, "(")
		t.Run(name, func(t *testing.T) {
			src := fmt.Sprintf("package mitosis\n\ndecision := {\"action\": \"none\"} if {\n\tx := %s\n\tx != null\n}\n", call)
			dir := writeDir(t, map[string]string{"net.rego": src})
			_, err := policy.Load(dir)
			var le *policy.LoadError
			if !errors.As(err, &le) {
				t.Fatalf("Load: got %v, want a *LoadError", err)
			}
			p := le.First()
			if p.File != filepath.ToSlash(filepath.Join(dir, "net.rego")) || p.Row != 4 {
				t.Errorf("problem at %s:%d, want net.rego:4", p.File, p.Row)
			}
			if !strings.Contains(p.Message, name+" is not allowed") {
				t.Errorf("message %q does not name %s", p.Message, name)
			}
		})
	}
	t.Run("in tests too", func(t *testing.T) {
		dir := writeDir(t, map[string]string{
			"p.rego":      noneRego,
			"p_test.rego": "package mitosis_test\n\ntest_net if {\n\thttp.send({\"method\": \"get\", \"url\": \"http://127.0.0.1:1\"})\n}\n",
		})
		_, err := policy.RunTests(context.Background(), dir)
		var le *policy.LoadError
		if !errors.As(err, &le) || le.First().Row != 4 {
			t.Fatalf("RunTests: got %v, want a *LoadError at line 4", err)
		}
	})
}

// echoRego decides whatever input.params.decision says, so that the
// tests can hand the engine any decision. The decision rule is on line 4.
const echoRego = `package mitosis

# the decision is in the params
decision := input.params.decision
`

// smallInput: a 4-node cluster (app-1..app-3 ready, app-4 draining, a
// central node of another role) on two hosts.
func smallInput(decision any) *policy.Input {
	in := &policy.Input{
		Schema:  policy.SchemaVersion,
		Now:     1767258000,
		Cluster: policy.Cluster{Name: "web", Min: 1, Max: 6, Size: 4, Roles: []string{"app"}},
		Hosts:   []policy.Host{{Name: "esx1", Capacity: 8, VMs: 3}, {Name: "esx2", Capacity: 8, VMs: 2}},
		Health:  policy.Health{MetricsAvailable: true},
		Params:  map[string]any{"decision": decision},
	}
	for i, state := range []string{"ready", "ready", "ready", "draining"} {
		in.Nodes = append(in.Nodes, policy.Node{ID: fmt.Sprintf("app-%d", i+1), Role: "app", State: state, Host: "esx1"})
	}
	in.Nodes = append(in.Nodes, policy.Node{ID: "central", Role: "central", State: "ready", Host: "esx2"})
	return in
}

func TestDecideValidatesTheDecision(t *testing.T) {
	dir := writeDir(t, map[string]string{"echo.rego": echoRego})
	e, err := policy.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.ToSlash(filepath.Join(dir, "echo.rego"))
	now := time.Unix(1767258000, 0)
	type m = map[string]any
	for _, c := range []struct {
		name     string
		decision any
		want     plan.Decision // when valid
		field    string        // when invalid: the key at fault
		msg      string        // and a part of the message
	}{
		{name: "none", decision: m{"action": "none", "reason": "calm"}, want: plan.Decision{Action: plan.ActionNone, Reason: "calm"}},
		{
			name:     "expand with everything",
			decision: m{"action": "expand", "count": 2, "template": "app-1", "templates": []string{"app-2"}, "hosts": []string{"esx2"}, "force": true, "reason": "busy"},
			want:     plan.Decision{Action: plan.ActionExpand, Count: 2, Template: "app-1", Templates: []string{"app-2"}, Hosts: []string{"esx2"}, Force: true, Reason: "busy"},
		},
		{
			name:     "fail-safe expand",
			decision: m{"action": "expand", "count": 1, "template": "app-1", "fail_safe": true},
			want:     plan.Decision{Action: plan.ActionExpand, Count: 1, Template: "app-1", FailSafe: true},
		},
		{
			name:     "contract",
			decision: m{"action": "contract", "count": 1, "nodes": []string{"app-3", "app-2"}},
			want:     plan.Decision{Action: plan.ActionContract, Count: 1, Nodes: []string{"app-3", "app-2"}},
		},
		{
			name:     "a count written as a float that is whole",
			decision: m{"action": "contract", "count": 2.0, "nodes": []string{"app-3"}},
			want:     plan.Decision{Action: plan.ActionContract, Count: 2, Nodes: []string{"app-3"}},
		},
		{
			name:     "keys that do not apply to the action are dropped",
			decision: m{"action": "none", "count": 3, "template": "nope", "nodes": []string{"x"}},
			want:     plan.Decision{Action: plan.ActionNone},
		},
		{name: "not an object", decision: "expand", field: "", msg: "must be an object, got string"},
		{name: "an unknown key", decision: m{"action": "none", "urgency": 1}, field: `"urgency"`, msg: `unknown key "urgency"`},
		{name: "no action", decision: m{"count": 1}, field: "action", msg: "action is missing"},
		{name: "an unknown action", decision: m{"action": "grow"}, field: "action", msg: `action "grow" is not one of expand, contract, none`},
		{name: "an action that is not a string", decision: m{"action": 1}, field: "action", msg: "action must be a string, got number"},
		{name: "expand without count", decision: m{"action": "expand", "template": "app-1"}, field: "count", msg: "count is missing"},
		{name: "a count of zero", decision: m{"action": "expand", "count": 0, "template": "app-1"}, field: "count", msg: "count 0 is below 1"},
		{name: "a fractional count", decision: m{"action": "expand", "count": 1.5, "template": "app-1"}, field: "count", msg: "count must be an integer, got number 1.5"},
		{name: "a count above max", decision: m{"action": "expand", "count": 7, "template": "app-1"}, field: "count", msg: "count 7 is above cluster.max 6"},
		{name: "a count above size", decision: m{"action": "contract", "count": 5, "nodes": []string{"app-1"}}, field: "count", msg: "count 5 is above cluster.size 4"},
		{name: "expand without template", decision: m{"action": "expand", "count": 1}, field: "template", msg: "template is missing"},
		{name: "an unknown template", decision: m{"action": "expand", "count": 1, "template": "n9"}, field: "template", msg: `template "n9" is not a ready node of the cluster: there is no such node`},
		{name: "a template that is not ready", decision: m{"action": "expand", "count": 1, "template": "app-4"}, field: "template", msg: `template "app-4" is not a ready node of the cluster: it is draining`},
		{name: "a template of another role", decision: m{"action": "expand", "count": 1, "template": "central"}, field: "template", msg: `template "central" has role "central", which is not scalable`},
		{name: "a bad template in the list", decision: m{"action": "expand", "count": 1, "template": "app-1", "templates": []string{"app-2", "n9"}}, field: "templates[1]", msg: `templates[1] "n9" is not a ready node`},
		{name: "templates that are not strings", decision: m{"action": "expand", "count": 1, "template": "app-1", "templates": []any{"app-2", 3}}, field: "templates", msg: "templates[1] must be a string, got number 3"},
		{name: "templates that are not an array", decision: m{"action": "expand", "count": 1, "template": "app-1", "templates": "app-2"}, field: "templates", msg: "templates must be an array of strings"},
		{name: "an unknown host", decision: m{"action": "expand", "count": 1, "template": "app-1", "hosts": []string{"esx9"}}, field: "hosts", msg: `hosts[0] "esx9" is not a host of the input`},
		{name: "contract without victims", decision: m{"action": "contract", "count": 1}, field: "nodes", msg: "nodes is missing"},
		{name: "an unknown victim", decision: m{"action": "contract", "count": 1, "nodes": []string{"app-1", "n9"}}, field: "nodes[1]", msg: `nodes[1] "n9" is not a node of the cluster`},
		{name: "a victim of another role", decision: m{"action": "contract", "count": 1, "nodes": []string{"central"}}, field: "nodes[0]", msg: `has role "central", which is not scalable`},
		{name: "force that is not a boolean", decision: m{"action": "expand", "count": 1, "template": "app-1", "force": "yes"}, field: "force", msg: "force must be a boolean, got string"},
		{name: "fail_safe that is not a boolean", decision: m{"action": "expand", "count": 1, "template": "app-1", "fail_safe": 1}, field: "fail_safe", msg: "fail_safe must be a boolean"},
		{name: "a reason that is not a string", decision: m{"action": "none", "reason": []string{"x"}}, field: "reason", msg: "reason must be a string"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d, err := e.Decide(context.Background(), smallInput(c.decision), now)
			if c.msg == "" {
				if err != nil {
					t.Fatalf("Decide: %v", err)
				}
				if fmt.Sprint(d) != fmt.Sprint(c.want) {
					t.Errorf("decision %+v, want %+v", d, c.want)
				}
				return
			}
			var de *policy.DecisionError
			if !errors.As(err, &de) {
				t.Fatalf("Decide: got %+v, %v; want a *DecisionError", d, err)
			}
			if de.File != file || de.Row != 4 {
				t.Errorf("error at %s:%d, want %s:4", de.File, de.Row, file)
			}
			if de.Field != c.field {
				t.Errorf("field %q, want %q", de.Field, c.field)
			}
			if !strings.Contains(de.Message, c.msg) {
				t.Errorf("message %q does not say %q", de.Message, c.msg)
			}
			if want := fmt.Sprintf("%s:4: decision: ", file); !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error %q does not start with %q", err, want)
			}
			if d.Action != "" {
				t.Errorf("an invalid decision came back: %+v", d)
			}
		})
	}
}

// TestDecisionErrorNamesTheBranch: an invalid decision is placed at the
// rule, or the else branch of it, that produced it.
func TestDecisionErrorNamesTheBranch(t *testing.T) {
	src := `package mitosis

decision := {"action": "none"} if {
	input.cluster.size > 100
} else := {"action": "expand", "count": 1, "template": "nowhere"} if {
	input.cluster.size > 1
} else := {"action": "none"}
`
	dir := writeDir(t, map[string]string{"chain.rego": src})
	e, err := policy.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Decide(context.Background(), smallInput(nil), time.Unix(0, 0))
	var de *policy.DecisionError
	if !errors.As(err, &de) || de.Row != 5 {
		t.Fatalf("got %v, want a *DecisionError at line 5 (the else branch)", err)
	}
}

func TestDecideErrors(t *testing.T) {
	for _, c := range []struct {
		name, src string
		check     func(t *testing.T, err error, file string)
	}{
		{
			name: "an undefined decision is an error at the rule",
			src:  "package mitosis\n\ndecision := {\"action\": \"none\"} if {\n\tinput.cluster.size > 100\n}\n",
			check: func(t *testing.T, err error, file string) {
				var de *policy.DecisionError
				if !errors.As(err, &de) || de.File != file || de.Row != 3 || !strings.Contains(de.Message, "undefined") {
					t.Errorf("got %v, want an undefined decision at %s:3", err, file)
				}
			},
		},
		{
			name: "conflicting outputs are an eval error with OPA's place",
			src:  "package mitosis\n\ndecision := {\"action\": \"none\"}\n\ndecision := {\"action\": \"expand\"} if input.cluster.size > 0\n",
			check: func(t *testing.T, err error, file string) {
				var ee *policy.EvalError
				if !errors.As(err, &ee) || ee.File != file || ee.Row == 0 || !strings.Contains(ee.Message, "eval_conflict_error") {
					t.Errorf("got %v, want a conflict with its place in %s", err, file)
				}
			},
		},
		{
			name: "a built-in error is an eval error, not an undefined decision",
			src:  "package mitosis\n\ndecision := {\"action\": \"none\", \"reason\": sprintf(\"%d\", [input.cluster.size / 0])}\n",
			check: func(t *testing.T, err error, file string) {
				var ee *policy.EvalError
				if !errors.As(err, &ee) || ee.File != file || ee.Row != 3 || !strings.Contains(ee.Message, "divide by zero") {
					t.Errorf("got %v, want a division error at %s:3", err, file)
				}
			},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := writeDir(t, map[string]string{"p.rego": c.src})
			e, err := policy.Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			_, err = e.Decide(context.Background(), smallInput(nil), time.Unix(0, 0))
			c.check(t, err, filepath.ToSlash(filepath.Join(dir, "p.rego")))
		})
	}
	t.Run("a cancelled context", func(t *testing.T) {
		e := defaultEngine(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := e.Decide(ctx, clusterInput(100, 0.6, 1), time.Unix(0, 0))
		if !errors.Is(err, context.Canceled) {
			t.Errorf("got %v, want context.Canceled", err)
		}
	})
	t.Run("another schema", func(t *testing.T) {
		in := clusterInput(3, 0.6, 1)
		in.Schema = 2
		if _, err := defaultEngine(t).Decide(context.Background(), in, time.Unix(0, 0)); err == nil || !strings.Contains(err.Error(), "schema 2") {
			t.Errorf("got %v, want a schema error", err)
		}
	})
}

// TestEvalTimePinned: time.now_ns is the now given to Decide, not the
// clock's.
func TestEvalTimePinned(t *testing.T) {
	src := `package mitosis

decision := {"action": "none", "reason": sprintf("%d", [time.now_ns()])}
`
	e, err := policy.Load(writeDir(t, map[string]string{"p.rego": src}))
	if err != nil {
		t.Fatal(err)
	}
	for _, now := range []time.Time{time.Unix(0, 1), time.Date(2031, 5, 6, 7, 8, 9, 10, time.UTC)} {
		d, err := e.Decide(context.Background(), smallInput(nil), now)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprint(now.UnixNano()); d.Reason != want {
			t.Errorf("time.now_ns() = %s, want %s", d.Reason, want)
		}
	}
}

func TestVersion(t *testing.T) {
	files := map[string]string{"p.rego": noneRego}
	a, err := policy.Load(writeDir(t, files))
	if err != nil {
		t.Fatal(err)
	}
	b, err := policy.Load(writeDir(t, files))
	if err != nil {
		t.Fatal(err)
	}
	if a.Version() != b.Version() || len(a.Version()) != 32 {
		t.Errorf("the same sources give versions %q and %q", a.Version(), b.Version())
	}
	files["p_test.rego"] = "package mitosis_test\n\ntest_nothing if true\n"
	c, err := policy.Load(writeDir(t, files))
	if err != nil {
		t.Fatal(err)
	}
	if c.Version() != a.Version() {
		t.Error("a test file changed the policy's version")
	}
	files["p.rego"] = strings.Replace(noneRego, "steady", "calm", 1)
	d, err := policy.Load(writeDir(t, files))
	if err != nil {
		t.Fatal(err)
	}
	if d.Version() == a.Version() {
		t.Error("changed sources kept the version")
	}
	renamed := map[string]string{"q.rego": noneRego}
	r, err := policy.Load(writeDir(t, renamed))
	if err != nil {
		t.Fatal(err)
	}
	if r.Version() == a.Version() {
		t.Error("a renamed file kept the version")
	}
}

// TestDecideConcurrently: one engine serves concurrent ticks (run with
// -race).
func TestDecideConcurrently(t *testing.T) {
	e := defaultEngine(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			in := clusterInput(50, 0.3+0.1*float64(i), uint64(i))
			for range 5 {
				if _, err := e.Decide(context.Background(), in, time.Unix(in.Now, 0)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestParamsAreCheckedBeforeAnyDecision(t *testing.T) {
	const src = `package mitosis

param_errors contains sprintf("unknown param %q", [name]) if {
	some name, _ in input.params
	name != "target"
}

# Counts its own evaluations through the input it sees: it is the
# decision that must not run with bad params.
decision := {"action": "none", "reason": sprintf("target %v", [input.params.target])}
`
	e, err := policy.Load(writeDir(t, map[string]string{"p.rego": src}))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	in := &policy.Input{Schema: policy.SchemaVersion, Params: map[string]any{"target": 0.5}}
	for range 2 { // the second time from the cache
		d, err := e.Decide(ctx, in, time.Unix(0, 0))
		if err != nil || d.Reason != "target 0.5" {
			t.Fatalf("valid params: %+v, %v", d, err)
		}
	}
	bad := &policy.Input{Schema: policy.SchemaVersion, Params: map[string]any{"traget": 0.5, "zz": 1}}
	for range 2 {
		_, err := e.Decide(ctx, bad, time.Unix(0, 0))
		var pe *policy.ParamsError
		if !errors.As(err, &pe) || !slices.Equal(pe.Errors, []string{`unknown param "traget"`, `unknown param "zz"`}) {
			t.Fatalf("invalid params: got %v, want a ParamsError naming traget and zz", err)
		}
	}
	if err := e.CheckParams(ctx, map[string]any{"traget": 1}); err == nil || !strings.Contains(err.Error(), `unknown param "traget"`) {
		t.Errorf("CheckParams: %v", err)
	}
	if err := e.CheckParams(ctx, map[string]any{"target": 1}); err != nil {
		t.Errorf("CheckParams of valid params: %v", err)
	}

	// A policy without param_errors takes any params.
	plain, err := policy.Load(writeDir(t, map[string]string{"p.rego": noneRego}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plain.Decide(ctx, bad, time.Unix(0, 0)); err != nil {
		t.Errorf("no param_errors rule: %v", err)
	}
}

func TestDefaultPolicyRejectsBadParams(t *testing.T) {
	e, err := policy.LoadFS(policies.FS, "policies")
	if err != nil {
		t.Fatal(err)
	}
	err = e.CheckParams(context.Background(), map[string]any{"target": 0.9, "high": 0.8})
	if err == nil || err.Error() != "invalid policy params: low <= target <= high must hold" {
		t.Errorf("got %v", err)
	}
}
