package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mitosis-autoscaler/mitosis/autoscaler"
	"github.com/mitosis-autoscaler/mitosis/raftstore"
)

// RaftConfig is the agent file's raft section: this agent as one node of
// a replicated registry (docs/raft.md). Without it the registry lives in
// the agent's memory.
//
//	raft:
//	  node_id: a1
//	  bind: 10.0.0.1:7001
//	  data_dir: /var/lib/mitosis/raft
//	  bootstrap: true              # on the first node only
//	  peers: [{id: a1, address: "10.0.0.1:7001"}]
//	  tls: {ca_file: /etc/mitosis/raft-ca.pem, cert_file: /etc/mitosis/raft.pem, key_file: /etc/mitosis/raft.key}
type RaftConfig struct {
	NodeID    string `yaml:"node_id"`
	Bind      string `yaml:"bind"`
	Advertise string `yaml:"advertise"`
	DataDir   string `yaml:"data_dir"`
	Bootstrap bool   `yaml:"bootstrap"`
	Peers     []struct {
		ID      string `yaml:"id"`
		Address string `yaml:"address"`
		// API is the peer's API address (http[s]://host:port): where a
		// follower sends an operator whose write only the leader takes.
		API string `yaml:"api"`
	} `yaml:"peers"`
	// TLS makes raft's traffic mutual TLS (docs/raft.md): strongly advised
	// beyond one host.
	TLS *raftstore.TLSConfig `yaml:"tls"`
	// The timeouts; zero keeps raftstore's LAN defaults.
	HeartbeatTimeout   autoscaler.Duration `yaml:"heartbeat_timeout"`
	ElectionTimeout    autoscaler.Duration `yaml:"election_timeout"`
	LeaderLeaseTimeout autoscaler.Duration `yaml:"leader_lease_timeout"`
}

func (r *RaftConfig) validate() error {
	switch {
	case r.NodeID == "":
		return errors.New("raft.node_id: required")
	case r.Bind == "":
		return errors.New("raft.bind: required (host:port)")
	case r.DataDir == "":
		return errors.New("raft.data_dir: required")
	}
	for i, p := range r.Peers {
		if p.ID == "" || p.Address == "" {
			return fmt.Errorf("raft.peers[%d]: id and address are required", i)
		}
	}
	if r.TLS != nil {
		return r.TLS.Validate()
	}
	return nil
}

func (r *RaftConfig) store(log *slog.Logger) raftstore.Config {
	c := raftstore.Config{
		NodeID: r.NodeID, BindAddr: r.Bind, AdvertiseAddr: r.Advertise, DataDir: r.DataDir, Bootstrap: r.Bootstrap,
		HeartbeatTimeout: r.HeartbeatTimeout.Duration, ElectionTimeout: r.ElectionTimeout.Duration,
		LeaderLeaseTimeout: r.LeaderLeaseTimeout.Duration,
		Logger:             hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn, Output: slogWriter{log}}),
	}
	for _, p := range r.Peers {
		c.Peers = append(c.Peers, raftstore.Peer{ID: p.ID, Address: p.Address})
	}
	if r.TLS != nil {
		c.Transport = raftstore.TLSTransport(*r.TLS)
	}
	return c
}

// slogWriter hands raft's log lines to the agent's logger.
type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.log.Warn("raft", "line", string(trimNewline(p)))
	return len(p), nil
}

func trimNewline(p []byte) []byte {
	for len(p) > 0 && (p[len(p)-1] == '\n' || p[len(p)-1] == '\r') {
		p = p[:len(p)-1]
	}
	return p
}

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
	State  string           `json:"state"` // leader or follower
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
	st := &RaftStatus{Node: a.raft.ID(), State: "follower", Term: a.raft.Term()}
	if a.raft.IsLeader() {
		st.State = "leader"
	}
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

// notLeader answers a write made on a follower with where the leader is:
// its API address when the file's peers give it (also in a Location
// header, by writeNotLeader), else its raft address.
func (a *Agent) notLeader(err error) error {
	var nl *raftstore.NotLeaderError
	if errors.As(err, &nl) && nl.LeaderID != "" {
		if api := a.leaderAPI(nl.LeaderID); api != "" {
			return &apiError{code: http.StatusServiceUnavailable, leader: api,
				msg: fmt.Sprintf("this agent is not the leader; the leader is %s at %s: send writes there", nl.LeaderID, api)}
		}
	}
	return notLeader(err)
}

// notLeader answers a write made on a follower with where the leader is.
func notLeader(err error) error {
	var nl *raftstore.NotLeaderError
	if errors.As(err, &nl) {
		return &apiError{code: http.StatusServiceUnavailable, msg: fmt.Sprintf("this agent is not the leader; the leader is %s (raft address %s): send writes there", nl.LeaderID, nl.LeaderAddr)}
	}
	if errors.Is(err, raftstore.ErrNotLeader) {
		return &apiError{code: http.StatusServiceUnavailable, msg: "this agent is not the leader, and no leader is known yet: retry"}
	}
	return err
}

var _ io.Writer = slogWriter{}

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
	if err := a.raft.AddVoter(r.Context(), req.ID, req.Address); err != nil {
		return err
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
		return err
	}
	a.log.Info("api: peer removed", "who", p.Name, "peer", id)
	return reply(w, a.raftStatus())
}
