package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mitosis-autoscaler/mitosis/config"
	"github.com/mitosis-autoscaler/mitosis/raftstore"
)

// open starts this agent's raft node, naming the file's key when the data
// directory is another process's.
func openRaft(r *config.RaftConfig, log *slog.Logger) (*raftstore.Store, error) {
	st, err := raftstore.Open(raftStoreConfig(r, log))
	if inUse := (*raftstore.DataDirInUseError)(nil); errors.As(err, &inUse) {
		return nil, fmt.Errorf("raft.data_dir: %s is in use by another process (its raft.db stayed locked for %s): is another agent running on it?", inUse.Dir, inUse.Waited)
	}
	return st, err
}

func raftStoreConfig(r *config.RaftConfig, log *slog.Logger) raftstore.Config {
	c := raftstore.Config{
		NodeID: r.NodeID, BindAddr: r.Bind, AdvertiseAddr: r.Advertise, DataDir: r.DataDir, Bootstrap: r.Bootstrap,
		HeartbeatTimeout: r.HeartbeatTimeout.Duration, ElectionTimeout: r.ElectionTimeout.Duration,
		LeaderLeaseTimeout: r.LeaderLeaseTimeout.Duration,
		Logger:             hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn, Output: newSlogWriter(log), DisableTime: true}),
	}
	for _, p := range r.Peers {
		c.Peers = append(c.Peers, raftstore.Peer{ID: p.ID, Address: p.Address})
	}
	if r.TLS != nil {
		c.Transport = raftstore.TLSTransport(*r.TLS)
	}
	return c
}

// slogWriter hands raft's log lines to the agent's logger, at their
// level, and holds back repeats: raft logs every failed heartbeat and
// election (a node alone logs ~18 lines a second, for ever). A line like
// one logged in the last repeatWindow (the same but for its numbers:
// times, backoffs, ports) is counted, not logged; the next one logged
// after the window says how many were held back ("repeated").
type slogWriter struct {
	log *slog.Logger
	now func() time.Time

	mu   sync.Mutex
	seen map[string]*logRepeat
}

type logRepeat struct {
	at   time.Time // when it was last logged
	held int       // held back since
}

const repeatWindow = 10 * time.Second

var digitRuns = regexp.MustCompile(`[0-9]+`)

func newSlogWriter(log *slog.Logger) *slogWriter {
	return &slogWriter{log: log, now: time.Now, seen: map[string]*logRepeat{}}
}

func (w *slogWriter) Write(p []byte) (int, error) {
	line := string(trimNewline(p))
	level, msg := hclogLevel(line)
	key := digitRuns.ReplaceAllLiteralString(msg, "#")
	now := w.now()
	w.mu.Lock()
	rep, ok := w.seen[key]
	if ok && now.Sub(rep.at) < repeatWindow {
		rep.held++
		w.mu.Unlock()
		return len(p), nil
	}
	held := 0
	if ok {
		held = rep.held
	}
	if len(w.seen) >= 1024 { // forget what no longer repeats
		for k, r := range w.seen {
			if now.Sub(r.at) >= repeatWindow {
				delete(w.seen, k)
			}
		}
	}
	w.seen[key] = &logRepeat{at: now}
	w.mu.Unlock()
	attrs := []any{"line", msg}
	if held > 0 {
		attrs = append(attrs, "repeated", held, "within", repeatWindow.String())
	}
	w.log.Log(context.Background(), level, "raft", attrs...)
	return len(p), nil
}

// hclogLevel splits hclog's "[WARN]  raft: …" into its level and the rest.
func hclogLevel(line string) (slog.Level, string) {
	for _, l := range []struct {
		tag   string
		level slog.Level
	}{{"[ERROR]", slog.LevelError}, {"[WARN]", slog.LevelWarn}, {"[INFO]", slog.LevelInfo}, {"[DEBUG]", slog.LevelDebug}, {"[TRACE]", slog.LevelDebug}} {
		if rest, ok := strings.CutPrefix(line, l.tag); ok {
			return l.level, strings.TrimSpace(rest)
		}
	}
	return slog.LevelWarn, line
}

func trimNewline(p []byte) []byte { return bytes.TrimRight(p, "\r\n") }

// leading reports whether this agent may decide and act: always without
// raft; with it, only while it leads.
func (a *Agent) leading() bool { return a.raft == nil || a.raft.IsLeader() }

// takeOver is what a node does when it becomes leader, before its first
// tick: wait until everything committed before it is applied (Sync), so
// that it decides and resumes on the whole registry.
func (a *Agent) takeOver(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := a.raft.Sync(sctx); err != nil {
		return err
	}
	a.log.Info("leading", "node", a.raft.ID(), "term", a.raft.Term())
	return nil
}

// RaftStatus is the raft part of GET /v1/status.
type RaftStatus struct {
	Node   string           `json:"node"`
	State  string           `json:"state"` // leader, follower, candidate or shutdown
	Leader string           `json:"leader"`
	Term   uint64           `json:"term"`
	Peers  []raftstore.Peer `json:"peers"`
	// RegistryIndex and RegistryDigest (GET /v1/peers only) are the log
	// index of the last command this replica applied and a SHA-256 of
	// its registry there: replicas at the same index show the same digest.
	RegistryIndex  uint64 `json:"registry_index,omitempty"`
	RegistryDigest string `json:"registry_digest,omitempty"`
}

func (a *Agent) raftStatus() *RaftStatus {
	if a.raft == nil {
		return nil
	}
	st := &RaftStatus{Node: a.raft.ID(), State: a.raft.RaftState(), Term: a.raft.Term()}
	st.Leader, _ = a.raft.Leader()
	st.Peers, _ = a.raft.Peers()
	return st
}

// leaderAPI is the API address the file gives the peer id, if any.
func (a *Agent) leaderAPI(id string) string {
	if a.cfg.Raft == nil {
		return ""
	}
	for _, p := range a.cfg.Raft.Peers {
		if p.ID == id {
			return p.API
		}
	}
	return ""
}

// raftServes reports whether this agent's raft (if any) still serves
// the cluster, for /-/ready: not once it was removed from the cluster, as
// a leader (raft shuts it down) or as a follower (it stays a follower
// that no leader contacts, its configuration without it). An agent not
// joined yet (no configuration) is let be.
func (a *Agent) raftServes() bool {
	if a.raft == nil {
		return true
	}
	if a.raft.IsShutdown() {
		return false
	}
	peers, err := a.raft.Peers()
	if err != nil {
		return false
	}
	return len(peers) == 0 || slices.ContainsFunc(peers, func(p raftstore.Peer) bool { return p.ID == a.raft.ID() })
}

// notLeader answers a write made on a follower with where the leader is:
// its API address when the file's peers give it (also in a Location
// header, by writeNotLeader), else its raft address; without a leader,
// how many voters one needs.
func (a *Agent) notLeader(err error) error {
	var nl *raftstore.NotLeaderError
	if errors.As(err, &nl) && nl.LeaderID != "" {
		if api := a.leaderAPI(nl.LeaderID); api != "" {
			return &apiError{code: http.StatusServiceUnavailable, leader: api,
				msg: fmt.Sprintf("this agent is not the leader; the leader is %s at %s: send writes there", nl.LeaderID, api)}
		}
	}
	if errors.Is(err, raftstore.ErrNotLeader) && !errors.Is(err, raftstore.ErrShutdown) && (nl == nil || nl.LeaderID == "") && a.raft != nil {
		return &apiError{code: http.StatusServiceUnavailable, msg: a.noLeader()}
	}
	return notLeader(err)
}

// noLeader says why no leader takes writes: how many of the voters one
// needs, and what this agent is doing.
func (a *Agent) noLeader() string {
	peers, _ := a.raft.Peers()
	ids := make([]string, len(peers))
	for i, p := range peers {
		ids[i] = p.ID
	}
	if len(ids) == 0 {
		return fmt.Sprintf("no leader is elected yet, and this agent (%s) knows no voter: it was not joined to a cluster yet (peers join on the leader, or raft.bootstrap on the first node)", a.raft.RaftState())
	}
	if !slices.Contains(ids, a.raft.ID()) {
		return fmt.Sprintf("this agent (%s) is not a voter of the cluster (%s): it was removed from it, or is not joined yet; send writes to the leader", a.raft.ID(), strings.Join(ids, ", "))
	}
	return fmt.Sprintf("no leader is elected yet: a leader needs %d of the %d voters (%s) up and reachable from each other, and this agent is a %s: retry, and start those that are down",
		len(ids)/2+1, len(ids), strings.Join(ids, ", "), a.raft.RaftState())
}

// notLeader answers a write made on a follower with where the leader is.
func notLeader(err error) error {
	var nl *raftstore.NotLeaderError
	switch {
	case errors.Is(err, raftstore.ErrShutdown):
		return &apiError{code: http.StatusServiceUnavailable, msg: "this agent was removed from the raft cluster (or is stopping): its raft is shut down and it takes no writes; send them to the leader, and restart this agent and join it again (peers join) to bring it back"}
	case errors.As(err, &nl) && nl.LeaderID != "":
		return &apiError{code: http.StatusServiceUnavailable, msg: fmt.Sprintf("this agent is not the leader; the leader is %s (raft address %s): send writes there", nl.LeaderID, nl.LeaderAddr)}
	case errors.Is(err, raftstore.ErrNotLeader):
		return &apiError{code: http.StatusServiceUnavailable, msg: "this agent is not the leader, and no leader is elected yet: retry"}
	}
	return err
}

// membershipError is the answer to a refused membership change: 404 for
// an id that is not a member, 409 for a change the configuration forbids.
func membershipError(err error) error {
	var me *raftstore.MembershipError
	switch {
	case !errors.As(err, &me):
		return err
	case errors.Is(err, raftstore.ErrNoSuchPeer):
		return notFound("%s", me.Msg)
	}
	return &apiError{code: http.StatusConflict, msg: me.Msg}
}

var _ io.Writer = (*slogWriter)(nil)

// PeerRequest is POST /v1/peers.
type PeerRequest struct {
	ID      string `json:"id"`
	Address string `json:"address"`
}

func (a *Agent) peers(w http.ResponseWriter, _ *http.Request, _ principal) error {
	st := a.raftStatus()
	if st == nil {
		return notFound("this agent has no raft section: its registry is its own")
	}
	index, sum, err := a.raft.Digest()
	if err != nil {
		return err
	}
	st.RegistryIndex, st.RegistryDigest = index, fmt.Sprintf("%x", sum)
	return reply(w, st)
}

// joinPeer adds a voter (on the leader; a follower says where it is).
func (a *Agent) joinPeer(w http.ResponseWriter, r *http.Request, p principal) error {
	if a.raft == nil {
		return notFound("this agent has no raft section")
	}
	var req PeerRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.ID == "" || req.Address == "" {
		return bad("id and address: required")
	}
	if err := config.HostPort(req.Address); err != nil {
		return bad("address: %v (the peer's raft address)", err)
	}
	if err := a.raft.AddVoter(r.Context(), req.ID, req.Address); err != nil {
		return membershipError(err)
	}
	a.log.Info("api: peer joined", "who", p.Name, "peer", req.ID, "address", req.Address)
	return reply(w, a.raftStatus())
}

// removePeer removes a server (on the leader).
func (a *Agent) removePeer(w http.ResponseWriter, r *http.Request, p principal) error {
	if a.raft == nil {
		return notFound("this agent has no raft section")
	}
	id := r.PathValue("id")
	if err := a.raft.RemoveServer(r.Context(), id); err != nil {
		return membershipError(err)
	}
	a.log.Info("api: peer removed", "who", p.Name, "peer", id)
	return reply(w, a.raftStatus())
}
