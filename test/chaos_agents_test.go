package test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/agent/client"
	"github.com/mitosis-autoscaler/mitosis/agent/wire"
	"github.com/mitosis-autoscaler/mitosis/autoscaler"
	"github.com/mitosis-autoscaler/mitosis/dispatcher/haproxy/haproxytest"
	"github.com/mitosis-autoscaler/mitosis/hypervisor/process"
	"github.com/mitosis-autoscaler/mitosis/plan"
)

// chaosPoint is where the leader dies: at step, before or after its side
// effect.
type chaosPoint struct {
	kind  plan.OpKind
	step  plan.Step
	phase string // before: the step is committed, its side effect not done; after: done, its end not committed
}

func (c chaosPoint) String() string {
	return fmt.Sprintf("%s at %s, %s its side effect", c.kind, c.step, c.phase)
}

// TestChaosKillTheLeaderAtEveryStep is issue 6's acceptance. Three
// `mitosis agent` processes replicate their registry with raft and act on
// a world that lives outside them: a process hypervisor whose VMs
// (demo-node processes) and records are in one directory and outlive the
// agent that made them, a real HAProxy, and the nodes' own APIs. The
// agents clone and detach again and again; each operation's leader is
// killed with SIGKILL at one step of its saga, before or after the step's
// side effect, every step of both sagas in turn (CHAOS_ROUNDS rounds, at
// least 5); then CHAOS_RANDOM more times (2 per round by default), at a
// random moment of an operation, often inside a side effect (a clone half
// made; CHAOS_SEED replays the moments). After every trial: the operation
// ended done or compensated, no VM was cloned twice, none is orphaned
// (every VM is a registered node and every node a VM, and HAProxy serves
// exactly the registered nodes), no operation was lost, and the three
// registries are identical.
func TestChaosKillTheLeaderAtEveryStep(t *testing.T) {
	rounds := envNumber(t, "CHAOS_ROUNDS", 5, 1)
	random := envNumber(t, "CHAOS_RANDOM", 2*rounds, 0)
	seed := uint64(envNumber(t, "CHAOS_SEED", int(time.Now().UnixNano()&(1<<62-1)), 0))
	c := newChaosCluster(t)
	expand := []plan.Step{autoscaler.StepPrepare, autoscaler.StepAwaitPrepared, autoscaler.StepClone,
		autoscaler.StepResumeTemplate, autoscaler.StepFinalize, autoscaler.StepJoin}
	contract := []plan.Step{autoscaler.StepDrain, autoscaler.StepDetach, autoscaler.StepAwaitDetached,
		autoscaler.StepRemove, autoscaler.StepDestroy}
	phases := []string{"before", "after"}

	var elections, failovers []time.Duration
	trial := 0
	for r := range rounds {
		for i := range len(expand) {
			// An expansion makes a clone; the contraction after it
			// detaches that clone: the cluster goes 2 → 3 → 2 nodes.
			for _, p := range []chaosPoint{
				{plan.OpExpand, expand[i], phases[(r+i)%2]},
				{plan.OpContract, contract[(r+i)%len(contract)], phases[(r+i+1)%2]},
			} {
				trial++
				elected, firstStep := c.trial(t, trial, p)
				elections, failovers = append(elections, elected), append(failovers, firstStep)
			}
		}
	}
	// Then the leader is killed at a random moment of an operation.
	r := rand.New(rand.NewPCG(seed, 0))
	t.Logf("random trials: CHAOS_SEED=%d", seed)
	kind := plan.OpExpand
	for i := range random {
		// Within the time an operation takes here (an expansion ~200 ms,
		// a contraction ~100 ms), so that most kills land inside it.
		within := map[plan.OpKind]int{plan.OpExpand: 200, plan.OpContract: 100}[kind]
		c.randomTrial(t, i+1, kind, time.Duration(r.IntN(within))*time.Millisecond)
		if nodes, err := c.clients[c.leader(t, c.agents, 10*time.Second)].Nodes(t.Context(), "web"); err == nil && len(nodes) == 3 {
			kind = plan.OpContract
		} else {
			kind = plan.OpExpand
		}
	}
	for _, d := range [][]time.Duration{elections, failovers} {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	}
	pct := func(d []time.Duration, p float64) time.Duration {
		return d[min(len(d)-1, int(p*float64(len(d))))].Round(time.Millisecond)
	}
	t.Logf("%d trials (%d rounds over 11 steps × before/after): kill → a new leader: p50 %s, p99 %s, max %s; kill → its first step committed: p50 %s, p99 %s, max %s",
		trial, rounds, pct(elections, 0.5), pct(elections, 0.99), elections[len(elections)-1].Round(time.Millisecond),
		pct(failovers, 0.5), pct(failovers, 0.99), failovers[len(failovers)-1].Round(time.Millisecond))
}

// envNumber is the number in the environment variable name, or def; one
// below least is an error.
func envNumber(t *testing.T, name string, def, least int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < least {
		t.Fatalf("%s=%q: want a whole number of at least %d", name, s, least)
	}
	return n
}

// chaosCluster is the world of the chaos test.
type chaosCluster struct {
	dir, vmDir, fpDir string
	bin, tokenFile    string
	agents            []*raftAgent
	clients           map[*raftAgent]*client.Client
	hv                *process.Hypervisor
	lb                *haproxytest.Instance
	ops               []string // every operation a trial started
}

func newChaosCluster(t *testing.T) *chaosCluster {
	t.Helper()
	demo, bin := built(t, buildDemoNode), built(t, buildMitosisFailpoints)
	dir := t.TempDir()
	c := &chaosCluster{dir: dir, vmDir: filepath.Join(dir, "vms"), fpDir: filepath.Join(dir, "failpoints"), bin: bin,
		tokenFile: tokenIn(t, dir), clients: map[*raftAgent]*client.Client{}}
	for _, d := range []string{c.vmDir, c.fpDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}

	// The VMs: demo-node processes, recorded in vmDir; the two the
	// cluster starts with are booted here, the clones by the agents.
	var command []string
	c.hv, command = demoVMs(t, demo, c.vmDir, c.tokenFile)
	var servers, fileNodes []string
	for _, name := range []string{"web-1", "web-2"} {
		vm, err := c.hv.Boot(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		servers = append(servers, fmt.Sprintf("server %s %s cookie %s", name, vm.Address, name))
		fileNodes = append(fileNodes, fmt.Sprintf("{cluster: web, id: %s, role: app, address: %q, host: localhost, vm: %s}", name, vm.Address, name))
	}
	c.lb = haproxytest.Start(t, servers...)

	c.agents = newRaftAgents(t, 3)
	for i, ra := range c.agents {
		ra.conf = filepath.Join(dir, ra.id+".yaml")
		// Metrics are unreachable: the policy decides none on every tick,
		// and the operations are the operators' selections, through the
		// same plan and sagas.
		conf := fmt.Sprintf(`tick: 100ms
clusters:
  - name: web
    min: 1
    max: 6
    scalable_roles: [app]
    hosts: [{name: localhost}]
nodes: [%s]
metrics:
  url: http://127.0.0.1:1
  timeout: 100ms
  queries: [{name: utilization, query: up, per_node: true}]
hypervisor:
  kind: process
  process:
    dir: %q
    command: %s
    restore: [--from-state, "{state}"]
dispatcher:
  kind: haproxy
  haproxy: {socket: %q, backend: app, servers: [web-1, web-2], server_options: "pool-purge-delay 200ms", dynamic_cookies: true}
node_api: {token_file: %q, timeout: 2s}
%s`, strings.Join(fileNodes, ", "), c.vmDir, yamlList(command), c.lb.Socket, c.tokenFile,
			ra.raftSection(c.agents, filepath.Join(dir, ra.id), i == 0))
		if err := os.WriteFile(ra.conf, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		cl, err := client.New("http://"+ra.api, token, client.Options{Timeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		c.clients[ra] = cl
	}
	for _, ra := range c.agents {
		c.start(t, ra)
	}
	// The leader registers the file's nodes once it has taken over.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		nodes, err := c.clients[c.leader(t, c.agents, 15*time.Second)].Nodes(t.Context(), "web")
		if err == nil && len(nodes) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the file's nodes were never registered: %+v, %v", nodes, err)
		}
	}
	c.settle(t, 2)
	return c
}

// start runs an agent (again, from its data directory).
func (c *chaosCluster) start(t *testing.T, ra *raftAgent) {
	t.Helper()
	ra.p = startEnv(t, "agent "+ra.id, []string{"MITOSIS_FAILPOINTS=" + c.fpDir}, c.bin, "agent", "--config", ra.conf,
		"--token-file", c.tokenFile, "--listen", ra.api, "--log-level", "warn")
	waitHTTP(t, "http://"+ra.api+"/-/healthy", 15*time.Second)
}

// leader polls until exactly one of live leads and the others agree.
func (c *chaosCluster) leader(t *testing.T, live []*raftAgent, within time.Duration) *raftAgent {
	t.Helper()
	return singleLeader(t, live, within, func(ra *raftAgent) (string, error) {
		st, err := c.clients[ra].Peers(t.Context())
		return st.State, err
	})
}

// trial starts one operation, freezes its leader at p, kills it with
// SIGKILL, and checks the world once the new leader has finished the
// operation and the killed agent has rejoined. It returns the times from
// the kill to a new leader and to the new leader's first committed step.
func (c *chaosCluster) trial(t *testing.T, n int, p chaosPoint) (elected, firstStep time.Duration) {
	t.Helper()
	ctx := t.Context()
	leader := c.leader(t, c.agents, 10*time.Second)
	if err := os.WriteFile(filepath.Join(c.fpDir, "arm"), []byte(string(p.step)+" "+p.phase), 0o600); err != nil {
		t.Fatal(err)
	}
	asked := c.ask(t, leader, p.kind)
	hit := filepath.Join(c.fpDir, fmt.Sprintf("hit-%d", leader.p.cmd.Process.Pid))
	var froze []string
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if b, err := os.ReadFile(hit + ".op"); err == nil {
			froze = strings.Fields(string(b))
			break
		}
		select {
		case err := <-asked:
			if err != nil {
				t.Fatalf("trial %d (%s): asking %s: %v", n, p, leader.id, err)
			}
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("trial %d (%s): the leader %s never reached the failpoint", n, p, leader.id)
		}
	}
	opID := froze[0]
	c.ops = append(c.ops, opID)
	before, err := c.clients[leader].Operation(ctx, opID)
	if err != nil {
		t.Fatalf("trial %d (%s): the frozen leader: %v", n, p, err)
	}

	t0 := time.Now()
	next := c.kill(t, leader)
	elected = time.Since(t0)
	var op plan.Operation
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(2 * time.Millisecond) {
		if op, err = c.clients[next].Operation(ctx, opID); err == nil && len(op.Journal) > len(before.Journal) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("trial %d (%s): the new leader %s committed no step of %s within 10 s (%v)", n, p, next.id, opID, err)
		}
	}
	firstStep = time.Since(t0)

	c.start(t, leader) // it rejoins from its data directory
	op = c.finish(t, next, opID)
	c.settle(t, sizeAfter(p.kind, op.Status))
	t.Logf("trial %d (%s): killed %s; %s leads after %s, its first step after %s; %s %s",
		n, p, leader.id, next.id, elected.Round(time.Millisecond), firstStep.Round(time.Millisecond), opID, op.Status)
	return elected, firstStep
}

// randomTrial starts an operation of kind and kills its leader after
// delay, wherever it is: often inside a side effect (a clone half made,
// a server half added), or before the operation was even committed. If
// the operation was committed, the new leader finishes it; if not, the
// operator's request failed and nothing happened.
func (c *chaosCluster) randomTrial(t *testing.T, n int, kind plan.OpKind, delay time.Duration) {
	t.Helper()
	ctx := t.Context()
	leader := c.leader(t, c.agents, 10*time.Second)
	known := map[string]bool{}
	ops, err := c.clients[leader].Operations(ctx, "web", 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range ops {
		known[op.ID] = true
	}
	c.ask(t, leader, kind)
	time.Sleep(delay)
	killed := time.Now()
	next := c.kill(t, leader)
	c.start(t, leader)
	// Once the new leader has committed a decision of its own, whatever
	// the old one committed is in its log.
	if err := c.decided(t, next); err != nil {
		t.Fatalf("random trial %d (%s killed after %s): %v", n, kind, delay, err)
	}
	ops, err = c.clients[next].Operations(ctx, "web", 1000)
	if err != nil {
		t.Fatal(err)
	}
	var made []string
	for _, op := range ops {
		if !known[op.ID] {
			made = append(made, op.ID)
		}
	}
	status := plan.OpCompensated // as if nothing happened
	at := "before it was committed"
	switch len(made) {
	case 0:
	case 1:
		c.ops = append(c.ops, made[0])
		op := c.finish(t, next, made[0])
		status = op.Status
		// The step it was at when its leader died.
		for _, j := range op.Journal {
			if !j.At.After(killed) {
				at = "at " + string(j.Step)
			}
		}
	default:
		t.Fatalf("random trial %d: one request started %d operations: %v", n, len(made), made)
	}
	c.settle(t, sizeAfter(kind, status))
	ended := "nothing was started"
	if len(made) == 1 {
		ended = made[0] + " " + string(status)
	}
	t.Logf("random trial %d: %s, %s killed after %s, %s: %s", n, kind, leader.id, delay, at, ended)
}

// sizeAfter is the cluster's size once an operation of kind ended with
// status, from 2 nodes before an expansion and 3 before a contraction.
func sizeAfter(kind plan.OpKind, status plan.OpStatus) int {
	grew := kind == plan.OpExpand
	if status != plan.OpDone {
		grew = !grew
	}
	if grew {
		return 3
	}
	return 2
}

// ask has leader start an operation of kind, as an operator would: a
// clone of web-1, or the detach of a clone. The answer comes on the
// channel; it may never come (a leader frozen or killed within it).
func (c *chaosCluster) ask(t *testing.T, leader *raftAgent, kind plan.OpKind) <-chan error {
	t.Helper()
	victim := ""
	if kind == plan.OpContract {
		victim = c.cloneNode(t, leader)
	}
	asked := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		defer cancel()
		var rec plan.DecisionRecord
		var err error
		if kind == plan.OpExpand {
			rec, err = c.clients[leader].Clone(ctx, "web", "web-1")
		} else {
			rec, err = c.clients[leader].Detach(ctx, "web", victim)
		}
		if err == nil && len(rec.Operations) == 0 {
			err = fmt.Errorf("no operation started: %+v", rec)
		}
		asked <- err
	}()
	return asked
}

// kill kills leader with SIGKILL and returns the agent the other two
// elect.
func (c *chaosCluster) kill(t *testing.T, leader *raftAgent) *raftAgent {
	t.Helper()
	if err := leader.p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = leader.p.cmd.Wait()
	var live []*raftAgent
	for _, ra := range c.agents {
		if ra != leader {
			live = append(live, ra)
		}
	}
	return c.leader(t, live, 10*time.Second)
}

// finish waits until the operation has finished, done or compensated.
func (c *chaosCluster) finish(t *testing.T, leader *raftAgent, id string) plan.Operation {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		op, err := c.clients[leader].Operation(t.Context(), id)
		switch {
		case err == nil && (op.Status == plan.OpDone || op.Status == plan.OpCompensated):
			if op.Status == plan.OpCompensated {
				t.Logf("%s compensated: %s", id, op.Error)
			}
			return op
		case err == nil && op.Status.Finished():
			t.Fatalf("%s ended %s at %s: %s", id, op.Status, op.Step, op.Error)
		case time.Now().After(deadline):
			t.Fatalf("%s unfinished after 30 s: %s at %s (%v)", id, op.Status, op.Step, err)
		}
	}
}

// decided waits for a decision committed by leader in its term.
func (c *chaosCluster) decided(t *testing.T, leader *raftAgent) error {
	t.Helper()
	st, err := c.clients[leader].Peers(t.Context())
	if err != nil {
		return err
	}
	since := time.Now()
	for deadline := since.Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		recs, err := c.clients[leader].Decisions(t.Context(), "web", 1)
		if err == nil && len(recs) == 1 && recs[0].At.After(since) {
			if now, err := c.clients[leader].Peers(t.Context()); err == nil && now.Term == st.Term {
				return nil
			}
		}
	}
	return fmt.Errorf("%s committed no decision within 10 s", leader.id)
}

// cloneNode is a node the agents made, to detach.
func (c *chaosCluster) cloneNode(t *testing.T, ra *raftAgent) string {
	t.Helper()
	nodes, err := c.clients[ra].Nodes(t.Context(), "web")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if n.Parent != "" && n.State == plan.NodeReady {
			return n.ID
		}
	}
	t.Fatalf("no clone to detach among %+v", nodes)
	return ""
}

// settle checks the world once the operations are over: size nodes, each
// a running VM, served by HAProxy, and nothing else; every operation of
// the test finished; the three registries identical.
func (c *chaosCluster) settle(t *testing.T, size int) {
	t.Helper()
	ctx := t.Context()
	leader := c.leader(t, c.agents, 10*time.Second)
	nodes, err := c.clients[leader].Nodes(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	var registered []string
	for _, n := range nodes {
		if n.State != plan.NodeReady {
			t.Errorf("node %s is %s after the operations", n.ID, n.State)
		}
		registered = append(registered, n.VM)
	}
	vms, err := c.hv.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var running []string
	for _, vm := range vms {
		if !vm.Running {
			t.Errorf("VM %s is recorded but not running", vm.Name)
		}
		running = append(running, vm.Name)
	}
	slices.Sort(registered)
	slices.Sort(running)
	if len(nodes) != size || !slices.Equal(registered, running) {
		t.Fatalf("registered nodes %v, VMs %v; want %d of each, the same (no duplicate, no orphan)", registered, running, size)
	}
	if served := c.servers(t); !slices.Equal(served, registered) {
		t.Fatalf("HAProxy serves %v, the registry holds %v", served, registered)
	}
	for _, id := range c.ops {
		op, err := c.clients[leader].Operation(ctx, id)
		if err != nil || !op.Status.Finished() {
			t.Fatalf("operation %s lost or unfinished: %+v, %v", id, op, err)
		}
	}
	// The registries at the same log index are the same.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		var sts []wire.RaftStatus
		for _, ra := range c.agents {
			st, err := c.clients[ra].Peers(ctx)
			if err != nil {
				break
			}
			sts = append(sts, st)
		}
		if len(sts) == len(c.agents) && sts[0].RegistryIndex != 0 &&
			!slices.ContainsFunc(sts, func(s wire.RaftStatus) bool { return s.RegistryIndex != sts[0].RegistryIndex }) {
			for _, s := range sts[1:] {
				if s.RegistryDigest != sts[0].RegistryDigest {
					t.Fatalf("at index %d, %s's registry differs from %s's", s.RegistryIndex, s.Node, sts[0].Node)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the three registries never reached the same index: %+v", sts)
		}
	}
}

// servers are the servers of HAProxy's backend that are up or draining.
func (c *chaosCluster) servers(t *testing.T) []string {
	t.Helper()
	var names []string
	for _, line := range strings.Split(c.lb.Servers(t), "\n") {
		f := strings.Fields(line)
		if len(f) < 7 || strings.HasPrefix(line, "#") {
			continue
		}
		// srv_admin_state (7th field) bit 0x01 is forced maintenance:
		// a server taken out.
		admin, _ := strconv.Atoi(f[6])
		if admin&0x01 == 0 {
			names = append(names, f[3])
		}
	}
	slices.Sort(names)
	return names
}
