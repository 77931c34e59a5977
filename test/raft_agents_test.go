package test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/agent/wire"
	"github.com/mitosis-autoscaler/mitosis/internal/testenv"
	"github.com/mitosis-autoscaler/mitosis/plan"
)

// raftAgent is one `mitosis agent` process of a three-node cluster.
type raftAgent struct {
	id, api, raft string
	conf          string
	p             *proc
}

func (ra *raftAgent) get(t *testing.T, path string, v any) error {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+ra.api+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// newRaftAgents gives n agents (a1, a2, …) their API and raft addresses
// on loopback.
func newRaftAgents(t *testing.T, n int) []*raftAgent {
	agents := make([]*raftAgent, n)
	for i := range agents {
		agents[i] = &raftAgent{id: fmt.Sprintf("a%d", i+1), api: testenv.FreeAddr(t), raft: testenv.FreeAddr(t)}
	}
	return agents
}

// raftSection is the raft section of ra's file, with every agent a peer.
func (ra *raftAgent) raftSection(agents []*raftAgent, dataDir string, bootstrap bool) string {
	var peers []string
	for _, p := range agents {
		peers = append(peers, fmt.Sprintf("{id: %s, address: %q, api: \"http://%s\"}", p.id, p.raft, p.api))
	}
	return fmt.Sprintf("raft:\n  node_id: %s\n  bind: %q\n  data_dir: %q\n  bootstrap: %v\n  peers: [%s]\n",
		ra.id, ra.raft, dataDir, bootstrap, strings.Join(peers, ", "))
}

// singleLeader polls until exactly one of live says it leads (state asks
// one agent) and every other one answers, and returns it.
func singleLeader(t *testing.T, live []*raftAgent, within time.Duration, state func(*raftAgent) (string, error)) *raftAgent {
	t.Helper()
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		var leader *raftAgent
		agree := true
		for _, ra := range live {
			st, err := state(ra)
			if err != nil {
				agree = false
				break
			}
			if st == "leader" {
				agree = agree && leader == nil
				leader = ra
			}
		}
		if agree && leader != nil {
			return leader
		}
	}
	t.Fatalf("no single leader among %d agents within %s", len(live), within)
	return nil
}

// TestThreeAgentsFailOver runs three agents replicating their registry
// with raft (dry, on metrics that are unavailable: every tick still
// records a decision). Only the leader decides; the followers hold what
// it records; a leader killed with SIGKILL is replaced and decisions go
// on within a second; once restarted it catches up, and all three hold
// the same decisions. It reports the failover times (kill → the first
// decision committed by the new leader).
func TestThreeAgentsFailOver(t *testing.T) {
	bin := built(t, buildMitosis)
	dir := t.TempDir()
	tokenFile := tokenIn(t, dir)
	agents := newRaftAgents(t, 3)
	for i, ra := range agents {
		ra.conf = filepath.Join(dir, ra.id+".yaml")
		conf := fmt.Sprintf(`tick: 200ms
dry_run: true
clusters: [{name: web, min: 1, max: 4, scalable_roles: [app]}]
nodes: [{cluster: web, id: web-1, role: app, address: "127.0.0.1:1"}]
metrics:
  url: http://127.0.0.1:1
  timeout: 200ms
  queries: [{name: utilization, query: up, per_node: true}]
%s`, ra.raftSection(agents, filepath.Join(dir, ra.id), i == 0))
		if err := os.WriteFile(ra.conf, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	startAgent := func(ra *raftAgent) {
		ra.p = start(t, "agent "+ra.id, bin, "agent", "--config", ra.conf, "--token-file", tokenFile, "--listen", ra.api, "--log-level", "warn")
		waitHTTP(t, "http://"+ra.api+"/-/healthy", 15*time.Second)
	}
	for _, ra := range agents {
		startAgent(ra)
	}

	statusOf := func(ra *raftAgent) (wire.Status, error) {
		var st wire.Status
		err := ra.get(t, "/v1/status", &st)
		return st, err
	}
	leaderAmong := func(live []*raftAgent, within time.Duration) *raftAgent {
		t.Helper()
		return singleLeader(t, live, within, func(ra *raftAgent) (string, error) {
			st, err := statusOf(ra)
			if err == nil && st.Raft == nil {
				err = fmt.Errorf("%s: no raft status", ra.id)
			}
			if err != nil {
				return "", err
			}
			return st.Raft.State, nil
		})
	}
	decisions := func(ra *raftAgent) []plan.DecisionRecord {
		var recs []plan.DecisionRecord
		if err := ra.get(t, "/v1/clusters/web/decisions?limit=1000", &recs); err != nil {
			return nil
		}
		return recs
	}
	latestSeq := func(ra *raftAgent) uint64 {
		if recs := decisions(ra); len(recs) > 0 {
			return recs[0].Seq
		}
		return 0
	}

	leader := leaderAmong(agents, 15*time.Second)
	// Followers hold the leader's decisions; they make none of their own.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && slices.ContainsFunc(agents, func(ra *raftAgent) bool { return latestSeq(ra) < 5 }) {
		time.Sleep(50 * time.Millisecond)
	}
	for _, ra := range agents {
		recs := decisions(ra)
		if len(recs) < 5 {
			t.Fatalf("%s holds %d decisions", ra.id, len(recs))
		}
		if !strings.Contains(recs[0].Metrics.Reason, "unreachable") || recs[0].Decision.Action != plan.ActionNone {
			t.Errorf("%s: latest decision %+v, want none on unreachable metrics", ra.id, recs[0])
		}
	}
	for _, ra := range agents {
		if ra != leader && strings.Contains(ra.p.output(), `"msg":"decision"`) {
			t.Errorf("follower %s logged decisions of its own", ra.id)
		}
	}

	// A write sent to a follower is answered with where the leader is.
	for _, ra := range agents {
		if ra == leader {
			continue
		}
		req, _ := http.NewRequest(http.MethodPost, "http://"+ra.api+"/v1/clusters/web/pause", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := "http://" + leader.api + "/v1/clusters/web/pause"; resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Location") != want {
			t.Errorf("a write to follower %s: %s, Location %q; want 503 and %q", ra.id, resp.Status, resp.Header.Get("Location"), want)
		}
		break
	}

	const trials = 5
	var failovers, elections []time.Duration
	for trial := range trials {
		before := latestSeq(leader)
		killed := leader
		t0 := time.Now()
		if err := killed.p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = killed.p.cmd.Wait()
		var live []*raftAgent
		for _, ra := range agents {
			if ra != killed {
				live = append(live, ra)
			}
		}
		leader = leaderAmong(live, 10*time.Second)
		elected := time.Since(t0)
		// The first decision the new leader commits (one more than the
		// old leader may have committed after before was read).
		for latestSeq(leader) <= before+1 && time.Since(t0) < 10*time.Second {
			time.Sleep(5 * time.Millisecond)
		}
		took := time.Since(t0)
		if latestSeq(leader) <= before+1 {
			t.Fatalf("trial %d: no decision by the new leader %s within 10 s", trial, leader.id)
		}
		failovers = append(failovers, took)
		elections = append(elections, elected)
		t.Logf("trial %d: killed %s, %s leads after %s, deciding again after %s", trial, killed.id, leader.id,
			elected.Round(time.Millisecond), took.Round(time.Millisecond))
		startAgent(killed) // it rejoins from its data directory
		deadline := time.Now().Add(15 * time.Second)
		for latestSeq(killed) < latestSeq(leader)-2 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if latestSeq(killed) < latestSeq(leader)-2 {
			t.Fatalf("trial %d: %s did not catch up: at %d, the leader at %d", trial, killed.id, latestSeq(killed), latestSeq(leader))
		}
	}

	// All three hold the same decisions (up to the newest all have).
	lists := make([][]plan.DecisionRecord, len(agents))
	common := ^uint64(0)
	for i, ra := range agents {
		lists[i] = decisions(ra)
		if len(lists[i]) == 0 {
			t.Fatalf("%s holds no decision", ra.id)
		}
		common = min(common, lists[i][0].Seq)
	}
	asJSON := func(recs []plan.DecisionRecord) string {
		var keep []plan.DecisionRecord
		for _, r := range recs {
			if r.Seq <= common {
				keep = append(keep, r)
			}
		}
		b, _ := json.Marshal(keep)
		return string(b)
	}
	for i := 1; i < len(agents); i++ {
		if asJSON(lists[i]) != asJSON(lists[0]) {
			t.Errorf("%s and %s hold different decisions up to seq %d", agents[0].id, agents[i].id, common)
		}
	}

	for _, d := range [][]time.Duration{failovers, elections} {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	}
	t.Logf("over %d trials, kill → a new leader all agree on: p50 %s, max %s; kill → its first decision committed (ticks every 200 ms): p50 %s, max %s",
		trials, elections[len(elections)/2].Round(time.Millisecond), elections[len(elections)-1].Round(time.Millisecond),
		failovers[len(failovers)/2].Round(time.Millisecond), failovers[len(failovers)-1].Round(time.Millisecond))
}
