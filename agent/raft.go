package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

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
		Logger:             raftstore.SlogLogger(log),
	}
	for _, p := range r.Peers {
		c.Peers = append(c.Peers, raftstore.Peer{ID: p.ID, Address: p.Address})
	}
	if r.TLS != nil {
		c.Transport = raftstore.TLSTransport(*r.TLS)
	}
	return c
}

// The agent as a raft node: whether it leads, what it does on becoming
// leader, what it says of raft in GET /v1/status and /-/ready, and how a
// write made on a follower is answered. The membership endpoints are in
// api_peers.go; raft's own log reaches the agent's through
// raftstore.SlogLogger.

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
