// Package hypervisor holds what every hypervisor back-end shares: the VM
// and clone-request types, the errors callers tell apart, and the small
// role interfaces with the contract every back-end keeps (vsphere, libvirt,
// the simulator's). The controller declares the roles it uses where it uses
// them (autoscaler.Cloner, autoscaler.Destroyer); those have the same
// method sets as the ones here, so a back-end satisfies both.
//
// hypervisortest checks the contract: every back-end runs it in its tests.
package hypervisor

import (
	"context"
	"errors"
)

// ErrNotFound is returned (wrapped) for a VM that does not exist, such as
// the template of a clone or the VM of a look-up.
var ErrNotFound = errors.New("vm not found")

// ErrNameTaken is returned (wrapped) by Clone when a VM with the clone's
// name already exists but was made for another operation, or not by
// mitosis at all. A back-end never adopts such a VM: it may belong to
// someone else, and destroying it later would be a disaster.
var ErrNameTaken = errors.New("vm name taken by another operation")

// VM is a virtual machine as a hypervisor reports it.
type VM struct {
	Name string
	Host string
	// Address is where the VM is reached now, as the hypervisor knows it
	// (a guest IP, or host:port), or "" while it does not know one: a
	// new clone's guest may still be leasing its own. It may change: a
	// live clone leaves its template's network identity for its own after
	// Clone returns, so a caller that needs the address asks Lookup again
	// rather than keeping the one Clone gave. A back-end never reports an
	// address that is another VM's (a live clone's inherited one).
	Address string
	// ID identifies the VM to its back-end (a vSphere managed object id
	// such as "vm-42", a libvirt domain uuid). Names are what callers
	// use; the ID tells two VMs of the same name apart over time.
	ID string
	// Running is true when the VM is powered on.
	Running bool
	// Operation and Fence are the metadata every VM mitosis makes carries:
	// the operation that made it and the fencing token of the leader that
	// asked. They are empty on VMs mitosis did not make.
	Operation string
	Fence     uint64
	// Method says how the VM was made, when the back-end knows: for
	// vSphere "instant-clone" or "linked-clone". A linked clone boots from
	// the template's disk rather than continuing its memory, so a caller
	// that learns clone times or warm-up curves wants to know.
	Method string
}

// CloneRequest asks for a live clone of a running VM.
type CloneRequest struct {
	// Operation is the operation id; Name is the operation's clone's
	// (plan.CloneName: given when it was planned, never changed), and a
	// retry with the same Name finds the clone already made.
	Operation string
	Name      string
	// Template is the running VM to clone.
	Template string
	// Host is where the controller would like the clone. Back-ends that
	// cannot choose (an Instant Clone runs where its template runs) say
	// where it landed in VM.Host.
	Host string
	// Fence is the fencing token of the leader asking (the raft term); it
	// is written into the clone's metadata.
	Fence uint64
}

// Cloner live-clones a running VM.
//
// The contract:
//   - Clone is idempotent per operation: a VM named req.Name that carries
//     req.Operation in its metadata is the clone already made, and Clone
//     returns it (powered on) instead of making a second one. This is what
//     lets a saga retry the step after a crash or a lost answer.
//   - A VM named req.Name made for another operation (or not by mitosis)
//     is never adopted: Clone fails with an error wrapping ErrNameTaken.
//   - The clone is running when Clone returns, carries req.Operation and
//     req.Fence in its metadata (whatever its template carried), and is
//     named req.Name.
//   - A missing template fails with an error wrapping ErrNotFound, and no
//     VM is left behind.
//   - The template keeps running.
//
// A Clone that returns an error may still have made the clone (the
// answer was lost); the caller retries, or destroys req.Name.
type Cloner interface {
	Clone(ctx context.Context, req CloneRequest) (VM, error)
}

// Destroyer powers off and deletes a VM by name. Destroying a VM that does
// not exist is success, so compensations can run it blindly and retry it.
// Destroy never touches any VM but the one named.
type Destroyer interface {
	Destroy(ctx context.Context, name string) error
}

// Finder looks a VM up by name, with its metadata and its current
// address. A VM that does not exist is an error wrapping ErrNotFound. A
// saga that lost track of what it did (a crash between a side effect and
// its record) asks here, and so does one that waits for a new clone's
// address (VM.Address).
type Finder interface {
	Lookup(ctx context.Context, name string) (VM, error)
}

// Hypervisor is every role a back-end implements.
type Hypervisor interface {
	Cloner
	Destroyer
	Finder
}

// InstantCloner is an optional capability: a back-end that can make a
// clone that continues the template's running memory (vSphere Instant
// Clone) implements it, and a caller that wants that or nothing checks
// for it with a type assertion. InstantClone keeps Cloner's contract;
// when the server turns out to lack the capability it fails with an error
// wrapping errors.ErrUnsupported and makes nothing. Clone on the same
// back-end may fall back to a slower method; InstantClone never does.
type InstantCloner interface {
	InstantClone(ctx context.Context, req CloneRequest) (VM, error)
}
