package agent

import (
	"testing"
)

// operationsFinished reads mitosis_operations_total{cluster, kind,
// result} from the agent's telemetry, as GET /metrics would serve it (0
// while the series does not exist).
func operationsFinished(t *testing.T, a *Agent, cluster, kind, result string) float64 {
	t.Helper()
	families, err := a.telemetry.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"cluster": cluster, "kind": kind, "result": result}
	for _, f := range families {
		if f.GetName() != "mitosis_operations_total" {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if want[l.GetName()] != l.GetValue() {
					continue series
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}
