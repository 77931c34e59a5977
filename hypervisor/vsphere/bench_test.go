package vsphere

import (
	"fmt"
	"io"
	"testing"
)

// BenchmarkCloneDestroy is one clone + destroy cycle on in-process vcsim,
// by each path. It measures the client and vcsim, not a real vCenter.
func BenchmarkCloneDestroy(b *testing.B) {
	for _, path := range []string{MethodLinkedClone, MethodInstantClone} {
		b.Run(path, func(b *testing.B) {
			s := startVCSim(b, "mitosis", "secret")
			if path == MethodInstantClone {
				s.AddInstantClone()
			}
			c := newClient(b, s.Config(b, debugLogger(io.Discard)))
			for i := 0; b.Loop(); i++ {
				r := req(fmt.Sprintf("bench%d", i), s.Template, 1)
				vm, err := c.Clone(b.Context(), r)
				if err != nil || vm.Method != path {
					b.Fatalf("clone: %v (method %q)", err, vm.Method)
				}
				if err := c.Destroy(b.Context(), r.Name); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
