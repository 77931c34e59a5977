package sim

import (
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/hypervisor"
	"github.com/mitosis-autoscaler/mitosis/hypervisor/hypervisortest"
)

var _ hypervisor.Hypervisor = (*World)(nil)

// The simulator's hypervisor keeps the contract every real back-end keeps.
func TestWorldKeepsTheHypervisorContract(t *testing.T) {
	for _, mode := range []Mode{LiveClone, ColdBoot} {
		t.Run(string(mode), func(t *testing.T) {
			hypervisortest.Run(t, func(t *testing.T) hypervisortest.Harness {
				w, err := NewWorld(DefaultParams(), mode, flat(100, time.Hour), 1, nil, 1)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := w.AddNode("web-0", "app", "host-1"); err != nil {
					t.Fatal(err)
				}
				return hypervisortest.Harness{Hypervisor: w, Template: "web-0", Host: "host-1"}
			})
		})
	}
}
