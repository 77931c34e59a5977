package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/agent/wire"
	"github.com/mitosis-autoscaler/mitosis/config"
	"github.com/mitosis-autoscaler/mitosis/internal/testenv"
)

// raftNode is one in-process agent of a raft cluster on loopback.
type raftNode struct {
	id, raft string
	a        *Agent
}

// raftFile is a dry agent's file (metrics unreachable: every tick records
// a decision) with a raft section naming peers (id → raft address).
func raftFile(id, bind, dir string, bootstrap bool, peers []raftNode) string {
	var ps []string
	for _, p := range peers {
		ps = append(ps, fmt.Sprintf("{id: %s, address: %q}", p.id, p.raft))
	}
	return fmt.Sprintf(`tick: 200ms
dry_run: true
clusters: [{name: web, min: 1, max: 4, scalable_roles: [app]}]
nodes: [{cluster: web, id: web-1, role: app, address: "127.0.0.1:1"}]
metrics:
  url: http://127.0.0.1:1
  timeout: 200ms
  queries: [{name: utilization, query: up, per_node: true}]
raft:
  node_id: %s
  bind: %q
  data_dir: %q
  bootstrap: %v
  peers: [%s]
`, id, bind, dir, bootstrap, strings.Join(ps, ", "))
}

// startRaftAgents runs n agents (a1…) in this process; a1 bootstraps the
// cluster with all n as voters, and only the first started are run.
func startRaftAgents(t *testing.T, n, started int) []raftNode {
	t.Helper()
	nodes := make([]raftNode, n)
	for i := range nodes {
		nodes[i] = raftNode{id: fmt.Sprintf("a%d", i+1), raft: testenv.FreeAddr(t)}
	}
	dir := t.TempDir()
	for i := range started {
		cfg, err := config.Parse([]byte(raftFile(nodes[i].id, nodes[i].raft, filepath.Join(dir, nodes[i].id), i == 0, nodes)), nodes[i].id+".yaml")
		if err != nil {
			t.Fatal(err)
		}
		nodes[i].a = runAgent(t, cfg)
	}
	return nodes
}

// call makes a request to a with the admin token.
func call(t *testing.T, a *Agent, method, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+a.Addr()+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer t0k")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func stateOf(t *testing.T, a *Agent) string {
	t.Helper()
	code, body := call(t, a, http.MethodGet, "/v1/status", "")
	var st wire.Status
	if code != http.StatusOK || json.Unmarshal([]byte(body), &st) != nil || st.Raft == nil {
		t.Fatalf("status: %d %s", code, body)
	}
	return st.Raft.State
}

func waitState(t *testing.T, a *Agent, want string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if stateOf(t, a) == want {
			return
		}
	}
	t.Fatalf("raft state %s, want %s", stateOf(t, a), want)
}

func TestPeerChangesAnOperatorGetsWrongAreRefusedInTheirWords(t *testing.T) {
	nodes := startRaftAgents(t, 1, 1)
	a1 := nodes[0].a
	waitState(t, a1, "leader")
	_, before := call(t, a1, http.MethodGet, "/v1/status", "")
	for _, tc := range []struct {
		name, method, path, body string
		code                     int
		says                     string
	}{
		{"joining a voter again", "POST", "/v1/peers", `{"id":"a1","address":"127.0.0.1:17199"}`, 409, "a1 is already a voter, at " + nodes[0].raft + ": to move it, remove it first"},
		{"joining at an address without a port", "POST", "/v1/peers", `{"id":"a9","address":"notanaddress"}`, 400, `address: \"notanaddress\" is not host:port`},
		{"joining at port 0", "POST", "/v1/peers", `{"id":"a9","address":"127.0.0.1:0"}`, 400, "1 to 65535"},
		{"joining at a voter's address", "POST", "/v1/peers", fmt.Sprintf(`{"id":"a9","address":%q}`, nodes[0].raft), 409, nodes[0].raft + " is already the address of peer a1"},
		{"removing an unknown id", "DELETE", "/v1/peers/nosuch", "", 404, `no peer \"nosuch\" in the cluster (its members: a1)`},
		{"removing the last voter", "DELETE", "/v1/peers/a1", "", 409, "a1 is the cluster's last voter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := call(t, a1, tc.method, tc.path, tc.body)
			if code != tc.code || !strings.Contains(body, tc.says) {
				t.Errorf("%d %s; want %d saying %q", code, body, tc.code, tc.says)
			}
		})
	}
	if _, after := call(t, a1, http.MethodGet, "/v1/status", ""); !strings.Contains(after, `"peers":[{"id":"a1","address":"`+nodes[0].raft+`"}]`) || stateOf(t, a1) != "leader" {
		t.Errorf("the cluster changed: %s, was %s", after, before)
	}
}

func TestARemovedAgentSaysShutdownIsNotReadyAndRefusesWrites(t *testing.T) {
	nodes := startRaftAgents(t, 2, 2)
	var leader, other raftNode
	for deadline := time.Now().Add(10 * time.Second); leader.a == nil && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for i, n := range nodes {
			if stateOf(t, n.a) == "leader" {
				leader, other = n, nodes[1-i]
			}
		}
	}
	if leader.a == nil {
		t.Fatal("no leader")
	}
	if code, body := call(t, leader.a, http.MethodDelete, "/v1/peers/"+leader.id, ""); code != http.StatusOK {
		t.Fatalf("remove the leader itself: %d %s", code, body)
	}
	waitState(t, leader.a, "shutdown")
	waitState(t, other.a, "leader")
	if leader.a.raftServes() || leader.a.ready(context.Background()) == "" {
		t.Error("the removed agent's raft still serves, or it says it is ready")
	}
	if !other.a.raftServes() {
		t.Error("the remaining leader's raft does not serve")
	}
	code, body := call(t, leader.a, http.MethodPost, "/v1/clusters/web/pause", "")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "removed from the raft cluster") {
		t.Errorf("a write on the removed agent: %d %s; want 503 saying it was removed", code, body)
	}
}

func TestAWriteWithoutALeaderSaysNoneIsElected(t *testing.T) {
	nodes := startRaftAgents(t, 2, 1) // a2 never starts: a1 cannot win
	a1 := nodes[0].a
	waitState(t, a1, "candidate")
	code, body := call(t, a1, http.MethodPost, "/v1/clusters/web/pause", "")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "no leader is elected yet: a leader needs 2 of the 2 voters (a1, a2)") || strings.Contains(body, "the leader is  (") {
		t.Errorf("%d %s; want 503 saying no leader is elected", code, body)
	}
}

func TestASecondAgentOnADataDirFailsFastNamingTheKey(t *testing.T) {
	nodes := startRaftAgents(t, 1, 1)
	cfg := nodes[0].a.cfg.Raft
	again := *cfg
	again.Bind = testenv.FreeAddr(t)
	again.Peers = nil
	t0 := time.Now()
	st, err := openRaft(&again, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil {
		st.Close()
		t.Fatal("opened a data dir another agent has")
	}
	if want := "raft.data_dir: " + cfg.DataDir + " is in use by another process"; !strings.Contains(err.Error(), want) {
		t.Errorf("got %v, want %q", err, want)
	}
	if took := time.Since(t0); took > 3*time.Second {
		t.Errorf("took %s", took)
	}
}

func TestARemovedFollowerIsNotReadyAndSaysSo(t *testing.T) {
	nodes := startRaftAgents(t, 3, 3)
	var leader, removed raftNode
	for deadline := time.Now().Add(10 * time.Second); leader.a == nil && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for i, n := range nodes {
			if stateOf(t, n.a) == "leader" {
				leader, removed = n, nodes[(i+1)%3]
			}
		}
	}
	if leader.a == nil {
		t.Fatal("no leader")
	}
	if !removed.a.raftServes() {
		t.Fatal("a voter does not serve")
	}
	if code, body := call(t, leader.a, http.MethodDelete, "/v1/peers/"+removed.id, ""); code != http.StatusOK {
		t.Fatalf("remove %s: %d %s", removed.id, code, body)
	}
	for deadline := time.Now().Add(10 * time.Second); removed.a.raftServes() && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
	}
	if removed.a.raftServes() || removed.a.ready(context.Background()) == "" {
		t.Fatal("the removed follower still serves, or it says it is ready")
	}
	var code int
	var body string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if code, body = call(t, removed.a, http.MethodPost, "/v1/clusters/web/pause", ""); strings.Contains(body, "is not a voter of the cluster") {
			break
		}
	}
	if want := fmt.Sprintf("this agent (%s) is not a voter of the cluster", removed.id); code != http.StatusServiceUnavailable || !strings.Contains(body, want) {
		t.Errorf("a write on the removed follower: %d %s; want 503 saying %q", code, body, want)
	}
}
