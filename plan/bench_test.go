package plan

import (
	"fmt"
	"testing"
	"time"
)

// benchInput is a cluster of 1,000 application servers on 20 hosts with
// 40 operations in flight, and a decision ranking 100 candidates.
func benchInput(action Action) Input {
	in := Input{
		Now: t0,
		Limits: Limits{Min: 10, Max: 1200, ScalableRoles: []string{"app"},
			ScaleUpCooldown: time.Minute, ScaleDownCooldown: time.Minute,
			MaxOpsPerCluster: 100, MaxOpsPerTemplate: 5, MaxOpsPerHost: 10},
		Metrics: MetricsHealth{Available: true},
		Scaling: ScalingState{LastExpand: ago(time.Hour), LastContract: ago(time.Hour)},
	}
	for h := range 20 {
		in.Hosts = append(in.Hosts, Host{Name: fmt.Sprintf("h%d", h), Capacity: 80, VMs: 50})
	}
	for i := range 1000 {
		in.Nodes = append(in.Nodes, appNode(fmt.Sprintf("a%d", i), fmt.Sprintf("h%d", i%20)))
	}
	for i := range 20 {
		in.Operations = append(in.Operations, expandOp(fmt.Sprintf("a%d", i), fmt.Sprintf("h%d", i)))
		in.Operations = append(in.Operations, contractOp(fmt.Sprintf("a%d", 500+i)))
	}
	d := Decision{Action: action, Count: 20}
	for i := range 100 {
		id := fmt.Sprintf("a%d", i*7)
		d.Templates = append(d.Templates, id)
		d.Nodes = append(d.Nodes, id)
	}
	for h := range 20 {
		d.Hosts = append(d.Hosts, fmt.Sprintf("h%d", (h*3)%20))
	}
	d.Template = d.Templates[0]
	in.Decision = d
	return in
}

func BenchmarkPlan(b *testing.B) {
	for _, action := range []Action{ActionExpand, ActionContract} {
		in := benchInput(action)
		if res := Plan(in); len(res.Proposals) == 0 {
			b.Fatalf("%s: no proposals; reasons:\n%s", action, reasonsText(res.Reasons))
		}
		b.Run(string(action), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Plan(in)
			}
		})
	}
}
