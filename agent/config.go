// Package agent is the daemon: it reads its configuration file (the
// controller's keys, autoscaler.Config, and a section per back-end), opens
// the back-ends, runs the controller's loop and serves its own metrics and
// decisions over HTTP (agent.go, telemetry.go).
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

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

// validateNodes checks that every node names a configured cluster and
// that ids are given and unique.
func (c Config) validateNodes() error {
	clusters := map[string]bool{}
	for _, cl := range c.Clusters {
		clusters[cl.Name] = true
	}
	seen := map[string]bool{}
	for i, n := range c.Nodes {
		switch {
		case n.ID == "":
			return fmt.Errorf("nodes[%d].id: required", i)
		case seen[n.ID]:
			return fmt.Errorf("nodes[%d].id: %q is listed twice", i, n.ID)
		case !clusters[n.Cluster]:
			return fmt.Errorf("nodes[%d].cluster: %q is not a configured cluster", i, n.Cluster)
		case n.Role == "":
			return fmt.Errorf("nodes[%d].role: required", i)
		}
		seen[n.ID] = true
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
	// Kind is vsphere or libvirt. (The simulator's hypervisor runs under
	// `mitosis simulate`.)
	Kind    string          `yaml:"kind"`
	VSphere *vsphere.Config `yaml:"vsphere"`
	Libvirt *libvirt.Config `yaml:"libvirt"`
}

// Kinds of hypervisor.
const (
	KindVSphere = "vsphere"
	KindLibvirt = "libvirt"
)

// Validate checks that the kind is known and that its section, and only
// its, is given.
func (h HypervisorConfig) Validate() error {
	given := map[string]bool{KindVSphere: h.VSphere != nil, KindLibvirt: h.Libvirt != nil}
	switch h.Kind {
	case KindVSphere, KindLibvirt:
	case "":
		return errors.New("hypervisor.kind: required (vsphere or libvirt)")
	default:
		return fmt.Errorf("hypervisor.kind: unknown kind %q (want vsphere or libvirt)", h.Kind)
	}
	if !given[h.Kind] {
		return fmt.Errorf("hypervisor.%s: required when hypervisor.kind is %s", h.Kind, h.Kind)
	}
	for kind, ok := range given {
		if ok && kind != h.Kind {
			return fmt.Errorf("hypervisor.%s: given, but hypervisor.kind is %s", kind, h.Kind)
		}
	}
	return nil
}

// Parse reads an agent configuration strictly (an unknown key anywhere
// is an error naming it and its line), applies the defaults and checks
// it; name labels errors.
func Parse(data []byte, name string) (Config, error) {
	var c Config
	if err := autoscaler.DecodeStrict(data, &c); err != nil {
		return Config{}, fmt.Errorf("%s: %w", name, err)
	}
	c.Config.ApplyDefaults()
	if err := c.Config.Validate(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", name, err)
	}
	// A dry run touches no VM: it needs no hypervisor, but a section
	// given is still checked.
	if !c.DryRun || c.Hypervisor.Kind != "" || c.Hypervisor.VSphere != nil || c.Hypervisor.Libvirt != nil {
		if err := c.Hypervisor.Validate(); err != nil {
			return Config{}, fmt.Errorf("%s: %w", name, err)
		}
	}
	if err := c.validateNodes(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", name, err)
	}
	c.Metrics.ApplyDefaults()
	if err := c.Metrics.Validate(); err != nil {
		return Config{}, fmt.Errorf("%s: metrics: %w", name, err)
	}
	return c, nil
}

// LoadFile reads and parses an agent configuration file.
func LoadFile(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	return Parse(data, path)
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
