// Package hypervisortest is the conformance suite of the hypervisor
// contract, in the manner of testing/fstest and nettest: every back-end
// runs it from its own tests against a real (or simulated) server.
//
//	func TestConformance(t *testing.T) {
//		hypervisortest.Run(t, func(t *testing.T) hypervisortest.Harness {
//			h := startMyHypervisor(t) // stopped with t.Cleanup
//			return hypervisortest.Harness{Hypervisor: h, Template: "web-0"}
//		})
//	}
//
// Each case calls the harness function once, so cases may run on fresh
// worlds or share one; the suite uses operation ids no other run uses.
package hypervisortest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/hypervisor"
	"github.com/mitosis-autoscaler/mitosis/plan"
)

// Harness is what a back-end hands the suite.
type Harness struct {
	// Hypervisor is the implementation under test.
	Hypervisor hypervisor.Hypervisor
	// Template names a running VM the suite may clone. The suite never
	// destroys it and checks that it keeps running.
	Template string
	// Host goes into every CloneRequest, for back-ends that place clones
	// on the host the controller asks for.
	Host string
	// Timeout bounds each call; 0 means 30 s.
	Timeout time.Duration
}

var (
	runID = func() string {
		b := make([]byte, 3)
		_, _ = rand.Read(b)
		return hex.EncodeToString(b)
	}()
	seq atomic.Int64
)

// newOp returns an expansion no other case or run uses, so that cases
// sharing one server never see each other's clones; its clone is named as
// the controller names them (plan.NameClones, plan.CloneName).
func newOp() plan.Operation {
	n := int(seq.Add(1))
	cluster := "hvt" + runID
	return plan.Operation{ID: fmt.Sprintf("hvt-%s-%d", runID, n), Kind: plan.OpExpand, Cluster: cluster, Clone: plan.FormatCloneName(cluster, n)}
}

// Run runs every case of the contract as a subtest of t.
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	t.Helper()
	cases := []struct {
		name string
		f    func(*testing.T, Harness)
	}{
		{"CloneRunningVM", testClone},
		{"CloneIsIdempotentPerOperation", testCloneTwice},
		{"CloneRefusesNameOfAnotherOperation", testNameTaken},
		{"CloneOfACloneCarriesItsOwnMetadata", testCloneOfClone},
		{"CloneOfMissingTemplate", testMissingTemplate},
		{"DestroyTwice", testDestroyTwice},
		{"DestroyLeavesTemplateRunning", testDestroyKeepsTemplate},
		{"Lookup", testLookup},
		{"InstantCloneIfImplemented", testInstantClone},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			if h.Hypervisor == nil || h.Template == "" {
				t.Fatal("harness: Hypervisor and Template are required")
			}
			c.f(t, h)
		})
	}
}

func (h Harness) ctx(t *testing.T) context.Context {
	d := h.Timeout
	if d == 0 {
		d = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func (h Harness) request(op plan.Operation, fence uint64) hypervisor.CloneRequest {
	return hypervisor.CloneRequest{Operation: op.ID, Name: plan.CloneName(op), Template: h.Template, Host: h.Host, Fence: fence}
}

// clone makes a clone and destroys it when the test ends, so a case that
// fails halfway leaves nothing behind on a shared server.
func (h Harness) clone(t *testing.T, req hypervisor.CloneRequest) hypervisor.VM {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := h.Hypervisor.Destroy(ctx, req.Name); err != nil {
			t.Errorf("cleanup: Destroy(%s): %v", req.Name, err)
		}
	})
	vm, err := h.Hypervisor.Clone(h.ctx(t), req)
	if err != nil {
		t.Fatalf("Clone(%+v): %v", req, err)
	}
	return vm
}

// checkClone asserts what the contract promises of a fresh clone.
func checkClone(t *testing.T, what string, vm hypervisor.VM, req hypervisor.CloneRequest) {
	t.Helper()
	if vm.Name != req.Name {
		t.Errorf("%s: Name = %q, want %q", what, vm.Name, req.Name)
	}
	if !vm.Running {
		t.Errorf("%s: %s is not running", what, vm.Name)
	}
	if vm.Operation != req.Operation {
		t.Errorf("%s: Operation = %q, want %q", what, vm.Operation, req.Operation)
	}
	if vm.Fence != req.Fence {
		t.Errorf("%s: Fence = %d, want %d", what, vm.Fence, req.Fence)
	}
}

func (h Harness) checkTemplateRunning(t *testing.T) {
	t.Helper()
	vm, err := h.Hypervisor.Lookup(h.ctx(t), h.Template)
	if err != nil {
		t.Fatalf("Lookup(template %s): %v", h.Template, err)
	}
	if !vm.Running {
		t.Errorf("template %s stopped running", h.Template)
	}
}

func testClone(t *testing.T, h Harness) {
	req := h.request(newOp(), 7)
	vm := h.clone(t, req)
	checkClone(t, "Clone", vm, req)
	got, err := h.Hypervisor.Lookup(h.ctx(t), req.Name)
	if err != nil {
		t.Fatalf("Lookup(%s) after Clone: %v", req.Name, err)
	}
	checkClone(t, "Lookup", got, req)
	if got.ID != vm.ID {
		t.Errorf("Lookup ID = %q, Clone returned %q", got.ID, vm.ID)
	}
	h.checkTemplateRunning(t)
}

func testCloneTwice(t *testing.T, h Harness) {
	req := h.request(newOp(), 3)
	first := h.clone(t, req)
	again, err := h.Hypervisor.Clone(h.ctx(t), req)
	if err != nil {
		t.Fatalf("second Clone with the same operation: %v", err)
	}
	if again.ID != first.ID || again.Name != first.Name {
		t.Errorf("second Clone returned %s (%s), want the first clone %s (%s)", again.Name, again.ID, first.Name, first.ID)
	}
	checkClone(t, "second Clone", again, req)

	// A new leader retrying the step asks with a newer fence; it still
	// finds the clone the old leader made, with the fence it was made with.
	newer := req
	newer.Fence = req.Fence + 1
	third, err := h.Hypervisor.Clone(h.ctx(t), newer)
	if err != nil {
		t.Fatalf("Clone retried with a newer fence: %v", err)
	}
	if third.ID != first.ID {
		t.Errorf("Clone retried with a newer fence made %s, want the first clone %s", third.ID, first.ID)
	}
}

func testNameTaken(t *testing.T, h Harness) {
	req := h.request(newOp(), 1)
	first := h.clone(t, req)
	stranger := req
	stranger.Operation = newOp().ID
	_, err := h.Hypervisor.Clone(h.ctx(t), stranger)
	if !errors.Is(err, hypervisor.ErrNameTaken) {
		t.Fatalf("Clone of name %s for another operation: err = %v, want ErrNameTaken", req.Name, err)
	}
	got, err := h.Hypervisor.Lookup(h.ctx(t), req.Name)
	if err != nil {
		t.Fatalf("Lookup(%s): %v", req.Name, err)
	}
	if got.ID != first.ID || got.Operation != req.Operation {
		t.Errorf("after the refused clone, %s is %s of %q; want %s of %q", req.Name, got.ID, got.Operation, first.ID, req.Operation)
	}
}

func testCloneOfClone(t *testing.T, h Harness) {
	parent := h.request(newOp(), 2)
	h.clone(t, parent)
	child := h.request(newOp(), 5)
	child.Template = parent.Name
	vm := h.clone(t, child)
	checkClone(t, "clone of a clone", vm, child)
}

func testMissingTemplate(t *testing.T, h Harness) {
	req := h.request(newOp(), 1)
	req.Template = "mitosis-no-such-template-" + runID
	_, err := h.Hypervisor.Clone(h.ctx(t), req)
	if !errors.Is(err, hypervisor.ErrNotFound) {
		t.Fatalf("Clone of missing template: err = %v, want ErrNotFound", err)
	}
	if _, err := h.Hypervisor.Lookup(h.ctx(t), req.Name); !errors.Is(err, hypervisor.ErrNotFound) {
		t.Errorf("failed Clone left %s behind (Lookup err = %v)", req.Name, err)
	}
}

func testDestroyTwice(t *testing.T, h Harness) {
	req := h.request(newOp(), 1)
	h.clone(t, req)
	for i := range 2 {
		if err := h.Hypervisor.Destroy(h.ctx(t), req.Name); err != nil {
			t.Fatalf("Destroy #%d: %v", i+1, err)
		}
		if _, err := h.Hypervisor.Lookup(h.ctx(t), req.Name); !errors.Is(err, hypervisor.ErrNotFound) {
			t.Fatalf("after Destroy #%d, Lookup err = %v, want ErrNotFound", i+1, err)
		}
	}
	if err := h.Hypervisor.Destroy(h.ctx(t), plan.CloneName(newOp())); err != nil {
		t.Errorf("Destroy of a VM that never existed: %v", err)
	}
}

func testDestroyKeepsTemplate(t *testing.T, h Harness) {
	req := h.request(newOp(), 1)
	h.clone(t, req)
	if err := h.Hypervisor.Destroy(h.ctx(t), req.Name); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	h.checkTemplateRunning(t)
}

func testLookup(t *testing.T, h Harness) {
	vm, err := h.Hypervisor.Lookup(h.ctx(t), h.Template)
	if err != nil {
		t.Fatalf("Lookup(template): %v", err)
	}
	if vm.Name != h.Template || !vm.Running || vm.ID == "" {
		t.Errorf("Lookup(template) = %+v, want a running VM named %s with an ID", vm, h.Template)
	}
	missing := plan.CloneName(newOp())
	if _, err := h.Hypervisor.Lookup(h.ctx(t), missing); !errors.Is(err, hypervisor.ErrNotFound) {
		t.Errorf("Lookup(%s) of a missing VM: err = %v, want ErrNotFound", missing, err)
	}
}

func testInstantClone(t *testing.T, h Harness) {
	ic, ok := h.Hypervisor.(hypervisor.InstantCloner)
	if !ok {
		return // optional: nothing to check
	}
	req := h.request(newOp(), 4)
	t.Cleanup(func() { _ = h.Hypervisor.Destroy(context.Background(), req.Name) })
	vm, err := ic.InstantClone(h.ctx(t), req)
	switch {
	case errors.Is(err, errors.ErrUnsupported):
		if _, err := h.Hypervisor.Lookup(h.ctx(t), req.Name); !errors.Is(err, hypervisor.ErrNotFound) {
			t.Errorf("unsupported InstantClone left %s behind (Lookup err = %v)", req.Name, err)
		}
	case err != nil:
		t.Fatalf("InstantClone: %v", err)
	default:
		checkClone(t, "InstantClone", vm, req)
		h.checkTemplateRunning(t)
	}
}
