package autoscaler

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/mitosis-autoscaler/mitosis/plan"
	"github.com/mitosis-autoscaler/mitosis/raftstore"
)

// trio is three controllers, each on its own node of a raft registry
// (in-memory transports that a test can cut), acting on one shared world:
// the hypervisor, load balancer and nodes live outside the controllers,
// as they do outside the agents.
type trio struct {
	t      *testing.T
	ids    []string
	trans  map[string]*raft.InmemTransport
	stores map[string]*raftstore.Store
	ctl    map[string]*Controller
	w      *fakeWorld
}

func newTrio(t *testing.T, pol PolicyEngine) *trio {
	t.Helper()
	tr := &trio{t: t, trans: map[string]*raft.InmemTransport{}, stores: map[string]*raftstore.Store{}, ctl: map[string]*Controller{}, w: newFakeWorld()}
	var peers []raftstore.Peer
	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("n%d", i)
		tr.ids = append(tr.ids, id)
		peers = append(peers, raftstore.Peer{ID: id, Address: id})
		_, tr.trans[id] = raft.NewInmemTransport(raft.ServerAddress(id))
	}
	tr.heal()
	cfg, err := parseConfig([]byte(testConfig), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range tr.ids {
		transport := tr.trans[id]
		s, err := raftstore.Open(raftstore.Config{
			NodeID: id, DataDir: t.TempDir(), Bootstrap: true, Peers: peers,
			// Relaxed for a loaded test machine; the LAN defaults are a
			// quarter of these.
			HeartbeatTimeout: 400 * time.Millisecond, ElectionTimeout: 400 * time.Millisecond,
			LeaderLeaseTimeout: 200 * time.Millisecond, ApplyTimeout: 2 * time.Second,
			Transport: func(raftstore.Config, hclog.Logger) (raft.Transport, error) { return transport, nil },
			Logger:    hclog.NewNullLogger(),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		tr.stores[id] = s
		tr.ctl[id], err = New(cfg, Deps{Registry: s, Metrics: tr.w, Policy: pol, Hypervisor: tr.w,
			Dispatcher: tr.w, Nodes: tr.w, Clock: tr.w, Fence: s.Term})
		if err != nil {
			t.Fatal(err)
		}
	}
	return tr
}

// cut isolates node id from the others, both ways.
func (tr *trio) cut(id string) {
	for _, other := range tr.ids {
		if other != id {
			tr.trans[id].Disconnect(raft.ServerAddress(other))
			tr.trans[other].Disconnect(raft.ServerAddress(id))
		}
	}
}

// heal connects every node to every other.
func (tr *trio) heal() {
	for _, a := range tr.ids {
		for _, b := range tr.ids {
			if a != b {
				tr.trans[a].Connect(raft.ServerAddress(b), tr.trans[b])
			}
		}
	}
}

// leader waits for one of ids to lead, and for it to have applied all
// that was committed before.
func (tr *trio) leader(ids ...string) string {
	tr.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, id := range ids {
			if s := tr.stores[id]; s.IsLeader() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				err := s.Sync(ctx)
				cancel()
				if err == nil {
					return id
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	tr.t.Fatalf("no leader among %v", ids)
	return ""
}

// TestAPartitionedLeaderStopsAndItsSuccessorFinishes cuts the leader off
// in the middle of an expansion — before the clone is made, and after it
// is made but before its step is committed — and lets the isolated old
// leader try to go on. It cannot commit, so it does nothing more; the new
// leader resumes the operation from its last committed step and finishes
// it. The world holds exactly one clone, and once healed the three
// registries are identical.
func TestAPartitionedLeaderStopsAndItsSuccessorFinishes(t *testing.T) {
	for _, when := range []string{"before the clone", "after the clone, before its commit"} {
		t.Run(when, func(t *testing.T) {
			tr := newTrio(t, always(plan.Decision{Action: plan.ActionExpand, Count: 1, Template: "a1", Reason: "busy"}))
			ctx := context.Background()
			old := tr.leader(tr.ids...)
			for _, id := range []string{"a1", "a2"} {
				tr.w.addNode(tr.stores[old], "web", id, "app", "h1")
			}
			recs, err := tr.ctl[old].Tick(ctx)
			if err != nil || len(recs) != 1 || len(recs[0].Operations) != 1 {
				t.Fatalf("the first tick: %+v, %v", recs, err)
			}
			opID := recs[0].Operations[0]
			var others []string
			for _, id := range tr.ids {
				if id != old {
					others = append(others, id)
				}
			}

			if when == "before the clone" {
				tr.cut(old)
			} else {
				tr.w.mu.Lock()
				tr.w.afterClone = func() { tr.cut(old); tr.w.afterClone = nil }
				tr.w.mu.Unlock()
			}
			// The old leader goes on as far as it can: it cannot commit.
			actx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if err := tr.ctl[old].Actuate(actx); err == nil {
				t.Errorf("the isolated old leader committed its steps")
			}
			cancel()
			madeByOld := tr.w.cloneCount

			// The new leader, the term after, resumes and finishes.
			leader := tr.leader(others...)
			var op plan.Operation
			for range 50 {
				tr.w.advance(time.Second)
				if err := tr.ctl[leader].Actuate(ctx); err != nil {
					t.Logf("actuate: %v", err)
				}
				if op, err = tr.stores[leader].Operation(ctx, opID); err == nil && op.Status.Finished() {
					break
				}
			}
			if op.Status != plan.OpDone {
				t.Fatalf("the operation ended %s at %s: %s", op.Status, op.Step, op.Error)
			}
			if tr.w.cloneCount != 1 {
				t.Errorf("%d clones made (the old leader %d), want exactly 1", tr.w.cloneCount, madeByOld)
			}
			if op.Fence == 0 || tr.stores[leader].Term() <= op.Fence {
				t.Errorf("the operation's fence %d, the new leader's term %d: want the old leader's term, before the new one's", op.Fence, tr.stores[leader].Term())
			}

			// Healed, the old leader follows; it acts no more; all agree.
			tr.heal()
			same := func() []string {
				want, _ := tr.stores[leader].LedgerJSON()
				var differ []string
				for _, id := range tr.ids {
					if got, _ := tr.stores[id].LedgerJSON(); !bytes.Equal(got, want) {
						differ = append(differ, id)
					}
				}
				return differ
			}
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) && len(same()) > 0 {
				time.Sleep(20 * time.Millisecond)
			}
			if differ := same(); len(differ) > 0 {
				t.Errorf("the registries of %v differ from the leader's", differ)
			}
			if err := tr.ctl[old].Actuate(ctx); err != nil {
				t.Errorf("the old leader, healed, has something to do: %v", err)
			}
			if tr.w.cloneCount != 1 {
				t.Errorf("%d clones in the end, want 1", tr.w.cloneCount)
			}
		})
	}
}

// lossAt is the leader's registry, which cuts the leader off at one point
// of one step: just after the step is committed (before its side effect),
// or just before the step's end is committed (after its side effect).
type lossAt struct {
	Registry
	step plan.Step
	// after: cut once the step is committed, before its side effect;
	// else once its side effect is done, before its end is committed.
	after bool
	cut   func()
	fired bool
}

func (l *lossAt) Transition(ctx context.Context, id string, t plan.Transition) (plan.Operation, error) {
	if !l.fired && !l.after && t.From == l.step {
		// Leaving the step: its side effect is done, its end not yet
		// committed.
		l.fired = true
		l.cut()
	}
	op, err := l.Registry.Transition(ctx, id, t)
	if !l.fired && l.after && err == nil && op.Step == l.step {
		// Entered the step: committed, its side effect not yet done.
		l.fired = true
		l.cut()
	}
	return op, err
}

// TestLeaderLossAtEveryStep loses the leader at every step of both sagas,
// before and after the step's side effect, while the isolated old leader
// keeps trying. Every operation ends done, with one clone and no orphan
// VM, and the registries agree once healed.
func TestLeaderLossAtEveryStep(t *testing.T) {
	steps := map[plan.Action][]plan.Step{
		plan.ActionExpand:   {StepPrepare, StepAwaitPrepared, StepClone, StepResumeTemplate, StepFinalize, StepJoin},
		plan.ActionContract: {StepDrain, StepDetach, StepAwaitDetached, StepRemove, StepDestroy},
	}
	for _, action := range []plan.Action{plan.ActionExpand, plan.ActionContract} {
		for _, step := range steps[action] {
			for _, after := range []bool{false, true} {
				name := fmt.Sprintf("%s at %s, %s its side effect", action, step, map[bool]string{false: "after", true: "before"}[after])
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					dec := plan.Decision{Action: action, Count: 1, Template: "a1", Nodes: []string{"a2"}, Reason: "test"}
					tr := newTrio(t, always(dec))
					ctx := context.Background()
					old := tr.leader(tr.ids...)
					for _, id := range []string{"a1", "a2", "a3"} {
						tr.w.addNode(tr.stores[old], "web", id, "app", "h1")
					}
					loss := &lossAt{Registry: tr.stores[old], step: step, after: after, cut: func() { tr.cut(old) }}
					cfg, _ := parseConfig([]byte(testConfig), "test.yaml")
					oldCtl, err := New(cfg, Deps{Registry: loss, Metrics: tr.w, Policy: always(dec), Hypervisor: tr.w,
						Dispatcher: tr.w, Nodes: tr.w, Clock: tr.w, Fence: tr.stores[old].Term})
					if err != nil {
						t.Fatal(err)
					}
					recs, err := oldCtl.Tick(ctx)
					if err != nil || len(recs) != 1 || len(recs[0].Operations) != 1 {
						t.Fatalf("the first tick: %+v, %v", recs, err)
					}
					opID := recs[0].Operations[0]
					if after && step == FirstStep(map[plan.Action]plan.OpKind{plan.ActionExpand: plan.OpExpand, plan.ActionContract: plan.OpContract}[action]) {
						// The first step is entered by the decision itself.
						loss.fired = true
						tr.cut(old)
					}
					// The old leader runs until it is cut off, then keeps trying.
					for i := 0; i < 30 && !loss.fired; i++ {
						tr.w.advance(time.Second)
						_ = oldCtl.Actuate(ctx)
					}
					if !loss.fired {
						t.Fatalf("the operation never reached %s", step)
					}
					var others []string
					for _, id := range tr.ids {
						if id != old {
							others = append(others, id)
						}
					}
					leader := tr.leader(others...)
					var op plan.Operation
					for range 60 {
						tr.w.advance(time.Second)
						actx, cancel := context.WithTimeout(ctx, time.Second)
						_ = oldCtl.Actuate(actx) // the old leader, cut off, tries too
						cancel()
						_ = tr.ctl[leader].Actuate(ctx)
						if op, err = tr.stores[leader].Operation(ctx, opID); err == nil && op.Status.Finished() {
							break
						}
					}
					if op.Status != plan.OpDone {
						t.Fatalf("the operation ended %s at %s: %s", op.Status, op.Step, op.Error)
					}
					tr.w.mu.Lock()
					clones, vms := tr.w.cloneCount, len(tr.w.vms)
					tr.w.mu.Unlock()
					wantVMs := map[plan.Action]int{plan.ActionExpand: 4, plan.ActionContract: 2}[action]
					if (action == plan.ActionExpand && clones != 1) || vms != wantVMs {
						t.Errorf("%d clones made, %d VMs; want %d VMs (no duplicate, no orphan)", clones, vms, wantVMs)
					}
					st, _ := tr.stores[leader].State(ctx, "web")
					if len(st.Nodes) != wantVMs {
						t.Errorf("%d registered nodes for %d VMs", len(st.Nodes), vms)
					}
					tr.heal()
					deadline := time.Now().Add(10 * time.Second)
					for {
						want, _ := tr.stores[leader].LedgerJSON()
						agree := true
						for _, id := range tr.ids {
							if got, _ := tr.stores[id].LedgerJSON(); !bytes.Equal(got, want) {
								agree = false
							}
						}
						if agree {
							break
						}
						if time.Now().After(deadline) {
							t.Fatal("the registries do not agree once healed")
						}
						time.Sleep(20 * time.Millisecond)
					}
				})
			}
		}
	}
}
