package raftstore

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

func peerIDs(t *testing.T, s *Store) string {
	t.Helper()
	ps, err := s.Peers()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, p := range ps {
		ids = append(ids, p.ID+"@"+p.Address)
	}
	return strings.Join(ids, ",")
}

func TestMembershipMistakesAreRefusedBeforeRaft(t *testing.T) {
	c := newCluster(t, 3, nil)
	l := c.leader()
	ctx := context.Background()
	before := peerIDs(t, l)
	cases := []struct {
		name string
		do   func() error
		is   error
		says string
	}{
		{"joining an id that is already a voter", func() error { return l.AddVoter(ctx, "n2", "n9") }, ErrMembershipConflict, "n2 is already a voter, at n2: to move it, remove it first"},
		{"joining at another member's address", func() error { return l.AddVoter(ctx, "n9", "n3") }, ErrMembershipConflict, "n3 is already the address of peer n3"},
		{"removing an id that is no member", func() error { return l.RemoveServer(ctx, "nosuch") }, ErrNoSuchPeer, `no peer "nosuch" in the cluster (its members: n1, n2, n3)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do()
			var me *MembershipError
			if !errors.Is(err, tc.is) || !errors.As(err, &me) || !strings.Contains(me.Msg, tc.says) {
				t.Fatalf("got %v, want %v saying %q", err, tc.is, tc.says)
			}
			if got := peerIDs(t, l); got != before {
				t.Errorf("peers changed: %s, were %s", got, before)
			}
		})
	}
}

func TestRemovingTheLastVoterIsAConflict(t *testing.T) {
	c := newCluster(t, 1, nil)
	l := c.leader()
	err := l.RemoveServer(context.Background(), "n1")
	var me *MembershipError
	if !errors.Is(err, ErrMembershipConflict) || !errors.As(err, &me) || !strings.Contains(me.Msg, "n1 is the cluster's last voter") {
		t.Fatalf("got %v, want the last voter refused", err)
	}
	if !l.IsLeader() {
		t.Error("the last voter lost its leadership")
	}
}

func TestRaftsOwnConfigurationRefusalsAreConflicts(t *testing.T) {
	for msg, want := range map[string]string{
		"found duplicate address in configuration: n2":   "two members would share the address n2",
		"need at least one voter in configuration: {[]}": "without a voter",
	} {
		err := (&Store{}).wrap("x", errors.New(msg))
		var me *MembershipError
		if !errors.Is(err, ErrMembershipConflict) || !errors.As(err, &me) || !strings.Contains(me.Msg, want) {
			t.Errorf("%s: got %v, want a conflict saying %q", msg, err, want)
		}
	}
}

func TestAMembershipChangeOnAFollowerNamesTheLeader(t *testing.T) {
	c := newCluster(t, 3, nil)
	l := c.leader()
	for _, s := range c.running() {
		if s != l {
			if err := s.RemoveServer(context.Background(), "nosuch"); !errors.Is(err, ErrNotLeader) {
				t.Fatalf("got %v, want not the leader", err)
			}
			return
		}
	}
}

func TestARemovedLeaderSaysShutdownAndRefusesWrites(t *testing.T) {
	c := newCluster(t, 3, nil)
	l := c.leader()
	if l.RaftState() != "leader" {
		t.Fatalf("state %s", l.RaftState())
	}
	if err := l.RemoveServer(context.Background(), l.ID()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the removed leader to shut down", l.IsShutdown)
	if s := l.RaftState(); s != "shutdown" {
		t.Errorf("state %s, want shutdown", s)
	}
	err := l.PutNode(context.Background(), node("x1"))
	if !errors.Is(err, ErrShutdown) || errors.Is(err, ErrNotLeader) {
		t.Errorf("a write on the removed node: %v, want ErrShutdown", err)
	}
	if err := l.AddVoter(context.Background(), "n9", "n9"); !errors.Is(err, ErrShutdown) {
		t.Errorf("a join on the removed node: %v, want ErrShutdown", err)
	}
}

func TestAVoterWithoutQuorumIsACandidate(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.leader()
	c.stop("n2")
	c.stop("n3")
	s := c.nodes["n1"]
	eventually(t, "n1 to campaign", func() bool { return s.RaftState() == "candidate" })
}

func TestASecondOpenOfADataDirFailsFast(t *testing.T) {
	dir := t.TempDir()
	open := func(id string) (*Store, error) {
		_, tr := raft.NewInmemTransport(raft.ServerAddress(id))
		return Open(Config{NodeID: id, DataDir: dir, Bootstrap: true, LockTimeout: 100 * time.Millisecond,
			Transport: func(Config, hclog.Logger) (raft.Transport, error) { return tr, nil }, Logger: hclog.NewNullLogger()})
	}
	first, err := open("n1")
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	t0 := time.Now()
	_, err = open("n1")
	var in *DataDirInUseError
	if !errors.As(err, &in) || in.Dir != dir || !strings.Contains(err.Error(), "is in use by another process") {
		t.Fatalf("got %v, want the data dir in use", err)
	}
	if took := time.Since(t0); took > 2*time.Second {
		t.Errorf("took %s to fail", took)
	}
}

func TestABadBootstrapConfigurationIsNeverWritten(t *testing.T) {
	cases := map[string]struct {
		peers []Peer
		says  string
	}{
		"an id twice":                      {[]Peer{{"n1", "n1"}, {"n2", "n2"}, {"n2", "n3"}}, "peers[2]: id n2 is peers[1]'s too"},
		"an address twice":                 {[]Peer{{"n1", "n1"}, {"n2", "n2"}, {"n3", "n2"}}, "peers[2]: address n2 is peers[1]'s too"},
		"its own entry at another address": {[]Peer{{"n1", "elsewhere"}, {"n2", "n2"}}, "this node's peer entry (n1) gives the address elsewhere"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			_, tr := raft.NewInmemTransport("n1")
			_, err := Open(Config{NodeID: "n1", DataDir: dir, Bootstrap: true, Peers: tc.peers,
				Transport: func(Config, hclog.Logger) (raft.Transport, error) { return tr, nil }, Logger: hclog.NewNullLogger()})
			if err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("got %v, want %q", err, tc.says)
			}
			if m, _ := filepath.Glob(filepath.Join(dir, "snapshots", "*")); len(m) > 0 {
				t.Errorf("snapshots written: %v", m)
			}
		})
	}
}
