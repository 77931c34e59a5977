package sim

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/autoscaler"
	"github.com/mitosis-autoscaler/mitosis/node"
	"github.com/mitosis-autoscaler/mitosis/plan"
)

var ctx = context.Background()

// flat is a workload of rps requests per second for d.
func flat(rps float64, d time.Duration) *Workload {
	n := int(d / time.Minute)
	w := &Workload{Name: "flat", Start: SyntheticStart, Step: time.Minute, Values: make([]float64, n)}
	for i := range w.Values {
		w.Values[i] = rps * 60
	}
	return w
}

func newTestWorld(t *testing.T, p Params, mode Mode, rps float64, hosts ...autoscaler.HostConfig) *World {
	t.Helper()
	p.ApplyDefaults()
	w, err := NewWorld(p, mode, flat(rps, time.Hour), 1, hosts, 1)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func mustAdd(t *testing.T, w *World, id string) plan.Node {
	t.Helper()
	n, err := w.AddNode(id, "app", "host-1")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func steps(w *World, d time.Duration) {
	for end := w.Now().Add(d); w.Now().Before(end); {
		w.Step()
	}
}

func clone(t *testing.T, w *World, name, template string) autoscaler.VM {
	t.Helper()
	vm, err := w.Clone(ctx, autoscaler.CloneRequest{Operation: name, Name: name, Template: template, Host: "host-1"})
	if err != nil {
		t.Fatal(err)
	}
	return vm
}

func near(got, want, tol float64) bool { return math.Abs(got-want) <= tol }

func TestWorldServesUpToCapacityAndDropsWhatWaitsTooLong(t *testing.T) {
	w := newTestWorld(t, Params{}, LiveClone, 250) // 2.5 warm nodes' worth
	mustAdd(t, w, "a")
	mustAdd(t, w, "b")
	steps(w, 10*time.Minute)
	a := w.TakeAccumulator()
	if !near(a.Served/a.Seconds, 200, 1e-6) {
		t.Errorf("served %.3f req/s, want the capacity 200", a.Served/a.Seconds)
	}
	// Everything beyond capacity is dropped but the 10 s queue.
	if want := 50*a.Seconds - 200*10; !near(a.Dropped, want, 1e-6) {
		t.Errorf("dropped %.1f, want %.1f", a.Dropped, want)
	}
	if !near(w.Backlog(), 2000, 1e-6) {
		t.Errorf("backlog %.1f, want 200 req/s × 10 s", w.Backlog())
	}
}

func TestWorldMetricsAreWindowAverages(t *testing.T) {
	w := newTestWorld(t, Params{}, LiveClone, 150)
	na, nb := mustAdd(t, w, "a"), mustAdd(t, w, "b")
	if s := w.Snapshot(ctx, "app", nil); s.Unavailable == "" {
		t.Error("a snapshot before any step should be unavailable")
	}
	steps(w, 5*time.Minute)
	s := w.Snapshot(ctx, "app", []plan.Node{na, nb, {ID: "ghost", Address: Addr("ghost")}})
	if s.Unavailable != "" {
		t.Fatal(s.Unavailable)
	}
	for k, want := range map[string]float64{
		MetricDemandRPS: 150, MetricCapacityRPS: 200, MetricServedRPS: 150,
		MetricUtilization: 0.75, MetricQueueLength: 0, MetricQueueGrowthPerS: 0, MetricNodesServing: 2,
	} {
		if got := s.Cluster[k]; !near(got.Value, want, 1e-9) || got.Age != 0 {
			t.Errorf("cluster %s = %+v, want %g", k, got, want)
		}
	}
	for _, id := range []string{"a", "b"} {
		m := s.Nodes[id]
		if !near(m[MetricUtilization].Value, 0.75, 1e-9) || !near(m[MetricRequestsPerSecond].Value, 75, 1e-9) ||
			m[MetricCacheHitRatio].Value != 1 || !near(m[MetricSessions].Value, 75.0/20*60, 2) {
			t.Errorf("node %s: %+v", id, m)
		}
	}
	if _, ok := s.Nodes["ghost"]; ok {
		t.Error("a node without a VM has samples")
	}
}

func TestWorldOverloadShowsInTheMetrics(t *testing.T) {
	w := newTestWorld(t, Params{}, LiveClone, 300)
	n := mustAdd(t, w, "a")
	steps(w, 2*time.Minute)
	s := w.Snapshot(ctx, "app", []plan.Node{n})
	if u := s.Nodes["a"][MetricUtilization].Value; !near(u, 3, 1e-9) {
		t.Errorf("node utilization %g, want 3 (offered / capacity)", u)
	}
	if g := s.Cluster[MetricQueueGrowthPerS].Value; !near(g, 200, 1e-9) {
		t.Errorf("queue growth %g/s, want 200", g)
	}
	if q := s.Cluster[MetricQueueLength].Value; q < 200*60 {
		t.Errorf("queue length %g, want at least a window of unserved requests", q)
	}
}

func TestLiveCloneInheritsWarmthAndStunsTheTemplate(t *testing.T) {
	w := newTestWorld(t, Params{Stun: autoscaler.Dur(2500 * time.Millisecond)}, LiveClone, 50)
	mustAdd(t, w, "a")
	vm := clone(t, w, "c", "a")
	if _, err := w.Status(ctx, vm.Address); err == nil || !strings.Contains(err.Error(), "not reachable") {
		t.Fatalf("a fresh live clone answers at once: %v", err)
	}
	w.Step() // the template is stunned for half of the step
	if a := w.TakeAccumulator(); !near(a.CapSeconds, 100*2.5, 1e-9) {
		t.Errorf("capacity during the stun: %g req, want half a step's", a.CapSeconds)
	}
	steps(w, 5*time.Second)
	if err := w.Finalize(ctx, vm.Address, node.FinalizeRequest{ID: "c"}); err != nil {
		t.Fatalf("finalize after the clone booted: %v", err)
	}
	st, err := w.Status(ctx, vm.Address)
	if err != nil || st.State != node.StateReady || st.ID != "c" || st.CacheHitRatio != 1 || st.Sessions != 0 {
		t.Fatalf("clone after finalize: %+v, %v", st, err)
	}
}

func TestColdBootStartsColdAndWarmsUpWhileServing(t *testing.T) {
	w := newTestWorld(t, Params{}, ColdBoot, 500)
	mustAdd(t, w, "a")
	vm := clone(t, w, "c", "a")
	steps(w, 115*time.Second)
	if err := w.Finalize(ctx, vm.Address, node.FinalizeRequest{ID: "c"}); err == nil {
		t.Fatal("a cold-booting VM answered before its boot time")
	}
	steps(w, 5*time.Second)
	if err := w.Finalize(ctx, vm.Address, node.FinalizeRequest{ID: "c"}); err != nil {
		t.Fatal(err)
	}
	if err := w.Attach(ctx, "c", vm.Address); err != nil {
		t.Fatal(err)
	}
	st, _ := w.Status(ctx, vm.Address)
	if st.CacheHitRatio != 0.3 {
		t.Errorf("cold clone warmth %g, want the cold fraction 0.3", st.CacheHitRatio)
	}
	w.TakeAccumulator()
	w.Step()
	if a := w.TakeAccumulator(); !near(a.CapSeconds/a.Seconds, 130, 1e-9) {
		t.Errorf("capacity %g req/s, want 100 + 0.3×100", a.CapSeconds/a.Seconds)
	}
	steps(w, 5*time.Minute-5*time.Second)
	if st, _ := w.Status(ctx, vm.Address); !near(st.CacheHitRatio, 0.3+0.7*0.5, 1e-6) {
		t.Errorf("after half the warm-up: warmth %g, want 0.65", st.CacheHitRatio)
	}
	steps(w, 6*time.Minute)
	if st, _ := w.Status(ctx, vm.Address); st.CacheHitRatio != 1 {
		t.Errorf("after the warm-up: warmth %g, want 1", st.CacheHitRatio)
	}
}

func TestColdBootTemplateSettlesAtOnce(t *testing.T) {
	w := newTestWorld(t, Params{}, ColdBoot, 10)
	n := mustAdd(t, w, "a")
	if r, err := w.Prepare(ctx, n.Address, node.PrepareRequest{Operation: "op"}); err != nil || !r.Accepted {
		t.Fatal(r, err)
	}
	if st, _ := w.Status(ctx, n.Address); st.State != node.StatePrepared {
		t.Errorf("state %s, want prepared at once", st.State)
	}
}

func TestPrepareSettlesAfterItsTimeAndResumeRestores(t *testing.T) {
	w := newTestWorld(t, Params{Prepare: autoscaler.Dur(7 * time.Second)}, LiveClone, 10)
	n := mustAdd(t, w, "a")
	if r, err := w.Prepare(ctx, n.Address, node.PrepareRequest{Operation: "op"}); err != nil || !r.Accepted {
		t.Fatal(r, err)
	}
	if r, _ := w.Prepare(ctx, n.Address, node.PrepareRequest{Operation: "op"}); !r.Accepted {
		t.Error("prepare is not idempotent per operation")
	}
	if r, _ := w.Prepare(ctx, n.Address, node.PrepareRequest{Operation: "other"}); r.Accepted {
		t.Error("a second operation prepared a node already preparing")
	}
	w.Step()
	if st, _ := w.Status(ctx, n.Address); st.State != node.StatePreparing {
		t.Errorf("after 5s: %s, want preparing", st.State)
	}
	w.Step()
	if st, _ := w.Status(ctx, n.Address); st.State != node.StatePrepared {
		t.Errorf("after 10s: %s, want prepared", st.State)
	}
	if err := w.Resume(ctx, n.Address, "op"); err != nil {
		t.Fatal(err)
	}
	if st, _ := w.Status(ctx, n.Address); st.State != node.StateReady {
		t.Errorf("after resume: %s", st.State)
	}
}

func TestPrepareCanBeRefused(t *testing.T) {
	w := newTestWorld(t, Params{RefusePrepareProbability: 1}, LiveClone, 10)
	n := mustAdd(t, w, "a")
	r, err := w.Prepare(ctx, n.Address, node.PrepareRequest{Operation: "op"})
	if err != nil || r.Accepted || r.Reason == "" {
		t.Fatalf("%+v, %v: want a refusal with a reason", r, err)
	}
}

func TestDetachFinishesSessionsWithinASessionLength(t *testing.T) {
	w := newTestWorld(t, Params{}, LiveClone, 100)
	n := mustAdd(t, w, "a")
	mustAdd(t, w, "b")
	steps(w, 10*time.Minute)
	if err := w.Drain(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := w.Detach(ctx, n.Address, "op"); err != nil {
		t.Fatal(err)
	}
	st, _ := w.Status(ctx, n.Address)
	if st.State != node.StateDetaching || st.Sessions == 0 {
		t.Fatalf("after detach: %+v", st)
	}
	steps(w, 55*time.Second)
	if st, _ := w.Status(ctx, n.Address); st.State != node.StateDetaching {
		t.Errorf("after 55s: %+v, want still detaching", st)
	}
	steps(w, 10*time.Second)
	if st, _ := w.Status(ctx, n.Address); st.State != node.StateDetached || st.Sessions != 0 {
		t.Errorf("after a session length: %+v, want detached", st)
	}
}

func TestDispatcherSendsWorkOnlyToAttachedNodes(t *testing.T) {
	w := newTestWorld(t, Params{}, LiveClone, 150)
	na, nb := mustAdd(t, w, "a"), mustAdd(t, w, "b")
	if err := w.Drain(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := w.Drain(ctx, "nobody"); err == nil {
		t.Error("draining an unknown backend succeeded")
	}
	steps(w, time.Minute)
	s := w.Snapshot(ctx, "app", []plan.Node{na, nb})
	if _, ok := s.Nodes["a"][MetricUtilization]; ok || s.Nodes["b"][MetricUtilization].Value != 1.5 {
		t.Errorf("drained a: %+v; b: %+v", s.Nodes["a"], s.Nodes["b"])
	}
	if err := w.Attach(ctx, "a", na.Address); err != nil {
		t.Fatal(err)
	}
	if err := w.Remove(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if err := w.Remove(ctx, "b"); err != nil {
		t.Errorf("removing an absent backend: %v", err)
	}
	if _, serving := w.Counts(); serving != 1 {
		t.Errorf("%d serving, want 1", serving)
	}
}

func TestHypervisorContract(t *testing.T) {
	w := newTestWorld(t, Params{}, LiveClone, 10, autoscaler.HostConfig{Name: "host-1", Capacity: 2})
	mustAdd(t, w, "a")
	_, err := w.Clone(ctx, autoscaler.CloneRequest{Name: "x", Template: "missing", Host: "host-1"})
	if !errors.Is(err, autoscaler.ErrVMNotFound) {
		t.Errorf("clone of a missing template: %v, want ErrVMNotFound", err)
	}
	first := clone(t, w, "c", "a")
	if again := clone(t, w, "c", "a"); again != first {
		t.Errorf("a retried clone made %+v, then %+v", first, again)
	}
	if vms, _ := w.Counts(); vms != 2 {
		t.Errorf("%d VMs after a retried clone, want 2", vms)
	}
	if _, err := w.Clone(ctx, autoscaler.CloneRequest{Name: "d", Template: "a", Host: "host-1"}); err == nil || !strings.Contains(err.Error(), "full") {
		t.Errorf("clone onto a full host: %v", err)
	}
	if err := w.Destroy(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	if err := w.Destroy(ctx, "c"); err != nil {
		t.Errorf("destroying a missing VM: %v", err)
	}
	if _, err := w.Status(ctx, first.Address); err == nil {
		t.Error("a destroyed VM still answers")
	}
}

func TestCloneFailureIsInjected(t *testing.T) {
	w := newTestWorld(t, Params{CloneFailureProbability: 1}, LiveClone, 10)
	mustAdd(t, w, "a")
	if _, err := w.Clone(ctx, autoscaler.CloneRequest{Name: "c", Template: "a", Host: "host-1"}); !errors.Is(err, errCloneFailed) {
		t.Errorf("clone: %v, want the injected failure", err)
	}
}

func TestWorldStepDoesNotAllocate(t *testing.T) {
	w := newTestWorld(t, Params{}, LiveClone, 5000)
	for i := range 100 {
		mustAdd(t, w, "n"+string(rune('A'+i/26))+string(rune('a'+i%26)))
	}
	if n := testing.AllocsPerRun(100, w.Step); n != 0 {
		t.Errorf("Step allocates %g times", n)
	}
}

// As the node API does, only the operation that prepared a node resumes it.
func TestWorldResumesOnlyForThePreparingOperation(t *testing.T) {
	ctx := context.Background()
	w, err := NewWorld(DefaultParams(), LiveClone, flat(100, time.Hour), 1, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	n, err := w.AddNode("web-1", "app", "host-1")
	if err != nil {
		t.Fatal(err)
	}
	if r, err := w.Prepare(ctx, n.Address, node.PrepareRequest{Operation: "op-1", Mode: node.PrepareSuspend}); err != nil || !r.Accepted {
		t.Fatalf("prepare: %+v %v", r, err)
	}
	var se *node.StateError
	if err := w.Resume(ctx, n.Address, "op-2"); !errors.As(err, &se) || se.Operation != "op-1" {
		t.Errorf("resume by another operation: %v, want a StateError naming op-1", err)
	}
	if err := w.Resume(ctx, n.Address, "op-1"); err != nil {
		t.Errorf("resume by the preparing operation: %v", err)
	}
	if st, _ := w.Status(ctx, n.Address); st.State != node.StateReady {
		t.Errorf("after resume: %s", st.State)
	}
}
