// Package raftstore is the replicated registry: the registry the
// autoscaler declares (autoscaler.Registry), kept on every node of a
// small raft cluster (hashicorp/raft, with the log in raft-boltdb).
//
// Every write is a Command appended to the raft log on the leader and
// applied, once committed, to a plan.Ledger on every node; the Ledger
// holds the registry's semantics, the same as the in-memory registry's.
// Reads are served from the local Ledger:
//
//	proposer (leader)                   raft log            every node's FSM
//	 RecordDecision/Transition/PutNode ──Apply──▶ commit (quorum) ──▶ Ledger.Apply
//	          ◀──── result (record, operation or error) via the Apply future ───┘
//
// A follower refuses writes with a NotLeaderError naming the leader. Its
// reads may lag the leader by the entries it has not applied yet; the
// leader's reads after its own writes are consistent (a write returns
// once applied to the leader's Ledger). A new leader calls Sync before it
// resumes operations, so that it has applied every entry of the previous
// terms, and uses Term as its fencing token.
//
// The package imports plan but not autoscaler: it implements the
// interface without knowing it; the daemon wires them in cmd.
package raftstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/mitosis-autoscaler/mitosis/plan"
)

// ErrNotLeader is matched (errors.Is) by every error of a write refused
// because this node is not the leader; errors.As with a *NotLeaderError
// gives the leader's id and address.
var ErrNotLeader = errors.New("raftstore: not the leader")

// NotLeaderError is the error of a write sent to a node that is not the
// leader (or stopped being the leader while committing it: then the write
// may still have happened, and callers re-read).
type NotLeaderError struct {
	// LeaderID and LeaderAddr name the leader as this node knows it;
	// empty while there is none.
	LeaderID   string
	LeaderAddr string
	// Err is raft's error.
	Err error
}

func (e *NotLeaderError) Error() string {
	leader := e.LeaderAddr
	if leader == "" {
		leader = "unknown"
	}
	return fmt.Sprintf("raftstore: not the leader (leader is %s)", leader)
}

// Is makes errors.Is(err, ErrNotLeader) true.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }

// Unwrap returns raft's error.
func (e *NotLeaderError) Unwrap() error { return e.Err }

// Store is one node of the replicated registry. It has the method set of
// autoscaler.Registry; every method is safe for concurrent use.
type Store struct {
	cfg   Config
	raft  *raft.Raft
	fsm   *fsm
	logs  *raftboltdb.BoltStore
	snaps raft.SnapshotStore
	trans raft.Transport

	closeOnce sync.Once
	closeErr  error
}

// Open starts a node from cfg.DataDir (creating it if needed), restoring
// its latest snapshot and log, and bootstraps the cluster if cfg says so
// and there is no state yet. It returns before a leader is elected: see
// WaitLeader.
func Open(cfg Config) (*Store, error) {
	if cfg.Transport != nil && cfg.TLS != nil { // fail closed: the TLS asked for would not be used
		return nil, errors.New("raftstore: config: transport and tls: set one, not both")
	}
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("raftstore: %w", err)
	}
	// bolt locks raft.db (flock): without a timeout a second process on
	// the same directory would wait for it forever, saying nothing.
	db := filepath.Join(cfg.DataDir, "raft.db")
	logs, err := raftboltdb.New(raftboltdb.Options{Path: db, BoltOptions: &bbolt.Options{Timeout: cfg.LockTimeout}})
	if errors.Is(err, bbolt.ErrTimeout) {
		return nil, &DataDirInUseError{Dir: cfg.DataDir, Waited: cfg.LockTimeout}
	}
	if err != nil {
		return nil, fmt.Errorf("raftstore: log store: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, cfg.RetainSnapshots, cfg.Logger.Named("snapshots"))
	if err != nil {
		logs.Close()
		return nil, fmt.Errorf("raftstore: snapshot store: %w", err)
	}
	trans, err := cfg.Transport(cfg, cfg.Logger.Named("transport"))
	if err != nil {
		logs.Close()
		return nil, err
	}
	closeTrans := func() {
		if c, ok := trans.(raft.WithClose); ok {
			_ = c.Close()
		}
	}
	rc := cfg.raftConfig()
	if err := raft.ValidateConfig(rc); err != nil {
		closeTrans()
		logs.Close()
		return nil, fmt.Errorf("raftstore: config: %w", err)
	}
	s := &Store{cfg: cfg, fsm: newFSM(), logs: logs, snaps: snaps, trans: trans}
	if cfg.Bootstrap {
		has, err := raft.HasExistingState(logs, logs, snaps)
		if err != nil {
			closeTrans()
			logs.Close()
			return nil, fmt.Errorf("raftstore: %w", err)
		}
		if !has {
			boot, err := s.bootstrapConfiguration()
			if err == nil {
				err = raft.BootstrapCluster(rc, logs, logs, snaps, trans, boot)
			}
			if err != nil {
				closeTrans()
				logs.Close()
				return nil, fmt.Errorf("raftstore: bootstrap: %w", err)
			}
		}
	}
	r, err := raft.NewRaft(rc, s.fsm, logs, logs, snaps, trans)
	if err != nil {
		closeTrans()
		logs.Close()
		return nil, fmt.Errorf("raftstore: %w", err)
	}
	s.raft = r
	return s, nil
}

// bootstrapConfiguration is the first configuration: Peers, this node
// added if missing. It is written once and for good, so this node's own
// entry must give the address its transport has (validate checked the
// rest: no id nor address twice).
func (s *Store) bootstrapConfiguration() (raft.Configuration, error) {
	var c raft.Configuration
	self := false
	for _, p := range s.cfg.Peers {
		if p.ID == s.cfg.NodeID {
			self = true
			if !SameAddress(p.Address, string(s.trans.LocalAddr())) {
				return c, fmt.Errorf("this node's peer entry (%s) gives the address %s, but the others reach it at %s", p.ID, p.Address, s.trans.LocalAddr())
			}
		}
		c.Servers = append(c.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Address)})
	}
	if !self {
		c.Servers = append(c.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(s.cfg.NodeID), Address: s.trans.LocalAddr()})
	}
	return c, nil
}

// SameAddress reports whether a and b are one address: equal, or
// resolving to the same TCP address (localhost:7000 and 127.0.0.1:7000).
func SameAddress(a, b string) bool {
	if a == b {
		return true
	}
	ta, errA := net.ResolveTCPAddr("tcp", a)
	tb, errB := net.ResolveTCPAddr("tcp", b)
	return errA == nil && errB == nil && ta.String() == tb.String()
}

// DataDirInUseError is Open's error when another process (or another
// Store) holds the data directory's log.
type DataDirInUseError struct {
	Dir    string
	Waited time.Duration
}

func (e *DataDirInUseError) Error() string {
	return fmt.Sprintf("raftstore: data dir %s is in use by another process (its raft.db stayed locked for %s): is another agent running on it?", e.Dir, e.Waited)
}

// Close stops the node: raft, its transport and its log store. The data
// directory stays, and Open resumes from it.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		err := s.raft.Shutdown().Error()
		s.closeErr = errors.Join(err, s.logs.Close())
	})
	return s.closeErr
}

// ID is this node's id.
func (s *Store) ID() string { return s.cfg.NodeID }

// Addr is this node's transport address, as the other nodes reach it.
func (s *Store) Addr() string { return string(s.trans.LocalAddr()) }

// IsLeader reports whether this node is the leader now.
func (s *Store) IsLeader() bool { return s.raft.State() == raft.Leader }

// Leader returns the leader's id and address as this node knows them;
// empty while there is none.
func (s *Store) Leader() (id, addr string) {
	a, i := s.raft.LeaderWithID()
	return string(i), string(a)
}

// LeaderCh delivers true when this node becomes the leader and false when
// it stops being it. Only the latest change is kept for a slow receiver.
func (s *Store) LeaderCh() <-chan bool { return s.raft.LeaderCh() }

// WaitLeader waits until the cluster has a leader this node knows of.
func (s *Store) WaitLeader(ctx context.Context) (id, addr string, err error) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if id, addr := s.Leader(); id != "" {
			return id, addr, nil
		}
		select {
		case <-ctx.Done():
			return "", "", fmt.Errorf("raftstore: waiting for a leader: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// Term is this node's current raft term. A leader's term is its fencing
// token: it grows with every election, so an operation stamped with a
// lower term than the current one comes from a deposed leader.
func (s *Store) Term() uint64 { return s.raft.CurrentTerm() }

// Sync waits until every entry committed before it is applied to this
// node's Ledger (raft's Barrier). Only the leader can: a new leader calls
// it before resuming operations, so it acts on everything its
// predecessors committed.
func (s *Store) Sync(ctx context.Context) error {
	return s.wait(ctx, "sync", s.raft.Barrier(s.timeout(ctx)))
}

// AddVoter adds a voting member (or promotes a non-voter at the same
// address); leader only. It refuses, with a *MembershipError matching
// ErrMembershipConflict, an id that is already a voter (remove it first
// to move it) and an address another member has.
func (s *Store) AddVoter(ctx context.Context, id, addr string) error {
	what := "add voter " + id
	servers, err := s.leaderConfiguration(what)
	if err != nil {
		return err
	}
	if err := checkAdd(servers, id, addr); err != nil {
		return err
	}
	return s.wait(ctx, what, s.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, s.timeout(ctx)))
}

// RemoveServer removes a member; leader only. It refuses an id that is
// not a member (a *MembershipError matching ErrNoSuchPeer) and the last
// voter (ErrMembershipConflict). A leader that removes itself steps down
// and its raft shuts down (IsShutdown).
func (s *Store) RemoveServer(ctx context.Context, id string) error {
	what := "remove server " + id
	servers, err := s.leaderConfiguration(what)
	if err != nil {
		return err
	}
	if err := checkRemove(servers, id); err != nil {
		return err
	}
	return s.wait(ctx, what, s.raft.RemoveServer(raft.ServerID(id), 0, s.timeout(ctx)))
}

// Peers returns the cluster's members as the latest configuration has
// them.
func (s *Store) Peers() ([]Peer, error) {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("raftstore: configuration: %w", err)
	}
	var out []Peer
	for _, srv := range f.Configuration().Servers {
		out = append(out, Peer{ID: string(srv.ID), Address: string(srv.Address)})
	}
	return out, nil
}

// Snapshot compacts the log now (it is done on its own past
// SnapshotThreshold entries).
func (s *Store) Snapshot() error {
	if err := s.raft.Snapshot().Error(); err != nil {
		return fmt.Errorf("raftstore: snapshot: %w", err)
	}
	return nil
}

// LedgerJSON is this node's whole state as a snapshot holds it; equal on
// nodes that applied the same entries.
func (s *Store) LedgerJSON() ([]byte, error) { return s.fsm.marshal() }

// Digest is a SHA-256 of this node's state and the log index of the last
// command it applied, read at once: two nodes that report the same index
// must report the same digest. The index is 0 after a snapshot was
// restored, until the next command.
func (s *Store) Digest() (index uint64, sum [32]byte, err error) { return s.fsm.digest() }

// AppliedIndex is the index of the last entry applied to this node.
func (s *Store) AppliedIndex() uint64 { return s.raft.AppliedIndex() }

// timeout is how long raft may take to accept a request: ApplyTimeout,
// or less if ctx ends sooner.
func (s *Store) timeout(ctx context.Context) time.Duration {
	d := s.cfg.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		d = min(d, max(time.Until(dl), time.Millisecond))
	}
	return d
}

// wait waits for f or ctx. When ctx ends first the request may still
// happen.
func (s *Store) wait(ctx context.Context, what string, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return s.wrap(what, err)
	case <-ctx.Done():
		return fmt.Errorf("raftstore: %s: %w (it may still happen)", what, ctx.Err())
	}
}

func (s *Store) wrap(what string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		id, addr := s.Leader()
		return fmt.Errorf("%s: %w", what, &NotLeaderError{LeaderID: id, LeaderAddr: addr, Err: err})
	case errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("%s: %w", what, ErrShutdown)
	}
	if me := raftRefusal(err); me != nil {
		return fmt.Errorf("%s: %w", what, me)
	}
	return fmt.Errorf("raftstore: %s: %w", what, err)
}

// propose appends c to the log and returns its result once applied here.
func (s *Store) propose(ctx context.Context, c Command) (result, error) {
	b, err := c.Encode()
	if err != nil {
		return result{}, fmt.Errorf("raftstore: %s: %w", c.Op, err)
	}
	f := s.raft.Apply(b, s.timeout(ctx))
	if err := s.wait(ctx, c.Op, f); err != nil {
		return result{}, err
	}
	res, ok := f.Response().(result)
	if !ok {
		return result{}, fmt.Errorf("raftstore: %s: unexpected result %T", c.Op, f.Response())
	}
	return res, res.err
}

// State returns a copy of one cluster from this node's Ledger.
func (s *Store) State(_ context.Context, cluster string) (st plan.ClusterState, _ error) {
	s.fsm.read(func(l *plan.Ledger) { st = l.State(cluster) })
	return st, nil
}

// Unfinished returns every unfinished operation, oldest first.
func (s *Store) Unfinished(context.Context) (ops []plan.Operation, _ error) {
	s.fsm.read(func(l *plan.Ledger) { ops = l.Unfinished() })
	return ops, nil
}

// Operation returns one operation, finished or not.
func (s *Store) Operation(_ context.Context, id string) (op plan.Operation, err error) {
	s.fsm.read(func(l *plan.Ledger) { op, err = l.Operation(id) })
	return op, err
}

// Decisions returns up to limit of the cluster's latest decisions, newest
// first.
func (s *Store) Decisions(_ context.Context, cluster string, limit int) (d []plan.DecisionRecord, _ error) {
	s.fsm.read(func(l *plan.Ledger) { d = l.Decisions(cluster, limit) })
	return d, nil
}

// RecordDecision records a decision, the scaling state and the
// operations it starts in one log entry (a "decide" command), and returns
// the record as the leader's Ledger stored it.
func (s *Store) RecordDecision(ctx context.Context, rec plan.DecisionRecord, scaling plan.ScalingState, ops []plan.Operation) (plan.DecisionRecord, error) {
	res, err := s.propose(ctx, Command{Op: OpDecide, Record: &rec, Scaling: &scaling, Ops: ops})
	return res.record, err
}

// Transition moves an operation with compare-and-set on its step, in one
// log entry; a conflict (wrapping plan.ErrStepConflict) is committed as a
// no-op on every node and returns the operation as it is.
func (s *Store) Transition(ctx context.Context, id string, t plan.Transition) (plan.Operation, error) {
	res, err := s.propose(ctx, Command{Op: OpTransition, ID: id, Transition: &t})
	return res.op, err
}

// PutNode registers or updates a node outside any operation.
func (s *Store) PutNode(ctx context.Context, n plan.Node) error {
	if n.ID == "" || n.Cluster == "" { // refused before it costs a log entry
		return fmt.Errorf("node needs an id and a cluster")
	}
	_, err := s.propose(ctx, Command{Op: OpPutNode, Node: &n})
	return err
}

// PutSettings replaces a cluster's switches, with its audit record, in
// one log entry.
func (s *Store) PutSettings(ctx context.Context, cluster string, set plan.ClusterSettings, a plan.AuditRecord) error {
	_, err := s.propose(ctx, Command{Op: OpSettings, Cluster: cluster, Settings: &set, Audit: &a})
	return err
}

// PutPolicy records a pushed policy version, with its audit record, in
// one log entry.
func (s *Store) PutPolicy(ctx context.Context, p plan.PolicyVersion, a plan.AuditRecord) error {
	_, err := s.propose(ctx, Command{Op: OpPolicy, Policy: &p, Audit: &a})
	return err
}

// Audits returns the latest audit records, newest first (local read).
func (s *Store) Audits(_ context.Context, limit int) (out []plan.AuditRecord, err error) {
	s.fsm.read(func(l *plan.Ledger) { out = l.Audits(limit) })
	return out, nil
}

// Policy returns the policy pushed last (local read).
func (s *Store) Policy(context.Context) (p plan.PolicyVersion, ok bool, err error) {
	s.fsm.read(func(l *plan.Ledger) { p, ok = l.Policy() })
	return p, ok, nil
}
