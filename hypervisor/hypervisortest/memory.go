package hypervisortest

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/mitosis-autoscaler/mitosis/hypervisor"
)

// Memory is an in-memory hypervisor that keeps the contract: the reference
// the suite is checked against, and a fake for tests of the callers that
// records calls and injects failures.
type Memory struct {
	mu     sync.Mutex
	vms    map[string]hypervisor.VM
	nextID int

	// CloneCalls and DestroyCalls count the calls made.
	CloneCalls, DestroyCalls int
	// NextCloneErr, when set, is returned (once) by the next Clone, which
	// then makes nothing.
	NextCloneErr error
}

var _ hypervisor.Hypervisor = (*Memory)(nil)

// NewMemory returns a Memory with the named VMs running on host "h0", as
// if made outside mitosis.
func NewMemory(running ...string) *Memory {
	m := &Memory{vms: make(map[string]hypervisor.VM)}
	for _, name := range running {
		m.vms[name] = m.newVM(name, "h0")
	}
	return m
}

func (m *Memory) newVM(name, host string) hypervisor.VM {
	m.nextID++
	return hypervisor.VM{Name: name, Host: host, ID: "mem-" + strconv.Itoa(m.nextID), Running: true}
}

// Clone keeps hypervisor.Cloner's contract.
func (m *Memory) Clone(_ context.Context, req hypervisor.CloneRequest) (hypervisor.VM, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.CloneCalls++
	if err := m.NextCloneErr; err != nil {
		m.NextCloneErr = nil
		return hypervisor.VM{}, fmt.Errorf("cloning %s from %s: %w", req.Name, req.Template, err)
	}
	if vm, ok := m.vms[req.Name]; ok {
		if vm.Operation != req.Operation {
			return hypervisor.VM{}, fmt.Errorf("cloning %s from %s: made by operation %q: %w", req.Name, req.Template, vm.Operation, hypervisor.ErrNameTaken)
		}
		return vm, nil
	}
	t, ok := m.vms[req.Template]
	if !ok {
		return hypervisor.VM{}, fmt.Errorf("cloning %s from %s: %w", req.Name, req.Template, hypervisor.ErrNotFound)
	}
	host := req.Host
	if host == "" {
		host = t.Host
	}
	vm := m.newVM(req.Name, host)
	vm.Operation, vm.Fence, vm.Method = req.Operation, req.Fence, "memory"
	m.vms[req.Name] = vm
	return vm, nil
}

// Destroy keeps hypervisor.Destroyer's contract.
func (m *Memory) Destroy(_ context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.DestroyCalls++
	delete(m.vms, name)
	return nil
}

// Lookup keeps hypervisor.Finder's contract.
func (m *Memory) Lookup(_ context.Context, name string) (hypervisor.VM, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	vm, ok := m.vms[name]
	if !ok {
		return hypervisor.VM{}, fmt.Errorf("looking up %s: %w", name, hypervisor.ErrNotFound)
	}
	return vm, nil
}

// Len returns how many VMs exist.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.vms)
}
