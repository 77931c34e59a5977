package test

import (
	"context"
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/hypervisor"
	"github.com/mitosis-autoscaler/mitosis/hypervisor/process"
	"github.com/mitosis-autoscaler/mitosis/node"
)

// demoVMs is the process hypervisor of a test whose agents clone
// demo-node processes recorded in vmDir: the command the agents' files
// give (with {name} and {address}), and the test's own Hypervisor over
// vmDir, which boots the nodes a cluster starts with and stops every VM,
// the agents' clones included, by its PID when the test ends.
func demoVMs(t *testing.T, demo, vmDir, tokenFile string) (*process.Hypervisor, []string) {
	t.Helper()
	command := []string{demo, "--id", "{name}", "--listen", "{address}", "--token-file", tokenFile,
		"--state-dir", vmDir, "--session-idle", "1s"}
	nodes := node.NewClient(token, node.ClientOptions{Timeout: 2 * time.Second})
	hv, err := process.New(process.Config{
		Dir: vmDir, Detached: true,
		Command: func(name, addr, _ string) *exec.Cmd {
			r := strings.NewReplacer("{name}", name, "{address}", addr)
			args := make([]string, len(command))
			for i, a := range command {
				args[i] = r.Replace(a)
			}
			return exec.Command(args[0], args[1:]...)
		},
		Snapshot: func(context.Context, hypervisor.VM, string) error {
			return errors.New("the test boots, the agents clone")
		},
		Ready: func(ctx context.Context, addr string) error {
			_, err := nodes.Status(ctx, addr)
			return err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := hv.StopAll(context.Background()); err != nil {
			t.Errorf("stopping the VMs: %v", err)
		}
	})
	return hv, command
}

// yamlList is args as a YAML flow sequence of quoted strings.
func yamlList(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = strconv.Quote(a)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
