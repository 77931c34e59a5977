//go:build worldcup

package sim

import "testing"

// TestWorldCupFullTrace is the acceptance run of docs/simulation.md: the
// whole 87-day trace in both modes. It takes minutes, so it is built only
// with the worldcup tag: `make acceptance`.
func TestWorldCupFullTrace(t *testing.T) {
	live, cold := runWorldCup(t, openWorldCup(t))
	checkAcceptance(t, live.Summary, cold.Summary, 40)
}
