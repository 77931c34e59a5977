package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/autoscaler"
)

func TestParseController(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		wantErr string // "" = valid
		check   func(t *testing.T, c autoscaler.Config)
	}{
		{
			name: "defaults fill what is left out",
			yaml: "clusters: [{name: web, max: 8}]",
			check: func(t *testing.T, c autoscaler.Config) {
				cl := c.Clusters[0]
				if c.Tick.Duration != 15*time.Second || cl.Cooldown.Down.Duration != 5*time.Minute ||
					cl.Limits().MaxOpsPerTemplate != 1 || cl.ScalableRoles[0] != "app" || cl.Prepare.Mode != "suspend" {
					t.Errorf("defaults not applied: %+v", cl)
				}
			},
		},
		{
			name: "by default a cluster may divide: growth 2, unlimited cluster and host budgets",
			yaml: "clusters: [{name: web, max: 8}]",
			check: func(t *testing.T, c autoscaler.Config) {
				l := c.Clusters[0].Limits()
				if l.MaxGrowth != 2 || l.MaxOpsPerCluster != 0 || l.MaxOpsPerHost != 0 || l.MaxOpsPerTemplate != 1 {
					t.Errorf("defaults: %+v", l)
				}
			},
		},
		{
			name: "growth is read and passed on",
			yaml: "clusters: [{name: web, max: 8, growth: 1.5}]",
			check: func(t *testing.T, c autoscaler.Config) {
				if g := c.Clusters[0].Limits().MaxGrowth; g != 1.5 {
					t.Errorf("growth %g, want 1.5", g)
				}
			},
		},
		{
			name: "an explicit growth of 0 is kept: unlimited",
			yaml: "clusters: [{name: web, max: 8, growth: 0}]",
			check: func(t *testing.T, c autoscaler.Config) {
				if g := c.Clusters[0].Limits().MaxGrowth; g != 0 {
					t.Errorf("growth %g, want 0", g)
				}
			},
		},
		{name: "a growth of 1 is refused with its key", yaml: "clusters: [{name: web, max: 8, growth: 1}]", wantErr: "clusters[0] (web).growth: must be 0 (unlimited) or a number above 1"},
		{name: "a growth below 1 is refused", yaml: "clusters: [{name: web, max: 8, growth: 0.5}]", wantErr: "clusters[0] (web).growth:"},
		{name: "a negative growth is refused", yaml: "clusters: [{name: web, max: 8, growth: -2}]", wantErr: "clusters[0] (web).growth:"},
		{name: "an infinite growth is refused", yaml: "clusters: [{name: web, max: 8, growth: .inf}]", wantErr: "clusters[0] (web).growth:"},
		{name: "a growth that is not a number names the key", yaml: "clusters: [{name: web, max: 8, growth: double}]", wantErr: `clusters[0].growth: a number is expected, not "double"`},
		{
			name: "an explicit zero is kept, not defaulted",
			yaml: "clusters: [{name: web, max: 8, cooldown: {up: 0s}, budget: {cluster: 0}}]",
			check: func(t *testing.T, c autoscaler.Config) {
				cl := c.Clusters[0]
				if cl.Cooldown.Up.Duration != 0 || cl.Limits().MaxOpsPerCluster != 0 {
					t.Errorf("explicit zeros lost: up %s budget %d", cl.Cooldown.Up, cl.Limits().MaxOpsPerCluster)
				}
			},
		},
		{name: "an unknown top-level key is named with its line", yaml: "tick: 5s\nticks: 4\nclusters: [{name: a, max: 2}]", wantErr: `line 2: unknown key "ticks"`},
		{name: "an unknown nested key is named", yaml: "clusters:\n  - name: a\n    max: 2\n    cooldown: {upp: 1s}", wantErr: `line 4: unknown key "upp"`},
		{name: "min above max names min", yaml: "clusters: [{name: a, min: 5, max: 3}]", wantErr: "clusters[0] (a).min: 5 is above max 3"},
		{name: "a bad duration is named with its line", yaml: "tick: soon\nclusters: [{name: a, max: 2}]", wantErr: `line 1: "soon" is not a duration`},
		{name: "a mapping where a duration goes is named with its line", yaml: "clusters: [{name: a, max: 2}]\ntick: {a: 1}", wantErr: "line 2: want a duration such as 30s"},
		{name: "no clusters", yaml: "tick: 5s", wantErr: "clusters: at least one cluster"},
		{name: "a tick of 1ns is refused with its line", yaml: "clusters: [{name: a, max: 2}]\ntick: 1ns", wantErr: "mitosis.yaml: line 2: tick: 1ns is too short: at least 100ms"},
		{name: "a tick of 0 is refused", yaml: "tick: 0s\nclusters: [{name: a, max: 2}]", wantErr: "mitosis.yaml: line 1: tick: must be positive, got 0s"},
		{name: "a poll of 1ms is refused with its line", yaml: "tick: 1s\npoll: 1ms\nclusters: [{name: a, max: 2}]", wantErr: "mitosis.yaml: line 2: poll: 1ms is too short: at least 100ms"},
		{name: "a max_poll of 10ms is refused with its line", yaml: "tick: 1s\npoll: 100ms\nmax_poll: 10ms\nclusters: [{name: a, max: 2}]", wantErr: "mitosis.yaml: line 3: max_poll: 10ms is too short: at least 100ms"},
		{
			name: "the shortest tick and poll are allowed",
			yaml: "tick: 100ms\npoll: 100ms\nmax_poll: 100ms\nclusters: [{name: a, max: 2}]",
			check: func(t *testing.T, c autoscaler.Config) {
				if c.Tick.Duration != autoscaler.MinTick || c.Poll.Duration != autoscaler.MinPoll {
					t.Errorf("tick %s, poll %s", c.Tick, c.Poll)
				}
			},
		},
		{name: "a cluster without a name", yaml: "clusters: [{max: 2}]", wantErr: "clusters[0].name: must be set"},
		{name: "a cluster twice", yaml: "clusters: [{name: a, max: 2}, {name: a, max: 3}]", wantErr: `"a" is used twice`},
		{name: "a cluster name PromQL would need escaped", yaml: `clusters: [{name: 'web"}', max: 2}]`, wantErr: `clusters[0].name: "web\"}" must be lower-case letters`},
		{name: "an upper-case cluster name", yaml: "clusters: [{name: Web, max: 2}]", wantErr: `"Web" must be lower-case letters`},
		{name: "a bad prepare mode", yaml: "clusters: [{name: a, max: 2, prepare: {mode: pause}}]", wantErr: `prepare.mode: "pause"`},
		{name: "a negative budget", yaml: "clusters: [{name: a, max: 2, budget: {host: -1}}]", wantErr: "clusters[0] (a).budget.host: must not be negative"},
		{name: "a negative cooldown names its key", yaml: "clusters: [{name: a, max: 2, cooldown: {down: -1s}}]", wantErr: "clusters[0] (a).cooldown.down: must not be negative"},
		{name: "not yaml", yaml: "clusters: [", wantErr: "line"},
		{name: "a prepare deadline of zero is refused", yaml: "clusters: [{name: a, max: 2, prepare: {deadline: 0s}}]", wantErr: "clusters[0] (a).prepare.deadline: must be positive, got 0s"},
		{name: "a negative finalize deadline is refused", yaml: "clusters: [{name: a, max: 2, finalize: {deadline: -1s}}]", wantErr: "clusters[0] (a).finalize.deadline: must be positive"},
		{name: "a detach deadline of zero is refused", yaml: "clusters: [{name: a, max: 2, detach: {deadline: 0s}}]", wantErr: "clusters[0] (a).detach.deadline: must be positive"},
		{name: "a host listed twice is named", yaml: "clusters: [{name: a, max: 2, hosts: [{name: esx-1}, {name: esx-2}, {name: esx-1}]}]", wantErr: `clusters[0] (a).hosts[2].name: host "esx-1" is listed twice`},
		{name: "an empty role name is refused", yaml: "clusters: [{name: a, max: 2, scalable_roles: ['']}]", wantErr: "clusters[0] (a).scalable_roles[0]: an empty role name"},
		{name: "an explicitly empty role list is refused, not defaulted", yaml: "clusters: [{name: a, max: 2, scalable_roles: []}]", wantErr: "clusters[0] (a).scalable_roles: an empty list scales no node"},
		{name: "a role listed twice is named", yaml: "clusters: [{name: a, max: 2, scalable_roles: [app, web, app]}]", wantErr: `scalable_roles[2]: "app" is listed twice`},
		{name: "a second document is refused with its line", yaml: "tick: 5s\nclusters: [{name: a, max: 2}]\n---\ntick: 1s\n", wantErr: "line 3: a second YAML document"},
		{name: "a second document that is empty too", yaml: "---\n---\nclusters: [{name: a, max: 2}]\n", wantErr: "line 2: a second YAML document"},
		{name: "a mapping where a list goes names the key, not the Go type", yaml: "clusters: {name: a}", wantErr: "line 1: clusters: a list is expected, not a mapping"},
		{name: "a word where a number goes names the key", yaml: "clusters:\n  - name: a\n    max: lots\n", wantErr: `line 3: clusters[0].max: a whole number is expected, not "lots"`},
		{name: "a list where a mapping goes, in flow style", yaml: "clusters: [{name: a, max: 2, cooldown: [1s]}]", wantErr: "line 1: clusters[0].cooldown: a mapping (key: value) is expected, not a list"},
		{name: "a bare word for a file", yaml: "hello", wantErr: `line 1: the file must be a mapping of keys (such as tick: and clusters:), not "hello"`},
		{name: "text that is not UTF-8 is named with its line", yaml: "tick: 5s\nclusters: [{name: a, max: 2}]\n# caf\xe9\n", wantErr: "line 3: not UTF-8 text"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseController([]byte(tt.yaml), "mitosis.yaml")
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				tt.check(t, c)
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "mitosis.yaml: ") {
				t.Fatalf("error %v, want it to name the file and say %q", err, tt.wantErr)
			}
		})
	}
}

func TestAbsentRolesAndAnEmptySecondDocumentAreFine(t *testing.T) {
	c, err := ParseController([]byte("clusters: [{name: a, max: 2, scalable_roles: }]\n---\n"), "mitosis.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if r := c.Clusters[0].ScalableRoles; len(r) != 1 || r[0] != "app" {
		t.Errorf("scalable_roles left empty: %v, want the default [app]", r)
	}
	any := autoscaler.ClusterConfig{Name: "a"}
	listed := autoscaler.ClusterConfig{Name: "a", Hosts: []autoscaler.HostConfig{{Name: "h"}}}
	if !any.HasHost("h") || !listed.HasHost("h") || listed.HasHost("other") {
		t.Error("HasHost: a cluster that lists no hosts takes any; one that lists them, only those")
	}
}

func TestDefaultConfigIsValid(t *testing.T) {
	if err := autoscaler.DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestLoadControllerNamesTheFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "m.yaml")
	if err := os.WriteFile(p, []byte("clusters: [{name: a, max: 0}]"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadController(p)
	if err == nil || !strings.Contains(err.Error(), p+": clusters[0] (a).max") {
		t.Fatalf("error %v", err)
	}
}

// FuzzParseConfig: no input makes the parser panic, and whatever it
// accepts is valid.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(controllerSeed))
	f.Add([]byte("clusters: [{name: a, min: 5, max: 3}]"))
	f.Add([]byte("tick: 1s\nclusters:\n - {name: x, max: 1, hosts: [{name: h, capacity: 2}]}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseController(data, "fuzz.yaml")
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted an invalid config: %v", err)
		}
	})
}

// controllerSeed is the controller tests' configuration (autoscaler's testConfig).
const controllerSeed = `
tick: 10s
clusters:
  - name: web
    min: 1
    max: 5
    cooldown: {up: 0s, down: 0s}
    stabilization: 0s
    budget: {cluster: 4, template: 1, host: 0}
    prepare: {deadline: 30s}
    finalize: {deadline: 60s}
    detach: {deadline: 60s}
`
