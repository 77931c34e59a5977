package sim

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/mitosis-autoscaler/mitosis/autoscaler"
	"github.com/mitosis-autoscaler/mitosis/config"
)

// WorldConfig is the world section of an agent's file that acts on a
// simulated world (world: {kind: sim}): how fast it runs and the load it
// is under. The world itself is the file's simulation section (Params).
type WorldConfig struct {
	Kind string `yaml:"kind"`
	// Speed is simulated seconds per wall-clock second (default 60).
	Speed *float64 `yaml:"speed"`
	// Workload is a synthetic load: diurnal, spike, ramp or
	// diurnal-spike (the default), shaped by simulation.synthetic.
	Workload string `yaml:"workload"`
	// Duration is how long the load lasts, in simulated time (default
	// 7 days); the agent stops at its end.
	Duration Duration `yaml:"duration"`
	Seed     uint64   `yaml:"seed"`
	// Mode is live-clone (the default) or cold-boot.
	Mode Mode `yaml:"mode"`
}

// AgentWorld is a simulated world an agent acts on in place of machines
// (it implements agent.World): a Cluster in real time, sped up, recording
// into the agent's registry.
type AgentWorld struct {
	World   WorldConfig
	Params  Params
	Config  autoscaler.Config
	cluster *Cluster
}

// ReadAgentWorld reads an agent's simulated world from its file's world
// and simulation sections (nil or empty: the defaults), for the agent's
// configuration cfg; its errors name the key at fault.
func ReadAgentWorld(world, simulation *yaml.Node, cfg autoscaler.Config) (*AgentWorld, error) {
	w := &AgentWorld{Config: cfg}
	if world != nil && world.Kind != 0 {
		if err := config.DecodeNode(world, &w.World); err != nil {
			return nil, fmt.Errorf("world: %s", yamlErrors(err))
		}
	}
	if simulation != nil && simulation.Kind != 0 {
		if err := simulation.Decode(&w.Params); err != nil {
			return nil, fmt.Errorf("simulation: %s", yamlErrors(err))
		}
	}
	wc := &w.World
	if wc.Speed == nil {
		speed := 60.0
		wc.Speed = &speed
	}
	if wc.Workload == "" {
		wc.Workload = DiurnalSpike
	}
	setDefault(&wc.Duration, 7*24*time.Hour)
	if wc.Mode == "" {
		wc.Mode = LiveClone
	}
	switch {
	case !(*wc.Speed > 0) || *wc.Speed > 100000:
		return nil, fmt.Errorf("world.speed: %v must be above 0 and at most 100000 (leave it out for 60)", *wc.Speed)
	case !slices.Contains(SyntheticKinds, wc.Workload):
		return nil, fmt.Errorf("world.workload: %q is not one of %s", wc.Workload, strings.Join(SyntheticKinds, ", "))
	case wc.Duration.Duration < time.Minute:
		return nil, fmt.Errorf("world.duration: %s is under a minute", wc.Duration.Duration)
	}
	if _, err := ParseMode(string(wc.Mode)); err != nil {
		return nil, fmt.Errorf("world.mode: %w", err)
	}
	w.Params.ApplyDefaults()
	if err := w.Params.Validate(); err != nil {
		return nil, err // it names simulation.<key>
	}
	if len(cfg.Clusters) != 1 {
		return nil, fmt.Errorf("clusters: a simulated world has exactly one cluster, the file has %d", len(cfg.Clusters))
	}
	if cl := cfg.Clusters[0]; w.Params.InitialNodes > cl.Max {
		return nil, fmt.Errorf("simulation.initial_nodes: %d is above clusters[0] (%s).max %d", w.Params.InitialNodes, cl.Name, cl.Max)
	}
	return w, nil
}

// WorldOf reads the simulated world of an agent's file (world.kind sim),
// from its world and simulation sections.
func WorldOf(f config.File) (*AgentWorld, error) {
	return ReadAgentWorld(&f.World, &f.Simulation, f.Config)
}

// Open makes the world over reg, registering its first nodes there, and
// returns the controller's backends in it and its clock, which keeps it
// Speed times as fast as the wall clock.
func (w *AgentWorld) Open(ctx context.Context, reg autoscaler.Registry) (autoscaler.Deps, autoscaler.Sleeper, error) {
	if w.cluster != nil {
		return autoscaler.Deps{}, nil, errors.New("simulation: the world is open already")
	}
	load, err := Synthetic(w.World.Workload, w.Params.Synthetic, w.World.Duration.Duration, w.World.Seed)
	if err != nil {
		return autoscaler.Deps{}, nil, fmt.Errorf("simulated load: %w", err)
	}
	pace, err := RealTime(*w.World.Speed)
	if err != nil {
		return autoscaler.Deps{}, nil, err
	}
	c, err := NewCluster(ctx, Options{
		Label: "agent", Workload: load, Config: w.Config, Params: w.Params, Mode: w.World.Mode,
		Seed: w.World.Seed, Registry: reg, Pace: pace,
	})
	if err != nil {
		return autoscaler.Deps{}, nil, err
	}
	w.cluster = c
	return c.Deps(), c, nil
}

// Ended says how the world went, for the agent's log.
func (w *AgentWorld) Ended() []any {
	if w.cluster == nil {
		return nil
	}
	s := w.cluster.Result().Summary
	return []any{"served_pct", s.ServedPct, "node_hours", s.NodeHours}
}

// yamlErrors is a decoding error without the decoder's preamble: its
// problems, each naming its line, on one line.
func yamlErrors(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return strings.Join(te.Errors, "; ")
	}
	return strings.TrimPrefix(err.Error(), "yaml: ")
}
