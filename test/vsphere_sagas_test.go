package test

// The expand and contract sagas through the vSphere back-end, against
// govmomi's vCenter simulator (vcsim, in process) with Instant Clone added
// (vspheretest.AddInstantClone). What runs "in" each VM is a real
// demo-node on an address of its own, which the VM's guest reports to
// vcsim as VMware Tools would; a clone's demo-node continues its
// template's state, as an Instant Clone continues its memory.
//
// The back-end never reports a loopback address, so the guests' addresses
// are 10.78.0.x, inside a network namespace of the test's own, on a bridge
// without ports (not every kernel has the dummy driver; a bridge holds
// local addresses as well).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vmware/govmomi/vim25/types"

	"github.com/mitosis-autoscaler/mitosis/autoscaler"
	"github.com/mitosis-autoscaler/mitosis/config"
	"github.com/mitosis-autoscaler/mitosis/dispatcher/haproxy"
	"github.com/mitosis-autoscaler/mitosis/dispatcher/haproxy/haproxytest"
	"github.com/mitosis-autoscaler/mitosis/hypervisor"
	"github.com/mitosis-autoscaler/mitosis/hypervisor/vsphere"
	"github.com/mitosis-autoscaler/mitosis/hypervisor/vsphere/vspheretest"
	"github.com/mitosis-autoscaler/mitosis/internal/netnstest"
	"github.com/mitosis-autoscaler/mitosis/node"
	"github.com/mitosis-autoscaler/mitosis/plan"
	"github.com/mitosis-autoscaler/mitosis/policy"
)

// guestPort is where every guest's demo-node listens, on its own IP.
const guestPort = "8080"

func TestVSphereSagasWithRealNodes(t *testing.T) {
	if !netnstest.Enter(t) {
		return // the run inside the namespace was the test
	}
	w := newVSphereWorld(t)
	clone := w.expand(t)
	w.contract(t, clone)
	w.expandWithoutAddress(t)
}

// vsphereWorld is the cluster web on vcsim: web-1 in vcsim's running VM,
// behind a real HAProxy, and the controller acting on the operator's
// selections.
type vsphereWorld struct {
	sim      *vspheretest.Sim
	hv       *guestedVSphere
	g        *simGuests
	lb       *haproxytest.Instance
	reg      *autoscaler.MemRegistry
	c        *autoscaler.Controller
	tmplVM   hypervisor.VM // as the back-end reports it: a bare IP
	tmplAddr string        // web-1's node API and server address
}

func newVSphereWorld(t *testing.T) *vsphereWorld {
	t.Helper()
	ctx := t.Context()
	netnstest.Bridge(t, "mbr0", "10.78.0.1/24")
	var ips []string
	for i := 2; i <= 5; i++ {
		ip := fmt.Sprintf("10.78.0.%d", i)
		netnstest.Run(t, "ip", "addr", "add", ip+"/24", "dev", "mbr0")
		ips = append(ips, ip)
	}
	w := &vsphereWorld{sim: vspheretest.Start(t, "mitosis", "secret"), reg: autoscaler.NewMemRegistry()}
	w.sim.AddInstantClone()
	log := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	vs, err := vsphere.New(ctx, vsphere.Config{
		URL: w.sim.URL(), CAFile: w.sim.CAFile, CredentialsFile: w.sim.CredentialsFile(t),
		AddressWait: new(time.Duration(0)), // the saga asks Lookup until its finalize deadline
		Logger:      log,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = vs.Close(context.Background()) })
	w.g = newSimGuests(t, w.sim, ips)
	w.hv = &guestedVSphere{vs: vs, g: w.g}

	w.tmplAddr = w.g.bootTemplate(t, w.sim.Template, "web-1")
	if w.tmplVM, err = vs.Lookup(ctx, w.sim.Template); err != nil || net.JoinHostPort(w.tmplVM.Address, guestPort) != w.tmplAddr {
		t.Fatalf("the template's VM: %+v, %v; want its guest at %s", w.tmplVM, err, w.tmplAddr)
	}
	w.lb = haproxytest.Start(t)
	disp, err := haproxy.New(ctx, haproxy.Config{
		Socket: w.lb.Socket, Backend: "app", Servers: []string{"web-1"}, Cluster: "web",
		ServerOptions: "pool-purge-delay 200ms", DynamicCookies: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := disp.Attach(ctx, "web-1", w.tmplAddr); err != nil {
		t.Fatal(err)
	}
	if err := w.reg.PutNode(ctx, plan.Node{ID: "web-1", Cluster: "web", Role: "app", State: plan.NodeReady,
		Host: w.tmplVM.Host, VM: w.sim.Template, Address: w.tmplAddr, CreatedAt: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	w.c = vsphereController(t, w.reg, w.hv, disp, w.g.nodes, w.tmplVM.Host, log)
	return w
}

// expand clones web-1 by Instant Clone and checks the clone's VM, node
// and demo-node, and that it serves; it returns the clone's node.
func (w *vsphereWorld) expand(t *testing.T) plan.Node {
	t.Helper()
	ctx := t.Context()
	if by := workThrough(t, w.lb.Frontend, 40); by["web-1"] != 40 {
		t.Fatalf("warming web-1 through HAProxy: %v", by)
	}
	template, err := w.g.nodes.Status(ctx, w.tmplAddr)
	if err != nil {
		t.Fatal(err)
	}
	op := runSelection(t, w.c, w.reg, autoscaler.ManualRequest{Cluster: "web", Action: plan.ActionExpand, Template: "web-1", By: "e2e"})
	name := plan.CloneName(op)
	if op.Status != plan.OpDone || op.Node != name {
		t.Fatalf("expansion: %s, node %s (%s); want done, node %s\n%s", op.Status, op.Node, op.Error, name, stepsOf(op))
	}
	if made := w.hv.made(); len(made) != 1 || made[0].Address != "" || made[0].Method != vsphere.MethodInstantClone {
		t.Errorf("Clone returned %+v; want one Instant Clone, its address not known yet (the saga asks Lookup)", made)
	}
	if n := len(w.sim.Instants()); n != 1 {
		t.Errorf("vcsim got %d InstantClone_Task requests, want 1", n)
	}
	vm := simVM(t, w.sim, name)
	if vm.PowerState != types.VirtualMachinePowerStatePoweredOn {
		t.Errorf("clone VM %s is %s", name, vm.PowerState)
	}
	for k, want := range map[string]string{vsphere.KeyOperation: op.ID, vsphere.KeyFence: "7", vsphere.KeyNode: name,
		vsphere.KeyTemplate: w.sim.Template, vsphere.KeyMethod: vsphere.MethodInstantClone} {
		if got := vm.ExtraConfig[k]; got != want {
			t.Errorf("clone VM %s: %s = %q, want %q", name, k, got, want)
		}
	}

	st, err := w.reg.State(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	clone, ok := nodeByID(st.Nodes, name)
	guestAddr := w.g.addr(name)
	if !ok || clone.State != plan.NodeReady || clone.VM != name || clone.Parent != "web-1" || clone.Host != w.tmplVM.Host ||
		clone.Address != guestAddr || clone.Address != net.JoinHostPort(vm.IPAddress, guestPort) || clone.Address == w.tmplAddr {
		t.Fatalf("the clone as registered: %+v (found %v); want ready at its guest's %s (its VM reports %s), child of web-1 on %s",
			clone, ok, guestAddr, vm.IPAddress, w.tmplVM.Host)
	}
	if first := w.g.firstStatus(name); first.ID != "web-1" || first.State != node.StatePrepared {
		t.Errorf("the clone's demo-node came up as %+v; want its template's identity, prepared (a live clone)", first)
	}
	if now, err := w.g.nodes.Status(ctx, clone.Address); err != nil || now.ID != name || now.State != node.StateReady || now.Generation != template.Generation+1 {
		t.Errorf("the clone after finalize: %+v, %v; want id %s, ready, generation %d", now, err, name, template.Generation+1)
	}
	if now, err := w.g.nodes.Status(ctx, w.tmplAddr); err != nil || now.ID != "web-1" || now.State != node.StateReady {
		t.Errorf("the template after the clone: %+v, %v; want web-1 ready", now, err)
	}
	if by := workThrough(t, w.lb.Frontend, 40); by[name] == 0 || by["web-1"] == 0 {
		t.Errorf("work through HAProxy after the expansion: %v; want both nodes serving", by)
	}
	return clone
}

// contract detaches the clone and checks that its VM and demo-node are
// gone and web-1 alone serves.
func (w *vsphereWorld) contract(t *testing.T, clone plan.Node) {
	t.Helper()
	op := runSelection(t, w.c, w.reg, autoscaler.ManualRequest{Cluster: "web", Action: plan.ActionContract, Node: clone.ID, By: "e2e"})
	if op.Status != plan.OpDone {
		t.Fatalf("contraction: %s (%s)\n%s", op.Status, op.Error, stepsOf(op))
	}
	if _, there := lookupSimVM(t, w.sim, clone.VM); there {
		t.Errorf("vcsim still has the clone's VM %s", clone.VM)
	}
	if w.g.running(clone.VM) {
		t.Errorf("the clone's demo-node still runs")
	}
	w.onlyTemplate(t, "after the contraction")
}

// expandWithoutAddress makes a clone whose guest never reports an
// address: the expansion is undone at the finalize deadline, the clone's
// VM destroyed and the template back at work.
func (w *vsphereWorld) expandWithoutAddress(t *testing.T) {
	t.Helper()
	w.g.withholdAddresses()
	op := runSelection(t, w.c, w.reg, autoscaler.ManualRequest{Cluster: "web", Action: plan.ActionExpand, Template: "web-1", By: "e2e"})
	name := plan.CloneName(op)
	if op.Status != plan.OpCompensated || !strings.Contains(op.Error, "no address") || !journalHas(op, "clone destroyed") {
		t.Errorf("an expansion whose clone has no address: %s (%s); want compensated, the clone destroyed\n%s", op.Status, op.Error, stepsOf(op))
	}
	if made := w.hv.made(); len(made) != 2 || made[1].Name != name || w.g.addr(name) == "" {
		t.Errorf("Clone returned %+v, guest at %q; want a second clone, %s, with its demo-node started", made, w.g.addr(name), name)
	}
	if _, there := lookupSimVM(t, w.sim, name); there {
		t.Errorf("vcsim still has the undone clone's VM %s", name)
	}
	if w.g.running(name) {
		t.Errorf("the undone clone's demo-node still runs")
	}
	w.onlyTemplate(t, "after the undone expansion")
}

// vsphereController is the controller for the cluster web (1 to 3 nodes
// on the template's host) acting only on the operator's selections:
// Tick is never called, so the policy and metrics are never asked.
func vsphereController(t *testing.T, reg autoscaler.Registry, hv autoscaler.Hypervisor, disp autoscaler.Dispatcher,
	nodes autoscaler.NodeAPI, host string, log *slog.Logger) *autoscaler.Controller {
	t.Helper()
	cfg, err := config.ParseController(fmt.Appendf(nil, `
tick: 1s
clusters:
  - name: web
    min: 1
    max: 3
    hosts: [{name: %q}]
    prepare: {deadline: 5s, mode: suspend}
    finalize: {deadline: 2s}
    detach: {deadline: 10s}
`, host), "vsphere-e2e.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := autoscaler.New(cfg, autoscaler.Deps{
		Registry: reg, Metrics: &knob{}, Policy: operatorOnly{}, Hypervisor: hv, Dispatcher: disp,
		Nodes: nodes, Clock: wallClock{}, Log: log,
		Fence: func() uint64 { return 7 }, // as a raft term would; the clone's metadata carries it
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// operatorOnly decides nothing: the operator does (Controller.Manual).
type operatorOnly struct{}

func (operatorOnly) Decide(context.Context, *policy.Input, time.Time) (plan.Decision, error) {
	return plan.Decision{Action: plan.ActionNone}, nil
}
func (operatorOnly) Version() string { return "operator-only" }

// runSelection records the operator's selection, which must start one
// operation, and actuates until it has finished.
func runSelection(t *testing.T, c *autoscaler.Controller, reg autoscaler.Registry, req autoscaler.ManualRequest) plan.Operation {
	t.Helper()
	ctx := t.Context()
	rec, err := c.Manual(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Operations) != 1 {
		t.Fatalf("manual %s: %d operations started; reasons %+v", req.Action, len(rec.Operations), rec.Reasons)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if err := c.Actuate(ctx); err != nil {
			t.Logf("actuate: %v", err)
		}
		op, err := reg.Operation(ctx, rec.Operations[0])
		if err != nil {
			t.Fatal(err)
		}
		if op.Status.Finished() {
			return op
		}
		if time.Now().After(deadline) {
			t.Fatalf("operation %s still %s at %s after 20 s\n%s", op.ID, op.Status, op.Step, stepsOf(op))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// onlyTemplate checks that web-1 alone is registered, ready, and serves
// all the work through HAProxy, which has no other server left.
func (w *vsphereWorld) onlyTemplate(t *testing.T, when string) {
	t.Helper()
	st, err := w.reg.State(t.Context(), "web")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Nodes) != 1 || st.Nodes[0].ID != "web-1" || st.Nodes[0].State != plan.NodeReady {
		t.Errorf("nodes %s: %+v; want web-1 alone, ready", when, st.Nodes)
	}
	if by := workThrough(t, w.lb.Frontend, 20); by["web-1"] != 20 {
		t.Errorf("work through HAProxy %s: %v; want all on web-1", when, by)
	}
	if servers := w.lb.Servers(t); strings.Contains(servers, "web-c") || strings.Contains(servers, plan.LegacyClonePrefix) { // a clone: web-c<n>
		t.Errorf("HAProxy still has a clone %s:\n%s", when, servers)
	}
}

// stepsOf is an operation's journal, a step a line, for failures.
func stepsOf(op plan.Operation) string {
	var b strings.Builder
	for _, j := range op.Journal {
		fmt.Fprintf(&b, "  %s %s\n", j.Step, j.Note)
	}
	return b.String()
}

// journalHas reports whether a step of op was committed with note.
func journalHas(op plan.Operation, note string) bool {
	for _, j := range op.Journal {
		if j.Note == note {
			return true
		}
	}
	return false
}

// workThrough sends n requests through the frontend, each on a new
// connection, and counts the answers by the node that served them.
func workThrough(t *testing.T, frontend string, n int) map[string]int {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	by := map[string]int{}
	for i := range n {
		resp, err := c.Get(fmt.Sprintf("%s/work?key=k%d", frontend, i%20))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("work through HAProxy: %s", resp.Status)
		}
		by[resp.Header.Get("X-Node-ID")]++
	}
	return by
}

// lookupSimVM asks vcsim itself, not the code under test.
func lookupSimVM(t *testing.T, sim *vspheretest.Sim, name string) (vspheretest.VM, bool) {
	t.Helper()
	vm, ok, err := sim.VM(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	return vm, ok
}

func simVM(t *testing.T, sim *vspheretest.Sim, name string) vspheretest.VM {
	t.Helper()
	vm, ok := lookupSimVM(t, sim, name)
	if !ok {
		t.Fatalf("vcsim has no VM %s", name)
	}
	return vm
}

// guestedVSphere is the vSphere back-end as the controller gets it here:
// the node API's port added to the guests' bare IPs, as the agent does
// (agent/backends, withPort), and the guests following what the
// back-end does to their VMs.
type guestedVSphere struct {
	vs *vsphere.Client
	g  *simGuests

	mu       sync.Mutex
	returned []hypervisor.VM // what Clone returned, as the back-end said it
}

var _ autoscaler.Hypervisor = (*guestedVSphere)(nil)

func (h *guestedVSphere) Clone(ctx context.Context, req hypervisor.CloneRequest) (hypervisor.VM, error) {
	vm, err := h.vs.Clone(ctx, req)
	if err != nil {
		return vm, err
	}
	h.mu.Lock()
	h.returned = append(h.returned, vm)
	h.mu.Unlock()
	if err := h.g.cloned(ctx, vm.Name, req.Template); err != nil {
		return hypervisor.VM{}, err
	}
	return withGuestPort(vm), nil
}

func (h *guestedVSphere) Lookup(ctx context.Context, name string) (hypervisor.VM, error) {
	vm, err := h.vs.Lookup(ctx, name)
	return withGuestPort(vm), err
}

func (h *guestedVSphere) Destroy(ctx context.Context, name string) error {
	if err := h.vs.Destroy(ctx, name); err != nil {
		return err
	}
	h.g.stop(name)
	return nil
}

func (h *guestedVSphere) made() []hypervisor.VM {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hypervisor.VM(nil), h.returned...)
}

func withGuestPort(vm hypervisor.VM) hypervisor.VM {
	if vm.Address != "" {
		vm.Address = net.JoinHostPort(vm.Address, guestPort)
	}
	return vm
}

// simGuests play what runs in the simulated VMs: a demo-node per VM, each on
// an IP of its own that its VM's guest reports to vcsim once the node
// answers. A clone's demo-node starts from its template's state, taken
// when Clone returned; it comes up while the saga goes on, so the saga
// learns its address by asking Lookup again. Every process is stopped by
// its PID: when its VM is destroyed, or when the test ends.
type simGuests struct {
	t         *testing.T
	sim       *vspheretest.Sim
	bin, dir  string
	tokenFile string
	nodes     *node.Client // the controller's
	probe     *node.Client // one try per call, for polling
	ctx       context.Context
	booting   sync.WaitGroup

	mu       sync.Mutex
	free     []string // IPs not given yet
	byVM     map[string]*simGuest
	withhold bool // clones' guests never report their address
}

type simGuest struct {
	addr   string // host:port of its demo-node
	cmd    *exec.Cmd
	exited chan struct{}
	first  node.Status // its first answer, before any finalize
}

func newSimGuests(t *testing.T, sim *vspheretest.Sim, ips []string) *simGuests {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	g := &simGuests{
		t: t, sim: sim, bin: built(t, buildDemoNode), dir: dir, tokenFile: tokenIn(t, dir),
		nodes: node.NewClient(token, node.ClientOptions{Timeout: 5 * time.Second}),
		probe: node.NewClient(token, node.ClientOptions{Timeout: time.Second, Retries: -1}),
		ctx:   ctx, free: ips, byVM: map[string]*simGuest{},
	}
	t.Cleanup(func() {
		cancel()
		g.booting.Wait()
		g.mu.Lock()
		vms := make([]string, 0, len(g.byVM))
		for vm := range g.byVM {
			vms = append(vms, vm)
		}
		g.mu.Unlock()
		for _, vm := range vms {
			g.stop(vm)
			if t.Failed() {
				out, _ := os.ReadFile(filepath.Join(dir, vm+".log"))
				t.Logf("demo-node of %s:\n%s", vm, out)
			}
		}
	})
	return g
}

// bootTemplate starts the template's demo-node as node id and has its VM
// report its address, which it returns.
func (g *simGuests) bootTemplate(t *testing.T, vm, id string) string {
	t.Helper()
	gu, err := g.start(vm, "--id", id)
	if err == nil {
		err = g.waitReady(gu)
	}
	if err == nil {
		err = g.sim.SetGuestIP(t.Context(), vm, guestIP(gu.addr))
	}
	if err != nil {
		t.Fatal(err)
	}
	return gu.addr
}

// cloned starts the guest of a clone Clone returned: its template's
// state is taken now, while the template is still prepared, and the
// clone's demo-node answers and reports its address later. A clone
// already booted (a retried Clone) is left as it is.
func (g *simGuests) cloned(ctx context.Context, vm, template string) error {
	fail := func(err error) error {
		g.t.Errorf("guests: booting %s: %v", vm, err)
		return err
	}
	g.mu.Lock()
	_, booted := g.byVM[vm]
	tmpl := g.byVM[template]
	g.mu.Unlock()
	if booted {
		return nil
	}
	if tmpl == nil {
		return fail(fmt.Errorf("no demo-node runs in template %s", template))
	}
	state := filepath.Join(g.dir, vm+".state")
	if err := g.nodes.Snapshot(ctx, tmpl.addr, "/-/snapshot?file="+url.QueryEscape(state)); err != nil {
		return fail(fmt.Errorf("taking the state of %s: %w", template, err))
	}
	gu, err := g.start(vm, "--from-state", state)
	if err != nil {
		return fail(err)
	}
	g.mu.Lock()
	withhold := g.withhold
	g.mu.Unlock()
	g.booting.Go(func() {
		err := g.waitReady(gu)
		if err == nil && !withhold {
			err = g.sim.SetGuestIP(g.ctx, vm, guestIP(gu.addr))
		}
		if err != nil && !gu.stopped() {
			fail(err)
		}
	})
	return nil
}

// start runs a demo-node for vm on the next free IP.
func (g *simGuests) start(vm string, args ...string) (*simGuest, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.free) == 0 {
		return nil, fmt.Errorf("no guest address left for %s", vm)
	}
	addr := net.JoinHostPort(g.free[0], guestPort)
	g.free = g.free[1:]
	out, err := os.Create(filepath.Join(g.dir, vm+".log"))
	if err != nil {
		return nil, err
	}
	defer out.Close() // the child has its own descriptor
	cmd := exec.Command(g.bin, append([]string{"--listen", addr, "--allow-remote", "--token-file", g.tokenFile,
		"--state-dir", g.dir, "--session-idle", "1s"}, args...)...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the demo-node of %s: %w", vm, err)
	}
	gu := &simGuest{addr: addr, cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(gu.exited) }()
	g.byVM[vm] = gu
	return gu, nil
}

// waitReady waits until the guest's demo-node answers, and keeps its
// first status.
func (g *simGuests) waitReady(gu *simGuest) error {
	ctx, cancel := context.WithTimeout(g.ctx, 10*time.Second)
	defer cancel()
	for {
		st, err := g.probe.Status(ctx, gu.addr)
		if err == nil {
			g.mu.Lock()
			gu.first = st
			g.mu.Unlock()
			return nil
		}
		select {
		case <-gu.exited:
			return fmt.Errorf("demo-node at %s exited: %v", gu.addr, gu.cmd.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("demo-node at %s: %w", gu.addr, errors.Join(ctx.Err(), err))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stop stops vm's demo-node, if any, by its PID.
func (g *simGuests) stop(vm string) {
	g.mu.Lock()
	gu := g.byVM[vm]
	g.mu.Unlock()
	if gu == nil || gu.stopped() {
		return
	}
	_ = gu.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-gu.exited:
	case <-time.After(5 * time.Second):
		_ = gu.cmd.Process.Kill()
		<-gu.exited
	}
}

func (gu *simGuest) stopped() bool {
	select {
	case <-gu.exited:
		return true
	default:
		return false
	}
}

// running reports whether vm's demo-node process still runs.
func (g *simGuests) running(vm string) bool {
	g.mu.Lock()
	gu := g.byVM[vm]
	g.mu.Unlock()
	return gu != nil && !gu.stopped()
}

func (g *simGuests) addr(vm string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if gu := g.byVM[vm]; gu != nil {
		return gu.addr
	}
	return ""
}

func (g *simGuests) firstStatus(vm string) node.Status {
	g.mu.Lock()
	defer g.mu.Unlock()
	if gu := g.byVM[vm]; gu != nil {
		return gu.first
	}
	return node.Status{}
}

// withholdAddresses makes the guests of the clones made from now on
// never report an address (a guest whose network never comes up).
func (g *simGuests) withholdAddresses() {
	g.mu.Lock()
	g.withhold = true
	g.mu.Unlock()
}

func guestIP(hostport string) string {
	host, _, _ := net.SplitHostPort(hostport)
	return host
}
