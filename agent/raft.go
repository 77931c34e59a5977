package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

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

// validate checks the section against itself, naming the key at fault:
// what raft would refuse later (or, for a bootstrap configuration, write
// for good) is refused here.
func (r *RaftConfig) validate() error {
	switch {
	case r.NodeID == "":
		return errors.New("raft.node_id: required")
	case r.Bind == "":
		return errors.New("raft.bind: required (host:port)")
	case r.DataDir == "":
		return errors.New("raft.data_dir: required")
	}
	if err := hostPort(r.Bind); err != nil {
		return fmt.Errorf("raft.bind: %w", err)
	}
	self, selfKey := r.Bind, "raft.bind"
	if r.Advertise != "" {
		if err := hostPort(r.Advertise); err != nil {
			return fmt.Errorf("raft.advertise: %w", err)
		}
		self, selfKey = r.Advertise, "raft.advertise"
	} else if host, _, _ := net.SplitHostPort(r.Bind); net.ParseIP(host) != nil && net.ParseIP(host).IsUnspecified() {
		return fmt.Errorf("raft.bind: %s is not an address the other nodes can dial: set raft.advertise to this node's address", r.Bind)
	}
	ids, addrs := map[string]int{}, map[string]int{}
	for i, p := range r.Peers {
		if p.ID == "" || p.Address == "" {
			return fmt.Errorf("raft.peers[%d]: id and address are required", i)
		}
		if j, dup := ids[p.ID]; dup {
			return fmt.Errorf("raft.peers[%d].id: %s is raft.peers[%d]'s id too", i, p.ID, j)
		}
		if err := hostPort(p.Address); err != nil {
			return fmt.Errorf("raft.peers[%d].address: %w", i, err)
		}
		if err := resolves(p.Address); err != nil {
			return fmt.Errorf("raft.peers[%d].address: %w", i, err)
		}
		if j, dup := addrs[p.Address]; dup {
			return fmt.Errorf("raft.peers[%d].address: %s is raft.peers[%d]'s address too", i, p.Address, j)
		}
		if p.ID == r.NodeID && !raftstore.SameAddress(p.Address, self) {
			return fmt.Errorf("raft.peers[%d].address: %s is this agent's own entry (%s), but it is reached at %s (%s): the others would dial the wrong address", i, p.Address, p.ID, self, selfKey)
		}
		if p.API != "" {
			if u, err := url.Parse(p.API); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
				return fmt.Errorf("raft.peers[%d].api: %q is not an http(s)://host:port URL (the peer's API address)", i, p.API)
			}
		}
		ids[p.ID], addrs[p.Address] = i, i
	}
	if err := r.validateTimeouts(); err != nil {
		return err
	}
	if r.TLS != nil {
		return r.TLS.Validate()
	}
	return nil
}

// validateTimeouts checks what raft.ValidateConfig would refuse when the
// node starts, on the values raft will have (a zero keeps the default).
func (r *RaftConfig) validateTimeouts() error {
	const floor = 5 * time.Millisecond // raft's
	hb, el, lease := r.HeartbeatTimeout.Duration, r.ElectionTimeout.Duration, r.LeaderLeaseTimeout.Duration
	for _, t := range []struct {
		key string
		d   *time.Duration
		def time.Duration
	}{
		{"raft.heartbeat_timeout", &hb, raftstore.DefaultHeartbeatTimeout},
		{"raft.election_timeout", &el, raftstore.DefaultElectionTimeout},
		{"raft.leader_lease_timeout", &lease, raftstore.DefaultLeaderLeaseTimeout},
	} {
		switch {
		case *t.d < 0:
			return fmt.Errorf("%s: %s must be positive (leave it out for %s)", t.key, *t.d, t.def)
		case *t.d == 0:
			*t.d = t.def
		case *t.d < floor:
			return fmt.Errorf("%s: %s is too low: at least %s (leave it out for %s)", t.key, *t.d, floor, t.def)
		}
	}
	if lease > hb {
		return fmt.Errorf("raft.leader_lease_timeout: %s cannot be above the heartbeat timeout (raft.heartbeat_timeout, %s)", lease, hb)
	}
	if el < hb {
		return fmt.Errorf("raft.election_timeout: %s cannot be below the heartbeat timeout (raft.heartbeat_timeout, %s)", el, hb)
	}
	return nil
}

// hostPort refuses an address that is not host:port with a port in
// 1-65535 (checkHostPort), quoting it.
func hostPort(addr string) error {
	if err := checkHostPort(addr); err != nil {
		return fmt.Errorf("%q is not host:port: %w", addr, err)
	}
	return nil
}

// resolves refuses an address whose host does not resolve (within 3 s).
func resolves(addr string) error {
	host, _, _ := net.SplitHostPort(addr)
	if net.ParseIP(host) != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := net.DefaultResolver.LookupHost(ctx, host); err != nil {
		return fmt.Errorf("%s: host %s does not resolve: %w", addr, host, err)
	}
	return nil
}

// open starts this agent's raft node, naming the file's key when the data
// directory is another process's.
func (r *RaftConfig) open(log *slog.Logger) (*raftstore.Store, error) {
	st, err := raftstore.Open(r.store(log))
	if inUse := (*raftstore.DataDirInUseError)(nil); errors.As(err, &inUse) {
		return nil, fmt.Errorf("raft.data_dir: %s is in use by another process (its raft.db stayed locked for %s): is another agent running on it?", inUse.Dir, inUse.Waited)
	}
	return st, err
}

func (r *RaftConfig) store(log *slog.Logger) raftstore.Config {
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
