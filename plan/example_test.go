package plan_test

import (
	"fmt"
	"time"

	"github.com/mitosis-autoscaler/mitosis/plan"
)

// A policy asks for three more application servers; the cluster may grow
// to five, and the template's host has room for one more VM, so Plan
// places one clone there, one on the next ranked host, and says why it
// did not place the third.
func ExamplePlan() {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	res := plan.Plan(plan.Input{
		Now: now,
		Limits: plan.Limits{
			Min: 1, Max: 5, ScalableRoles: []string{"dialog"},
			ScaleUpCooldown: 2 * time.Minute,
		},
		Nodes: []plan.Node{
			{ID: "ci", Role: "central", State: plan.NodeReady, Host: "esx-1"},
			{ID: "app-1", Role: "dialog", State: plan.NodeReady, Host: "esx-1"},
			{ID: "app-2", Role: "dialog", State: plan.NodeReady, Host: "esx-2"},
			{ID: "app-3", Role: "dialog", State: plan.NodeReady, Host: "esx-2"},
		},
		Hosts: []plan.Host{
			{Name: "esx-1", Capacity: 3, VMs: 2},
			{Name: "esx-2", Capacity: 0, VMs: 2},
		},
		Metrics: plan.MetricsHealth{Available: true},
		Decision: plan.Decision{
			Action: plan.ActionExpand, Count: 3, Template: "app-1",
			Hosts:  []string{"esx-1", "esx-2"},
			Reason: "dialog response time 1.4s > 1s",
		},
	})
	fmt.Println("size:", res.Size)
	for _, p := range res.Proposals {
		fmt.Printf("%s from %s on %s\n", p.Kind, p.Template, p.Host)
	}
	for _, r := range res.Reasons {
		fmt.Println("capped:", r)
	}
	fmt.Println("last expansion:", res.Scaling.LastExpand.Format(time.Kitchen))
	// Output:
	// size: 3
	// expand from app-1 on esx-1
	// expand from app-1 on esx-2
	// capped: max_size: 2 of 3: max size 5
	// last expansion: 12:00PM
}

// Contraction waits until it has been wanted for the whole stabilization
// window, then goes only as far as the mildest wish in the window. The
// caller carries Result.Scaling from one tick to the next.
func ExamplePlan_stabilization() {
	start := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	in := plan.Input{
		Limits: plan.Limits{Min: 1, Max: 10, ScalableRoles: []string{"dialog"},
			ScaleDownStabilization: 2 * time.Minute},
		Metrics: plan.MetricsHealth{Available: true},
	}
	for i := 1; i <= 6; i++ {
		in.Nodes = append(in.Nodes, plan.Node{ID: fmt.Sprintf("app-%d", i), Role: "dialog", State: plan.NodeReady, Host: "esx-1"})
	}
	for minute, count := range []int{3, 1, 3} {
		in.Now = start.Add(time.Duration(minute) * time.Minute)
		in.Decision = plan.Decision{Action: plan.ActionContract, Count: count,
			Nodes: []string{"app-6", "app-5", "app-4"}}
		res := plan.Plan(in)
		fmt.Printf("minute %d: asked %d, proposed %d", minute, count, len(res.Proposals))
		for _, r := range res.Reasons {
			fmt.Printf(" (%s)", r.Code)
		}
		fmt.Println()
		in.Scaling = res.Scaling
	}
	// Output:
	// minute 0: asked 3, proposed 0 (stabilizing)
	// minute 1: asked 1, proposed 0 (stabilizing)
	// minute 2: asked 3, proposed 1 (stabilizing)
}
