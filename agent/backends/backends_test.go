package backends_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmware/govmomi/simulator"

	"github.com/mitosis-autoscaler/mitosis/agent/backends"
	"github.com/mitosis-autoscaler/mitosis/config"
	"github.com/mitosis-autoscaler/mitosis/hypervisor"
)

const base = `
tick: 15s
clusters:
  - name: web
    min: 2
    max: 8
metrics:
  url: http://127.0.0.1:9090
  queries:
    - {name: utilization, query: 'avg by (instance) (rate(app_busy_seconds_total[1m]))', per_node: true}
`

// acts is what an agent that acts needs besides a hypervisor.
const acts = `
dispatcher: {kind: haproxy, haproxy: {socket: /run/haproxy/admin.sock, backend: app, servers: [web-1]}}
node_api: {token_file: /etc/mitosis/node-token, port: 8080}
`

// The configuration opens a working back-end: vSphere, here govmomi's
// simulator, which clones and destroys through it.
func TestOpenHypervisorFromTheConfiguration(t *testing.T) {
	model := simulator.VPX()
	if err := model.Create(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(model.Remove)
	model.Service.TLS = new(tls.Config)
	model.Service.Listen = &url.URL{Host: "127.0.0.1:0", User: url.UserPassword("mitosis", "s3cret")}
	srv := model.Service.NewServer()
	t.Cleanup(srv.Close)
	ca, err := srv.CertificateFile()
	if err != nil {
		t.Fatal(err)
	}
	creds := filepath.Join(t.TempDir(), "vsphere")
	if err := os.WriteFile(creds, []byte("mitosis\ns3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	template := model.Map().Any("VirtualMachine").(*simulator.VirtualMachine).Name
	c, err := config.Parse(fmt.Appendf(nil, "%shypervisor:\n  kind: vsphere\n  vsphere: {url: %q, ca_file: %q, credentials_file: %q}\n%s",
		base, "https://"+srv.URL.Host+"/sdk", ca, creds, acts), "agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	hv, closeHV, err := backends.OpenHypervisor(ctx, c.Hypervisor, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer closeHV(ctx)
	vm, err := hv.Clone(ctx, hypervisor.CloneRequest{Operation: "op-1", Name: "mitosis-op-1", Template: template, Fence: 2})
	if err != nil {
		t.Fatal(err)
	}
	if vm.Name != "mitosis-op-1" || vm.Operation != "op-1" || !vm.Running {
		t.Errorf("clone: %+v", vm)
	}
	if err := hv.Destroy(ctx, vm.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := hv.Lookup(ctx, vm.Name); !errors.Is(err, hypervisor.ErrNotFound) {
		t.Errorf("after destroy: %v", err)
	}
}

func TestOpenHypervisorFailsClearly(t *testing.T) {
	_, _, err := backends.OpenHypervisor(context.Background(), config.HypervisorConfig{Kind: "libvirt", Libvirt: nil}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "hypervisor.libvirt: required") {
		t.Errorf("no section: %v", err)
	}
}
