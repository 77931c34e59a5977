package hypervisortest_test

import (
	"errors"
	"testing"

	"github.com/mitosis-autoscaler/mitosis/hypervisor"
	"github.com/mitosis-autoscaler/mitosis/hypervisor/hypervisortest"
)

func TestMemoryConforms(t *testing.T) {
	hypervisortest.Run(t, func(t *testing.T) hypervisortest.Harness {
		return hypervisortest.Harness{Hypervisor: hypervisortest.NewMemory("web-0"), Template: "web-0", Host: "h1"}
	})
}

func TestMemoryInjectsAndRecords(t *testing.T) {
	m := hypervisortest.NewMemory("web-0")
	boom := errors.New("boom")
	m.NextCloneErr = boom
	req := hypervisor.CloneRequest{Operation: "op1", Name: "mitosis-op1", Template: "web-0"}
	if _, err := m.Clone(t.Context(), req); !errors.Is(err, boom) {
		t.Fatalf("Clone err = %v, want the injected error", err)
	}
	if m.Len() != 1 {
		t.Errorf("a failed Clone made a VM: %d VMs", m.Len())
	}
	if _, err := m.Clone(t.Context(), req); err != nil {
		t.Fatalf("Clone after the injected error: %v", err)
	}
	if m.CloneCalls != 2 || m.Len() != 2 {
		t.Errorf("CloneCalls = %d, VMs = %d; want 2, 2", m.CloneCalls, m.Len())
	}
}
