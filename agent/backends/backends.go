// Package backends opens what an agent acts on real machines through, from
// its configuration file, in one place: the metrics source, and unless it
// runs dry the hypervisor (by kind), the dispatcher and the node API's
// client. It checks at start what would otherwise fail every operation
// (the nodes' token, the templates' VMs). Nothing else in the agent knows
// a back-end's kind.
package backends

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/mitosis-autoscaler/mitosis/autoscaler"
	"github.com/mitosis-autoscaler/mitosis/config"
	"github.com/mitosis-autoscaler/mitosis/dispatcher/haproxy"
	"github.com/mitosis-autoscaler/mitosis/hypervisor"
	"github.com/mitosis-autoscaler/mitosis/hypervisor/libvirt"
	"github.com/mitosis-autoscaler/mitosis/hypervisor/process"
	"github.com/mitosis-autoscaler/mitosis/hypervisor/vsphere"
	"github.com/mitosis-autoscaler/mitosis/metrics/prometheus"
	"github.com/mitosis-autoscaler/mitosis/node"
)

// client reads the token (and CA) and makes the node API's client.
func nodeClient(n *config.NodeAPIConfig) (*node.Client, error) {
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

// openProcess makes the process hypervisor; nodes is the node API's
// client, which probes a VM's readiness and asks a template for its state.
func openProcess(p config.ProcessConfig, nodes *node.Client, log *slog.Logger) (*process.Hypervisor, error) {
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

// Backends are the back-ends an agent acts through, opened. Hypervisor,
// Dispatchers and Nodes are nil in a dry run: it only reads metrics.
type Backends struct {
	Metrics     *prometheus.Source
	Hypervisor  hypervisor.Hypervisor
	Dispatchers map[string]autoscaler.Dispatcher // by cluster
	Nodes       *node.Client
	// closeHV releases the hypervisor's connection, if it holds one.
	closeHV func(context.Context) error
}

// Close releases what Open connected; it may be called on Backends
// partly opened, and more than once.
func (b *Backends) Close(ctx context.Context) error {
	if b == nil || b.closeHV == nil {
		return nil
	}
	closeHV := b.closeHV
	b.closeHV = nil
	return closeHV(ctx)
}

// Open connects the back-ends of cfg: the metrics source, and, unless cfg
// runs dry, the node API's client (refused by a node: an error), the
// dispatcher of each cluster and the hypervisor of cfg's kind, whose
// templates' VMs must exist. A File not made by config.Parse is checked
// for what acting needs first. On an error nothing stays open.
func Open(ctx context.Context, cfg config.File, log *slog.Logger) (*Backends, error) {
	src, err := prometheus.New(cfg.Metrics, log)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	b := &Backends{Metrics: src}
	if cfg.DryRun {
		return b, nil
	}
	if err := cfg.CheckActing(); err != nil {
		return nil, err
	}
	nodes, err := nodeClient(cfg.NodeAPI)
	if err != nil {
		return nil, err
	}
	if err := checkToken(ctx, nodes, cfg, log); err != nil {
		return nil, err
	}
	disps := map[string]autoscaler.Dispatcher{}
	haproxies := cfg.Dispatcher.Clusters
	if cfg.Dispatcher.HAProxy != nil {
		haproxies = map[string]*haproxy.Config{cfg.Clusters[0].Name: cfg.Dispatcher.HAProxy}
	}
	for name, c := range haproxies {
		hc := *c
		hc.Cluster = name // it may touch this cluster's clones
		d, err := haproxy.New(ctx, hc)
		if err != nil {
			return nil, fmt.Errorf("dispatcher of cluster %s: %w", name, err)
		}
		disps[name] = d
	}
	hv, closeHV, err := OpenHypervisor(ctx, cfg.Hypervisor, nodes, log)
	if err != nil {
		return nil, err
	}
	b.closeHV = closeHV
	if err := checkTemplates(ctx, hv, cfg, log); err != nil {
		_ = b.Close(ctx)
		return nil, err
	}
	b.Hypervisor, b.Dispatchers, b.Nodes = withPort{hv, cfg.NodeAPI.Port}, disps, nodes
	return b, nil
}

// OpenHypervisor connects the hypervisor of h's kind; nodes is the node
// API's client, which the process hypervisor asks for its VMs' state
// (the others need none). close releases it.
func OpenHypervisor(ctx context.Context, h config.HypervisorConfig, nodes *node.Client, log *slog.Logger) (hv hypervisor.Hypervisor, close func(context.Context) error, err error) {
	if err := h.Validate(); err != nil {
		return nil, nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	switch h.Kind {
	case config.KindVSphere:
		cfg := *h.VSphere
		cfg.Logger = log
		c, err := vsphere.New(ctx, cfg)
		if err != nil {
			return nil, nil, fmt.Errorf("hypervisor vsphere: %w", err)
		}
		return c, c.Close, nil
	case config.KindProcess:
		if nodes == nil {
			return nil, nil, errors.New("hypervisor process: needs the node API (node_api)")
		}
		p, err := openProcess(*h.Process, nodes, log.With("hypervisor", "process"))
		if err != nil {
			return nil, nil, fmt.Errorf("hypervisor process: %w", err)
		}
		return p, func(context.Context) error { p.Close(); return nil }, nil
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

// checkTemplates looks up the VM of each node of the file: a VM the
// hypervisor does not have could never be cloned, and every clone of its
// node would prepare it for nothing. Another error is only logged.
// The look-ups share one budget, as checkToken's calls do.
func checkTemplates(ctx context.Context, hv hypervisor.Hypervisor, cfg config.File, log *slog.Logger) error {
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
func checkToken(ctx context.Context, nodes *node.Client, cfg config.File, log *slog.Logger) error {
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
