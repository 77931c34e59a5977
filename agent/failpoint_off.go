//go:build !failpoints

package agent

import (
	"log/slog"

	"github.com/mitosis-autoscaler/mitosis/autoscaler"
)

// failpoints is the registry as it is: a production build has none
// (failpoint.go).
func failpoints(r autoscaler.Registry, _ *slog.Logger) autoscaler.Registry { return r }
