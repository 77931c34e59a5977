package agent

import (
	"context"
	"testing"

	"github.com/mitosis-autoscaler/mitosis/policies"
	"github.com/mitosis-autoscaler/mitosis/policy"
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
func runAgent(t *testing.T, cfg Config) *Agent {
	t.Helper()
	a, err := New(cfg, Options{Listen: "127.0.0.1:0", Token: "t0k", Policy: defaultPolicy(t), Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return a
}
