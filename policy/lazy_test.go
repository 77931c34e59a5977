package policy

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// lazyInput is a cluster of three ready nodes with history, hosts,
// cluster metrics and an operation in flight: every heavy key has data.
func lazyInput() *Input {
	in := &Input{
		Schema:     SchemaVersion,
		Now:        1767258000,
		Cluster:    Cluster{Name: "web", Min: 1, Max: 6, Size: 3, Roles: []string{"app"}},
		Hosts:      []Host{{Name: "esx1", Capacity: 8, VMs: 3}},
		Metrics:    map[string]Metric{"demand_rps": {Value: 120, AgeS: 1}},
		Health:     Health{MetricsAvailable: true},
		History:    History{LastExpandSAgo: -1, LastContractSAgo: 30, Recent: []RecentDecision{{SAgo: 30, Action: "contract", Count: 1}}},
		Operations: []Operation{{ID: "op-1", Kind: "expand", Step: "clone", Template: "app-1"}},
	}
	for _, id := range []string{"app-1", "app-2", "app-3"} {
		in.Nodes = append(in.Nodes, Node{ID: id, Role: "app", State: "ready", Host: "esx1",
			Metrics: map[string]Metric{"utilization": {Value: 0.5, AgeS: 2}}})
	}
	return in
}

func loadRego(t *testing.T, text string) *Engine {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "p.rego"), []byte("package mitosis\n\n"+text), 0o644); err != nil {
		t.Fatal(err)
	}
	e, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// The heavy keys are converted only for a policy that reads them, and a
// policy that reads them decides exactly as on the whole input, however
// it reads them (even where the stand-in null would fail or mislead).
func TestHeavyKeysAreConvertedOnlyWhenRead(t *testing.T) {
	for _, c := range []struct {
		name, rego string
		reason     string
		converted  bool
	}{
		{"light keys only", `decision := {"action": "none", "reason": sprintf("%d ready", [input.node_stats.ready])}`, "3 ready", false},
		{"a node", `decision := {"action": "none", "reason": input.nodes[1].id}`, "app-2", true},
		{"iterating nodes", `decision := {"action": "none", "reason": concat(",", [n.id | some n in input.nodes])}`, "app-1,app-2,app-3", true},
		{"a count that null would fail", `decision := {"action": "none", "reason": sprintf("%d", [count(input.history.recent)])}`, "1", true},
		{"a comparison that null would pass", `decision := {"action": "none", "reason": "none in flight"} if count(input.operations) == 0 else := {"action": "none", "reason": "in flight"}`, "in flight", true},
		{"hosts by object.get", `decision := {"action": "none", "reason": object.get(input, ["hosts", 0, "name"], "?")}`, "esx1", true},
		{"cluster metrics (a handful: light)", `decision := {"action": "none", "reason": sprintf("%v", [input.metrics.demand_rps.value])}`, "120", false},
		// Its keys are known without converting their values.
		{"the whole input's keys", `decision := {"action": "none", "reason": concat(",", sort(object.keys(input)))}`,
			"cluster,estimates,health,history,hosts,metrics,node_stats,nodes,now,operations,params,schema", false},
		{"the whole input compared", `decision := {"action": "none", "reason": "equal"} if input == json.unmarshal(json.marshal(input)) else := {"action": "none", "reason": "differ"}`, "equal", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := loadRego(t, c.rego)
			in := lazyInput()
			p, err := Prepare(in)
			if err != nil {
				t.Fatal(err)
			}
			d, err := e.DecidePrepared(context.Background(), p, time.Unix(in.Now, 0))
			if err != nil {
				t.Fatal(err)
			}
			if d.Reason != c.reason {
				t.Errorf("reason %q, want %q", d.Reason, c.reason)
			}
			if got := p.full.Load() != nil; got != c.converted {
				t.Errorf("whole input converted: %v, want %v", got, c.converted)
			}
		})
	}
}
