package agent

import (
	"testing"

	"github.com/mitosis-autoscaler/mitosis/config"
	"github.com/mitosis-autoscaler/mitosis/policies"
	"github.com/mitosis-autoscaler/mitosis/policy"
	"github.com/mitosis-autoscaler/mitosis/sim"
)

// defaultPolicy is the embedded default policy, compiled.
func defaultPolicy(t *testing.T) *policy.Engine {
	t.Helper()
	engine, err := policy.LoadFS(policies.FS, "policies")
	if err != nil {
		t.Fatal(err)
	}
	return engine
}

// runAgent makes an agent of cfg with the default policy and admin token
// "t0k" on a free loopback port, and runs it until the test ends.
func runAgent(t *testing.T, cfg config.File) *Agent {
	t.Helper()
	return startAgent(t, cfg, Options{}, nil)
}

// worldOf makes the simulated world of cfg, as the command does (package
// sim's maker); nil when cfg's world is machines.
func worldOf(t *testing.T, cfg config.File) World {
	t.Helper()
	if !cfg.Simulated() {
		return nil
	}
	w, err := sim.WorldOf(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w
}
