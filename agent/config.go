// Package agent is the daemon: it reads its configuration file (the
// controller's keys, autoscaler.Config, and a section per back-end), opens
// the back-ends, runs the controller's loop and serves its own metrics and
// decisions over HTTP (agent.go, telemetry.go).
package agent

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/mitosis-autoscaler/mitosis/autoscaler"
	"github.com/mitosis-autoscaler/mitosis/hypervisor"
	"github.com/mitosis-autoscaler/mitosis/hypervisor/libvirt"
	"github.com/mitosis-autoscaler/mitosis/hypervisor/vsphere"
	"github.com/mitosis-autoscaler/mitosis/metrics/prometheus"
)

// Config is the agent's configuration file: the controller's keys at the
// top level, and a section per back-end.
type Config struct {
	autoscaler.Config `yaml:",inline"`
	Hypervisor        HypervisorConfig `yaml:"hypervisor"`
	// Metrics is where the snapshots come from: the operator's Prometheus
	// and PromQL (docs/metrics.md).
	Metrics prometheus.Config `yaml:"metrics"`
	// Nodes are the nodes each cluster has before mitosis makes any: the
	// templates it starts from. The agent registers them at start.
	Nodes []NodeConfig `yaml:"nodes"`
	// API says who may use the HTTP API (docs/api.md), and over TLS if given.
	API APIConfig `yaml:"api"`
	// Raft makes the agent a node of a replicated registry (docs/raft.md);
	// without it the registry is in memory.
	Raft *RaftConfig `yaml:"raft"`
	// World is what the agent acts on: the machines of this file (the
	// default), or a simulated world (kind: sim) whose keys, and the
	// simulation section's (docs/simulation.md), the WorldMaker given to
	// Parse reads: the agent itself knows nothing of simulation.
	World      yaml.Node `yaml:"world"`
	Simulation yaml.Node `yaml:"simulation"`
	// Dispatcher and NodeAPI are what acting on real machines needs
	// besides the hypervisor (acting.go); a dry run needs neither.
	Dispatcher *DispatcherConfig `yaml:"dispatcher"`
	NodeAPI    *NodeAPIConfig    `yaml:"node_api"`

	// world is the simulated world the file chooses, made by worlds.
	world  World
	worlds WorldMaker
}

// Simulated reports whether the agent acts on a simulated world instead
// of machines (world.kind: sim).
func (c Config) Simulated() bool { return c.world != nil }

// World is a simulated world the agent acts on in place of machines.
// Package sim makes one (cmd/mitosis hands its maker to Parse), so that
// the agent runs the same loop on it as on machines.
type World interface {
	// Open starts the world over reg, where it registers its first nodes,
	// and returns the controller's backends in it (all but the policy,
	// the log and the observer) and its clock, whose waits advance it
	// (and end with autoscaler.ErrWorldEnded when its load has run out).
	Open(ctx context.Context, reg autoscaler.Registry) (autoscaler.Deps, autoscaler.Sleeper, error)
	// Ended says how the world went, as log attributes, once it ended.
	Ended() []any
}

// A WorldMaker reads a simulated world from a file's world and
// simulation sections, for the controller configuration cfg; its errors
// name the key at fault.
type WorldMaker func(world, simulation *yaml.Node, cfg autoscaler.Config) (World, error)

// Simulates lets Parse read a file whose world is simulated, with make.
func Simulates(make WorldMaker) ParseOption { return func(c *Config) { c.worlds = make } }

// simMoved names the form that replaced hypervisor: {kind: sim}.
const simMoved = "hypervisor.kind: sim is now a world of its own: write world: {kind: sim, speed: …} (the keys of hypervisor.sim), without a hypervisor section (docs/agent.md)"

// Worlds of a file.
const (
	WorldMachines = "machines"
	WorldSim      = "sim"
)

// worldKind is the file's world.kind: machines when it gives none.
func (c Config) worldKind() (string, error) {
	var w struct {
		Kind string `yaml:"kind"`
	}
	if c.World.Kind == 0 {
		return WorldMachines, nil
	}
	if err := c.World.Decode(&w); err != nil || c.World.Kind != yaml.MappingNode {
		return "", fmt.Errorf("world: line %d: want a section such as {kind: sim}", c.World.Line)
	}
	switch w.Kind {
	case "", WorldMachines:
		return WorldMachines, nil
	case WorldSim:
		return WorldSim, nil
	}
	return "", fmt.Errorf("world.kind: unknown world %q (want machines or sim)", w.Kind)
}

// NodeConfig is a node the agent starts with.
type NodeConfig struct {
	Cluster string `yaml:"cluster"`
	ID      string `yaml:"id"`
	Role    string `yaml:"role"`
	// Address is where its node API listens (host:port); it is also what
	// a per-node query may match on (docs/metrics.md).
	Address string `yaml:"address"`
	Host    string `yaml:"host"`
	VM      string `yaml:"vm"`
}

// validateNodes checks that every node names a configured cluster, that
// ids are given and unique, that an address given is a host:port and a
// VM given is no other node's, and that a host given is one of the
// cluster's hosts when it lists them.
func (c Config) validateNodes() error {
	clusters := map[string]autoscaler.ClusterConfig{}
	for _, cl := range c.Clusters {
		clusters[cl.Name] = cl
	}
	seen := map[string]bool{}
	addrs, vms := map[string]int{}, map[string]int{}
	for i, n := range c.Nodes {
		cl, known := clusters[n.Cluster]
		switch {
		case n.ID == "":
			return fmt.Errorf("nodes[%d].id: required", i)
		case seen[n.ID]:
			return fmt.Errorf("nodes[%d].id: %q is listed twice", i, n.ID)
		case !known:
			return fmt.Errorf("nodes[%d].cluster: %q is not a configured cluster", i, n.Cluster)
		case n.Role == "":
			return fmt.Errorf("nodes[%d].role: required", i)
		}
		seen[n.ID] = true
		if n.Address != "" {
			if err := checkHostPort(n.Address); err != nil {
				return fmt.Errorf("nodes[%d].address: node %s's %q is not host:port: %w", i, n.ID, n.Address, err)
			}
			if j, ok := addrs[n.Address]; ok {
				return fmt.Errorf("nodes[%d].address: node %s's %q is node %s's too (nodes[%d]): each node has its own", i, n.ID, n.Address, c.Nodes[j].ID, j)
			}
			addrs[n.Address] = i
		}
		if n.VM != "" {
			if j, ok := vms[n.VM]; ok {
				return fmt.Errorf("nodes[%d].vm: node %s's %q is node %s's too (nodes[%d]): each node is its own VM", i, n.ID, n.VM, c.Nodes[j].ID, j)
			}
			vms[n.VM] = i
		}
		if n.Host != "" && !cl.HasHost(n.Host) {
			names := make([]string, len(cl.Hosts))
			for j, h := range cl.Hosts {
				names[j] = h.Name
			}
			return fmt.Errorf("nodes[%d].host: node %s's %q is not one of cluster %s's hosts (%s)", i, n.ID, n.Host, cl.Name, strings.Join(names, ", "))
		}
	}
	return nil
}

// checkHostPort checks that addr is a host and a port, 1 to 65535.
func checkHostPort(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "address "+addr+": "))
	}
	if host == "" {
		return errors.New("no host")
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("port %q is not 1 to 65535", port)
	}
	return nil
}

// HypervisorConfig chooses the hypervisor back-end by kind and holds its
// settings; only the section of the kind chosen may be given.
//
//	hypervisor:
//	  kind: libvirt
//	  libvirt: {uri: "qemu:///system", image_dir: /var/lib/mitosis/images}
type HypervisorConfig struct {
	// Kind is vsphere, libvirt or process.
	Kind    string          `yaml:"kind"`
	VSphere *vsphere.Config `yaml:"vsphere"`
	Libvirt *libvirt.Config `yaml:"libvirt"`
	Process *ProcessConfig  `yaml:"process"`
}

// Kinds of hypervisor.
const (
	KindVSphere = "vsphere"
	KindLibvirt = "libvirt"
	// KindProcess runs each VM as a local process of an application
	// server (demo-node, say): for demonstrations and tests (acting.go).
	KindProcess = "process"
)

// Validate checks that the kind is known and that its section, and only
// its, is given.
func (h HypervisorConfig) Validate() error {
	given := map[string]bool{KindVSphere: h.VSphere != nil, KindLibvirt: h.Libvirt != nil, KindProcess: h.Process != nil}
	switch h.Kind {
	case KindVSphere, KindLibvirt, KindProcess:
	case "":
		return errors.New("hypervisor.kind: required (vsphere, libvirt or process; or world: {kind: sim} for a simulated world)")
	case "sim":
		return errors.New(simMoved)
	default:
		return fmt.Errorf("hypervisor.kind: unknown kind %q (want vsphere, libvirt or process)", h.Kind)
	}
	if !given[h.Kind] {
		return fmt.Errorf("hypervisor.%s: required when hypervisor.kind is %s", h.Kind, h.Kind)
	}
	for kind, ok := range given {
		if ok && kind != h.Kind {
			return fmt.Errorf("hypervisor.%s: given, but hypervisor.kind is %s", kind, h.Kind)
		}
	}
	// Each back-end's own checks that need no connection, so that a dry
	// run checks the section it is given, and an error names the file.
	switch h.Kind {
	case KindProcess:
		h.Process.applyDefaults()
		return h.Process.validate()
	case KindVSphere:
		if err := h.VSphere.Validate(); err != nil {
			return fmt.Errorf("hypervisor.%w", err)
		}
	case KindLibvirt:
		if err := h.Libvirt.Validate(); err != nil {
			return fmt.Errorf("hypervisor.%w", err)
		}
	}
	return nil
}

// ParseOption is what the command line says about a file that counts
// before the file is checked.
type ParseOption func(*Config)

// AsDryRun checks the file as a dry run's (--dry-run), whatever its
// dry_run says: it then needs no hypervisor, dispatcher or node API.
func AsDryRun() ParseOption { return func(c *Config) { c.DryRun = true } }

// Parse reads an agent configuration strictly (an unknown key anywhere
// is an error naming it and its line), applies the defaults and checks
// it; name labels errors.
func Parse(data []byte, name string, opts ...ParseOption) (Config, error) {
	c, err := parse(data, opts)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}

func parse(data []byte, opts []ParseOption) (Config, error) {
	var old struct {
		Hypervisor struct {
			Kind string `yaml:"kind"`
		} `yaml:"hypervisor"`
	}
	if yaml.Unmarshal(data, &old) == nil && old.Hypervisor.Kind == "sim" {
		// The earlier form: its sim section would be the error named.
		return Config{}, errors.New(simMoved)
	}
	var c Config
	if err := autoscaler.DecodeStrict(data, &c); err != nil {
		return Config{}, err
	}
	for _, o := range opts {
		o(&c)
	}
	c.Config.ApplyDefaults()
	if err := c.Config.Validate(); err != nil {
		return Config{}, err
	}
	world, err := c.worldKind()
	if err != nil {
		return Config{}, err
	}
	if world == WorldMachines && c.Simulation.Kind != 0 {
		return Config{}, errors.New("simulation: given, but the world is machines: the section is for a simulated world (world: {kind: sim})")
	}
	// A dry run touches no VM: it needs no hypervisor, but a section
	// given is still checked.
	h := c.Hypervisor
	if world == WorldMachines && (!c.DryRun || h.Kind != "" || h.VSphere != nil || h.Libvirt != nil || h.Process != nil) {
		if err := h.Validate(); err != nil {
			return Config{}, err
		}
	}
	if err := c.validateNodes(); err != nil {
		return Config{}, err
	}
	if err := c.API.validate(); err != nil {
		return Config{}, err
	}
	if c.Raft != nil {
		if err := c.Raft.validate(); err != nil {
			return Config{}, err
		}
	}
	if world == WorldSim {
		if err := c.checkSimulated(); err != nil {
			return Config{}, err
		}
		return c, nil
	}
	c.Metrics.ApplyDefaults()
	if err := c.Metrics.Validate(); err != nil {
		return Config{}, fmt.Errorf("metrics: %w", err)
	}
	// Each section given is checked on its own, dry or not, so that its
	// own error is the one named; an agent that acts needs them all.
	if c.Dispatcher != nil {
		if err := c.Dispatcher.validate(c.clusterNames()); err != nil {
			return Config{}, err
		}
	}
	if c.NodeAPI != nil {
		// The port first: a bad one is named even when the token file
		// is missing too.
		if p := c.NodeAPI.Port; p < 0 || p > 65535 {
			return Config{}, fmt.Errorf("node_api.port: %d is not a port", p)
		}
		if err := c.NodeAPI.validate(); err != nil {
			return Config{}, err
		}
	}
	switch {
	case !c.DryRun:
		if err := c.checkActing(); err != nil {
			return Config{}, err
		}
	case h.Kind == KindProcess && c.NodeAPI == nil:
		return Config{}, errors.New("node_api: required by hypervisor.kind process (it asks the VMs for their state)")
	}
	return c, nil
}

func (c Config) clusterNames() []string {
	names := make([]string, len(c.Clusters))
	for i, cl := range c.Clusters {
		names[i] = cl.Name
	}
	return names
}

// checkSimulated checks that nothing real is configured beside a
// simulated world (it brings its own nodes, metrics, hypervisor and load
// balancer, in one agent's memory), then makes the world, whose maker
// checks its own sections and the clusters it can simulate.
func (c *Config) checkSimulated() error {
	h := c.Hypervisor
	switch {
	case h.Kind != "" || h.VSphere != nil || h.Libvirt != nil || h.Process != nil:
		return errors.New("hypervisor: not with world.kind sim: the simulated world has its own")
	case len(c.Nodes) > 0:
		return errors.New("nodes: not with world.kind sim: the simulated world makes the cluster's first nodes (simulation.initial_nodes)")
	case c.Metrics.URL != "" || len(c.Metrics.Queries) > 0:
		return errors.New("metrics: not with world.kind sim: the simulated world is the metrics source")
	case c.Dispatcher != nil || c.NodeAPI != nil:
		return errors.New("dispatcher, node_api: not with world.kind sim: the simulated world has its own")
	case c.Raft != nil:
		return errors.New("raft: not with world.kind sim: a simulated world lives in one agent's memory")
	case c.worlds == nil:
		return errors.New("world.kind: sim: this program cannot make a simulated world (mitosis agent can)")
	}
	w, err := c.worlds(&c.World, &c.Simulation, c.Config)
	if err != nil {
		return err
	}
	c.world = w
	return nil
}

// LoadFile reads and parses an agent configuration file.
func LoadFile(path string, opts ...ParseOption) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	return Parse(data, path, opts...)
}

// OpenHypervisor connects the back-end the configuration chooses. close
// releases it.
func OpenHypervisor(ctx context.Context, h HypervisorConfig, log *slog.Logger) (hv hypervisor.Hypervisor, close func(context.Context) error, err error) {
	if err := h.Validate(); err != nil {
		return nil, nil, err
	}
	switch h.Kind {
	case KindVSphere:
		cfg := *h.VSphere
		cfg.Logger = log
		c, err := vsphere.New(ctx, cfg)
		if err != nil {
			return nil, nil, fmt.Errorf("hypervisor vsphere: %w", err)
		}
		return c, c.Close, nil
	case KindProcess:
		return nil, nil, errors.New("hypervisor process: opened with the node API (openActors)")
	default: // KindLibvirt, as Validate checked
		cfg := *h.Libvirt
		cfg.Logger = log
		c, err := libvirt.New(ctx, cfg)
		if err != nil {
			return nil, nil, fmt.Errorf("hypervisor libvirt: %w", err)
		}
		return c, func(context.Context) error { return c.Close() }, nil
	}
}

// SimulatedDefaults is the configuration `mitosis agent --simulate` runs
// without a file: one cluster on a simulated world (simulated.yaml).
//
//go:embed simulated.yaml
var SimulatedDefaults []byte
