package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/mitosis-autoscaler/mitosis/autoscaler"
	"github.com/mitosis-autoscaler/mitosis/metrics/prometheus"
)

// File is the agent's configuration file: the controller's keys at the
// top level, and a section per back-end. Parse makes one: decoded,
// defaulted and checked.
type File struct {
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
	// default), or a simulated world (kind: sim). A simulated world's keys,
	// and the simulation section's (docs/simulation.md), are kept as they
	// are written for the world's maker (sim.ReadAgentWorld), which the
	// command calls and hands the agent as an agent.World: neither this
	// package nor the agent knows anything of simulation.
	World      yaml.Node `yaml:"world"`
	Simulation yaml.Node `yaml:"simulation"`
	// Dispatcher and NodeAPI are what acting on real machines needs
	// besides the hypervisor (agent/backends opens them); a dry run needs neither.
	Dispatcher *DispatcherConfig `yaml:"dispatcher"`
	NodeAPI    *NodeAPIConfig    `yaml:"node_api"`
}

// Simulated reports whether the agent acts on a simulated world instead
// of machines (world.kind: sim): World and Simulation are then its
// sections, for the world's maker to read (sim.ReadAgentWorld).
func (c File) Simulated() bool {
	kind, err := c.worldKind()
	return err == nil && kind == WorldSim
}

// simMoved names the form that replaced hypervisor: {kind: sim}.
const simMoved = "hypervisor.kind: sim is now a world of its own: write world: {kind: sim, speed: …} (the keys of hypervisor.sim), without a hypervisor section (docs/agent.md)"

// Worlds of a file.
const (
	WorldMachines = "machines"
	WorldSim      = "sim"
)

// worldKind is the file's world.kind: machines when it gives none.
func (c File) worldKind() (string, error) {
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
func (c File) validateNodes() error {
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

// ParseOption is what the command line says about a file that counts
// before the file is checked.
type ParseOption func(*File)

// AsDryRun checks the file as a dry run's (--dry-run), whatever its
// dry_run says: it then needs no hypervisor, dispatcher or node API.
func AsDryRun() ParseOption { return func(c *File) { c.DryRun = true } }

// Parse reads an agent configuration strictly (an unknown key anywhere
// is an error naming it and its line), applies the defaults and checks
// it; name labels errors.
func Parse(data []byte, name string, opts ...ParseOption) (File, error) {
	c, err := parse(data, opts)
	if err != nil {
		return File{}, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}

func parse(data []byte, opts []ParseOption) (File, error) {
	var old struct {
		Hypervisor struct {
			Kind string `yaml:"kind"`
		} `yaml:"hypervisor"`
	}
	if yaml.Unmarshal(data, &old) == nil && old.Hypervisor.Kind == "sim" {
		// The earlier form: its sim section would be the error named.
		return File{}, errors.New(simMoved)
	}
	var c File
	if err := DecodeStrict(data, &c); err != nil {
		return File{}, err
	}
	for _, o := range opts {
		o(&c)
	}
	c.Config.ApplyDefaults()
	if err := c.Config.Validate(); err != nil {
		return File{}, keyLine(data, err)
	}
	world, err := c.worldKind()
	if err != nil {
		return File{}, err
	}
	if world == WorldMachines && c.Simulation.Kind != 0 {
		return File{}, errors.New("simulation: given, but the world is machines: the section is for a simulated world (world: {kind: sim})")
	}
	// A dry run touches no VM: it needs no hypervisor, but a section
	// given is still checked.
	h := c.Hypervisor
	if world == WorldMachines && (!c.DryRun || h.Kind != "" || h.VSphere != nil || h.Libvirt != nil || h.Process != nil) {
		if err := h.Validate(); err != nil {
			return File{}, err
		}
	}
	if err := c.validateNodes(); err != nil {
		return File{}, err
	}
	if err := c.API.validate(); err != nil {
		return File{}, keyLine(data, err)
	}
	if c.Raft != nil {
		if err := c.Raft.validate(); err != nil {
			return File{}, keyLine(data, err)
		}
	}
	if world == WorldSim {
		if err := c.checkSimulated(); err != nil {
			return File{}, err
		}
		return c, nil
	}
	c.Metrics.ApplyDefaults()
	if err := c.Metrics.Validate(); err != nil {
		return File{}, fmt.Errorf("metrics: %w", err)
	}
	// Each section given is checked on its own, dry or not, so that its
	// own error is the one named; an agent that acts needs them all.
	if c.Dispatcher != nil {
		if err := c.Dispatcher.validate(c.clusterNames()); err != nil {
			return File{}, err
		}
	}
	if c.NodeAPI != nil {
		// The port first: a bad one is named even when the token file
		// is missing too.
		if p := c.NodeAPI.Port; p < 0 || p > 65535 {
			return File{}, fmt.Errorf("node_api.port: %d is not a port", p)
		}
		if err := c.NodeAPI.validate(); err != nil {
			return File{}, err
		}
	}
	switch {
	case !c.DryRun:
		if err := c.CheckActing(); err != nil {
			return File{}, err
		}
	case h.Kind == KindProcess && c.NodeAPI == nil:
		return File{}, errors.New("node_api: required by hypervisor.kind process (it asks the VMs for their state)")
	}
	return c, nil
}

func (c File) clusterNames() []string {
	names := make([]string, len(c.Clusters))
	for i, cl := range c.Clusters {
		names[i] = cl.Name
	}
	return names
}

// checkSimulated checks that nothing real is configured beside a
// simulated world (it brings its own nodes, metrics, hypervisor and load
// balancer, in one agent's memory). The world's own sections are its
// maker's to read and check (sim.ReadAgentWorld): this package knows no
// simulation.
func (c *File) checkSimulated() error {
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
	}
	return nil
}

// LoadFile reads and parses an agent configuration file.
func LoadFile(path string, opts ...ParseOption) (File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return File{}, err
	}
	return Parse(data, path, opts...)
}
