package agent

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mitosis-autoscaler/mitosis/config"
	"github.com/mitosis-autoscaler/mitosis/dispatcher/haproxy/haproxytest"
	"github.com/mitosis-autoscaler/mitosis/node"
)

// An agent that cannot reach what it acts on does not start, and says
// which and why.
func TestAnAgentThatCannotReachItsDispatcherDoesNotStart(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "node-token")
	if err := os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(fmt.Appendf(nil, `tick: 1s
clusters: [{name: web, min: 1, max: 3}]
nodes: [{cluster: web, id: web-1, role: app, address: "127.0.0.1:1", vm: web-1}]
metrics: {url: "http://127.0.0.1:1", queries: [{name: utilization, query: up, per_node: true}]}
hypervisor: {kind: process, process: {dir: %q, command: [demo-node]}}
dispatcher: {kind: haproxy, haproxy: {socket: %q, backend: app}}
node_api: {token_file: %q}
`, dir, filepath.Join(dir, "no-haproxy.sock"), tokenFile), "agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(cfg, Options{Listen: "127.0.0.1:0", Token: "t", Policy: defaultPolicy(t)})
	if err == nil || !strings.Contains(err.Error(), "dispatcher of cluster web") || !strings.Contains(err.Error(), "no-haproxy.sock") {
		t.Errorf("New: %v, want an error naming the dispatcher and its socket", err)
	}
}

// startActing starts an acting agent on one node, web-1, whose node API
// accepts nodeToken, with the agent's token file holding agentToken, the
// process hypervisor's directory vms and HAProxy's socket: New's error.
func startActing(t *testing.T, nodeToken, agentToken, vms, socket string) (tokenFile string, err error) {
	t.Helper()
	tokenFile = filepath.Join(t.TempDir(), "node-token")
	if err := os.WriteFile(tokenFile, []byte(agentToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := node.NewServer(idleApp{}, node.ServerOptions{ID: "web-1", Token: nodeToken})
	if err != nil {
		t.Fatal(err)
	}
	nodeAPI := httptest.NewServer(srv)
	t.Cleanup(nodeAPI.Close)
	cfg, err := config.Parse(fmt.Appendf(nil, `tick: 1s
clusters: [{name: web, min: 1, max: 3}]
nodes: [{cluster: web, id: web-1, role: app, address: %q, vm: web-1}]
metrics: {url: "http://127.0.0.1:1", queries: [{name: utilization, query: up, per_node: true}]}
hypervisor: {kind: process, process: {dir: %q, command: [demo-node]}}
dispatcher: {kind: haproxy, haproxy: {socket: %q, backend: app}}
node_api: {token_file: %q}
`, strings.TrimPrefix(nodeAPI.URL, "http://"), vms, socket, tokenFile), "agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(cfg, Options{Listen: "127.0.0.1:0", Token: "t", Policy: defaultPolicy(t)})
	return tokenFile, err
}

// A node that refuses the node API's token would refuse every step of
// every operation, after the first had drained it: the agent does not
// start, and says which node and which file.
func TestAnAgentWhoseTokenANodeRefusesDoesNotStart(t *testing.T) {
	dir := t.TempDir()
	tokenFile, err := startActing(t, "the-nodes-token", "stale-token", dir, filepath.Join(dir, "no-haproxy.sock"))
	if err == nil || !strings.Contains(err.Error(), "web-1") || !strings.Contains(err.Error(), "refuses the token in "+tokenFile) {
		t.Errorf("New: %v, want an error naming the node and the token file", err)
	}
}

// idleApp is an application that is never asked anything here.
type idleApp struct{}

func (idleApp) Prepare(context.Context, node.PrepareMode) error { return nil }
func (idleApp) Settled() bool                                   { return true }
func (idleApp) Resume(context.Context) error                    { return nil }
func (idleApp) Finalize(context.Context, string, string) error  { return nil }
func (idleApp) Detach(context.Context) error                    { return nil }
func (idleApp) Sessions() int                                   { return 0 }
func (idleApp) Warmth() node.Warmth                             { return node.Warmth{} }

// A node whose VM the hypervisor does not have could never be cloned:
// the agent does not start, naming the node's vm key.
func TestAnAgentWhoseTemplateVMIsMissingDoesNotStart(t *testing.T) {
	lb := haproxytest.Start(t)
	vms := t.TempDir() // the process hypervisor's directory, with no VM in it
	if _, err := startActing(t, "the-nodes-token", "the-nodes-token", vms, lb.Socket); err == nil || !strings.Contains(err.Error(), `nodes[0].vm: the hypervisor has no VM "web-1"`) {
		t.Errorf("New: %v, want an error naming nodes[0].vm", err)
	}
}
