package autoscaler

import (
	"context"
	"fmt"
	"testing"

	"github.com/mitosis-autoscaler/mitosis/plan"
)

// BenchmarkTick measures one leader tick without the policy (a constant
// decision): state read, input building, planning and recording.
func BenchmarkTick(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			cfg, err := parseConfig([]byte(fmt.Sprintf("clusters: [{name: web, max: %d}]", 2*n)), "bench.yaml")
			if err != nil {
				b.Fatal(err)
			}
			reg, w := NewMemRegistry(), newFakeWorld()
			for i := range n {
				w.addNode(reg, "web", fmt.Sprintf("n%04d", i), "app", fmt.Sprintf("h%d", i%8))
			}
			c, err := New(cfg, Deps{Registry: reg, Metrics: w, Policy: always(plan.Decision{Action: plan.ActionNone}),
				Hypervisor: w, Dispatcher: w, Nodes: w, Clock: w})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Tick(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
