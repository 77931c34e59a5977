package config

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/mitosis-autoscaler/mitosis/autoscaler"
	"github.com/mitosis-autoscaler/mitosis/dispatcher/haproxy"
)

// What an agent needs to act on real machines, besides a hypervisor: the
// load balancer in front of the nodes (dispatcher) and the way to each
// node's API (node_api). A dry run needs neither.

// DispatcherConfig chooses the load balancer by kind: one HAProxy backend
// for the file's one cluster, or one per cluster.
//
//	dispatcher:
//	  kind: haproxy
//	  haproxy: {socket: /run/haproxy/admin.sock, backend: app, servers: [web-1, web-2]}
//	  # or, a backend per cluster:
//	  clusters:
//	    web: {socket: /run/haproxy/admin.sock, backend: web, servers: [web-1]}
//	    api: {socket: /run/haproxy/admin.sock, backend: api, servers: [api-1]}
type DispatcherConfig struct {
	// Kind is haproxy, the one there is.
	Kind     string                     `yaml:"kind"`
	HAProxy  *haproxy.Config            `yaml:"haproxy"`
	Clusters map[string]*haproxy.Config `yaml:"clusters"`
}

func (d *DispatcherConfig) validate(clusters []string) error {
	switch {
	case d.Kind != "haproxy":
		return fmt.Errorf("dispatcher.kind: %q is not a known dispatcher (want haproxy)", d.Kind)
	case d.HAProxy != nil && d.Clusters != nil:
		return errors.New("dispatcher: haproxy (one backend) or clusters (a backend each), not both")
	case d.HAProxy == nil && d.Clusters == nil:
		return errors.New("dispatcher.haproxy: required when dispatcher.kind is haproxy (or dispatcher.clusters, a backend each)")
	case d.HAProxy != nil && len(clusters) != 1:
		// The sagas name a node, not its cluster, to a dispatcher.
		return fmt.Errorf("dispatcher.haproxy: one backend serves one cluster, and the file has %d: give dispatcher.clusters, a backend each", len(clusters))
	case d.HAProxy != nil:
		return checkBackend("dispatcher.haproxy", d.HAProxy)
	}
	for _, name := range slices.Sorted(maps.Keys(d.Clusters)) {
		if !slices.Contains(clusters, name) {
			return fmt.Errorf("dispatcher.clusters.%s: not a configured cluster", name)
		}
		if err := checkBackend("dispatcher.clusters."+name, d.Clusters[name]); err != nil {
			return err
		}
	}
	for _, name := range clusters {
		if d.Clusters[name] == nil {
			return fmt.Errorf("dispatcher.clusters.%s: required (every cluster needs its backend)", name)
		}
	}
	return nil
}

func checkBackend(at string, c *haproxy.Config) error {
	switch {
	case c == nil:
		return fmt.Errorf("%s: empty", at)
	case c.Socket == "":
		return fmt.Errorf("%s.socket: required (the runtime API socket, level admin)", at)
	case c.Backend == "":
		return fmt.Errorf("%s.backend: required", at)
	}
	return nil
}

// NodeAPIConfig is how the agent reaches every node's API (docs/node-api.md).
type NodeAPIConfig struct {
	// TokenFile holds the bearer token the nodes accept.
	TokenFile string `yaml:"token_file"`
	// CAFile, if given, makes the calls https, checking the nodes'
	// certificates against it.
	CAFile string `yaml:"ca_file"`
	// Timeout bounds each attempt (default 5 s); calls are retried.
	Timeout autoscaler.Duration `yaml:"timeout"`
	// Port is added to a clone's address that has none: vSphere and
	// libvirt report a guest's IP, the node API listens on a port of it.
	Port int `yaml:"port"`
}

func (n *NodeAPIConfig) validate() error {
	switch {
	case n.TokenFile == "":
		return errors.New("node_api.token_file: required")
	case n.Port < 0 || n.Port > 65535:
		return fmt.Errorf("node_api.port: %d is not a port", n.Port)
	case n.Timeout.Duration < 0:
		return fmt.Errorf("node_api.timeout: %s is negative", n.Timeout.Duration)
	}
	return nil
}

// CheckActing checks that an agent that acts on real machines has all it
// needs: a hypervisor, a dispatcher and the node API. Parse checks it
// unless the file runs dry; the agent checks it again of a File not made
// by Parse.
func (c File) CheckActing() error {
	switch {
	case c.Dispatcher == nil:
		return errors.New("dispatcher: required to act (or run dry: dry_run: true, --dry-run)")
	case c.NodeAPI == nil:
		return errors.New("node_api: required to act (or run dry: dry_run: true, --dry-run)")
	}
	var names []string
	for _, cl := range c.Clusters {
		names = append(names, cl.Name)
	}
	if err := c.Dispatcher.validate(names); err != nil {
		return err
	}
	// The sagas reach a node at its address and clone its VM.
	for i, n := range c.Nodes {
		switch {
		case n.Address == "":
			return fmt.Errorf("nodes[%d].address: required to act (where node %s's API listens, host:port)", i, n.ID)
		case n.VM == "":
			return fmt.Errorf("nodes[%d].vm: required to act (the VM of node %s, as the hypervisor names it)", i, n.ID)
		}
	}
	return c.NodeAPI.validate()
}
