// Package agenttest runs a real agent, in process, for the tests of its
// clients (agent/client, the command line): on a quiet simulated world,
// with an admin token and a read token in files.
package agenttest

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/mitosis-autoscaler/mitosis/agent"
	"github.com/mitosis-autoscaler/mitosis/config"
	"github.com/mitosis-autoscaler/mitosis/policies"
	"github.com/mitosis-autoscaler/mitosis/policy"
	"github.com/mitosis-autoscaler/mitosis/sim"
)

// Quiet is a simulated world that scales only when told to: a steady
// load, and cooldowns and a stabilization window of a day.
const Quiet = `
tick: 15s
clusters:
  - name: web
    min: 2
    max: 20
    scalable_roles: [app]
    cooldown: {up: 24h, down: 24h}
    stabilization: 24h
    hosts: [{name: esx-1}, {name: esx-2}]
world: {kind: sim, speed: 120, workload: diurnal, duration: 48h, seed: 1}
simulation:
  synthetic: {base_rps: 100, peak_rps: 150}
`

// Agent is a running agent and its tokens.
type Agent struct {
	Server                string // http://127.0.0.1:port
	AdminToken, ReadToken string
	AdminFile, ReaderFile string // the tokens' files
}

// Start runs an agent on Quiet until the test ends.
func Start(t testing.TB) Agent {
	t.Helper()
	dir := t.TempDir()
	ag := Agent{AdminToken: "adm1n-canary-token", ReadToken: "r3ad-canary-token",
		AdminFile: filepath.Join(dir, "admin"), ReaderFile: filepath.Join(dir, "reader")}
	for f, tok := range map[string]string{ag.AdminFile: ag.AdminToken, ag.ReaderFile: ag.ReadToken} {
		if err := os.WriteFile(f, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.Parse([]byte(Quiet+"api:\n  tokens: [{name: viewer, role: read, file: "+ag.ReaderFile+"}]\n"), "agenttest.yaml")
	if err != nil {
		t.Fatal(err)
	}
	world, err := sim.WorldOf(cfg)
	if err != nil {
		t.Fatal(err)
	}
	engine, err := policy.LoadFS(policies.FS, "policies")
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(cfg, agent.Options{Listen: "127.0.0.1:0", Token: ag.AdminToken, Policy: engine, Version: "test", World: world})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	ag.Server = "http://" + a.Addr()
	return ag
}
