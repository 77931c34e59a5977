package agent

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/mitosis-autoscaler/mitosis/agent/wire"
	"github.com/mitosis-autoscaler/mitosis/config"
	"github.com/mitosis-autoscaler/mitosis/raftstore"
)

// The replicated registry as the API shows it: this agent's place in it
// (in the status and GET /v1/peers), and adding or removing a voter on the
// leader.

// raftStatus is this agent's place in the replicated registry; nil
// without raft.
func (a *Agent) raftStatus() *wire.RaftStatus {
	if a.raft == nil {
		return nil
	}
	st := &wire.RaftStatus{Node: a.raft.ID(), State: a.raft.RaftState(), Term: a.raft.Term()}
	st.Leader, _ = a.raft.Leader()
	peers, _ := a.raft.Peers()
	st.Peers = wirePeers(peers)
	return st
}

// wirePeers is peers as the API shows them; nil stays nil (JSON null), as
// it was when the API answered raftstore's own type.
func wirePeers(peers []raftstore.Peer) []wire.Peer {
	if peers == nil {
		return nil
	}
	out := make([]wire.Peer, len(peers))
	for i, p := range peers {
		out[i] = wire.Peer{ID: p.ID, Address: p.Address}
	}
	return out
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
	var req wire.PeerRequest
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
