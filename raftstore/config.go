package raftstore

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// Tuned defaults for a LAN. With heartbeat = election = 100 ms and a 50 ms
// leader lease, a new leader is elected 170-250 ms after the old one dies
// (raft's own defaults, 1 s and 500 ms, take 1.7-2.6 s).
const (
	DefaultHeartbeatTimeout   = 100 * time.Millisecond
	DefaultElectionTimeout    = 100 * time.Millisecond
	DefaultLeaderLeaseTimeout = 50 * time.Millisecond
	DefaultCommitTimeout      = 50 * time.Millisecond
	DefaultApplyTimeout       = 5 * time.Second
	// The log is compacted into a snapshot once SnapshotThreshold entries
	// have been added since the last one (checked every SnapshotInterval,
	// with jitter), keeping TrailingLogs entries so that a follower a
	// little behind catches up from the log rather than a snapshot. The
	// data directory holds at most about TrailingLogs + SnapshotThreshold
	// entries and RetainSnapshots snapshots of a bounded Ledger.
	DefaultSnapshotInterval  = 30 * time.Second
	DefaultSnapshotThreshold = 1024
	DefaultTrailingLogs      = 1024
	DefaultRetainSnapshots   = 2
	DefaultTransportTimeout  = 2 * time.Second
	DefaultMaxPool           = 3
	// DefaultLockTimeout is how long Open waits for the data directory's
	// log (raft.db), which one process at a time may hold.
	DefaultLockTimeout = time.Second
)

// Peer is one voting member of the cluster.
type Peer struct {
	ID      string `json:"id"`
	Address string `json:"address"`
}

// TransportFunc makes the node's raft transport. The default is
// TCPTransport, or TLSTransport when Config.TLS is set (its own
// raft.StreamLayer in raft.NewNetworkTransportWithConfig); unit tests use
// raft's in-memory transport. Closing the Store closes the transport.
type TransportFunc func(cfg Config, logger hclog.Logger) (raft.Transport, error)

// Config configures one node of the replicated registry.
type Config struct {
	// NodeID names the node in the cluster, stable across restarts.
	NodeID string
	// BindAddr is the host:port the transport listens on.
	BindAddr string
	// AdvertiseAddr is the host:port the other nodes reach this one at;
	// empty means the address actually bound (which must not be an
	// unspecified address such as 0.0.0.0).
	AdvertiseAddr string
	// DataDir holds the log (raft.db) and the snapshots (snapshots/).
	DataDir string
	// Bootstrap makes a node with no state yet create the cluster with
	// Peers as its voters (itself added if missing). A node that already
	// has state ignores it, so it is safe on every start of the first
	// node. Other nodes start without it and are added with AddVoter.
	Bootstrap bool
	Peers     []Peer

	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	// ApplyTimeout bounds the wait to hand a write to raft; the context
	// bounds the wait for its commit.
	ApplyTimeout time.Duration

	SnapshotInterval  time.Duration
	SnapshotThreshold uint64
	TrailingLogs      uint64
	RetainSnapshots   int

	// Transport makes the transport; nil means TLSTransport(*TLS) if TLS
	// is set, else TCPTransport (plain TCP).
	Transport TransportFunc
	// TLS, if set, makes raft's traffic mutual TLS (see TLSConfig); Open
	// refuses a Config with both TLS and Transport.
	TLS *TLSConfig
	// TransportTimeout and MaxPool tune the TCP or TLS transport.
	TransportTimeout time.Duration
	MaxPool          int
	// LockTimeout bounds the wait for the data directory's log, locked
	// by the process that has it open: Open fails with a
	// *DataDirInUseError after it.
	LockTimeout time.Duration

	// Logger receives raft's logs; nil means Info and above on stderr.
	Logger hclog.Logger
}

// withDefaults fills in what is zero.
func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.HeartbeatTimeout, DefaultHeartbeatTimeout)
	def(&c.ElectionTimeout, DefaultElectionTimeout)
	def(&c.LeaderLeaseTimeout, DefaultLeaderLeaseTimeout)
	def(&c.CommitTimeout, DefaultCommitTimeout)
	def(&c.ApplyTimeout, DefaultApplyTimeout)
	def(&c.SnapshotInterval, DefaultSnapshotInterval)
	def(&c.TransportTimeout, DefaultTransportTimeout)
	def(&c.LockTimeout, DefaultLockTimeout)
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = DefaultSnapshotThreshold
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = DefaultTrailingLogs
	}
	if c.RetainSnapshots == 0 {
		c.RetainSnapshots = DefaultRetainSnapshots
	}
	if c.MaxPool == 0 {
		c.MaxPool = DefaultMaxPool
	}
	if c.Transport == nil && c.TLS != nil {
		c.Transport = TLSTransport(*c.TLS)
	}
	if c.Transport == nil {
		c.Transport = TCPTransport
	}
	if c.Logger == nil {
		c.Logger = hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Info})
	}
	return c
}

// validate checks what raft does not (raft.ValidateConfig checks the
// timeouts).
func (c Config) validate() error {
	var errs []error
	if c.NodeID == "" {
		errs = append(errs, errors.New("node id: required"))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data dir: required"))
	}
	ids, addrs := map[string]int{}, map[string]int{}
	for i, p := range c.Peers {
		if p.ID == "" || p.Address == "" {
			errs = append(errs, fmt.Errorf("peers[%d]: needs an id and an address", i))
			continue
		}
		if j, dup := ids[p.ID]; dup {
			errs = append(errs, fmt.Errorf("peers[%d]: id %s is peers[%d]'s too", i, p.ID, j))
		}
		if j, dup := addrs[p.Address]; dup {
			errs = append(errs, fmt.Errorf("peers[%d]: address %s is peers[%d]'s too", i, p.Address, j))
		}
		ids[p.ID], addrs[p.Address] = i, i
	}
	if c.RetainSnapshots < 1 {
		errs = append(errs, errors.New("retain snapshots: must be at least 1"))
	}
	if c.TLS != nil {
		if err := c.TLS.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("raftstore: config: %w", err)
	}
	return nil
}

// raftConfig is raft's configuration for c.
func (c Config) raftConfig() *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(c.NodeID)
	rc.HeartbeatTimeout = c.HeartbeatTimeout
	rc.ElectionTimeout = c.ElectionTimeout
	rc.LeaderLeaseTimeout = c.LeaderLeaseTimeout
	rc.CommitTimeout = c.CommitTimeout
	rc.SnapshotInterval = c.SnapshotInterval
	rc.SnapshotThreshold = c.SnapshotThreshold
	rc.TrailingLogs = c.TrailingLogs
	rc.Logger = c.Logger
	return rc
}

// TCPTransport is plain TCP on cfg.BindAddr, advertising cfg.AdvertiseAddr
// (or the address bound).
func TCPTransport(cfg Config, logger hclog.Logger) (raft.Transport, error) {
	var adv net.Addr
	if cfg.AdvertiseAddr != "" {
		a, err := net.ResolveTCPAddr("tcp", cfg.AdvertiseAddr)
		if err != nil {
			return nil, fmt.Errorf("raftstore: advertise address: %w", err)
		}
		adv = a
	}
	t, err := raft.NewTCPTransportWithLogger(cfg.BindAddr, adv, cfg.MaxPool, cfg.TransportTimeout, logger)
	if err != nil {
		return nil, fmt.Errorf("raftstore: transport on %s: %w", cfg.BindAddr, err)
	}
	return t, nil
}
