package sim

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/mitosis-autoscaler/mitosis/autoscaler"
	"github.com/mitosis-autoscaler/mitosis/hypervisor"
	"github.com/mitosis-autoscaler/mitosis/metrics"
	"github.com/mitosis-autoscaler/mitosis/node"
	"github.com/mitosis-autoscaler/mitosis/plan"
)

// World is the simulated cluster: a virtual clock, the VMs on their
// hosts, the nodes' API, the dispatcher in front of them, and the
// metrics a monitoring system would scrape from them. It implements every
// port of the controller but the registry and the policy.
//
// The model is fluid and advances in fixed steps (Params.Step):
//
//   - Demand (requests per second) comes from the workload. Requests that
//     find no free capacity wait in one queue; a request that waited
//     longer than Params.MaxQueueWait is dropped and counts as not served.
//   - The dispatcher spreads new work over the nodes that are attached,
//     not drained, answering, ready and not stunned, in proportion to
//     their effective capacity, so that their utilizations are equal (the
//     fluid limit of least-connections balancing).
//   - A node's effective capacity is Params.NodeCapacity times its
//     warmth: ColdFraction + (1-ColdFraction)·progress, where progress
//     grows from 0 to 1 over Params.Warmup of serving. A live clone
//     inherits its template's progress; a cold-booted VM starts at 0.
//   - A template takes no new work from prepare to resume (drained, or,
//     the last ready node of its role, kept in the dispatcher but not
//     ready: a real node holds those requests until its resume, the world
//     counts them unserved), and a live clone stuns it (it serves
//     nothing) for Params.Stun.
//
// World is safe for concurrent use, though a simulation drives it from
// one goroutine.
type World struct {
	mu    sync.Mutex
	p     Params
	mode  Mode
	rng   *rand.Rand
	start time.Time
	step  time.Duration
	dt    float64 // step in seconds
	steps int     // steps taken
	now   float64 // seconds since start

	load  *Workload
	scale float64
	// win is the number of steps in the metrics window; rings hold win+1
	// cumulative samples.
	win int
	// fastWin is the number of steps in the fast window (<= win).
	fastWin int

	vms    []*vm // alive VMs, in creation order
	byName map[string]*vm
	byAddr map[string]*vm
	hosts  map[string]int // capacity by host name; 0 = unlimited
	disp   map[string]string

	backlog float64 // requests waiting
	cum     clusterCum
	ring    []clusterCum
	acc     Accumulator
}

// vm is one simulated VM and the application node in it.
type vm struct {
	name, host, addr, role string
	nodeID                 string
	// what the hypervisor contract asks a clone to carry
	operation  string
	fence      uint64
	method     string
	created    float64
	bootAt     float64 // the node API answers from then on
	state      node.State
	prepareOp  string
	preparedAt float64
	dispatched bool // attached in the dispatcher and not drained
	progress   float64
	stunUntil  float64
	sessions   float64
	detachRate float64
	// eff is the effective capacity during the current step (req/s).
	eff  float64
	cum  nodeCum
	ring []nodeCum
}

type nodeCum struct{ offered, served, capSec float64 }

type clusterCum struct {
	demand, served, capSec, dropped float64
	backlog                         float64 // a level, not a sum
}

// Accumulator sums what happened since it was last taken; the runner
// takes one per timeline row.
type Accumulator struct {
	Seconds      float64 // simulated time covered
	Demand       float64 // requests offered
	Served       float64 // requests served
	Dropped      float64 // requests given up
	CapSeconds   float64 // capacity × time (requests that could have been served)
	VMSeconds    float64 // VMs alive × time
	ReadySeconds float64 // serving nodes × time
}

// NewWorld makes an empty world. The workload's rate, times scale, is the
// demand; the world starts at the workload's start.
func NewWorld(p Params, mode Mode, load *Workload, scale float64, hosts []autoscaler.HostConfig, seed uint64) (*World, error) {
	p.ApplyDefaults()
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if _, err := ParseMode(string(mode)); err != nil {
		return nil, err
	}
	if load == nil || len(load.Values) == 0 || load.Step <= 0 {
		return nil, errors.New("the workload is empty")
	}
	if !(scale > 0) || math.IsInf(scale, 0) {
		return nil, fmt.Errorf("scale %g: must be positive", scale)
	}
	w := &World{
		p: p, mode: mode, rng: rand.New(rand.NewPCG(seed, seed^0x776f726c64)),
		start: load.Start, step: p.Step.Duration, dt: p.Step.Seconds(),
		load: load, scale: scale,
		win:    max(1, int(math.Round(p.Window.Seconds()/p.Step.Seconds()))),
		byName: map[string]*vm{}, byAddr: map[string]*vm{}, hosts: map[string]int{}, disp: map[string]string{},
	}
	w.fastWin = min(w.win, max(1, int(math.Round(p.FastWindow.Seconds()/p.Step.Seconds()))))
	w.ring = make([]clusterCum, w.win+1)
	for _, h := range hosts {
		w.hosts[h.Name] = h.Capacity
	}
	return w, nil
}

var (
	_ autoscaler.Clock         = (*World)(nil)
	_ autoscaler.Hypervisor    = (*World)(nil)
	_ autoscaler.Dispatcher    = (*World)(nil)
	_ autoscaler.NodeAPI       = (*World)(nil)
	_ autoscaler.MetricsSource = (*World)(nil)
)

// Now is the virtual time.
func (w *World) Now() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.timeAt(w.steps)
}

func (w *World) timeAt(steps int) time.Time { return w.start.Add(time.Duration(steps) * w.step) }

// End is when the workload ends.
func (w *World) End() time.Time { return w.start.Add(w.load.Duration()) }

// Addr is the node API address of a VM.
func Addr(vmName string) string { return "sim://" + vmName }

// AddNode puts a running, warm, ready node into the world and attaches it
// to the dispatcher; the caller registers it. Its VM is named id.
func (w *World) AddNode(id, role, host string) (plan.Node, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, dup := w.byName[id]; dup {
		return plan.Node{}, fmt.Errorf("vm %s exists", id)
	}
	if err := w.hostHasRoom(host); err != nil {
		return plan.Node{}, err
	}
	v := w.newVM(id, host, role)
	v.state, v.nodeID, v.progress, v.bootAt = node.StateReady, id, 1, 0
	v.dispatched = true
	w.disp[id] = v.addr
	return plan.Node{
		ID: id, Role: role, State: plan.NodeReady, Host: host, VM: id, Address: v.addr,
		CreatedAt: w.timeAt(w.steps),
	}, nil
}

func (w *World) newVM(name, host, role string) *vm {
	v := &vm{name: name, host: host, addr: Addr(name), role: role, created: w.now, ring: make([]nodeCum, w.win+1)}
	w.vms = append(w.vms, v)
	w.byName[name] = v
	w.byAddr[v.addr] = v
	return v
}

func (w *World) hostHasRoom(host string) error {
	c := w.hosts[host]
	if c == 0 {
		return nil
	}
	n := 0
	for _, v := range w.vms {
		if v.host == host {
			n++
		}
	}
	if n >= c {
		return fmt.Errorf("host %s is full (%d VMs, capacity %d)", host, n, c)
	}
	return nil
}

func (w *World) warmth(progress float64) float64 {
	return w.p.ColdFraction + (1-w.p.ColdFraction)*progress
}

// rate is the mean demand, in requests per second, over [t, t+d).
func (w *World) rate(t, d float64) float64 {
	ls := w.load.Step.Seconds()
	vals := w.load.Values
	total, end := 0.0, t+d
	for t < end {
		i := int(t / ls)
		if i >= len(vals) {
			break
		}
		next := min(end, float64(i+1)*ls)
		total += vals[i] / ls * (next - t)
		t = next
	}
	return total / d * w.scale
}

// Done reports whether the workload is over.
func (w *World) Done() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.now >= w.load.Duration().Seconds()-1e-9
}

// Step advances the world by one step: it serves the demand of the step
// with the nodes as they are at its start.
func (w *World) Step() {
	w.mu.Lock()
	defer w.mu.Unlock()
	dt, t0 := w.dt, w.now
	t1 := t0 + dt
	demand := w.rate(t0, dt)

	// Effective capacity of each serving node.
	capacity, ready := 0.0, 0
	for _, v := range w.vms {
		v.eff = 0
		if !v.dispatched || v.state != node.StateReady || t0 < v.bootAt {
			continue
		}
		avail := 1.0
		if v.stunUntil > t0 {
			avail = max(0, (t1-v.stunUntil)/dt)
		}
		v.eff = w.p.NodeCapacity * w.warmth(v.progress) * avail
		capacity += v.eff
		ready++
	}

	// One queue in front of all nodes.
	arrived := demand * dt
	served := min(w.backlog+arrived, capacity*dt)
	backlog := w.backlog + arrived - served
	dropped := max(0, backlog-capacity*w.p.MaxQueueWait.Seconds())
	w.backlog = backlog - dropped

	// Per node: a share of the work in proportion to capacity; warming,
	// sessions, counters.
	warm := dt / w.p.Warmup.Seconds()
	ss := w.p.SessionSeconds
	slot := (w.steps + 1) % (w.win + 1)
	for _, v := range w.vms {
		if v.eff > 0 {
			share := v.eff / capacity
			off, srv := arrived*share, served*share
			v.cum.offered += off
			v.cum.served += srv
			v.cum.capSec += v.eff * dt
			if srv > 0 {
				v.progress = min(1, v.progress+warm)
			}
			// Sessions relax towards arrivals/s × session length.
			target := srv / dt / w.p.RequestsPerSession * ss
			v.sessions += (target - v.sessions) * min(1, dt/ss)
		} else if v.state == node.StateDetaching {
			v.sessions = max(0, v.sessions-v.detachRate*dt)
		}
		v.ring[slot] = v.cum
	}

	w.cum.demand += arrived
	w.cum.served += served
	w.cum.capSec += capacity * dt
	w.cum.dropped += dropped
	w.cum.backlog = w.backlog
	w.ring[slot] = w.cum

	a := &w.acc
	a.Seconds += dt
	a.Demand += arrived
	a.Served += served
	a.Dropped += dropped
	a.CapSeconds += capacity * dt
	a.VMSeconds += float64(len(w.vms)) * dt
	a.ReadySeconds += float64(ready) * dt

	w.steps++
	w.now = float64(w.steps) * dt
}

// TakeAccumulator returns what happened since the last call and resets it.
func (w *World) TakeAccumulator() Accumulator {
	w.mu.Lock()
	defer w.mu.Unlock()
	a := w.acc
	w.acc = Accumulator{}
	return a
}

// Backlog is the number of requests waiting now.
func (w *World) Backlog() float64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.backlog
}

// Counts are the VMs alive and the nodes serving now.
func (w *World) Counts() (vms, serving int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, v := range w.vms {
		if v.dispatched && v.state == node.StateReady && w.now >= v.bootAt {
			serving++
		}
	}
	return len(w.vms), serving
}

// ---- hypervisor ----

var errCloneFailed = errors.New("simulated clone failure")

// Clone makes the clone named req.Name of the VM req.Template on
// req.Host, or returns the one already made under that name.
func (w *World) Clone(_ context.Context, req autoscaler.CloneRequest) (autoscaler.VM, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if v, ok := w.byName[req.Name]; ok {
		if v.operation != req.Operation {
			return autoscaler.VM{}, fmt.Errorf("cloning %s: %w (made by %q)", req.Name, hypervisor.ErrNameTaken, v.operation)
		}
		return v.info(), nil
	}
	t, ok := w.byName[req.Template]
	if !ok {
		return autoscaler.VM{}, fmt.Errorf("cloning %s: template %s: %w", req.Name, req.Template, autoscaler.ErrVMNotFound)
	}
	if req.Name == "" || req.Host == "" {
		return autoscaler.VM{}, fmt.Errorf("cloning %s: a clone needs a name and a host", req.Name)
	}
	if err := w.hostHasRoom(req.Host); err != nil {
		return autoscaler.VM{}, fmt.Errorf("cloning %s: %w", req.Name, err)
	}
	if w.p.CloneFailureProbability > 0 && w.rng.Float64() < w.p.CloneFailureProbability {
		return autoscaler.VM{}, fmt.Errorf("cloning %s: %w", req.Name, errCloneFailed)
	}
	c := w.newVM(req.Name, req.Host, t.role)
	c.state = node.StateCloned
	c.operation, c.fence, c.method = req.Operation, req.Fence, string(w.mode)
	switch w.mode {
	case LiveClone:
		c.bootAt = w.now + w.p.LiveClone.Seconds()
		c.progress, c.sessions = t.progress, t.sessions
		t.stunUntil = w.now + w.p.Stun.Seconds()
	case ColdBoot:
		c.bootAt = w.now + w.p.ColdBoot.Seconds()
	}
	return c.info(), nil
}

// Lookup finds a VM by name, with the metadata a clone carries.
func (w *World) Lookup(_ context.Context, name string) (autoscaler.VM, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	v, ok := w.byName[name]
	if !ok {
		return autoscaler.VM{}, fmt.Errorf("looking up %s: %w", name, autoscaler.ErrVMNotFound)
	}
	return v.info(), nil
}

func (v *vm) info() autoscaler.VM {
	return autoscaler.VM{
		Name: v.name, Host: v.host, Address: v.addr, ID: "sim-" + v.name, Running: true,
		Operation: v.operation, Fence: v.fence, Method: v.method,
	}
}

// Destroy deletes a VM; a VM that does not exist is success.
func (w *World) Destroy(_ context.Context, name string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	v, ok := w.byName[name]
	if !ok {
		return nil
	}
	delete(w.byName, name)
	delete(w.byAddr, v.addr)
	w.vms = slices.DeleteFunc(w.vms, func(x *vm) bool { return x == v })
	return nil
}

// ---- dispatcher ----

// Drain stops sending the node new work.
func (w *World) Drain(_ context.Context, id string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	addr, ok := w.disp[id]
	if !ok {
		return fmt.Errorf("dispatcher: no backend %s", id)
	}
	if v := w.byAddr[addr]; v != nil {
		v.dispatched = false
	}
	return nil
}

// Attach adds the node at addr (if absent) and sends it work.
func (w *World) Attach(_ context.Context, id, addr string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if old, ok := w.disp[id]; ok && old != addr {
		if v := w.byAddr[old]; v != nil {
			v.dispatched = false
		}
	}
	w.disp[id] = addr
	if v := w.byAddr[addr]; v != nil {
		v.dispatched = true
	}
	return nil
}

// Remove takes the node out of the dispatcher.
func (w *World) Remove(_ context.Context, id string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if addr, ok := w.disp[id]; ok {
		if v := w.byAddr[addr]; v != nil {
			v.dispatched = false
		}
		delete(w.disp, id)
	}
	return nil
}

// ---- node API ----

// reach returns the VM answering at addr.
func (w *World) reach(addr string) (*vm, error) {
	v, ok := w.byAddr[addr]
	switch {
	case !ok:
		return nil, fmt.Errorf("node %s: connection refused", addr)
	case w.now < v.bootAt:
		return nil, fmt.Errorf("node %s: not reachable yet (booting)", addr)
	}
	return v, nil
}

// settle moves a node through the states that only time changes.
func (w *World) settle(v *vm) {
	if v.state == node.StatePreparing && w.now >= v.preparedAt {
		v.state = node.StatePrepared
	}
	if v.state == node.StateDetaching && v.sessions < 0.5 {
		v.sessions, v.state = 0, node.StateDetached
	}
}

// Status reports the node's state.
func (w *World) Status(_ context.Context, addr string) (node.Status, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	v, err := w.reach(addr)
	if err != nil {
		return node.Status{}, err
	}
	w.settle(v)
	return node.Status{
		ID: v.nodeID, State: v.state, Sessions: int(math.Round(v.sessions)),
		Ready: v.state == node.StateReady, CacheHitRatio: w.warmth(v.progress),
		UptimeSeconds: w.now - v.created,
	}, nil
}

// Prepare asks a ready node to settle for a clone.
func (w *World) Prepare(_ context.Context, addr string, req node.PrepareRequest) (node.PrepareReply, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	v, err := w.reach(addr)
	if err != nil {
		return node.PrepareReply{}, err
	}
	w.settle(v)
	switch {
	case (v.state == node.StatePreparing || v.state == node.StatePrepared) && v.prepareOp == req.Operation:
		return node.PrepareReply{Accepted: true}, nil
	case v.state != node.StateReady:
		return node.PrepareReply{Reason: "node is " + string(v.state)}, nil
	case w.p.RefusePrepareProbability > 0 && w.rng.Float64() < w.p.RefusePrepareProbability:
		return node.PrepareReply{Reason: "busy (simulated refusal)"}, nil
	}
	v.state, v.prepareOp = node.StatePreparing, req.Operation
	v.preparedAt = w.now
	if w.mode == LiveClone {
		v.preparedAt += w.p.Prepare.Seconds()
	}
	w.settle(v)
	return node.PrepareReply{Accepted: true}, nil
}

// Resume puts a node prepared by the operation back to work, as the node
// API does: a node another operation holds, or one in a state resume does
// not fit, answers with a *node.StateError.
func (w *World) Resume(_ context.Context, addr, op string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	v, err := w.reach(addr)
	if err != nil {
		return err
	}
	switch {
	case (v.state == node.StatePreparing || v.state == node.StatePrepared) && v.prepareOp == op:
		v.state, v.prepareOp = node.StateReady, ""
	case v.state == node.StateReady:
	case v.state == node.StatePreparing || v.state == node.StatePrepared:
		return &node.StateError{Call: "resume", State: v.state, Operation: v.prepareOp, Message: "prepared for another operation"}
	default:
		return &node.StateError{Call: "resume", State: v.state, Message: "only a node being prepared resumes"}
	}
	return nil
}

// Finalize gives a clone its identity and purges its inherited sessions.
func (w *World) Finalize(_ context.Context, addr string, req node.FinalizeRequest) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	v, err := w.reach(addr)
	if err != nil {
		return err
	}
	switch {
	case v.state == node.StateCloned:
		v.state, v.nodeID, v.sessions = node.StateReady, req.ID, 0
	case v.state == node.StateReady && v.nodeID == req.ID:
	default:
		return fmt.Errorf("node %s is %s as %q, cannot finalize as %q", addr, v.state, v.nodeID, req.ID)
	}
	return nil
}

// Detach makes the node finish its sessions, which end within
// Params.SessionSeconds.
func (w *World) Detach(_ context.Context, addr, _ string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	v, err := w.reach(addr)
	if err != nil {
		return err
	}
	switch v.state {
	case node.StateDetaching, node.StateDetached:
		return nil
	}
	v.state = node.StateDetaching
	v.detachRate = v.sessions / w.p.SessionSeconds
	w.settle(v)
	return nil
}

// ---- metrics ----

// Metric names the simulated monitoring reports. Per node:
const (
	MetricUtilization       = "utilization"         // offered load / effective capacity over the window
	MetricCacheHitRatio     = "cache_hit_ratio"     // warmth now
	MetricSessions          = "sessions"            // sessions now
	MetricRequestsPerSecond = "requests_per_second" // served over the window
)

// and per cluster (MetricUtilization too: demand / capacity):
const (
	MetricDemandRPS       = "demand_rps"         // offered over the window
	MetricCapacityRPS     = "capacity_rps"       // serving capacity over the window
	MetricServedRPS       = "served_rps"         // served over the window
	MetricQueueLength     = "queue_length"       // requests waiting now plus those dropped in the window
	MetricQueueGrowthPerS = "queue_growth_per_s" // (offered - served) / window
	// MetricDemandNodes is the demand over the fast window
	// (Params.FastWindow) in warm nodes: requests arriving per second
	// over what one warm node serves. A surge shows in it within seconds,
	// as in a load balancer's request rate over a few scrapes, and it
	// does not move when capacity is added.
	MetricDemandNodes      = "demand_nodes"
	MetricNodesServing     = "nodes_serving" // nodes taking work now
	MetricDroppedPerSecond = "dropped_per_s" // requests given up, over the window
)

// Snapshot reports the cluster's metrics averaged over the window, all
// with age 0. A node whose VM is gone or not answering yet has no
// samples; a node that had no capacity in the window has no utilization.
func (w *World) Snapshot(_ context.Context, _ string, nodes []plan.Node) metrics.Snapshot {
	w.mu.Lock()
	defer w.mu.Unlock()
	back := min(w.steps, w.win)
	old := (w.steps - back) % (w.win + 1)
	secs := float64(back) * w.dt
	snap := metrics.Snapshot{Cluster: map[string]metrics.Sample{}, Nodes: make(map[string]map[string]metrics.Sample, len(nodes))}
	if back == 0 {
		snap.Unavailable = "no samples yet"
		return snap
	}
	c, o := w.cum, w.ring[old]
	demand, capSec, served := c.demand-o.demand, c.capSec-o.capSec, c.served-o.served
	put := func(m map[string]metrics.Sample, k string, v float64) { m[k] = metrics.Sample{Value: v} }
	put(snap.Cluster, MetricDemandRPS, demand/secs)
	put(snap.Cluster, MetricCapacityRPS, capSec/secs)
	put(snap.Cluster, MetricServedRPS, served/secs)
	put(snap.Cluster, MetricDroppedPerSecond, (c.dropped-o.dropped)/secs)
	put(snap.Cluster, MetricQueueLength, w.backlog+c.dropped-o.dropped)
	put(snap.Cluster, MetricQueueGrowthPerS, (demand-served)/secs)
	if capSec > 0 {
		put(snap.Cluster, MetricUtilization, demand/capSec)
	}
	fast := (w.steps - min(w.steps, w.fastWin)) % (w.win + 1)
	f := w.ring[fast]
	put(snap.Cluster, MetricDemandNodes, (c.demand-f.demand)/(float64(min(w.steps, w.fastWin))*w.dt)/w.p.NodeCapacity)
	serving := 0
	for _, v := range w.vms {
		if v.eff > 0 {
			serving++
		}
	}
	put(snap.Cluster, MetricNodesServing, float64(serving))

	for _, n := range nodes {
		v, ok := w.byAddr[n.Address]
		if !ok || w.now < v.bootAt {
			continue
		}
		m := make(map[string]metrics.Sample, 4)
		vo := v.ring[old]
		d := nodeCum{v.cum.offered - vo.offered, v.cum.served - vo.served, v.cum.capSec - vo.capSec}
		if d.capSec > 0 {
			put(m, MetricUtilization, d.offered/d.capSec)
		}
		put(m, MetricCacheHitRatio, w.warmth(v.progress))
		put(m, MetricSessions, v.sessions)
		put(m, MetricRequestsPerSecond, d.served/min(secs, max(w.dt, w.now-v.created)))
		snap.Nodes[n.ID] = m
	}
	return snap
}
