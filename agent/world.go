package agent

import (
	"context"
	_ "embed"

	"github.com/mitosis-autoscaler/mitosis/autoscaler"
)

// World is a simulated world the agent acts on in place of machines: the
// port through which a file's world: {kind: sim} reaches the agent.
// Package sim makes one from the file's sections (cmd/mitosis hands it
// over in Options.World), so that the agent runs the same loop on it as
// on machines without knowing anything of simulation.
type World interface {
	// Open starts the world over reg, where it registers its first nodes,
	// and returns the controller's backends in it (all but the policy,
	// the log and the observer) and its clock, whose waits advance it
	// (and end with autoscaler.ErrWorldEnded when its load has run out).
	Open(ctx context.Context, reg autoscaler.Registry) (autoscaler.Deps, autoscaler.Sleeper, error)
	// Ended says how the world went, as log attributes, once it ended.
	Ended() []any
}

// SimulatedDefaults is the configuration `mitosis agent --simulate` runs
// without a file: one cluster on a simulated world (simulated.yaml).
//
//go:embed simulated.yaml
var SimulatedDefaults []byte
