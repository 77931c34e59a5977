package backends

import (
	"context"
	"testing"

	"github.com/mitosis-autoscaler/mitosis/hypervisor"
	"github.com/mitosis-autoscaler/mitosis/hypervisor/hypervisortest"
)

// guestIP is a hypervisor that reports addr for every VM, as vSphere
// reports a guest's IP.
type guestIP struct {
	*hypervisortest.Memory
	addr string
}

func (g guestIP) Clone(ctx context.Context, req hypervisor.CloneRequest) (hypervisor.VM, error) {
	vm, err := g.Memory.Clone(ctx, req)
	vm.Address = g.addr
	return vm, err
}

func (g guestIP) Lookup(ctx context.Context, name string) (hypervisor.VM, error) {
	vm, err := g.Memory.Lookup(ctx, name)
	vm.Address = g.addr
	return vm, err
}

// A guest's bare IP gets the node API's port; an address with a port, or
// none at all, is left as it is, and so is every address when no port is
// configured.
func TestAClonesBareAddressGetsTheNodeAPIsPort(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		addr string
		port int
		want string
	}{
		{"10.0.0.7", 9100, "10.0.0.7:9100"},
		{"fd00::7", 9100, "[fd00::7]:9100"},
		{"10.0.0.7:8080", 9100, "10.0.0.7:8080"},
		{"", 9100, ""},
		{"10.0.0.7", 0, "10.0.0.7"},
	} {
		hv := withPort{guestIP{hypervisortest.NewMemory("web-1"), c.addr}, c.port}
		vm, err := hv.Clone(ctx, hypervisor.CloneRequest{Operation: "op", Name: "mitosis-op", Template: "web-1"})
		if err != nil {
			t.Fatal(err)
		}
		found, err := hv.Lookup(ctx, "mitosis-op")
		if err != nil {
			t.Fatal(err)
		}
		if vm.Address != c.want || found.Address != c.want {
			t.Errorf("guest at %q, port %d: clone at %q, found at %q; want %q", c.addr, c.port, vm.Address, found.Address, c.want)
		}
	}
}
