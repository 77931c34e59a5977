package telemetry_test

import (
	"fmt"
	"time"

	"github.com/mitosis-autoscaler/mitosis/agent/telemetry"
	"github.com/mitosis-autoscaler/mitosis/autoscaler"
	"github.com/mitosis-autoscaler/mitosis/plan"
)

// The agent makes one Telemetry, names its clusters, hands it to the
// controller as its Observer and serves Handler on GET /metrics.
func Example() {
	tel := telemetry.New("v1.2.3")
	tel.ForClusters([]string{"web"})
	var observer autoscaler.Observer = tel // autoscaler.Deps.Observer
	observer.Ticked(autoscaler.TickReport{
		Record: plan.DecisionRecord{Cluster: "web", At: time.Unix(1767258000, 0), Size: 2,
			Decision: plan.Decision{Action: plan.ActionExpand, Count: 1}, Metrics: plan.MetricsHealth{Available: true}},
		Limits: plan.Limits{Min: 1, Max: 4},
	})
	families, _ := tel.Gatherer().Gather()
	for _, f := range families {
		switch f.GetName() {
		case "mitosis_ticks_total", "mitosis_cluster_size":
			m := f.GetMetric()[0]
			fmt.Println(f.GetName(), m.GetLabel()[0].GetValue(), m.GetCounter().GetValue()+m.GetGauge().GetValue())
		}
	}
	// Output:
	// mitosis_cluster_size web 2
	// mitosis_ticks_total web 1
}
