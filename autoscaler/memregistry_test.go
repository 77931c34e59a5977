package autoscaler_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/mitosis-autoscaler/mitosis/autoscaler"
	"github.com/mitosis-autoscaler/mitosis/autoscaler/registrytest"
	"github.com/mitosis-autoscaler/mitosis/plan"
)

func TestMemRegistryConformance(t *testing.T) {
	registrytest.Run(t, func(*testing.T) autoscaler.Registry { return autoscaler.NewMemRegistry() })
}

// The registry's JSON is its Ledger's: a Ledger restored from it holds
// the same state.
func TestMemRegistryJSONIsItsLedger(t *testing.T) {
	ctx := context.Background()
	r := autoscaler.NewMemRegistry()
	if err := r.PutNode(ctx, plan.Node{ID: "a1", Cluster: "web"}); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var l plan.Ledger
	if err := json.Unmarshal(b, &l); err != nil {
		t.Fatal(err)
	}
	if s := l.State("web"); len(s.Nodes) != 1 || s.Nodes[0].ID != "a1" {
		t.Errorf("restored state = %+v", s)
	}
}
