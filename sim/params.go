package sim

import (
	"fmt"
	"math"
	"os"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/mitosis-autoscaler/mitosis/autoscaler"
	"github.com/mitosis-autoscaler/mitosis/config"
)

// Duration is a duration written as "30s" in YAML (the autoscaler's).
type Duration = autoscaler.Duration

// setDefault sets d to v unless the file set it (an explicit "0s" stays).
func setDefault(d *Duration, v time.Duration) {
	if *d == (Duration{}) {
		*d = autoscaler.Dur(v)
	}
}

// Mode is how the simulated hypervisor makes a new node.
type Mode string

const (
	// LiveClone copies the running template: the clone answers after
	// Params.LiveClone and is as warm as its template; the template is
	// stunned for Params.Stun.
	LiveClone Mode = "live-clone"
	// ColdBoot boots a fresh VM from its image: it answers after
	// Params.ColdBoot and starts cold; the template is not disturbed.
	ColdBoot Mode = "cold-boot"
)

// zeroKeys records the keys a config file gave as 0, which ApplyDefaults
// leaves for Validate to refuse rather than replace with their default.
type zeroKeys uint8

// defaultFloat sets *v to d unless it is set, or was given as 0 (bit).
func (z zeroKeys) defaultFloat(v *float64, bit zeroKeys, d float64) {
	if *v == 0 && z&bit == 0 {
		*v = d
	}
}

// decodeStrict decodes a mapping into v (a pointer to a struct of
// yaml-tagged fields) with config.DecodeNode, which refuses keys v does
// not have, and returns the keys given as 0 among zeroable (key → field),
// as bits.
func decodeStrict(n *yaml.Node, v any, zeroable map[string]zeroKeys) (zeroKeys, error) {
	if err := config.DecodeNode(n, v); err != nil {
		return 0, err
	}
	var zero zeroKeys
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if bit, ok := zeroable[k.Value]; ok && val.Kind == yaml.ScalarNode {
				if f, err := parseYAMLFloat(val); err == nil && f == 0 {
					zero |= bit
				}
			}
		}
	}
	return zero, nil
}

func parseYAMLFloat(n *yaml.Node) (float64, error) {
	var f float64
	err := n.Decode(&f)
	return f, err
}

// ParseMode checks a mode name.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case LiveClone, ColdBoot:
		return m, nil
	}
	return "", fmt.Errorf("unknown mode %q (want %s or %s)", s, LiveClone, ColdBoot)
}

// Params are the world's parameters: the `simulation:` section of a
// simulation config file. Absent keys take the defaults in the comments.
type Params struct {
	// Step is the world's time step; the controller's actuator runs after
	// every step, so it is also how often sagas poll.
	Step Duration `yaml:"step"` // 5s
	// Window is what per-second metrics are averaged over (like
	// Prometheus' rate()).
	Window Duration `yaml:"window"` // 60s
	// FastWindow is what the fast cluster signal (demand_nodes) is
	// averaged over: a surge shows in it before the window's averages
	// move.
	FastWindow Duration `yaml:"fast_window"` // 10s, or the step if longer
	// NodeCapacity is what a warm node serves, in requests per second.
	NodeCapacity float64 `yaml:"node_capacity"` // 100
	// ColdFraction is the share of its capacity a cold node serves.
	ColdFraction float64 `yaml:"cold_fraction"` // 0.3
	// Warmup is how long a node must serve to warm from cold to full.
	Warmup Duration `yaml:"warmup"` // 10m
	// Stun is how long a live clone freezes its template.
	Stun Duration `yaml:"stun"` // 1s
	// Prepare is how long a template takes to settle once asked.
	Prepare Duration `yaml:"prepare"` // 2s
	// LiveClone is how long a live clone takes to answer its node API.
	LiveClone Duration `yaml:"live_clone"` // 10s
	// ColdBoot is how long a VM booted from its image takes to answer.
	ColdBoot Duration `yaml:"cold_boot"` // 120s
	// SessionSeconds is how long a session lasts, and so how long a
	// detaching node takes to finish its sessions.
	SessionSeconds float64 `yaml:"session_seconds"` // 60
	// RequestsPerSession turns request rates into session counts.
	RequestsPerSession float64 `yaml:"requests_per_session"` // 20
	// MaxQueueWait is how long a request waits for a free node before it
	// gives up and counts as not served.
	MaxQueueWait Duration `yaml:"max_queue_wait"` // 10s
	// InitialNodes is how many warm nodes the cluster starts with
	// (0: the cluster's min, at least 1).
	InitialNodes int `yaml:"initial_nodes"`
	// RefusePrepareProbability is the chance that a template refuses to
	// prepare; CloneFailureProbability that a clone call fails. Drawn
	// from the run's seed.
	RefusePrepareProbability float64 `yaml:"refuse_prepare_probability"` // 0
	CloneFailureProbability  float64 `yaml:"clone_failure_probability"`  // 0
	// Synthetic shapes --synthetic workloads.
	Synthetic SyntheticParams `yaml:"synthetic"`

	// zero: the keys a file gave as 0 (a mistake, not "the default").
	zero zeroKeys
}

const (
	zeroNodeCapacity zeroKeys = 1 << iota
	zeroColdFraction
	zeroSessionSeconds
	zeroRequestsPerSession
)

// UnmarshalYAML decodes the section strictly, telling a key given as 0,
// which Validate refuses, from an absent one, which takes its default.
func (p *Params) UnmarshalYAML(n *yaml.Node) error {
	type plain Params
	zero, err := decodeStrict(n, (*plain)(p), map[string]zeroKeys{
		"node_capacity": zeroNodeCapacity, "cold_fraction": zeroColdFraction,
		"session_seconds": zeroSessionSeconds, "requests_per_session": zeroRequestsPerSession,
	})
	p.zero |= zero
	return err
}

// DefaultParams are the parameters of a file without a simulation section.
func DefaultParams() Params {
	var p Params
	p.ApplyDefaults()
	return p
}

// ApplyDefaults fills the unset fields. A field decoded from a file as 0
// stays 0, for Validate to refuse.
func (p *Params) ApplyDefaults() {
	setDefault(&p.Step, 5*time.Second)
	setDefault(&p.Window, 60*time.Second)
	setDefault(&p.FastWindow, max(10*time.Second, p.Step.Duration))
	p.zero.defaultFloat(&p.NodeCapacity, zeroNodeCapacity, 100)
	p.zero.defaultFloat(&p.ColdFraction, zeroColdFraction, 0.3)
	setDefault(&p.Warmup, 10*time.Minute)
	setDefault(&p.Stun, time.Second)
	setDefault(&p.Prepare, 2*time.Second)
	setDefault(&p.LiveClone, 10*time.Second)
	setDefault(&p.ColdBoot, 120*time.Second)
	p.zero.defaultFloat(&p.SessionSeconds, zeroSessionSeconds, 60)
	p.zero.defaultFloat(&p.RequestsPerSession, zeroRequestsPerSession, 20)
	setDefault(&p.MaxQueueWait, 10*time.Second)
	p.Synthetic.ApplyDefaults()
}

// Validate checks the parameters, naming the key at fault.
func (p Params) Validate() error {
	bad := func(key, why string) error { return fmt.Errorf("simulation.%s: %s", key, why) }
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	switch {
	case p.Step.Duration < 10*time.Millisecond:
		return bad("step", "must be at least 10ms")
	case p.Window.Duration < p.Step.Duration:
		return bad("window", "must be at least one step")
	case p.Window.Duration > 1000*p.Step.Duration:
		return bad("window", "must be at most 1000 steps")
	case p.FastWindow.Duration < p.Step.Duration || p.FastWindow.Duration > p.Window.Duration:
		return bad("fast_window", "must be at least one step and at most the window")
	case !(p.NodeCapacity > 0) || !finite(p.NodeCapacity):
		return bad("node_capacity", "must be positive")
	case !(p.ColdFraction > 0 && p.ColdFraction <= 1):
		return bad("cold_fraction", "must be within (0, 1]")
	case p.Warmup.Duration <= 0:
		return bad("warmup", "must be positive")
	case p.Stun.Duration < 0:
		return bad("stun", "must not be negative")
	case p.Prepare.Duration < 0:
		return bad("prepare", "must not be negative")
	case p.LiveClone.Duration < 0:
		return bad("live_clone", "must not be negative")
	case p.ColdBoot.Duration < 0:
		return bad("cold_boot", "must not be negative")
	case !(p.SessionSeconds > 0) || !finite(p.SessionSeconds):
		return bad("session_seconds", "must be positive")
	case !(p.RequestsPerSession > 0) || !finite(p.RequestsPerSession):
		return bad("requests_per_session", "must be positive")
	case p.MaxQueueWait.Duration < 0:
		return bad("max_queue_wait", "must not be negative")
	case p.InitialNodes < 0:
		return bad("initial_nodes", "must not be negative")
	case !(p.RefusePrepareProbability >= 0 && p.RefusePrepareProbability <= 1):
		return bad("refuse_prepare_probability", "must be within [0, 1]")
	case !(p.CloneFailureProbability >= 0 && p.CloneFailureProbability <= 1):
		return bad("clone_failure_probability", "must be within [0, 1]")
	}
	if err := p.Synthetic.Validate(); err != nil {
		return fmt.Errorf("simulation.%w", err)
	}
	return nil
}

// FileConfig is the view `mitosis simulate` takes of the agent's file
// (config.File): the same controller schema, decoded by the same strict
// decoder (config.DecodeStrict), with a `simulation:` section for the
// world.
type FileConfig struct {
	autoscaler.Config `yaml:",inline"`
	Simulation        Params `yaml:"simulation"`
	// Hypervisor and Metrics are the agent's sections (package config
	// checks them), taken and left alone so that the agent's own file
	// simulates: the simulator brings its own hypervisor and metrics.
	Hypervisor yaml.Node `yaml:"hypervisor"`
	Metrics    yaml.Node `yaml:"metrics"`
	World      yaml.Node `yaml:"world"`
}

// ConfigError is a config file that cannot be used.
type ConfigError struct {
	File string
	Err  error
}

func (e *ConfigError) Error() string { return e.File + ": " + e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// ParseConfig reads a simulation config strictly (an unknown key anywhere
// is an error naming it and its line), applies the defaults and checks
// it. The simulator drives exactly one cluster. Errors are *ConfigError.
func ParseConfig(data []byte, name string) (FileConfig, error) {
	var fc FileConfig
	if err := config.DecodeStrict(data, &fc); err != nil {
		return FileConfig{}, &ConfigError{name, err}
	}
	fc.Config.ApplyDefaults()
	fc.Simulation.ApplyDefaults()
	if err := fc.Config.Validate(); err != nil {
		return FileConfig{}, &ConfigError{name, err}
	}
	if n := len(fc.Clusters); n != 1 {
		return FileConfig{}, &ConfigError{name, fmt.Errorf("clusters: the simulator drives exactly one cluster, the file has %d", n)}
	}
	if err := fc.Simulation.Validate(); err != nil {
		return FileConfig{}, &ConfigError{name, err}
	}
	if n, c := fc.Simulation.InitialNodes, fc.Clusters[0]; n > c.Max {
		return FileConfig{}, &ConfigError{name, fmt.Errorf("simulation.initial_nodes: %d is above cluster %s's max %d", n, c.Name, c.Max)}
	}
	return fc, nil
}

// LoadConfig reads and parses a simulation config file.
func LoadConfig(path string) (FileConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return FileConfig{}, &ConfigError{path, err}
	}
	return ParseConfig(data, path)
}

// DefaultFileConfig is what `mitosis simulate` runs without --config: the
// autoscaler's default cluster and the default world.
func DefaultFileConfig() FileConfig {
	return FileConfig{Config: autoscaler.DefaultConfig(), Simulation: DefaultParams()}
}
