package config

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
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
	// TLS makes raft's traffic mutual TLS (docs/raft.md): required
	// beyond loopback unless Insecure says otherwise.
	TLS *raftstore.TLSConfig `yaml:"tls"`
	// Insecure lets raft run without TLS on an address the network
	// reaches; the agent warns of it on every start.
	Insecure bool `yaml:"insecure"`
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
	if err := HostPort(r.Bind); err != nil {
		return fmt.Errorf("raft.bind: %w", err)
	}
	self, selfKey := r.Bind, "raft.bind"
	if r.Advertise != "" {
		if err := HostPort(r.Advertise); err != nil {
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
		if err := HostPort(p.Address); err != nil {
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
	if err := r.checkInTheClear(); err != nil {
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

// HostPort refuses an address that is not host:port with a port in
// 1-65535, quoting it: a raft address, in the file or in a request to
// join.
func HostPort(addr string) error {
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
