// Package hypervisor holds what every hypervisor back-end shares: the VM
// and clone-request types and the errors the controller tells apart. The
// back-ends (vSphere, libvirt, the simulator's) implement the role
// interfaces the controller declares where it uses them
// (autoscaler.Cloner, autoscaler.Destroyer).
package hypervisor

import "errors"

// ErrNotFound is returned (wrapped) for a VM that does not exist, such as
// the template of a clone.
var ErrNotFound = errors.New("vm not found")

// VM is a virtual machine as a hypervisor reports it.
type VM struct {
	Name    string
	Host    string
	Address string
}

// CloneRequest asks for a live clone of a running VM.
type CloneRequest struct {
	// Operation is the operation id; Name is derived from it, and a retry
	// with the same Name finds the clone already made.
	Operation string
	Name      string
	// Template is the running VM to clone.
	Template string
	Host     string
	// Fence is the fencing token of the leader asking (the raft term); it
	// is written into the clone's metadata.
	Fence uint64
}
