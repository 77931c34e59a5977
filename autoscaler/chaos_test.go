package autoscaler

import (
	"context"
	"errors"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/mitosis-autoscaler/mitosis/plan"
	"github.com/mitosis-autoscaler/mitosis/policy"
)

// TestSagasNeverStrandOrOrphan drives the controller with random decisions
// while the world fails in every way the fakes can inject and controllers
// die between a side effect and its commit. Once the faults stop, every
// operation must end done or compensated, every VM must belong to a
// registered node and every registered node must have its VM and be in
// the dispatcher.
func TestSagasNeverStrandOrOrphan(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		var draw *rapid.T = rt
		pol := policyFunc(func(in *policy.Input) (plan.Decision, error) {
			var app []string
			for _, n := range in.Nodes {
				if n.Role == "app" && n.State == string(plan.NodeReady) {
					app = append(app, n.ID)
				}
			}
			if len(app) == 0 {
				return plan.Decision{Action: plan.ActionNone}, nil
			}
			switch rapid.IntRange(0, 2).Draw(draw, "action") {
			case 0:
				return plan.Decision{
					Action: plan.ActionExpand, Count: rapid.IntRange(1, 2).Draw(draw, "count"),
					Template: rapid.SampledFrom(app).Draw(draw, "template"), Templates: app,
					Force: rapid.Bool().Draw(draw, "force"),
				}, nil
			case 1:
				return plan.Decision{Action: plan.ActionContract, Count: 1, Nodes: []string{rapid.SampledFrom(app).Draw(draw, "victim")}}, nil
			}
			return plan.Decision{Action: plan.ActionNone}, nil
		})
		r := newRig(t, pol, func(c *Config) { c.Clusters[0].Max = 6 })
		steps := []plan.Step{StepAwaitPrepared, StepClone, StepResumeTemplate, StepFinalize, StepJoin, StepDone,
			StepUndoClone, StepUndoTemplate, StepDetach, StepAwaitDetached, StepRemove, StepDestroy}
		for range rapid.IntRange(1, 25).Draw(rt, "rounds") {
			w := r.w
			w.mu.Lock()
			w.refusePrepare = rapid.Float64Range(0, 1).Draw(rt, "refuse") < 0.15
			w.neverSettles = rapid.Float64Range(0, 1).Draw(rt, "unsettled") < 0.15
			w.finalizeNever = rapid.Float64Range(0, 1).Draw(rt, "nofinalize") < 0.15
			w.cloneReachable = rapid.Float64Range(0, 1).Draw(rt, "slowboot") > 0.2
			w.cloneErr, w.cloneMadeErr, w.drainErr = nil, nil, nil
			switch rapid.IntRange(0, 6).Draw(rt, "fault") {
			case 0:
				w.cloneErr = errors.New("datastore full")
			case 1:
				w.cloneMadeErr = errors.New("task timeout")
			case 2:
				w.drainErr = errors.New("dispatcher down")
			}
			for a := range w.reachable {
				if rapid.Float64Range(0, 1).Draw(rt, "boots") < 0.5 {
					w.reachable[a] = true
				}
			}
			w.mu.Unlock()

			reg := Registry(r.reg)
			if rapid.Float64Range(0, 1).Draw(rt, "crash") < 0.3 {
				reg = &crashAfter{MemRegistry: r.reg, step: rapid.SampledFrom(steps).Draw(rt, "crashstep")}
			}
			c, err := New(r.cfg, Deps{Registry: reg, Metrics: r.w, Policy: pol, Hypervisor: r.w,
				Dispatcher: r.w, Nodes: r.w, Clock: r.w})
			if err != nil {
				rt.Fatal(err)
			}
			if rapid.Bool().Draw(rt, "tick") {
				_, _ = c.Tick(r.ctx)
			}
			_ = c.Actuate(r.ctx) // a crash shows up as an error here
			r.w.advance(time.Duration(rapid.IntRange(1, 40).Draw(rt, "wait")) * time.Second)
		}

		// The faults stop; the operations must all come to an end.
		w := r.w
		w.mu.Lock()
		w.refusePrepare, w.neverSettles, w.finalizeNever, w.cloneErr, w.cloneMadeErr, w.drainErr = false, false, false, nil, nil, nil
		for a := range w.reachable {
			w.reachable[a] = true
		}
		w.cloneReachable = true
		w.mu.Unlock()
		for range 20 {
			r.w.advance(100 * time.Second)
			if err := r.c.Actuate(r.ctx); err != nil {
				rt.Fatalf("actuate after the faults stopped: %v", err)
			}
		}
		checkConverged(rt, r)
	})
}

func checkConverged(t *rapid.T, r *rig) {
	ctx := context.Background()
	if left, _ := r.reg.Unfinished(ctx); len(left) > 0 {
		t.Fatalf("operations stranded: %+v", left)
	}
	for id := range r.reg.ops {
		op, _ := r.reg.Operation(ctx, id)
		if op.Status == plan.OpFailed {
			t.Fatalf("operation %s failed: %s", op.ID, op.Error)
		}
	}
	nodes := r.nodes()
	byVM := map[string]plan.Node{}
	for _, n := range nodes {
		byVM[n.VM] = n
		if _, ok := r.w.vms[n.VM]; !ok {
			t.Fatalf("node %s has no VM %s", n.ID, n.VM)
		}
		if n.State != plan.NodeReady {
			t.Fatalf("node %s left %s", n.ID, n.State)
		}
		if !r.w.attached[n.ID] {
			t.Fatalf("node %s not in the dispatcher", n.ID)
		}
	}
	for vm := range r.w.vms {
		if _, ok := byVM[vm]; !ok {
			t.Fatalf("orphan VM %s (VMs %v)", vm, keys(r.w.vms))
		}
	}
	for n := range r.w.attached {
		if _, ok := nodes[n]; !ok {
			t.Fatalf("dispatcher still holds unregistered %s", n)
		}
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
