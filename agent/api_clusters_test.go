package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/agent/wire"
	"github.com/mitosis-autoscaler/mitosis/plan"
)

func TestReadEndpointsShowWhatTheRegistryHolds(t *testing.T) {
	rig := newAPIRig(t)
	ctx := context.Background()
	at := time.Date(2026, 11, 27, 14, 0, 0, 0, time.UTC)
	for i, n := range []plan.Node{
		{ID: "web-1", Cluster: "web", Role: "app", State: plan.NodeReady, CreatedAt: at},
		{ID: "web-2", Cluster: "web", Role: "app", State: plan.NodeReady, Parent: "web-1", LineageDepth: 1, CreatedAt: at.Add(time.Minute)},
	} {
		if err := rig.a.reg.PutNode(ctx, n); err != nil {
			t.Fatal(i, err)
		}
	}
	op := plan.Operation{ID: "op-1", Kind: plan.OpExpand, Cluster: "web", Status: plan.OpRunning, Step: "prepare", Template: "web-1", CreatedAt: at.Add(2 * time.Minute)}
	for i, rec := range []plan.DecisionRecord{
		{Cluster: "web", At: at.Add(2 * time.Minute), Decision: plan.Decision{Action: plan.ActionExpand, Count: 1, Reason: "busy"}, Operations: []string{"op-1"}},
		{Cluster: "web", At: at.Add(3 * time.Minute), Decision: plan.Decision{Action: plan.ActionNone, Reason: "calm"}},
	} {
		var ops []plan.Operation
		if i == 0 {
			ops = []plan.Operation{op}
		}
		if _, err := rig.a.reg.RecordDecision(ctx, rec, plan.ScalingState{}, ops); err != nil {
			t.Fatal(err)
		}
	}
	get := func(path string, v any) {
		t.Helper()
		code, body := rig.do(t, http.MethodGet, path, RoleRead, "")
		if code != http.StatusOK {
			t.Fatalf("%s: %d %s", path, code, body)
		}
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	var st wire.Status
	get("/v1/status", &st)
	if len(st.Clusters) != 1 || st.Clusters[0].Nodes[plan.NodeReady] != 2 || st.Clusters[0].InFlight != 1 ||
		st.Clusters[0].LastDecision == nil || st.Clusters[0].LastDecision.Decision.Reason != "calm" || !st.Simulated {
		t.Errorf("status %+v", st)
	}
	var nodes []plan.Node
	get("/v1/clusters/web/nodes", &nodes)
	if len(nodes) != 2 || nodes[1].Parent != "web-1" || nodes[1].LineageDepth != 1 {
		t.Errorf("nodes %+v", nodes)
	}
	var ops []plan.Operation
	get("/v1/clusters/web/operations", &ops)
	if len(ops) != 1 || ops[0].ID != "op-1" || ops[0].Template != "web-1" {
		t.Errorf("operations %+v", ops)
	}
	var one plan.Operation
	get("/v1/operations/op-1", &one)
	if one.Step != "prepare" {
		t.Errorf("operation %+v", one)
	}
	var rec plan.DecisionRecord
	get("/v1/clusters/web/why?at="+at.Add(150*time.Second).Format(time.RFC3339), &rec)
	if rec.Decision.Reason != "busy" {
		t.Errorf("why at 14:02:30: %+v, want the decision of 14:02", rec.Decision)
	}
	for path, want := range map[string]int{
		"/v1/clusters/db/nodes":                        http.StatusNotFound,
		"/v1/operations/op-404":                        http.StatusNotFound,
		"/v1/clusters/web/decisions?limit=0":           http.StatusBadRequest,
		"/v1/clusters/web/why?at=yesterday":            http.StatusBadRequest,
		"/v1/clusters/web/why?at=2020-01-01T00:00:00Z": http.StatusNotFound,
	} {
		code, body := rig.do(t, http.MethodGet, path, RoleRead, "")
		if code != want || !strings.Contains(string(body), `"error"`) {
			t.Errorf("%s: %d %s, want %d with an error", path, code, body, want)
		}
	}
}

// twoClusters is a dry agent's file with two clusters, web listed before
// api, on a Prometheus the tests never reach.
const twoClusters = `
tick: 15s
dry_run: true
clusters:
  - {name: web, min: 1, max: 4, scalable_roles: [app], hosts: [{name: esx-1}]}
  - {name: api, min: 1, max: 4, scalable_roles: [app]}
metrics:
  url: http://127.0.0.1:1
  queries: [{name: up, query: up, per_node: true}]
`

// Prometheus's HTTP service discovery reads the registered nodes from
// /v1/targets: a target group each, by cluster then node id, with the
// cluster and node labels and the __meta_mitosis_* ones the node has.
func TestTargetsAreTheNodesForPrometheus(t *testing.T) {
	rig := newAPIRigOn(t, twoClusters)
	get := func(path string) (int, http.Header, []byte) {
		t.Helper()
		return rig.call(t, http.MethodGet, path, RoleRead, "")
	}

	// Nothing registered: [], as Prometheus's HTTP SD asks for no targets.
	if code, h, body := get("/v1/targets"); code != http.StatusOK || h.Get("Content-Type") != "application/json" || strings.TrimSpace(string(body)) != "[]" {
		t.Errorf("an empty registry: %d %q %s, want 200 application/json []", code, h.Get("Content-Type"), body)
	}

	for _, n := range []plan.Node{
		{ID: "web-2", Cluster: "web", Role: "app", State: plan.NodeReady, Host: "esx-1", VM: "vm-7", Address: "10.0.0.2:8080", Parent: "web-1", LineageDepth: 1},
		{ID: "web-3", Cluster: "web", Role: "app", State: plan.NodePreparing, Host: "esx-1"}, // no address yet
		{ID: "web-1", Cluster: "web", Role: "app", State: plan.NodeDraining, Host: "esx-1", VM: "vm-1", Address: "10.0.0.1:8080"},
		{ID: "api-1", Cluster: "api", Role: "central", State: plan.NodeReady, Address: "[fd00::1]:8080"},
	} {
		if err := rig.a.reg.PutNode(t.Context(), n); err != nil {
			t.Fatal(n.ID, err)
		}
	}
	api1 := wire.TargetGroup{Targets: []string{"[fd00::1]:8080"}, Labels: map[string]string{
		"cluster": "api", "node": "api-1", "__meta_mitosis_role": "central", "__meta_mitosis_state": "ready"}}
	web1 := wire.TargetGroup{Targets: []string{"10.0.0.1:8080"}, Labels: map[string]string{
		"cluster": "web", "node": "web-1", "__meta_mitosis_role": "app", "__meta_mitosis_state": "draining",
		"__meta_mitosis_host": "esx-1", "__meta_mitosis_vm": "vm-1"}}
	web2 := wire.TargetGroup{Targets: []string{"10.0.0.2:8080"}, Labels: map[string]string{
		"cluster": "web", "node": "web-2", "__meta_mitosis_role": "app", "__meta_mitosis_state": "ready",
		"__meta_mitosis_host": "esx-1", "__meta_mitosis_vm": "vm-7", "__meta_mitosis_parent": "web-1"}}
	moved := func(g wire.TargetGroup, addr string) wire.TargetGroup {
		return wire.TargetGroup{Targets: []string{addr}, Labels: g.Labels}
	}
	for _, c := range []struct {
		query string
		want  []wire.TargetGroup
	}{
		{"", []wire.TargetGroup{api1, web1, web2}},
		{"?cluster=web", []wire.TargetGroup{web1, web2}},
		{"?cluster=api", []wire.TargetGroup{api1}},
		{"?port=9100", []wire.TargetGroup{moved(api1, "[fd00::1]:9100"), moved(web1, "10.0.0.1:9100"), moved(web2, "10.0.0.2:9100")}},
		{"?cluster=web&port=65535", []wire.TargetGroup{moved(web1, "10.0.0.1:65535"), moved(web2, "10.0.0.2:65535")}},
	} {
		code, h, body := get("/v1/targets" + c.query)
		var got []wire.TargetGroup
		if code != http.StatusOK || h.Get("Content-Type") != "application/json" || json.Unmarshal(body, &got) != nil {
			t.Errorf("%s: %d %q %s, want 200 and JSON", c.query, code, h.Get("Content-Type"), body)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", c.query, got, c.want)
		}
	}

	for _, c := range []struct {
		query string
		code  int
		want  string
	}{
		{"?port=0", http.StatusBadRequest, `port: "0" is not a port number from 1 to 65535`},
		{"?port=65536", http.StatusBadRequest, `port: "65536"`},
		{"?port=http", http.StatusBadRequest, `port: "http"`},
		{"?port=", http.StatusBadRequest, `port: ""`},
		{"?cluster=db", http.StatusNotFound, `cluster "db" is not configured`},
		{"?cluster=", http.StatusNotFound, `cluster "" is not configured`},
	} {
		code, body := rig.do(t, http.MethodGet, "/v1/targets"+c.query, RoleRead, "")
		var e struct{ Error string }
		if code != c.code || json.Unmarshal(body, &e) != nil || !strings.Contains(e.Error, c.want) {
			t.Errorf("%s: %d %s, want %d and a JSON error with %q", c.query, code, body, c.code, c.want)
		}
	}
	if code, _ := rig.do(t, http.MethodGet, "/v1/targets", RoleNone, ""); code != http.StatusUnauthorized {
		t.Errorf("no token: %d, want 401", code)
	}
}
