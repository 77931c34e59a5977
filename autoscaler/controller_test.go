package autoscaler

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/node"
	"github.com/mitosis-autoscaler/mitosis/plan"
	"github.com/mitosis-autoscaler/mitosis/policy"
)

const testConfig = `
tick: 10s
clusters:
  - name: web
    min: 1
    max: 5
    cooldown: {up: 0s, down: 0s}
    stabilization: 0s
    budget: {cluster: 4, template: 1, host: 0}
    prepare: {deadline: 30s}
    finalize: {deadline: 60s}
    detach: {deadline: 60s}
`

type rig struct {
	t   *testing.T
	ctx context.Context
	c   *Controller
	reg *MemRegistry
	w   *fakeWorld
	cfg Config
	pol PolicyEngine
}

// newRig makes a cluster "web" of two app nodes and one database node.
func newRig(t *testing.T, pol PolicyEngine, edit func(*Config)) *rig {
	t.Helper()
	return newRigOf(t, pol, edit, "a1", "a2")
}

// newRigOf makes a cluster "web" of the app nodes named and one database
// node.
func newRigOf(t *testing.T, pol PolicyEngine, edit func(*Config), apps ...string) *rig {
	t.Helper()
	cfg, err := parseConfig([]byte(testConfig), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(&cfg)
	}
	r := &rig{t: t, ctx: context.Background(), reg: NewMemRegistry(), w: newFakeWorld(), cfg: cfg, pol: pol}
	for _, id := range apps {
		r.w.addNode(r.reg, "web", id, "app", "h1")
	}
	r.w.addNode(r.reg, "web", "db", "database", "h1")
	r.c = r.controller()
	return r
}

func (r *rig) controller() *Controller {
	c, err := New(r.cfg, Deps{Registry: r.reg, Metrics: r.w, Policy: r.pol, Hypervisor: r.w,
		Dispatcher: r.w, Nodes: r.w, Clock: r.w})
	if err != nil {
		r.t.Fatal(err)
	}
	return c
}

func (r *rig) tick() plan.DecisionRecord {
	r.t.Helper()
	recs, err := r.c.Tick(r.ctx)
	if err != nil {
		r.t.Logf("tick: %v", err)
	}
	if len(recs) != 1 {
		r.t.Fatalf("want 1 decision record, got %d", len(recs))
	}
	return recs[0]
}

func (r *rig) actuate() {
	r.t.Helper()
	if err := r.c.Actuate(r.ctx); err != nil {
		r.t.Fatalf("actuate: %v", err)
	}
}

func (r *rig) op(id string) plan.Operation {
	r.t.Helper()
	op, err := r.reg.Operation(r.ctx, id)
	if err != nil {
		r.t.Fatal(err)
	}
	return op
}

func (r *rig) nodes() map[string]plan.Node {
	st, err := r.reg.State(r.ctx, "web")
	if err != nil {
		r.t.Fatal(err)
	}
	out := map[string]plan.Node{}
	for _, n := range st.Nodes {
		out[n.ID] = n
	}
	return out
}

// setState sets a registered node's state.
func (r *rig) setState(id string, s plan.NodeState) {
	r.t.Helper()
	if err := r.reg.PutNode(r.ctx, withState(r.nodes()[id], s)); err != nil {
		r.t.Fatal(err)
	}
}

// note is the journal's note on entering step s.
func note(op plan.Operation, s plan.Step) string {
	for _, j := range op.Journal {
		if j.Step == s {
			return j.Note
		}
	}
	return ""
}

// appRoles are the app nodes of the clusters whose expansions must end
// alike: the prepare step drains the template of the first, and keeps
// the last ready node of the second in the dispatcher.
var appRoles = []struct {
	name string
	apps []string
}{
	{"two app nodes", []string{"a1", "a2"}},
	{"one app node", []string{"a1"}},
}

func steps(op plan.Operation) []plan.Step {
	var s []plan.Step
	for _, j := range op.Journal {
		s = append(s, j.Step)
	}
	return s
}

var expandOne = plan.Decision{Action: plan.ActionExpand, Count: 1, Template: "a1", Reason: "busy"}

func TestExpandSagaClonesTemplateAndJoinsTheClone(t *testing.T) {
	r := newRig(t, always(expandOne), nil)
	rec := r.tick()
	if len(rec.Operations) != 1 {
		t.Fatalf("want one operation, got %+v", rec)
	}
	r.actuate()
	op := r.op(rec.Operations[0])
	if op.Status != plan.OpDone {
		t.Fatalf("status %s at %s: %s", op.Status, op.Step, op.Error)
	}
	want := []plan.Step{StepPrepare, StepAwaitPrepared, StepClone, StepResumeTemplate, StepFinalize, StepJoin, StepDone}
	if got := steps(op); !slices.Equal(got, want) {
		t.Errorf("steps %v, want %v", got, want)
	}
	clone := plan.CloneName(op)
	wantCalls := []string{"drain a1", "prepare fake://a1", "clone " + clone + " from vm-a1", "resume fake://a1",
		"attach a1", "finalize fake://" + clone + " as " + clone, "attach " + clone}
	if !slices.Equal(r.w.calls, wantCalls) {
		t.Errorf("calls\n %q\nwant\n %q", r.w.calls, wantCalls)
	}
	n, ok := r.nodes()[clone]
	if !ok {
		t.Fatalf("clone %s not registered", clone)
	}
	if n.Parent != "a1" || n.LineageDepth != 1 || n.Role != "app" || n.State != plan.NodeReady {
		t.Errorf("clone node %+v", n)
	}
	if r.nodes()["a1"].State != plan.NodeReady || !r.w.attached["a1"] {
		t.Errorf("template not back in service: %+v attached=%v", r.nodes()["a1"], r.w.attached["a1"])
	}
}

func TestExpandSagaWaitsForTheCloneToBoot(t *testing.T) {
	r := newRig(t, always(expandOne), nil)
	r.w.cloneReachable = false
	rec := r.tick()
	r.actuate()
	if op := r.op(rec.Operations[0]); op.Step != StepFinalize || op.Status != plan.OpRunning {
		t.Fatalf("want the op waiting at finalize, got %s %s", op.Step, op.Status)
	}
	r.w.reachable["fake://"+plan.CloneName(r.op(rec.Operations[0]))] = true
	r.w.advance(5 * time.Second)
	r.actuate()
	if op := r.op(rec.Operations[0]); op.Status != plan.OpDone {
		t.Fatalf("want done once the clone answers, got %s %s", op.Step, op.Status)
	}
}

// A live clone's guest leases an address of its own after Clone returns,
// and may report another one first: the saga asks the hypervisor again on
// every try of the finalize step, finalizes the clone where it answers,
// and joins it at that address.
func TestTheSagaLearnsTheClonesAddressFromTheHypervisorUntilFinalizeSucceeds(t *testing.T) {
	r := newRig(t, always(expandOne), nil)
	rec := r.tick()
	clone := plan.CloneName(r.op(rec.Operations[0]))
	r.w.vmAddr[clone] = "" // no address yet when Clone returns
	r.actuate()
	op := r.op(rec.Operations[0])
	if op.Step != StepFinalize || op.Status != plan.OpRunning || op.CloneAddress != "" {
		t.Fatalf("with no address: %s %s at %q, want waiting at finalize with none", op.Step, op.Status, op.CloneAddress)
	}
	if slices.ContainsFunc(r.w.calls, func(c string) bool { return strings.HasPrefix(c, "finalize") }) {
		t.Errorf("finalize sent with no address: %q", r.w.calls)
	}

	// The address appears, but nothing answers there yet.
	r.w.vmAddr[clone] = "fake://first-lease"
	r.w.advance(5 * time.Second)
	r.actuate()
	if op := r.op(rec.Operations[0]); op.Step != StepFinalize {
		t.Fatalf("finalize refused at the first address: op at %s, want still at finalize", op.Step)
	}

	// It changes once, to where the clone answers.
	r.w.vmAddr[clone] = "fake://own-lease"
	r.w.reachable["fake://own-lease"] = true
	r.w.nodeState["fake://own-lease"] = node.StateCloned
	r.w.advance(5 * time.Second)
	r.actuate()
	op = r.op(rec.Operations[0])
	if op.Status != plan.OpDone || op.CloneAddress != "fake://own-lease" {
		t.Fatalf("op %s %s at %q: %s; want done at fake://own-lease", op.Step, op.Status, op.CloneAddress, op.Error)
	}
	finalizes := slices.DeleteFunc(slices.Clone(r.w.calls), func(c string) bool { return !strings.HasPrefix(c, "finalize") })
	want := []string{"finalize fake://first-lease as " + clone, "finalize fake://own-lease as " + clone}
	if !slices.Equal(finalizes, want) {
		t.Errorf("finalize calls %q, want %q", finalizes, want)
	}
	if n := r.nodes()[clone]; n.Address != "fake://own-lease" {
		t.Errorf("registered at %q, want fake://own-lease", n.Address)
	}
	if a := r.w.attachedAt[clone]; a != "fake://own-lease" {
		t.Errorf("attached to the dispatcher at %q, want fake://own-lease", a)
	}
}

// A step's deadline counts from when the step before it ended: a clone
// that takes 50 s leaves its finalize its whole minute, not ten seconds.
func TestAStepsDeadlineCountsFromTheEndOfTheStepBefore(t *testing.T) {
	r := newRig(t, always(expandOne), nil)
	r.w.cloneReachable = false
	r.w.afterClone = func() { r.w.now = r.w.now.Add(50 * time.Second) } // Clone holds w.mu
	rec := r.tick()
	r.actuate()
	r.w.advance(15 * time.Second)
	r.actuate()
	op := r.op(rec.Operations[0])
	if op.Step != StepFinalize || op.Status != plan.OpRunning {
		t.Fatalf("15 s into finalize after a 50 s clone: %s %s (%s); want still finalizing (deadline 60 s)", op.Step, op.Status, op.Error)
	}
	var cloned, finalizing time.Time
	for _, j := range op.Journal {
		switch j.Step {
		case StepClone:
			cloned = j.At
		case StepResumeTemplate:
			finalizing = j.At
		}
	}
	if d := finalizing.Sub(cloned); d != 50*time.Second {
		t.Errorf("the journal has the clone step taking %s, want 50s", d)
	}
}

// A clone that never has an address is undone at the finalize deadline,
// and the operation says why.
func TestACloneWithoutAnAddressIsUndoneAtTheFinalizeDeadline(t *testing.T) {
	r := newRig(t, always(expandOne), nil)
	rec := r.tick()
	clone := plan.CloneName(r.op(rec.Operations[0]))
	r.w.vmAddr[clone] = ""
	r.actuate()
	r.w.advance(61 * time.Second)
	r.actuate()
	op := r.op(rec.Operations[0])
	if op.Status != plan.OpCompensated || !strings.Contains(op.Error, "reports no address for clone "+clone) {
		t.Fatalf("op %s %s: %q; want compensated, naming the missing address", op.Step, op.Status, op.Error)
	}
	if _, ok := r.w.vms[clone]; ok {
		t.Errorf("the clone's VM is left")
	}
}

func TestExpandSagaCompensates(t *testing.T) {
	tests := []struct {
		name      string
		inject    func(w *fakeWorld)
		wait      time.Duration // between the first and the second actuation
		wantSteps []plan.Step
		wantErr   string
		cloneGone bool
	}{
		{
			name:      "a template that refuses is resumed and re-attached",
			inject:    func(w *fakeWorld) { w.refusePrepare = true },
			wantSteps: []plan.Step{StepPrepare, StepUndoTemplate, StepDone},
			wantErr:   "refused to prepare: busy with a batch job",
		},
		{
			name:      "a template that does not settle by the deadline is resumed",
			inject:    func(w *fakeWorld) { w.neverSettles = true },
			wait:      31 * time.Second,
			wantSteps: []plan.Step{StepPrepare, StepAwaitPrepared, StepUndoTemplate, StepDone},
			wantErr:   "did not settle within 30s",
		},
		{
			name:      "a failed clone leaves nothing to destroy and the template is resumed",
			inject:    func(w *fakeWorld) { w.cloneErr = errors.New("datastore full") },
			wantSteps: []plan.Step{StepPrepare, StepAwaitPrepared, StepClone, StepUndoClone, StepUndoTemplate, StepDone},
			wantErr:   "datastore full",
		},
		{
			name:      "a clone made but reported failed is destroyed and the template resumed",
			inject:    func(w *fakeWorld) { w.cloneMadeErr = errors.New("task timed out") },
			wantSteps: []plan.Step{StepPrepare, StepAwaitPrepared, StepClone, StepUndoClone, StepUndoTemplate, StepDone},
			wantErr:   "task timed out",
			cloneGone: true,
		},
		{
			name:      "a clone that never finalizes is destroyed",
			inject:    func(w *fakeWorld) { w.finalizeNever = true },
			wait:      61 * time.Second,
			wantSteps: []plan.Step{StepPrepare, StepAwaitPrepared, StepClone, StepResumeTemplate, StepFinalize, StepUndoClone, StepDone},
			wantErr:   "not done within 1m0s",
			cloneGone: true,
		},
	}
	for _, role := range appRoles {
		for _, tt := range tests {
			t.Run(role.name+"/"+tt.name, func(t *testing.T) {
				r := newRigOf(t, always(expandOne), nil, role.apps...)
				tt.inject(r.w)
				rec := r.tick()
				r.actuate()
				r.w.advance(tt.wait)
				r.actuate()
				op := r.op(rec.Operations[0])
				if op.Status != plan.OpCompensated {
					t.Fatalf("status %s at %s, want compensated", op.Status, op.Step)
				}
				if got := steps(op); !slices.Equal(got, tt.wantSteps) {
					t.Errorf("steps %v, want %v", got, tt.wantSteps)
				}
				if !strings.Contains(op.Error, tt.wantErr) {
					t.Errorf("error %q does not say %q", op.Error, tt.wantErr)
				}
				if n := r.nodes()["a1"]; n.State != plan.NodeReady || !r.w.attached["a1"] {
					t.Errorf("template not back: state %s attached %v", n.State, r.w.attached["a1"])
				}
				if _, exists := r.w.vms[plan.CloneName(op)]; exists {
					t.Errorf("half-made clone %s left behind", plan.CloneName(op))
				}
				if _, registered := r.nodes()[plan.CloneName(op)]; registered {
					t.Errorf("clone registered after compensation")
				}
				if tt.cloneGone && !slices.Contains(r.w.calls, "destroy "+plan.CloneName(op)) {
					t.Errorf("clone never destroyed: %q", r.w.calls)
				}
			})
		}
	}
}

func TestUndoTemplateLeavesATemplateAnotherOperationHolds(t *testing.T) {
	r := newRig(t, always(expandOne), nil)
	r.w.refusePrepare = true
	r.w.heldBy = "another-operation" // the node answers resume with 409
	rec := r.tick()
	r.actuate()
	op := r.op(rec.Operations[0])
	if op.Status != plan.OpCompensated {
		t.Fatalf("status %s at %s: the undo must not wait forever on a 409", op.Status, op.Step)
	}
	if note := op.Journal[len(op.Journal)-1].Note; !strings.Contains(note, "template not resumed") {
		t.Errorf("journal: %q", note)
	}
	if slices.Contains(r.w.calls, "attach a1") {
		t.Errorf("re-attached a template another operation holds: %q", r.w.calls)
	}
}

// An undo that cannot resume its template ends instead of holding the
// cluster (the template protected, the budget spent) for ever.
func TestAnUndoThatCannotResumeTheTemplateEnds(t *testing.T) {
	for _, role := range appRoles {
		t.Run(role.name+"/a template that stopped answering is marked failed after the prepare deadline", func(t *testing.T) {
			r := newRigOf(t, always(expandOne), nil, role.apps...)
			r.w.neverSettles, r.w.resumeErr = true, errUnreachable
			rec := r.tick()
			r.actuate()
			r.w.advance(31 * time.Second) // the template did not settle: undo
			r.actuate()
			if op := r.op(rec.Operations[0]); op.Status != plan.OpRunning || op.Step != StepUndoTemplate {
				t.Fatalf("status %s at %s: the first failed resumes are retried", op.Status, op.Step)
			}
			r.w.advance(31 * time.Second)
			r.actuate()
			op := r.op(rec.Operations[0])
			if op.Status != plan.OpFailed || !strings.Contains(op.Error, "did not resume within 30s") {
				t.Fatalf("status %s at %s, error %q: want failed, naming the deadline", op.Status, op.Step, op.Error)
			}
			if n := r.nodes()["a1"]; n.State != plan.NodeFailed || r.w.attached["a1"] {
				t.Errorf("template: state %s, attached %v; want failed and out of the dispatcher", n.State, r.w.attached["a1"])
			}
		})
		t.Run(role.name+"/a node API that refuses the token gets its template back as it was", func(t *testing.T) {
			r := newRigOf(t, always(expandOne), nil, role.apps...)
			r.w.refusePrepare, r.w.resumeErr = true, node.ErrUnauthorized
			rec := r.tick()
			r.actuate()
			op := r.op(rec.Operations[0])
			if op.Status != plan.OpFailed || !strings.Contains(op.Error, "node_api.token_file") {
				t.Fatalf("status %s at %s, error %q: want failed at once, naming the token", op.Status, op.Step, op.Error)
			}
			if n := r.nodes()["a1"]; n.State != plan.NodeReady || !r.w.attached["a1"] {
				t.Errorf("template: state %s, attached %v; want ready and attached again", n.State, r.w.attached["a1"])
			}
		})
	}
}

// The prepare step drains its template in the dispatcher unless it is
// the last ready node of its role in its cluster: drained, it would
// leave the dispatcher nobody to send its clients to until the resume.
// Kept in, it holds their requests while it is prepared.
func TestThePrepareStepKeepsTheLastReadyNodeOfItsRoleInTheDispatcher(t *testing.T) {
	tests := []struct {
		name    string
		apps    []string
		others  plan.NodeState // the state of the app nodes but a1
		drained bool
	}{
		{name: "the only app node is kept (the database is another role)", apps: []string{"a1"}},
		{name: "one of two ready app nodes is drained", apps: []string{"a1", "a2"}, others: plan.NodeReady, drained: true},
		{name: "one of three ready app nodes is drained", apps: []string{"a1", "a2", "a3"}, others: plan.NodeReady, drained: true},
		{name: "the only ready one, the other draining, is kept", apps: []string{"a1", "a2"}, others: plan.NodeDraining},
		{name: "the only ready one, the other failed, is kept", apps: []string{"a1", "a2"}, others: plan.NodeFailed},
		{name: "the only ready one, the other preparing, is kept", apps: []string{"a1", "a2"}, others: plan.NodePreparing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRigOf(t, always(expandOne), nil, tt.apps...)
			for _, id := range tt.apps[1:] {
				r.setState(id, tt.others)
			}
			var inWhileCloned bool
			r.w.afterClone = func() { inWhileCloned = r.w.attached["a1"] } // w.mu is held
			rec := r.tick()
			r.actuate()
			op := r.op(rec.Operations[0])
			if op.Status != plan.OpDone {
				t.Fatalf("status %s at %s: %s", op.Status, op.Step, op.Error)
			}
			clone := plan.CloneName(op)
			want := []string{"prepare fake://a1", "clone " + clone + " from vm-a1", "resume fake://a1",
				"attach a1", "finalize fake://" + clone + " as " + clone, "attach " + clone}
			if tt.drained {
				want = append([]string{"drain a1"}, want...)
			}
			if !slices.Equal(r.w.calls, want) {
				t.Errorf("calls\n %q\nwant\n %q", r.w.calls, want)
			}
			if inWhileCloned == tt.drained {
				t.Errorf("a1 taking work while cloned: %v, want %v", inWhileCloned, !tt.drained)
			}
			kept := strings.Contains(note(op, StepAwaitPrepared), "kept in the dispatcher: the last ready app node")
			if kept == tt.drained {
				t.Errorf("journal on prepare: %q; want it to say the template was kept in: %v", note(op, StepAwaitPrepared), !tt.drained)
			}
			if n := r.nodes()["a1"]; n.State != plan.NodeReady || !r.w.attached["a1"] {
				t.Errorf("template not back in service: %+v attached=%v", n, r.w.attached["a1"])
			}
		})
	}
}

// Two templates of a role of two nodes prepared at once: the first is
// drained, the second, then the last ready one, is kept in.
func TestOfTwoTemplatesPreparedAtOnceTheLastReadyIsKeptIn(t *testing.T) {
	r := newRig(t, always(plan.Decision{Action: plan.ActionExpand, Count: 2, Templates: []string{"a1", "a2"}, Reason: "busy"}), nil)
	r.w.neverSettles = true // both wait, preparing
	rec := r.tick()
	if len(rec.Operations) != 2 {
		t.Fatalf("want two operations, got %+v", rec)
	}
	r.actuate()
	drains := slices.DeleteFunc(slices.Clone(r.w.calls), func(c string) bool { return !strings.HasPrefix(c, "drain") })
	if len(drains) != 1 {
		t.Fatalf("drains %q, want one: the first template's", drains)
	}
	r.w.nodeState["fake://a1"], r.w.nodeState["fake://a2"] = node.StatePrepared, node.StatePrepared
	r.actuate()
	for _, id := range rec.Operations {
		if op := r.op(id); op.Status != plan.OpDone {
			t.Errorf("operation %s: %s at %s: %s", id, op.Status, op.Step, op.Error)
		}
	}
	for _, id := range []string{"a1", "a2"} {
		if n := r.nodes()[id]; n.State != plan.NodeReady || !r.w.attached[id] {
			t.Errorf("template %s not back in service: %+v attached=%v", id, n, r.w.attached[id])
		}
	}
}

func TestTheCloneIsRegisteredOnTheHostItLandedOn(t *testing.T) {
	r := newRig(t, always(expandOne), nil)
	r.w.landOn = "h9" // as an Instant Clone lands on its template's host
	rec := r.tick()
	r.actuate()
	op := r.op(rec.Operations[0])
	if op.Status != plan.OpDone || op.Host != "h9" {
		t.Fatalf("status %s host %q", op.Status, op.Host)
	}
	if n := r.nodes()[op.Node]; n.Host != "h9" {
		t.Errorf("clone registered on %q, want h9", n.Host)
	}
}

func TestUndoCloneLeavesAnotherOperationsVMAlone(t *testing.T) {
	r := newRig(t, always(expandOne), nil)
	r.w.cloneErr = errors.New("datastore full")
	rec := r.tick()
	name := plan.CloneName(r.op(rec.Operations[0]))
	// A VM of the clone's name, made by someone else, appears.
	r.w.vms[name], r.w.vmOps[name] = "h1", "another-operation"
	r.actuate()
	op := r.op(rec.Operations[0])
	if op.Status != plan.OpCompensated || !strings.Contains(op.Error, `made by operation "another-operation"`) {
		t.Fatalf("status %s error %q", op.Status, op.Error)
	}
	if slices.Contains(r.w.calls, "destroy "+name) {
		t.Errorf("destroyed a VM this operation did not make: %q", r.w.calls)
	}
	if _, ok := r.w.vms[name]; !ok {
		t.Error("the stranger VM is gone")
	}
}

func TestExpandSagaForcesPastAnUnsettledTemplate(t *testing.T) {
	forced := expandOne
	forced.Force = true
	r := newRig(t, always(forced), nil)
	r.w.neverSettles = true
	rec := r.tick()
	r.actuate()
	r.w.advance(31 * time.Second)
	r.actuate()
	if op := r.op(rec.Operations[0]); op.Status != plan.OpDone {
		t.Fatalf("forced clone: %s at %s (%s)", op.Status, op.Step, op.Error)
	}
}

func TestACloneWhoseAnswerWasLostIsNotOrphaned(t *testing.T) {
	// The clone is made but its answer is lost (a task timeout): the saga
	// compensates by destroying the clone by its derived name.
	r := newRig(t, always(expandOne), nil)
	r.w.cloneMadeErr = errors.New("timeout waiting for task")
	rec := r.tick()
	r.actuate()
	op := r.op(rec.Operations[0])
	if op.Status != plan.OpCompensated {
		t.Fatalf("status %s", op.Status)
	}
	if r.w.cloneCount != 1 || len(r.w.vms) != 3 {
		t.Errorf("clones made %d, VMs left %v", r.w.cloneCount, r.w.vms)
	}
}

// crashAfter is a registry whose commit of one step fails once, as if the
// leader died right after the side effect of the step before it.
type crashAfter struct {
	*MemRegistry
	step    plan.Step
	crashed bool
}

func (c *crashAfter) Transition(ctx context.Context, id string, t plan.Transition) (plan.Operation, error) {
	if t.To == c.step && !c.crashed {
		c.crashed = true
		return plan.Operation{}, errors.New("leader lost")
	}
	return c.MemRegistry.Transition(ctx, id, t)
}

func TestACloneStepRunTwiceAfterACrashMakesOneVM(t *testing.T) {
	r := newRig(t, always(expandOne), nil)
	crashing := &crashAfter{MemRegistry: r.reg, step: StepResumeTemplate}
	c, err := New(r.cfg, Deps{Registry: crashing, Metrics: r.w, Policy: r.pol, Hypervisor: r.w,
		Dispatcher: r.w, Nodes: r.w, Clock: r.w})
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := c.Tick(r.ctx)
	if err := c.Actuate(r.ctx); err == nil {
		t.Fatal("want the commit after the clone to fail")
	}
	if op := r.op(rec[0].Operations[0]); op.Step != StepClone {
		t.Fatalf("want the op still at clone, at %s", op.Step)
	}
	r.actuate() // a new leader runs the clone step again
	op := r.op(rec[0].Operations[0])
	if op.Status != plan.OpDone {
		t.Fatalf("status %s at %s: %s", op.Status, op.Step, op.Error)
	}
	if r.w.cloneCount != 1 {
		t.Errorf("%d clones made, want 1", r.w.cloneCount)
	}
	if n := strings.Count(strings.Join(r.w.calls, "\n"), "clone "); n != 2 {
		t.Errorf("clone called %d times, want 2 (once per leader)", n)
	}
}

func TestANewControllerResumesAnInterruptedOperation(t *testing.T) {
	r := newRig(t, always(expandOne), nil)
	r.w.cloneReachable = false
	rec := r.tick()
	r.actuate() // stops at finalize: the clone does not answer yet
	// The controller dies; a new one with the same registry takes over.
	r.c = r.controller()
	r.w.reachable["fake://"+plan.CloneName(r.op(rec.Operations[0]))] = true
	r.actuate()
	op := r.op(rec.Operations[0])
	if op.Status != plan.OpDone {
		t.Fatalf("status %s at %s", op.Status, op.Step)
	}
	if r.w.cloneCount != 1 {
		t.Errorf("%d clones made, want 1", r.w.cloneCount)
	}
}

func TestAStaleTransitionIsRefused(t *testing.T) {
	r := newRig(t, always(expandOne), nil)
	rec := r.tick()
	id := rec.Operations[0]
	if _, err := r.reg.Transition(r.ctx, id, plan.Transition{From: StepPrepare, To: StepAwaitPrepared, Status: plan.OpRunning}); err != nil {
		t.Fatal(err)
	}
	_, err := r.reg.Transition(r.ctx, id, plan.Transition{From: StepPrepare, To: StepAwaitPrepared, Status: plan.OpRunning})
	if !errors.Is(err, ErrStepConflict) {
		t.Fatalf("second transition from the same step: %v, want ErrStepConflict", err)
	}
}

func TestContractSagaDrainsDetachesAndDestroys(t *testing.T) {
	r := newRig(t, always(plan.Decision{Action: plan.ActionContract, Count: 1, Nodes: []string{"a2"}}), nil)
	r.w.sessions["fake://a2"] = 3
	rec := r.tick()
	if len(rec.Operations) != 1 {
		t.Fatalf("want one operation: %+v", rec)
	}
	r.actuate()
	op := r.op(rec.Operations[0])
	if op.Step != StepAwaitDetached {
		t.Fatalf("want waiting for sessions, at %s", op.Step)
	}
	if n := r.nodes()["a2"]; n.State != plan.NodeDraining {
		t.Errorf("victim state %s, want draining", n.State)
	}
	r.w.sessions["fake://a2"] = 0
	r.actuate()
	op = r.op(rec.Operations[0])
	if op.Status != plan.OpDone {
		t.Fatalf("status %s at %s", op.Status, op.Step)
	}
	want := []string{"drain a2", "detach fake://a2", "remove a2", "destroy vm-a2"}
	if !slices.Equal(r.w.calls, want) {
		t.Errorf("calls %q, want %q", r.w.calls, want)
	}
	if _, ok := r.nodes()["a2"]; ok {
		t.Error("victim still registered")
	}
}

func TestContractSagaWaitsForTheDispatchersConnections(t *testing.T) {
	r := newRig(t, always(plan.Decision{Action: plan.ActionContract, Count: 1, Nodes: []string{"a2"}}), nil)
	r.w.lbSessions["a2"] = 2 // the node has finished its sessions; the load balancer still holds two
	rec := r.tick()
	r.actuate()
	if op := r.op(rec.Operations[0]); op.Step != StepAwaitDetached {
		t.Fatalf("removed while the dispatcher still had connections open: at %s", op.Step)
	}
	r.w.lbSessions["a2"] = 0
	r.actuate()
	if op := r.op(rec.Operations[0]); op.Status != plan.OpDone {
		t.Fatalf("status %s at %s", op.Status, op.Step)
	}
}

func TestContractSagaCutsSessionsAtTheDeadline(t *testing.T) {
	r := newRig(t, always(plan.Decision{Action: plan.ActionContract, Count: 1, Nodes: []string{"a2"}}), nil)
	r.w.sessions["fake://a2"] = 3
	rec := r.tick()
	r.actuate()
	r.w.advance(61 * time.Second)
	r.actuate()
	op := r.op(rec.Operations[0])
	if op.Status != plan.OpDone {
		t.Fatalf("status %s at %s", op.Status, op.Step)
	}
	if note := op.Journal[len(op.Journal)-3].Note; !strings.Contains(note, "3 sessions left") {
		t.Errorf("the journal does not say sessions were cut: %q", note)
	}
}

func TestContractSagaReattachesWhenDrainFails(t *testing.T) {
	r := newRig(t, always(plan.Decision{Action: plan.ActionContract, Count: 1, Nodes: []string{"a2"}}), nil)
	r.w.drainErr = errors.New("haproxy: no such server")
	rec := r.tick()
	r.actuate()
	op := r.op(rec.Operations[0])
	if op.Status != plan.OpCompensated || !strings.Contains(op.Error, "no such server") {
		t.Fatalf("status %s error %q", op.Status, op.Error)
	}
	if n, ok := r.nodes()["a2"]; !ok || n.State != plan.NodeReady {
		t.Errorf("victim not restored: %+v", n)
	}
}

func TestDryRunRecordsWithoutActing(t *testing.T) {
	r := newRig(t, always(expandOne), func(c *Config) { c.DryRun = true })
	rec := r.tick()
	if !rec.DryRun || len(rec.Proposals) != 1 || len(rec.Operations) != 0 {
		t.Fatalf("dry-run record %+v", rec)
	}
	r.actuate()
	if len(r.w.calls) != 0 {
		t.Errorf("dry-run touched the world: %q", r.w.calls)
	}
	got, _ := r.reg.Decisions(r.ctx, "web", 10)
	if len(got) != 1 || !got[0].DryRun {
		t.Errorf("recorded decisions %+v", got)
	}
	// The tick answers the record as stored, numbered.
	if len(got) == 1 && (rec.Seq == 0 || rec.Seq != got[0].Seq) {
		t.Errorf("answered seq %d, stored %d", rec.Seq, got[0].Seq)
	}
}

func TestADryRunNeedsNoActuators(t *testing.T) {
	r := newRig(t, always(expandOne), nil)
	d := Deps{Registry: r.reg, Metrics: r.w, Policy: r.pol, Clock: r.w}
	cfg := r.cfg
	if _, err := New(cfg, d); err == nil || !strings.Contains(err.Error(), "dry_run") {
		t.Errorf("acting controller without actuators: error %v", err)
	}
	cfg.DryRun = true
	c, err := New(cfg, d)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Tick(r.ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Actuate(r.ctx); err != nil {
		t.Fatal(err)
	}
}

func TestAPolicyErrorIsRecordedAndNothingHappens(t *testing.T) {
	r := newRig(t, policyFunc(func(*policy.Input) (plan.Decision, error) {
		return plan.Decision{}, errors.New("policies/x.rego:3: decision: unknown action \"grow\"")
	}), nil)
	recs, err := r.c.Tick(r.ctx)
	if err == nil || !strings.Contains(err.Error(), "x.rego:3") {
		t.Fatalf("tick error %v", err)
	}
	if len(recs) != 1 || recs[0].Error == "" || len(recs[0].Proposals) != 0 {
		t.Fatalf("record %+v", recs)
	}
}

func TestMetricsUnavailableMeansNoAction(t *testing.T) {
	r := newRig(t, always(expandOne), nil)
	r.w.unavailable = "prometheus: connection refused"
	rec := r.tick()
	if len(rec.Proposals) != 0 || rec.Metrics.Available {
		t.Fatalf("record %+v", rec)
	}
	if len(rec.Reasons) == 0 || rec.Reasons[0].Code != plan.CodeMetricsUnavailable {
		t.Errorf("reasons %v", rec.Reasons)
	}
}

func TestPolicyInputDescribesTheCluster(t *testing.T) {
	var seen *policy.Input
	r := newRig(t, policyFunc(func(in *policy.Input) (plan.Decision, error) {
		seen = in
		return plan.Decision{Action: plan.ActionNone}, nil
	}), nil)
	r.w.utilization = 0.7
	r.tick()
	if seen.Schema != policy.SchemaVersion || seen.Cluster.Size != 2 || len(seen.Nodes) != 3 {
		t.Fatalf("input %+v", seen)
	}
	if got := seen.Nodes[0].Metrics["utilization"].Value; got != 0.7 {
		t.Errorf("node metric %v", got)
	}
	if seen.History.LastExpandSAgo != -1 {
		t.Errorf("never expanded should read -1, got %v", seen.History.LastExpandSAgo)
	}
	if !seen.Health.MetricsAvailable || seen.Now != r.w.now.Unix() {
		t.Errorf("health/now %+v %d", seen.Health, seen.Now)
	}
}

func TestAManualCloneAndDetachAreRecordedWithWhoAskedAndRun(t *testing.T) {
	r := newRig(t, always(plan.Decision{Action: plan.ActionNone, Reason: "calm"}), nil)
	rec, err := r.c.Manual(r.ctx, ManualRequest{Cluster: "web", Action: plan.ActionExpand, Template: "a1", By: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if rec.By != "alice" || len(rec.Operations) != 1 || !strings.Contains(rec.Decision.Reason, "manual clone of a1 by alice") {
		t.Fatalf("record %+v", rec)
	}
	r.actuate()
	if op := r.op(rec.Operations[0]); op.Status != plan.OpDone || op.Template != "a1" {
		t.Fatalf("manual clone: %+v", op)
	}
	// The database is not scalable: refused, with the reason, no operation.
	rec, err = r.c.Manual(r.ctx, ManualRequest{Cluster: "web", Action: plan.ActionContract, Node: "db", By: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Operations) != 0 || len(rec.Reasons) == 0 {
		t.Fatalf("detach of the database: %+v", rec)
	}
	for _, bad := range []ManualRequest{
		{Cluster: "shop", Action: plan.ActionExpand, Template: "a1"},
		{Cluster: "web", Action: plan.ActionExpand},
		{Cluster: "web", Action: plan.ActionContract},
		{Cluster: "web", Action: "grow", Template: "a1"},
	} {
		if _, err := r.c.Manual(r.ctx, bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	got, _ := r.reg.Decisions(r.ctx, "web", 10)
	if len(got) != 2 || got[0].By != "bob" || got[1].By != "alice" {
		t.Errorf("recorded decisions %+v", got)
	}
	// The record answered is the one stored, numbered: an operator can
	// find it among the decisions.
	if len(got) == 2 && (rec.Seq == 0 || rec.Seq != got[0].Seq) {
		t.Errorf("answered seq %d, stored %d", rec.Seq, got[0].Seq)
	}
}

func TestAPausedClusterDecidesNothingAndAPerClusterDryRunActsOnNothing(t *testing.T) {
	calls := 0
	pol := policyFunc(func(*policy.Input) (plan.Decision, error) {
		calls++
		return expandOne, nil
	})
	r := newRig(t, pol, nil)
	at := r.w.Now()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(r.reg.PutSettings(r.ctx, "web", plan.ClusterSettings{Paused: true, By: "alice", At: at}, plan.AuditRecord{By: "alice", Action: "pause"}))
	rec := r.tick()
	if calls != 0 || rec.Decision.Action != plan.ActionNone || !strings.Contains(rec.Decision.Reason, "paused by alice") || len(rec.Operations) != 0 {
		t.Fatalf("paused: %d policy calls, record %+v", calls, rec)
	}
	// An operator may still clone by hand while the policy is paused.
	if m, err := r.c.Manual(r.ctx, ManualRequest{Cluster: "web", Action: plan.ActionExpand, Template: "a1", By: "alice"}); err != nil || len(m.Operations) != 1 {
		t.Fatalf("manual clone while paused: %+v %v", m, err)
	}
	r.actuate()
	on := true
	must(r.reg.PutSettings(r.ctx, "web", plan.ClusterSettings{DryRun: &on, By: "bob", At: at}, plan.AuditRecord{By: "bob", Action: "dry-run"}))
	rec = r.tick()
	if calls != 1 || !rec.DryRun || len(rec.Operations) != 0 || len(rec.Proposals) == 0 {
		t.Fatalf("dry run by switch: record %+v", rec)
	}

	// Configured dry, a switch cannot make it act.
	dry := newRig(t, always(expandOne), func(c *Config) { c.DryRun = true })
	off := false
	must(dry.reg.PutSettings(dry.ctx, "web", plan.ClusterSettings{DryRun: &off}, plan.AuditRecord{By: "carol", Action: "dry-run"}))
	if rec := dry.tick(); !rec.DryRun || len(rec.Operations) != 0 {
		t.Errorf("a configured dry run acted: %+v", rec)
	}
}

// clusterLB is a load balancer of one cluster that records what it is
// asked, and passes it to the world.
type clusterLB struct {
	*fakeWorld
	calls []string
}

func (lb *clusterLB) Drain(ctx context.Context, n string) error {
	lb.calls = append(lb.calls, "drain "+n)
	return lb.fakeWorld.Drain(ctx, n)
}

func (lb *clusterLB) Attach(ctx context.Context, n, a string) error {
	lb.calls = append(lb.calls, "attach "+n)
	return lb.fakeWorld.Attach(ctx, n, a)
}

func (lb *clusterLB) Remove(ctx context.Context, n string) error {
	lb.calls = append(lb.calls, "remove "+n)
	return lb.fakeWorld.Remove(ctx, n)
}

// Each cluster is attached, drained and removed through its own
// dispatcher (Deps.Dispatchers), and New refuses a cluster without one
// or a dispatcher for no cluster.
func TestEachClusterActsThroughItsOwnDispatcher(t *testing.T) {
	cfg, err := parseConfig([]byte(testConfig+`  - name: api
    min: 1
    max: 5
    cooldown: {up: 0s, down: 0s}
    stabilization: 0s
`), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	w, reg := newFakeWorld(), NewMemRegistry()
	for _, id := range []string{"w1", "w2"} { // two, so that the template is drained
		w.addNode(reg, "web", id, "app", "h1")
	}
	for _, id := range []string{"p1", "p2"} {
		w.addNode(reg, "api", id, "app", "h1")
	}
	pol := policyFunc(func(in *policy.Input) (plan.Decision, error) {
		return plan.Decision{Action: plan.ActionExpand, Count: 1, Template: in.Nodes[0].ID, Reason: "test"}, nil
	})
	web, api := &clusterLB{fakeWorld: w}, &clusterLB{fakeWorld: w}
	deps := Deps{Registry: reg, Metrics: w, Policy: pol, Hypervisor: w, Nodes: w, Clock: w,
		Dispatchers: map[string]Dispatcher{"web": web, "api": api}}
	c, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	recs, err := c.Tick(ctx)
	if err != nil || len(recs) != 2 {
		t.Fatalf("tick: %d records, %v", len(recs), err)
	}
	if err := c.Actuate(ctx); err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		if op, err := reg.Operation(ctx, rec.Operations[0]); err != nil || op.Status != plan.OpDone {
			t.Fatalf("%s: %+v, %v", rec.Cluster, op, err)
		}
	}
	for lb, want := range map[*clusterLB]string{web: "w1", api: "p1"} {
		if len(lb.calls) != 3 || lb.calls[0] != "drain "+want || lb.calls[1] != "attach "+want ||
			!strings.HasPrefix(lb.calls[2], "attach "+map[string]string{"w1": "web", "p1": "api"}[want]+"-c1") {
			t.Errorf("the dispatcher of %s's cluster was asked %v", want, lb.calls)
		}
	}

	deps.Dispatchers = map[string]Dispatcher{"web": web}
	if _, err := New(cfg, deps); err == nil || !strings.Contains(err.Error(), "a dispatcher for cluster api") {
		t.Errorf("no dispatcher for api: %v", err)
	}
	deps.Dispatcher, deps.Dispatchers = w, map[string]Dispatcher{"db": web}
	if _, err := New(cfg, deps); err == nil || !strings.Contains(err.Error(), "db, which is not a configured cluster") {
		t.Errorf("a dispatcher for an unknown cluster: %v", err)
	}
}

// TestAClonesNameIsGivenWhenItIsPlanned: the expansion carries its
// clone's name, <cluster>-c<n>, from the decision on, so the clone step
// and its retries, compensation and a new leader all use that one, and
// the registry counts it (plan's property tests check that no number is
// given twice).
func TestAClonesNameIsGivenWhenItIsPlanned(t *testing.T) {
	r := newRig(t, always(expandOne), nil)
	first := r.op(r.tick().Operations[0])
	if first.Clone != "web-c1" || plan.CloneName(first) != "web-c1" {
		t.Fatalf("first expansion's clone %q (CloneName %q), want web-c1", first.Clone, plan.CloneName(first))
	}
	r.actuate()
	if op := r.op(first.ID); op.Status != plan.OpDone || op.Node != "web-c1" || op.CloneVM != "web-c1" {
		t.Fatalf("first expansion: %s at %s, node %q vm %q; want done, web-c1", op.Status, op.Step, op.Node, op.CloneVM)
	}
	st, err := r.reg.State(r.ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if st.Scaling.Clones != 1 {
		t.Errorf("clone count %d, want 1", st.Scaling.Clones)
	}
}
