package sim

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/mitosis-autoscaler/mitosis/autoscaler"
	"github.com/mitosis-autoscaler/mitosis/node"
	"github.com/mitosis-autoscaler/mitosis/plan"
)

// DefaultPolicyTarget is the target utilization of the default policy
// (defaults.target in policies/target_tracking.rego): the ideal follower's
// target when the cluster's policy_params give none.
const DefaultPolicyTarget = 0.6

// PolicyTarget is the target utilization a cluster's policy_params give
// ("target", a positive number), or DefaultPolicyTarget.
func PolicyTarget(params map[string]any) float64 {
	var v float64
	switch t := params["target"].(type) {
	case float64:
		v = t
	case int:
		v = float64(t)
	case int64:
		v = float64(t)
	case uint64:
		v = float64(t)
	}
	if v > 0 && !math.IsInf(v, 0) {
		return v
	}
	return DefaultPolicyTarget
}

// Ideal is the ideal reactive follower of a workload (IdealFollower): the
// limit of a reactive policy at its target, shown beside a run.
type Ideal struct {
	Mode   Mode
	Target float64
	// Lag is one clone time, from a need to the nodes that meet it
	// serving, in whole world steps.
	Lag time.Duration
	// Timeline has a Row per minute, as a run's.
	Timeline []Row
	Summary  Summary
}

// IdealFollower is the ideal reactive follower of the workload (times
// scale) in the given mode: the nodes demand needs at the policy's
// target, each serving one clone time after the need, on the same World
// a run uses (its demand, its queue, its warmth, its stun). No tick, no
// metrics window, no cooldown, no budget, no failed operation.
//
// needed(k) is clamp(⌈demand(k) / (NodeCapacity × target)⌉, max(minNodes,
// 1), maxNodes) for the world's step k, and the follower serves step k
// with needed(k − lag) nodes, lag being one clone time in steps (rounded
// up): Prepare + LiveClone for live clones, ColdBoot for cold boots. It
// starts with needed(0) warm nodes. A new node is a VM of the world made
// with World.Clone one boot time (LiveClone or ColdBoot) before it serves:
// a live clone is as warm as its template (which the clone stuns for
// Stun), a cold boot starts at ColdFraction and warms while serving, and
// the VM counts in node-hours from the moment it is asked for. A node no
// longer needed is taken out and destroyed at once (no drain: the
// sessions it had are not the follower's concern), the coldest and then
// the newest first, unless the follower will need it again within one
// boot time: then keeping it costs no more than booting another, so it
// stays. The follower therefore never has more than maxNodes VMs, and
// never fewer serving than needed(k − lag).
//
// Host capacities are ignored (one unlimited host); the seed does not
// matter (no fault is drawn). The result is a pure function of its
// arguments.
func IdealFollower(load *Workload, p Params, mode Mode, scale, target float64, minNodes, maxNodes int) (*Ideal, error) {
	switch {
	case !(target > 0) || math.IsInf(target, 0):
		return nil, fmt.Errorf("ideal follower: target %g: must be a positive number", target)
	case maxNodes < 1 || minNodes > maxNodes:
		return nil, fmt.Errorf("ideal follower: min %d, max %d: want max ≥ 1 and min ≤ max", minNodes, maxNodes)
	}
	if scale == 0 {
		scale = 1
	}
	p.ApplyDefaults()
	p.RefusePrepareProbability, p.CloneFailureProbability = 0, 0
	w, err := NewWorld(p, mode, load, scale, nil, 0)
	if err != nil {
		return nil, fmt.Errorf("ideal follower: %w", err)
	}
	lag, boot := p.ColdBoot.Duration, p.ColdBoot.Duration
	if mode == LiveClone {
		lag, boot = p.Prepare.Duration+p.LiveClone.Duration, p.LiveClone.Duration
	}
	f := &follower{w: w, lag: stepsIn(lag, p.Step.Duration), boot: stepsIn(boot, p.Step.Duration)}
	f.need = neededPerStep(w, p.NodeCapacity*target, max(minNodes, 1), maxNodes)

	for range f.n(0) {
		name := f.name()
		if _, err := w.AddNode(name, "app", idealHost); err != nil {
			return nil, fmt.Errorf("ideal follower: %w", err)
		}
		f.serving = append(f.serving, name)
	}
	now := w.Now()
	nextRow := now.Add(time.Minute)
	f.row = Row{Time: now}
	f.rows = make([]Row, 0, int(load.Duration()/time.Minute)+1)
	for k := 0; !w.Done(); k++ {
		if err := f.act(k, now); err != nil {
			return nil, fmt.Errorf("ideal follower: %w", err)
		}
		w.Step()
		if now = w.Now(); !now.Before(nextRow) || w.Done() {
			f.rows = append(f.rows, accumulatedRow(f.row, w.TakeAccumulator(), len(f.pending)))
			f.row = Row{Time: now}
			nextRow = now.Add(time.Minute)
		}
	}
	// Requests still waiting when the workload ends were not served.
	if n := len(f.rows); n > 0 {
		f.rows[n-1].Dropped += w.Backlog()
	}
	return &Ideal{
		Mode: mode, Target: target, Lag: time.Duration(f.lag) * p.Step.Duration,
		Timeline: f.rows, Summary: Summarize(f.rows, f.ops, p.NodeCapacity),
	}, nil
}

// idealHost is the follower's one unlimited host.
const idealHost = "host-1"

// stepsIn is d in whole steps, rounded up.
func stepsIn(d, step time.Duration) int {
	return int(math.Ceil(d.Seconds()/step.Seconds() - 1e-9))
}

// neededPerStep is needed(k) for every step of the world's workload:
// the nodes its demand needs at perNode requests a second each, within
// [lo, hi].
func neededPerStep(w *World, perNode float64, lo, hi int) []int32 {
	n := int(math.Ceil(w.load.Duration().Seconds()/w.dt - 1e-9))
	need := make([]int32, max(n, 1))
	for k := range n {
		d := w.rate(float64(k)*w.dt, w.dt)
		need[k] = int32(min(max(math.Ceil(d/perNode-1e-9), float64(lo)), float64(hi)))
	}
	if n == 0 {
		need[0] = int32(lo)
	}
	return need
}

// follower drives a World as the ideal follower: it adds and removes VMs
// through the world's exported ports, as the controller's sagas would.
type follower struct {
	w         *World
	lag, boot int     // one clone time and one boot time, in steps
	need      []int32 // needed(k) per step
	serving   []string
	pending   []pendingVM
	seq       int
	nextTmpl  int
	ops       []OpRecord
	rows      []Row
	row       Row
}

type pendingVM struct {
	name string
	join int // the step it serves from
	op   int // its index in ops
}

func (f *follower) name() string {
	f.seq++
	return fmt.Sprintf("ideal-%d", f.seq)
}

// n is the nodes the follower serves step k with: needed(k − lag).
func (f *follower) n(k int) int { return int(f.need[min(max(k-f.lag, 0), len(f.need)-1)]) }

// act is what the follower does at the start of step k: it removes the
// nodes it no longer needs, asks for those that must serve in one boot
// time, and puts into service those that answer.
func (f *follower) act(k int, now time.Time) error {
	ctx := context.Background()
	alive := len(f.serving) + len(f.pending)
	// Keep what serves within one boot time: a new node would cost as much.
	keep := f.n(k)
	for j := k + 1; j <= k+f.boot; j++ {
		keep = max(keep, f.n(j))
	}
	if drop := min(alive-keep, len(f.serving)-f.n(k)); drop > 0 {
		if err := f.remove(ctx, drop, now); err != nil {
			return err
		}
		alive -= drop
	}
	for range f.n(k+f.boot) - alive {
		if err := f.add(ctx, k+f.boot, now); err != nil {
			return err
		}
	}
	return f.join(ctx, k, now)
}

// remove takes the coldest serving nodes, newest first among equals, out
// of service and destroys them.
func (f *follower) remove(ctx context.Context, n int, now time.Time) error {
	type cand struct {
		i      int
		warmth float64
	}
	cs := make([]cand, len(f.serving))
	for i, name := range f.serving {
		st, err := f.w.Status(ctx, Addr(name))
		if err != nil {
			return err
		}
		cs[i] = cand{i, st.CacheHitRatio}
	}
	slices.SortFunc(cs, func(a, b cand) int {
		return cmp.Or(cmp.Compare(a.warmth, b.warmth), cmp.Compare(b.i, a.i))
	})
	gone := map[int]bool{}
	for _, c := range cs[:n] {
		name := f.serving[c.i]
		if err := f.w.Remove(ctx, name); err != nil {
			return err
		}
		if err := f.w.Destroy(ctx, name); err != nil {
			return err
		}
		gone[c.i] = true
		f.ops = append(f.ops, OpRecord{ID: "ideal-contract-" + name, Kind: plan.OpContract, Started: now, Finished: now, Status: plan.OpDone})
		f.row.Contractions++
	}
	i := 0
	f.serving = slices.DeleteFunc(f.serving, func(string) bool { i++; return gone[i-1] })
	return nil
}

// add asks the world for a new VM, to serve from step join. A live clone
// copies a serving node, taking each in turn as the template.
func (f *follower) add(ctx context.Context, join int, now time.Time) error {
	f.nextTmpl %= len(f.serving)
	tmpl := f.serving[f.nextTmpl]
	f.nextTmpl++
	name := f.name()
	if _, err := f.w.Clone(ctx, autoscaler.CloneRequest{Operation: name, Name: name, Template: tmpl, Host: idealHost}); err != nil {
		return err
	}
	f.pending = append(f.pending, pendingVM{name: name, join: join, op: len(f.ops)})
	f.ops = append(f.ops, OpRecord{ID: "ideal-expand-" + name, Kind: plan.OpExpand, Started: now, Status: plan.OpRunning})
	f.row.Expansions++
	return nil
}

// join puts into service the new VMs due by step k that answer (a VM the
// world does not yet reach tries again at the next step).
func (f *follower) join(ctx context.Context, k int, now time.Time) error {
	var err error
	f.pending = slices.DeleteFunc(f.pending, func(v pendingVM) bool {
		if v.join > k || err != nil {
			return false
		}
		addr := Addr(v.name)
		if f.w.Finalize(ctx, addr, node.FinalizeRequest{Operation: v.name, ID: v.name, Address: addr}) != nil {
			return false
		}
		if err = f.w.Attach(ctx, v.name, addr); err != nil {
			return false
		}
		f.serving = append(f.serving, v.name)
		f.ops[v.op].Finished, f.ops[v.op].Status = now, plan.OpDone
		f.row.Joined++
		return true
	})
	return err
}
