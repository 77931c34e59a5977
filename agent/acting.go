package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mitosis-autoscaler/mitosis/autoscaler"
	"github.com/mitosis-autoscaler/mitosis/dispatcher/haproxy"
	"github.com/mitosis-autoscaler/mitosis/hypervisor"
	"github.com/mitosis-autoscaler/mitosis/hypervisor/process"
	"github.com/mitosis-autoscaler/mitosis/node"
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

// client reads the token (and CA) and makes the node API's client.
func (n *NodeAPIConfig) client() (*node.Client, error) {
	b, err := os.ReadFile(n.TokenFile)
	if err != nil {
		return nil, fmt.Errorf("node_api.token_file: %w", err)
	}
	token := strings.TrimSpace(string(b))
	if token == "" {
		return nil, fmt.Errorf("node_api.token_file: %s is empty", n.TokenFile)
	}
	opt := node.ClientOptions{Timeout: n.Timeout.Duration}
	if n.CAFile != "" {
		pem, err := os.ReadFile(n.CAFile)
		if err != nil {
			return nil, fmt.Errorf("node_api.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("node_api.ca_file: %s holds no PEM certificate", n.CAFile)
		}
		opt.TLS = true
		opt.HTTP = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	}
	return node.NewClient(token, opt), nil
}

// ProcessConfig is the process hypervisor (hypervisor.kind process): VMs
// that are local processes of an application server that speaks the
// node API, such as demo-node. It is for demonstrations and tests on one
// machine; its VMs and their records live in Dir and outlive the agent,
// so several agents may share it.
//
//	hypervisor:
//	  kind: process
//	  process:
//	    dir: /var/lib/mitosis/vms
//	    command: [demo-node, --id, "{name}", --listen, "{address}", --token-file, /etc/mitosis/node-token]
//	    restore: [--from-state, "{state}"]
type ProcessConfig struct {
	Dir string `yaml:"dir"`
	// Command runs a VM; {name} and {address} (127.0.0.1:port) are
	// replaced in each argument.
	Command []string `yaml:"command"`
	// Restore is appended to Command to start a clone from its
	// template's state; {state} is replaced by the state file.
	Restore []string `yaml:"restore"`
	// Snapshot is the path (and query) POSTed, with the node API's token,
	// on a running VM's address to have it write its state to {state};
	// default "/-/snapshot?file={state}", demo-node's.
	Snapshot string `yaml:"snapshot"`
	// Host is the host every VM reports (default localhost).
	Host        string              `yaml:"host"`
	BootTimeout autoscaler.Duration `yaml:"boot_timeout"`
}

func (p *ProcessConfig) applyDefaults() {
	if p.Snapshot == "" {
		p.Snapshot = "/-/snapshot?file={state}"
	}
}

func (p *ProcessConfig) validate() error {
	switch {
	case p.Dir == "":
		return errors.New("hypervisor.process.dir: required")
	case len(p.Command) == 0:
		return errors.New("hypervisor.process.command: required (the program and its arguments)")
	case !strings.HasPrefix(p.Snapshot, "/") || !strings.Contains(p.Snapshot, "{state}"):
		return fmt.Errorf("hypervisor.process.snapshot: %q must be a path that holds {state}", p.Snapshot)
	}
	if st, err := os.Stat(p.Dir); err != nil || !st.IsDir() {
		return fmt.Errorf("hypervisor.process.dir: %q must be an existing directory", p.Dir)
	}
	return nil
}

// open makes the process hypervisor; nodes is the node API's client,
// which probes a VM's readiness and asks a template for its state.
func (p ProcessConfig) open(nodes *node.Client, log *slog.Logger) (*process.Hypervisor, error) {
	expand := func(args []string, r *strings.Replacer) []string {
		out := make([]string, len(args))
		for i, a := range args {
			out[i] = r.Replace(a)
		}
		return out
	}
	return process.New(process.Config{
		Dir: p.Dir, Host: p.Host, BootTimeout: p.BootTimeout.Duration, Logger: log,
		// The agent may stop; the VMs it made run on, as on a real hypervisor.
		Detached: true,
		Command: func(name, addr, state string) *exec.Cmd {
			args := expand(p.Command, strings.NewReplacer("{name}", name, "{address}", addr))
			if state != "" {
				args = append(args, expand(p.Restore, strings.NewReplacer("{state}", state))...)
			}
			return exec.Command(args[0], args[1:]...)
		},
		Snapshot: func(ctx context.Context, vm hypervisor.VM, file string) error {
			return nodes.Snapshot(ctx, vm.Address, strings.ReplaceAll(p.Snapshot, "{state}", url.QueryEscape(file)))
		},
		Ready: func(ctx context.Context, addr string) error {
			_, err := nodes.Status(ctx, addr)
			return err
		},
	})
}

// withPort adds the node API's port to the addresses a hypervisor reports
// without one (a guest's bare IP), so that a clone's address in the
// registry is where both its node API and the dispatcher reach it.
type withPort struct {
	hypervisor.Hypervisor
	port int
}

func (w withPort) fix(vm hypervisor.VM) hypervisor.VM {
	if vm.Address != "" && w.port != 0 {
		if _, _, err := net.SplitHostPort(vm.Address); err != nil {
			vm.Address = net.JoinHostPort(vm.Address, strconv.Itoa(w.port))
		}
	}
	return vm
}

func (w withPort) Clone(ctx context.Context, req hypervisor.CloneRequest) (hypervisor.VM, error) {
	vm, err := w.Hypervisor.Clone(ctx, req)
	return w.fix(vm), err
}

func (w withPort) Lookup(ctx context.Context, name string) (hypervisor.VM, error) {
	vm, err := w.Hypervisor.Lookup(ctx, name)
	return w.fix(vm), err
}

// actors are what acting needs, opened; close releases them.
type actors struct {
	hv    hypervisor.Hypervisor
	disps map[string]autoscaler.Dispatcher // by cluster
	nodes *node.Client
	close func(context.Context) error
}

// openActors connects the hypervisor, the dispatcher and the node API the
// file configures.
func openActors(ctx context.Context, cfg Config, log *slog.Logger) (actors, error) {
	if err := cfg.checkActing(); err != nil { // a Config not made by Parse
		return actors{}, err
	}
	nodes, err := cfg.NodeAPI.client()
	if err != nil {
		return actors{}, err
	}
	if err := checkToken(ctx, nodes, cfg, log); err != nil {
		return actors{}, err
	}
	disps := map[string]autoscaler.Dispatcher{}
	backends := cfg.Dispatcher.Clusters
	if cfg.Dispatcher.HAProxy != nil {
		backends = map[string]*haproxy.Config{cfg.Clusters[0].Name: cfg.Dispatcher.HAProxy}
	}
	for name, b := range backends {
		d, err := haproxy.New(ctx, *b)
		if err != nil {
			return actors{}, fmt.Errorf("dispatcher of cluster %s: %w", name, err)
		}
		disps[name] = d
	}
	var hv hypervisor.Hypervisor
	var closeHV func(context.Context) error
	if cfg.Hypervisor.Kind == KindProcess {
		p, err := cfg.Hypervisor.Process.open(nodes, log.With("hypervisor", "process"))
		if err != nil {
			return actors{}, fmt.Errorf("hypervisor process: %w", err)
		}
		hv, closeHV = p, func(context.Context) error { p.Close(); return nil }
	} else if hv, closeHV, err = OpenHypervisor(ctx, cfg.Hypervisor, log); err != nil {
		return actors{}, err
	}
	if err := checkTemplates(ctx, hv, cfg, log); err != nil {
		if closeHV != nil {
			_ = closeHV(ctx)
		}
		return actors{}, err
	}
	return actors{hv: withPort{hv, cfg.NodeAPI.Port}, disps: disps, nodes: nodes, close: closeHV}, nil
}

// checkTemplates looks up the VM of each node of the file: a VM the
// hypervisor does not have could never be cloned, and every clone of its
// node would prepare it for nothing. Another error is only logged.
// The look-ups share one budget, as checkToken's calls do.
func checkTemplates(ctx context.Context, hv hypervisor.Hypervisor, cfg Config, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for i, n := range cfg.Nodes {
		_, err := hv.Lookup(ctx, n.VM)
		switch {
		case errors.Is(err, hypervisor.ErrNotFound):
			return fmt.Errorf("nodes[%d].vm: the hypervisor has no VM %q (node %s)", i, n.VM, n.ID)
		case err != nil:
			log.Warn("looking up a node's VM at start", "node", n.ID, "vm", n.VM, "err", err)
		}
	}
	return nil
}

// checkToken asks each node of the file for its status: a node that
// refuses the token would refuse every step of every operation (after the
// first has drained it from the dispatcher), so the agent does not start.
// A node that does not answer may be restarting: it is only logged.
// The nodes share one budget: a start is not held a few seconds per node
// that does not answer.
func checkToken(ctx context.Context, nodes *node.Client, cfg Config, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for i, n := range cfg.Nodes {
		_, err := nodes.Status(ctx, n.Address)
		switch {
		case errors.Is(err, node.ErrUnauthorized):
			return fmt.Errorf("node_api.token_file: nodes[%d] (%s at %s) refuses the token in %s", i, n.ID, n.Address, cfg.NodeAPI.TokenFile)
		case err != nil:
			log.Warn("node API not answering at start", "node", n.ID, "address", n.Address, "err", err)
		}
	}
	return nil
}

// checkActing checks that an agent that acts on real machines has all it
// needs: a hypervisor, a dispatcher and the node API.
func (c Config) checkActing() error {
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
