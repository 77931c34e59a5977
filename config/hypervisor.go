package config

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/mitosis-autoscaler/mitosis/autoscaler"
	"github.com/mitosis-autoscaler/mitosis/hypervisor/libvirt"
	"github.com/mitosis-autoscaler/mitosis/hypervisor/vsphere"
)

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
	// server (demo-node, say): for demonstrations and tests (agent/backends opens it).
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
		h.Process.ApplyDefaults()
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

// ApplyDefaults fills what the section leaves out.
func (p *ProcessConfig) ApplyDefaults() {
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
