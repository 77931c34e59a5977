package wire_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/agent/wire"
)

// The bodies are a contract with programs that were built against an
// earlier version: these are their JSON as docs/api.md shows it, byte for
// byte where the agent wrote them by hand before they had a type.
func TestBodiesKeepTheirJSON(t *testing.T) {
	at := time.Date(2026, 11, 27, 14, 2, 0, 0, time.UTC)
	on := true
	cases := []struct {
		name string
		v    any
		want string
	}{
		{"an error", wire.ErrorBody{Message: "cluster \"x\" is not configured"}, `{"error":"cluster \"x\" is not configured"}`},
		{"whoami", wire.Whoami{Name: "oncall", Role: "operate"}, `{"name":"oncall","role":"operate"}`},
		{"a refused policy, as the map it was: every key, sorted", wire.PolicyRefusal{Message: "refused", Problems: []string{"p.rego:1:1: x"}},
			`{"error":"refused","problems":["p.rego:1:1: x"],"tests":{"passed":0,"failed":0},"version":""}`},
		{"an accepted policy", wire.PolicyCheck{Version: "abc", Tests: wire.TestCounts{Passed: 3}}, `{"version":"abc","tests":{"passed":3,"failed":0}}`},
		{"settings never changed", wire.Settings{}, `{"paused":false,"dry_run":false}`},
		{"settings changed", wire.Settings{Paused: true, By: "oncall", At: at}, `{"paused":true,"dry_run":false,"by":"oncall","at":"2026-11-27T14:02:00Z"}`},
		{"dry run", wire.DryRunRequest{Enabled: &on}, `{"enabled":true}`},
		{"clone", wire.CloneRequest{Template: "web-1"}, `{"template":"web-1"}`},
		{"detach", wire.DetachRequest{Node: "web-7"}, `{"node":"web-7"}`},
		{"a peer to join", wire.PeerRequest{ID: "a2", Address: "10.0.0.2:7001"}, `{"id":"a2","address":"10.0.0.2:7001"}`},
		{"raft, as raftstore.Peer showed the voters", wire.RaftStatus{Node: "a1", State: "leader", Leader: "a1", Term: 2, Peers: []wire.Peer{{ID: "a1", Address: "10.0.0.1:7001"}}},
			`{"node":"a1","state":"leader","leader":"a1","term":2,"peers":[{"id":"a1","address":"10.0.0.1:7001"}]}`},
		{"a target", wire.TargetGroup{Targets: []string{"10.0.0.1:8080"}, Labels: map[string]string{"cluster": "web", "node": "web-1"}},
			`{"targets":["10.0.0.1:8080"],"labels":{"cluster":"web","node":"web-1"}}`},
	}
	for _, c := range cases {
		got, err := json.Marshal(c.v)
		if err != nil || string(got) != c.want {
			t.Errorf("%s: %s (%v), want %s", c.name, got, err, c.want)
		}
	}
}
