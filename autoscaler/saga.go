package autoscaler

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mitosis-autoscaler/mitosis/node"
	"github.com/mitosis-autoscaler/mitosis/plan"
)

// The sagas. Each operation's Step is committed to the registry before
// the step's side effect, and every side effect is idempotent per
// operation, so a step interrupted by a crash is simply run again.
//
// Expand (clone) saga:
//
//	prepare ──► await-prepared ──► clone ──► resume-template ──► finalize ──► join ──► done
//	   │ refused      │ deadline      │ failed                      │ deadline
//	   │              │ (no force)    ▼                             ▼
//	   │              │           undo-clone ◄────────────────── undo-clone ─► compensated
//	   ▼              ▼               │
//	undo-template ◄───┴───────────────┘ ──► compensated
//
// Contract (detach) saga:
//
//	drain ──► detach ──► await-detached ──► remove ──► destroy ──► done
//	  │ failed   (deadline: go on; the node's sessions are cut)
//	  ▼
//	undo-drain ──► compensated
const (
	StepPrepare        plan.Step = "prepare"
	StepAwaitPrepared  plan.Step = "await-prepared"
	StepClone          plan.Step = "clone"
	StepResumeTemplate plan.Step = "resume-template"
	StepFinalize       plan.Step = "finalize"
	StepJoin           plan.Step = "join"
	StepUndoClone      plan.Step = "undo-clone"
	StepUndoTemplate   plan.Step = "undo-template"

	StepDrain         plan.Step = "drain"
	StepDetach        plan.Step = "detach"
	StepAwaitDetached plan.Step = "await-detached"
	StepRemove        plan.Step = "remove"
	StepDestroy       plan.Step = "destroy"
	StepUndoDrain     plan.Step = "undo-drain"

	StepDone plan.Step = "done"
)

// FirstStep is the step an operation of kind k starts at.
func FirstStep(k plan.OpKind) plan.Step {
	if k == plan.OpContract {
		return StepDrain
	}
	return StepPrepare
}

// outcome is what one step did.
type outcome struct {
	next  plan.Step     // step to commit; "" = wait and retry later
	state plan.OpStatus // status with next (running unless finishing)
	note  string
	err   string // recorded failure
	// what to commit with the step
	cloneVM, cloneAddr, node, host string
	put                            []plan.Node
	remove                         []string
}

func wait() outcome { return outcome{} }
func goTo(s plan.Step, note string) outcome {
	return outcome{next: s, state: plan.OpRunning, note: note}
}
func fail(s plan.Step, err error) outcome {
	return outcome{next: s, state: plan.OpRunning, err: err.Error(), note: "failed: " + err.Error()}
}

// resumeGivenUp ends the retries of a template's resume that cannot
// succeed, so that an operation never holds its cluster forever:
//   - the node API refuses mitosis's token: it refused every call of
//     the operation, so the template is as it was before; it is
//     re-attached (the prepare step drained it, or kept it in, and
//     attaching an attached node changes nothing) and the operation
//     fails, naming the token;
//   - the template has not answered for the prepare deadline: it is
//     marked failed and left out of the dispatcher (drained, if the
//     prepare step kept it in as the last ready node of its role), for
//     an operator to look at or detach (a failed node may be contracted).
//
// Undoing, the operation fails; going forward, the clone goes on.
func (s *saga) resumeGivenUp(ctx context.Context, op plan.Operation, t plan.Node, next plan.Step, state plan.OpStatus, err error) (outcome, bool) {
	if op.Step == StepUndoTemplate {
		state = plan.OpFailed
	}
	switch {
	case errors.Is(err, node.ErrUnauthorized):
		if aerr := s.c.d.dispatcher(s.cl.Name).Attach(ctx, t.ID, t.Address); aerr != nil {
			return outcome{}, false // retried until the dispatcher takes it back
		}
		return outcome{next: next, state: state, note: "template not resumed: re-attached as it was",
			err: fmt.Sprintf("template %s: its node API refuses mitosis's token (node_api.token_file): %v", t.ID, err)}, true
	case s.now.Sub(op.StepAt) >= s.cl.Prepare.Deadline.Duration:
		// The last ready node of its role was kept in at prepare: drained
		// now, as any failed node is. Draining a drained node is a no-op.
		if derr := s.c.d.dispatcher(s.cl.Name).Drain(ctx, t.ID); derr != nil {
			s.c.log.Warn("draining a template marked failed", "op", op.ID, "template", t.ID, "err", derr)
			return outcome{}, false // retried until the dispatcher takes it out
		}
		out := outcome{next: next, state: state, note: "template not resumed: marked failed",
			err: fmt.Sprintf("template %s did not resume within %s (%v): marked failed, left out of the dispatcher", t.ID, s.cl.Prepare.Deadline, err)}
		out.put = []plan.Node{withState(t, plan.NodeFailed)}
		return out, true
	}
	return outcome{}, false
}

// saga runs the steps of one operation against the backends.
type saga struct {
	c     *Controller
	cl    ClusterConfig
	nodes map[string]plan.Node
	now   time.Time
}

// advance runs op's steps until one must wait, the operation finishes, or
// someone else moved it. It returns the operation as it left it and how
// many steps it committed.
func (s *saga) advance(ctx context.Context, op plan.Operation) (plan.Operation, int, error) {
	steps := 0
	for ; !op.Status.Finished(); steps++ {
		// The clock is read around every step: a side effect may take a
		// while (a clone, seconds), and the next step's deadline counts
		// from when this one ended, not from when the pass began.
		s.now = s.c.d.Clock.Now()
		out := s.step(ctx, op)
		if out.next == "" {
			return op, steps, nil
		}
		s.now = s.c.d.Clock.Now()
		t := plan.Transition{
			From: op.Step, To: out.next, Status: out.state, At: s.now, Note: out.note, Error: out.err,
			CloneVM: out.cloneVM, CloneAddress: out.cloneAddr, Node: out.node, Host: out.host,
			PutNodes: out.put, RemoveNodes: out.remove,
		}
		next, err := s.c.d.Registry.Transition(ctx, op.ID, t)
		if err != nil {
			return op, steps, fmt.Errorf("operation %s: committing %s → %s: %w", op.ID, op.Step, out.next, err)
		}
		s.c.log.Info("operation step", "op", op.ID, "kind", op.Kind, "from", op.Step, "to", next.Step, "status", next.Status, "note", out.note)
		if o := s.c.d.Observer; o != nil {
			o.Stepped(next, op.Step, s.now.Sub(op.StepAt))
		}
		for _, n := range out.put {
			s.nodes[n.ID] = n
		}
		for _, id := range out.remove {
			delete(s.nodes, id)
		}
		op = next
	}
	return op, steps, nil
}

// dispatcher is the load balancer of the saga's cluster.
func (s *saga) dispatcher() Dispatcher { return s.c.d.dispatcher(s.cl.Name) }

// step runs op's current step: its side effect, then what to commit.
// Each step is a function of its own, in the order of the diagrams above.
func (s *saga) step(ctx context.Context, op plan.Operation) outcome {
	switch op.Step {
	// expand
	case StepPrepare:
		return s.prepare(ctx, op)
	case StepAwaitPrepared:
		return s.awaitPrepared(ctx, op)
	case StepClone:
		return s.clone(ctx, op)
	case StepResumeTemplate, StepUndoTemplate:
		return s.resumeTemplate(ctx, op)
	case StepFinalize:
		return s.finalize(ctx, op)
	case StepJoin:
		return s.join(ctx, op)
	case StepUndoClone:
		return s.undoClone(ctx, op)
	// contract
	case StepDrain:
		return s.drain(ctx, op)
	case StepDetach:
		return s.detach(ctx, op)
	case StepAwaitDetached:
		return s.awaitDetached(ctx, op)
	case StepRemove:
		return s.remove(ctx, op)
	case StepDestroy:
		return s.destroy(ctx, op)
	case StepUndoDrain:
		return s.undoDrain(ctx, op)
	}
	return outcome{next: StepDone, state: plan.OpFailed, err: fmt.Sprintf("unknown step %q", op.Step)}
}

// prepare drains the template (unless it is the last ready node of its
// role) and asks it to prepare.
func (s *saga) prepare(ctx context.Context, op plan.Operation) outcome {
	d := s.c.d
	lb := s.dispatcher()
	t, ok := s.nodes[op.Template]
	if !ok {
		return fail(StepUndoTemplate, fmt.Errorf("template %s is not registered", op.Template))
	}
	note := "template accepted"
	if s.lastReady(t) {
		// Drained, it would leave the dispatcher no server for its
		// role, and it would fail every client until the resume. Kept
		// in, it holds their requests while it is prepared; resume
		// and undo re-attach it, which changes nothing.
		note = "template accepted; kept in the dispatcher: the last ready " + t.Role + " node"
	} else if err := lb.Drain(ctx, t.ID); err != nil {
		return fail(StepUndoTemplate, fmt.Errorf("draining template %s: %w", t.ID, err))
	}
	reply, err := d.Nodes.Prepare(ctx, t.Address, node.PrepareRequest{
		Operation: op.ID, Deadline: op.StepAt.Add(s.cl.Prepare.Deadline.Duration), Mode: s.cl.Prepare.Mode,
	})
	if err != nil {
		return fail(StepUndoTemplate, fmt.Errorf("preparing template %s: %w", t.ID, err))
	}
	if !reply.Accepted {
		return fail(StepUndoTemplate, fmt.Errorf("template %s refused to prepare: %s", t.ID, reply.Reason))
	}
	out := goTo(StepAwaitPrepared, note)
	out.put = []plan.Node{withState(t, plan.NodePreparing)}
	return out
}

// awaitPrepared waits for the template to settle, up to the prepare
// deadline (past it, goes on if forced).
func (s *saga) awaitPrepared(ctx context.Context, op plan.Operation) outcome {
	d := s.c.d
	t := s.nodes[op.Template]
	st, err := d.Nodes.Status(ctx, t.Address)
	if err == nil && st.State == node.StatePrepared {
		return goTo(StepClone, "template settled")
	}
	if s.now.Sub(op.StepAt) < s.cl.Prepare.Deadline.Duration {
		return wait()
	}
	if op.Force || s.cl.Prepare.Force {
		return goTo(StepClone, "prepare deadline passed; forced")
	}
	why := "state " + string(st.State)
	if err != nil {
		why = err.Error()
	}
	return fail(StepUndoTemplate, fmt.Errorf("template %s did not settle within %s (%s)", t.ID, s.cl.Prepare.Deadline, why))
}

// clone makes the clone, named after the operation: a retried clone finds
// the VM it made.
func (s *saga) clone(ctx context.Context, op plan.Operation) outcome {
	d := s.c.d
	t := s.nodes[op.Template]
	vm, err := d.Hypervisor.Clone(ctx, CloneRequest{
		Operation: op.ID, Name: plan.CloneName(op), Template: t.VM, Host: op.Host, Fence: op.Fence,
	})
	if err != nil {
		return fail(StepUndoClone, fmt.Errorf("cloning %s from %s: %w", plan.CloneName(op), t.VM, err))
	}
	out := goTo(StepResumeTemplate, "cloned "+vm.Name)
	out.cloneVM, out.cloneAddr, out.node, out.host = vm.Name, vm.Address, vm.Name, vm.Host
	return out
}

// resumeTemplate resumes the template and attaches it again: going forward
// (resume-template) or undoing (undo-template).
func (s *saga) resumeTemplate(ctx context.Context, op plan.Operation) outcome {
	d := s.c.d
	lb := s.dispatcher()
	t, ok := s.nodes[op.Template]
	next, state := StepFinalize, plan.OpRunning
	if op.Step == StepUndoTemplate {
		next, state = StepDone, plan.OpCompensated
	}
	if !ok { // nothing to resume
		return outcome{next: next, state: state, note: "template gone"}
	}
	if err := d.Nodes.Resume(ctx, t.Address, op.ID); err != nil {
		// A node in a state resume does not fit (prepared for another
		// operation, detaching) is not this operation's to resume nor
		// to re-attach: doing either would pull it from under its
		// holder. Anything else is retried.
		if se, ok := errors.AsType[*node.StateError](err); ok {
			return outcome{next: next, state: state, note: "template not resumed: " + se.Error()}
		}
		if out, done := s.resumeGivenUp(ctx, op, t, next, state, err); done {
			return out
		}
		s.c.log.Warn("resuming template", "op", op.ID, "template", t.ID, "err", err)
		return wait()
	}
	if err := lb.Attach(ctx, t.ID, t.Address); err != nil {
		s.c.log.Warn("re-attaching template", "op", op.ID, "template", t.ID, "err", err)
		return wait()
	}
	out := outcome{next: next, state: state, note: "template resumed"}
	out.put = []plan.Node{withState(t, plan.NodeReady)}
	return out
}

// finalize has the clone take its identity at its address, retried up to
// the finalize deadline.
func (s *saga) finalize(ctx context.Context, op plan.Operation) outcome {
	d := s.c.d
	addr, err := s.cloneAddress(ctx, op)
	if err == nil {
		err = d.Nodes.Finalize(ctx, addr, node.FinalizeRequest{Operation: op.ID, ID: op.Node, Address: addr})
	}
	if err == nil {
		out := goTo(StepJoin, "clone took its identity at "+addr)
		out.cloneAddr = addr // where it joins, committed before the join
		return out
	}
	if s.now.Sub(op.StepAt) < s.cl.Finalize.Deadline.Duration {
		return wait()
	}
	return fail(StepUndoClone, fmt.Errorf("finalizing clone %s: not done within %s: %w", op.Node, s.cl.Finalize.Deadline, err))
}

// join attaches the clone to the dispatcher and registers it as a node.
func (s *saga) join(ctx context.Context, op plan.Operation) outcome {
	lb := s.dispatcher()
	if err := lb.Attach(ctx, op.Node, op.CloneAddress); err != nil {
		s.c.log.Warn("attaching clone", "op", op.ID, "node", op.Node, "err", err)
		return wait()
	}
	t := s.nodes[op.Template]
	out := outcome{next: StepDone, state: plan.OpDone, note: "clone joined"}
	out.put = []plan.Node{{
		ID: op.Node, Cluster: op.Cluster, Role: t.Role, State: plan.NodeReady, Host: op.Host,
		VM: op.CloneVM, Address: op.CloneAddress, Parent: t.ID, LineageDepth: t.LineageDepth + 1, CreatedAt: s.now,
	}}
	return out
}

// undoClone takes the half-made clone out of the dispatcher and destroys
// it, if this operation made it.
func (s *saga) undoClone(ctx context.Context, op plan.Operation) outcome {
	d := s.c.d
	lb := s.dispatcher()
	name := plan.CloneName(op)
	if err := lb.Remove(ctx, name); err != nil {
		s.c.log.Warn("removing half-made clone from dispatcher", "op", op.ID, "err", err)
		return wait()
	}
	// Destroy only what this operation made: a VM of that name made by
	// another operation (or by someone else) is left alone.
	note, stranger := "clone destroyed", ""
	vm, err := d.Hypervisor.Lookup(ctx, name)
	switch {
	case errors.Is(err, ErrVMNotFound):
		note = "no clone to destroy"
	case err != nil:
		s.c.log.Warn("looking up half-made clone", "op", op.ID, "vm", name, "err", err)
		return wait()
	case vm.Operation != op.ID:
		note = "no clone of this operation to destroy"
		stranger = fmt.Sprintf("vm %s was made by operation %q, not this one: left alone", name, vm.Operation)
	default:
		if err := d.Hypervisor.Destroy(ctx, name); err != nil {
			s.c.log.Warn("destroying half-made clone", "op", op.ID, "vm", name, "err", err)
			return wait()
		}
	}
	out := goTo(StepUndoTemplate, note)
	if templateResumed(op) {
		out = outcome{next: StepDone, state: plan.OpCompensated, note: note}
	}
	out.err = stranger
	return out
}

// drain stops the dispatcher sending the node new work.
func (s *saga) drain(ctx context.Context, op plan.Operation) outcome {
	lb := s.dispatcher()
	n, ok := s.nodes[op.Node]
	if !ok {
		return outcome{next: StepDone, state: plan.OpCompensated, err: "node is not registered", note: "nothing to contract"}
	}
	if err := lb.Drain(ctx, n.ID); err != nil {
		return fail(StepUndoDrain, fmt.Errorf("draining %s: %w", n.ID, err))
	}
	out := goTo(StepDetach, "drained")
	out.put = []plan.Node{withState(n, plan.NodeDraining)}
	return out
}

// detach tells the node to finish its sessions (past the deadline, goes
// on: its sessions are cut).
func (s *saga) detach(ctx context.Context, op plan.Operation) outcome {
	d := s.c.d
	n := s.nodes[op.Node]
	if err := d.Nodes.Detach(ctx, n.Address, op.ID); err != nil {
		if s.now.Sub(op.StepAt) < s.cl.Detach.Deadline.Duration {
			return wait()
		}
		return goTo(StepRemove, "node did not answer detach within the deadline: "+err.Error())
	}
	return goTo(StepAwaitDetached, "detach accepted")
}

// awaitDetached waits until the node, and the dispatcher if it can count
// them, have no session left, up to the detach deadline.
func (s *saga) awaitDetached(ctx context.Context, op plan.Operation) outcome {
	d := s.c.d
	lb := s.dispatcher()
	n := s.nodes[op.Node]
	st, err := d.Nodes.Status(ctx, n.Address)
	nodeDone := err == nil && (st.State == node.StateDetached || st.Sessions == 0)
	open, cerr := 0, error(nil)
	if sc, ok := lb.(SessionCounter); ok {
		open, cerr = sc.Sessions(ctx, n.ID)
	}
	if nodeDone && cerr == nil && open == 0 {
		return goTo(StepRemove, "sessions finished")
	}
	if s.now.Sub(op.StepAt) < s.cl.Detach.Deadline.Duration {
		return wait()
	}
	return goTo(StepRemove, fmt.Sprintf("detach deadline %s passed with %d sessions left (%d open in the dispatcher)", s.cl.Detach.Deadline, st.Sessions, open))
}

// remove takes the node out of the dispatcher.
func (s *saga) remove(ctx context.Context, op plan.Operation) outcome {
	lb := s.dispatcher()
	if err := lb.Remove(ctx, op.Node); err != nil {
		s.c.log.Warn("removing node from dispatcher", "op", op.ID, "node", op.Node, "err", err)
		return wait()
	}
	return goTo(StepDestroy, "removed from dispatcher")
}

// destroy destroys the node's VM and unregisters the node.
func (s *saga) destroy(ctx context.Context, op plan.Operation) outcome {
	d := s.c.d
	n := s.nodes[op.Node]
	vm := n.VM
	if vm == "" {
		vm = op.Node
	}
	if err := d.Hypervisor.Destroy(ctx, vm); err != nil {
		s.c.log.Warn("destroying vm", "op", op.ID, "vm", vm, "err", err)
		return wait()
	}
	return outcome{next: StepDone, state: plan.OpDone, note: "destroyed " + vm, remove: []string{op.Node}}
}

// undoDrain attaches the node to the dispatcher again.
func (s *saga) undoDrain(ctx context.Context, op plan.Operation) outcome {
	lb := s.dispatcher()
	n, ok := s.nodes[op.Node]
	if !ok {
		return outcome{next: StepDone, state: plan.OpCompensated, note: "node gone"}
	}
	if err := lb.Attach(ctx, n.ID, n.Address); err != nil {
		s.c.log.Warn("re-attaching node", "op", op.ID, "node", n.ID, "err", err)
		return wait()
	}
	out := outcome{next: StepDone, state: plan.OpCompensated, note: "re-attached"}
	out.put = []plan.Node{withState(n, plan.NodeReady)}
	return out
}

// cloneAddress is where the clone is reached now. The hypervisor is asked
// on every try: a live clone may have no address of its own yet when Clone
// returns (its guest is still leasing one), and it may change once (a
// guest that leaves its template's network identity for its own). The
// address Clone reported is the fallback while the hypervisor cannot say.
func (s *saga) cloneAddress(ctx context.Context, op plan.Operation) (string, error) {
	name := op.CloneVM
	if name == "" {
		name = plan.CloneName(op)
	}
	vm, err := s.c.d.Hypervisor.Lookup(ctx, name)
	switch {
	case err == nil && vm.Address != "":
		return vm.Address, nil
	case op.CloneAddress != "":
		return op.CloneAddress, nil
	case err != nil:
		return "", fmt.Errorf("looking up the address of clone %s: %w", name, err)
	}
	return "", fmt.Errorf("the hypervisor reports no address for clone %s yet", name)
}

// lastReady reports whether t is the only ready node of its role in its
// cluster: no other one the dispatcher could send its clients to.
func (s *saga) lastReady(t plan.Node) bool {
	for _, n := range s.nodes {
		if n.ID != t.ID && n.Role == t.Role && n.State == plan.NodeReady {
			return false
		}
	}
	return true
}

// templateResumed reports whether the operation got past resuming its
// template, so that undoing it needs only the clone destroyed.
func templateResumed(op plan.Operation) bool {
	for _, j := range op.Journal {
		if j.Step == StepFinalize {
			return true
		}
	}
	return false
}

func withState(n plan.Node, s plan.NodeState) plan.Node {
	n.State = s
	return n
}
