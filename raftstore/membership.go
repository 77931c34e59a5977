package raftstore

import (
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/raft"
)

// Membership changes are checked against the latest configuration before
// raft is asked, so that a mistake is refused in the operator's words
// rather than applied (a voter moved to a dead address costs the cluster
// that voter) or refused by raft as an internal error:
//
//	AddVoter(id, addr)     id already a voter           → ErrMembershipConflict
//	                       addr already another's       → ErrMembershipConflict
//	RemoveServer(id)       id not a member              → ErrNoSuchPeer
//	                       id the last voter            → ErrMembershipConflict
//	either, on a node whose raft is shut down           → ErrShutdown
var (
	// ErrMembershipConflict is matched by a membership change refused
	// because of the cluster's configuration as it is.
	ErrMembershipConflict = errors.New("raftstore: membership change refused")
	// ErrNoSuchPeer is matched by the removal of an id that is not a
	// member.
	ErrNoSuchPeer = errors.New("raftstore: no such peer")
	// ErrShutdown is matched by every request to a node whose raft is shut
	// down: removed from the cluster (raft shuts a removed leader down),
	// or closing.
	ErrShutdown = errors.New("raftstore: this node's raft is shut down (it was removed from the cluster, or is closing)")
)

// MembershipError is a membership change refused; Msg says why, in the
// operator's words, and Err is ErrMembershipConflict or ErrNoSuchPeer.
type MembershipError struct {
	Err error
	Msg string
}

func (e *MembershipError) Error() string { return "raftstore: " + e.Msg }

// Unwrap returns ErrMembershipConflict or ErrNoSuchPeer.
func (e *MembershipError) Unwrap() error { return e.Err }

func conflict(format string, args ...any) error {
	return &MembershipError{Err: ErrMembershipConflict, Msg: fmt.Sprintf(format, args...)}
}

// RaftState is this node's raft state: leader, follower, candidate (an
// election it started is not won yet: with too few voters reachable it
// campaigns on and on) or shutdown.
func (s *Store) RaftState() string { return strings.ToLower(s.raft.State().String()) }

// IsShutdown reports whether this node's raft is shut down: removed from
// the cluster, or closed. It serves nothing more.
func (s *Store) IsShutdown() bool { return s.raft.State() == raft.Shutdown }

// configuration is the latest configuration's servers.
func (s *Store) configuration() ([]raft.Server, error) {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, s.wrap("configuration", err)
	}
	return f.Configuration().Servers, nil
}

// leaderConfiguration is the configuration, on the leader only (a
// follower's may lag, and only the leader changes it).
func (s *Store) leaderConfiguration(what string) ([]raft.Server, error) {
	if s.IsShutdown() {
		return nil, s.wrap(what, raft.ErrRaftShutdown)
	}
	if !s.IsLeader() {
		return nil, s.wrap(what, raft.ErrNotLeader)
	}
	return s.configuration()
}

// checkAdd refuses adding id at addr where that would move a voter or
// give two members one address.
func checkAdd(servers []raft.Server, id, addr string) error {
	for _, srv := range servers {
		switch {
		case string(srv.ID) == id && srv.Suffrage == raft.Voter:
			return conflict("%s is already a voter, at %s: to move it, remove it first (peers remove %s), then join it at its new address", id, srv.Address, id)
		case string(srv.Address) == addr && string(srv.ID) != id:
			return conflict("%s is already the address of peer %s: two members cannot share an address", addr, srv.ID)
		}
	}
	return nil
}

// checkRemove refuses removing an id that is not a member, or the last
// voter.
func checkRemove(servers []raft.Server, id string) error {
	voters, member, voter := 0, false, false
	var ids []string
	for _, srv := range servers {
		ids = append(ids, string(srv.ID))
		if srv.Suffrage == raft.Voter {
			voters++
		}
		if string(srv.ID) == id {
			member, voter = true, srv.Suffrage == raft.Voter
		}
	}
	switch {
	case !member:
		return &MembershipError{Err: ErrNoSuchPeer, Msg: fmt.Sprintf("no peer %q in the cluster (its members: %s)", id, strings.Join(ids, ", "))}
	case voter && voters == 1:
		return conflict("%s is the cluster's last voter: a cluster needs at least one; join another voter before removing it", id)
	}
	return nil
}

// raftRefusal turns raft's own refusals of a configuration (the checks
// above should have caught them) into a MembershipError.
func raftRefusal(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "need at least one voter in configuration"):
		return &MembershipError{Err: ErrMembershipConflict, Msg: "the change would leave the cluster without a voter"}
	case strings.Contains(msg, "found duplicate address in configuration: "):
		_, addr, _ := strings.Cut(msg, "configuration: ")
		return &MembershipError{Err: ErrMembershipConflict, Msg: "two members would share the address " + addr}
	case strings.Contains(msg, "found duplicate ID in configuration: "):
		_, id, _ := strings.Cut(msg, "configuration: ")
		return &MembershipError{Err: ErrMembershipConflict, Msg: "two members would share the id " + id}
	}
	return nil
}
