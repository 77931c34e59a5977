package policy_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/mitosis-autoscaler/mitosis/policies"
	"github.com/mitosis-autoscaler/mitosis/policy"
)

// Compile the embedded default policy once, then decide on every tick
// with the tick's time.
func Example() {
	engine, err := policy.LoadFS(policies.FS, "policies")
	if err != nil {
		panic(err)
	}
	f, err := os.Open("testdata/input-4-nodes.json")
	if err != nil {
		panic(err)
	}
	defer f.Close()
	in, err := policy.ReadInput(f, "input-4-nodes.json")
	if err != nil {
		panic(err)
	}
	d, err := engine.Decide(context.Background(), in, time.Unix(in.Now, 0))
	if err != nil {
		panic(err)
	}
	fmt.Println(d.Action, d.Count, d.Template, d.Templates)
	fmt.Println(d.Reason)
	// Output:
	// expand 2 app-3 [app-3 app-1 app-2 app-4]
	// mean utilization 0.82 > 0.75 over 4 nodes: desired 6, size 4
}

// A decision that breaks the policy contract is an error that names the
// policy's file and the line of its decision rule; no action is taken.
func ExampleDecisionError() {
	dir, _ := os.MkdirTemp("", "policy")
	defer os.RemoveAll(dir)
	_ = os.WriteFile(dir+"/scale.rego", []byte(`package mitosis

decision := {"action": "expand", "count": 1, "template": "n9"}
`), 0o644)
	engine, err := policy.Load(dir)
	if err != nil {
		panic(err)
	}
	in := &policy.Input{
		Schema:  policy.SchemaVersion,
		Cluster: policy.Cluster{Name: "web", Min: 1, Max: 4, Size: 1, Roles: []string{"app"}},
		Nodes:   []policy.Node{{ID: "n1", Role: "app", State: "ready"}},
	}
	_, err = engine.Decide(context.Background(), in, time.Unix(0, 0))
	var de *policy.DecisionError
	if errors.As(err, &de) {
		fmt.Printf("line %d, %s: %s\n", de.Row, de.Field, de.Message)
	}
	// Output:
	// line 3, template: template "n9" is not a ready node of the cluster: there is no such node
}
