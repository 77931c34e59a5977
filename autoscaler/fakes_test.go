package autoscaler

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/mitosis-autoscaler/mitosis/metrics"
	"github.com/mitosis-autoscaler/mitosis/node"
	"github.com/mitosis-autoscaler/mitosis/plan"
	"github.com/mitosis-autoscaler/mitosis/policy"
)

// fakeWorld is every backend at once, in memory: it records the calls it
// gets and lets a test inject failures (STYLE: fakes that record and
// inject, not generated mocks).
type fakeWorld struct {
	mu    sync.Mutex
	now   time.Time
	calls []string

	vms        map[string]string // name → host
	vmOps      map[string]string // name → the operation that made it
	attached   map[string]bool   // dispatcher: node → takes work
	attachedAt map[string]string // dispatcher: node → the address it was attached at
	vmAddr     map[string]string // the address the hypervisor reports for a VM, when not addr(name)
	nodeState  map[string]node.State
	sessions   map[string]int
	lbSessions map[string]int  // the dispatcher's open connections, by node id
	reachable  map[string]bool // addresses answering the node API
	cloneCount int

	// injection
	refusePrepare  bool
	neverSettles   bool
	cloneErr       error
	cloneMadeErr   error  // clone happens, then this error is returned
	landOn         string // the host clones land on, whatever was asked
	heldBy         string // the operation templates are prepared for, refusing others' resume
	resumeErr      error  // what every resume answers, if set
	finalizeNever  bool
	drainErr       error
	unavailable    string
	utilization    float64
	cloneReachable bool   // clones answer the node API at once
	afterClone     func() // runs once a clone is made, before Clone returns
}

var (
	_ Hypervisor     = (*fakeWorld)(nil)
	_ Dispatcher     = (*fakeWorld)(nil)
	_ SessionCounter = (*fakeWorld)(nil)
	_ NodeAPI        = (*fakeWorld)(nil)
	_ MetricsSource  = (*fakeWorld)(nil)
	_ Clock          = (*fakeWorld)(nil)
)

func newFakeWorld() *fakeWorld {
	return &fakeWorld{
		now:            time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		vms:            map[string]string{},
		vmOps:          map[string]string{},
		attached:       map[string]bool{},
		attachedAt:     map[string]string{},
		vmAddr:         map[string]string{},
		nodeState:      map[string]node.State{},
		sessions:       map[string]int{},
		lbSessions:     map[string]int{},
		reachable:      map[string]bool{},
		cloneReachable: true,
	}
}

func (w *fakeWorld) record(format string, args ...any) {
	w.calls = append(w.calls, fmt.Sprintf(format, args...))
}

func (w *fakeWorld) Now() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.now
}

func (w *fakeWorld) advance(d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.now = w.now.Add(d)
}

// addNode puts a running, attached node into the world and the registry.
func (w *fakeWorld) addNode(reg Registry, cluster, id, role, host string) plan.Node {
	w.mu.Lock()
	w.vms["vm-"+id] = host
	w.attached[id] = true
	w.nodeState[addr(id)] = node.StateReady
	w.reachable[addr(id)] = true
	w.mu.Unlock()
	n := plan.Node{ID: id, Cluster: cluster, Role: role, State: plan.NodeReady, Host: host, VM: "vm-" + id, Address: addr(id)}
	if err := reg.PutNode(context.Background(), n); err != nil {
		panic(err)
	}
	return n
}

func addr(id string) string { return "fake://" + id }

func (w *fakeWorld) Clone(_ context.Context, req CloneRequest) (VM, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.record("clone %s from %s", req.Name, req.Template)
	if w.cloneErr != nil {
		return VM{}, w.cloneErr
	}
	if _, ok := w.vms[req.Template]; !ok {
		return VM{}, fmt.Errorf("template %s: %w", req.Template, ErrVMNotFound)
	}
	host := req.Host
	if w.landOn != "" {
		host = w.landOn
	}
	if _, exists := w.vms[req.Name]; !exists {
		w.cloneCount++
		w.vms[req.Name] = host
		w.vmOps[req.Name] = req.Operation
		w.nodeState[addr(req.Name)] = node.StateCloned
		w.reachable[addr(req.Name)] = w.cloneReachable
	}
	if w.afterClone != nil {
		w.afterClone()
	}
	if err := w.cloneMadeErr; err != nil {
		w.cloneMadeErr = nil
		return VM{}, err
	}
	return VM{Name: req.Name, Host: w.vms[req.Name], Address: w.address(req.Name), Operation: req.Operation}, nil
}

// address is what the hypervisor reports as a VM's address; w.mu is held.
func (w *fakeWorld) address(name string) string {
	if a, ok := w.vmAddr[name]; ok {
		return a
	}
	return addr(name)
}

func (w *fakeWorld) Destroy(_ context.Context, vm string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.record("destroy %s", vm)
	delete(w.vms, vm)
	delete(w.vmOps, vm)
	return nil
}

func (w *fakeWorld) Lookup(_ context.Context, name string) (VM, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	host, ok := w.vms[name]
	if !ok {
		return VM{}, fmt.Errorf("vm %s: %w", name, ErrVMNotFound)
	}
	return VM{Name: name, Host: host, Address: w.address(name), Operation: w.vmOps[name]}, nil
}

func (w *fakeWorld) Drain(_ context.Context, n string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.record("drain %s", n)
	if w.drainErr != nil {
		return w.drainErr
	}
	w.attached[n] = false
	return nil
}

func (w *fakeWorld) Attach(_ context.Context, n, a string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.record("attach %s", n)
	w.attached[n] = true
	w.attachedAt[n] = a
	return nil
}

func (w *fakeWorld) Remove(_ context.Context, n string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.record("remove %s", n)
	delete(w.attached, n)
	return nil
}

// Sessions is the dispatcher's count of connections open to node n.
func (w *fakeWorld) Sessions(_ context.Context, n string) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lbSessions[n], nil
}

var errUnreachable = errors.New("connection refused")

func (w *fakeWorld) Status(_ context.Context, a string) (node.Status, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.reachable[a] {
		return node.Status{}, errUnreachable
	}
	return node.Status{State: w.nodeState[a], Sessions: w.sessions[a]}, nil
}

func (w *fakeWorld) Prepare(_ context.Context, a string, req node.PrepareRequest) (node.PrepareReply, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.record("prepare %s", a)
	if w.refusePrepare {
		return node.PrepareReply{Reason: "busy with a batch job"}, nil
	}
	if w.neverSettles {
		w.nodeState[a] = node.StatePreparing
	} else {
		w.nodeState[a] = node.StatePrepared
	}
	return node.PrepareReply{Accepted: true}, nil
}

func (w *fakeWorld) Resume(_ context.Context, a, _ string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.record("resume %s", a)
	if w.resumeErr != nil {
		return w.resumeErr
	}
	if w.heldBy != "" {
		return &node.StateError{Call: "POST /v1/resume", State: node.StatePrepared, Operation: w.heldBy, Message: "prepared for another operation"}
	}
	w.nodeState[a] = node.StateReady
	return nil
}

func (w *fakeWorld) Finalize(_ context.Context, a string, req node.FinalizeRequest) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.record("finalize %s as %s", a, req.ID)
	if !w.reachable[a] || w.finalizeNever {
		return errUnreachable
	}
	w.nodeState[a] = node.StateReady
	return nil
}

func (w *fakeWorld) Detach(_ context.Context, a, _ string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.record("detach %s", a)
	w.nodeState[a] = node.StateDetaching
	return nil
}

func (w *fakeWorld) Snapshot(_ context.Context, _ string, nodes []plan.Node) metrics.Snapshot {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := metrics.Snapshot{Unavailable: w.unavailable, Nodes: map[string]map[string]metrics.Sample{}}
	for _, n := range nodes {
		s.Nodes[n.ID] = map[string]metrics.Sample{"utilization": {Value: w.utilization}}
	}
	return s
}

// policyFunc is a PolicyEngine from a function.
type policyFunc func(in *policy.Input) (plan.Decision, error)

func (f policyFunc) Decide(_ context.Context, in *policy.Input, _ time.Time) (plan.Decision, error) {
	return f(in)
}
func (policyFunc) Version() string { return "test" }

// always returns the same decision.
func always(d plan.Decision) policyFunc {
	return func(*policy.Input) (plan.Decision, error) { return d, nil }
}

// parseConfig reads a test's configuration as package config does (which
// the controller's own tests cannot import: it imports the controller).
func parseConfig(data []byte, name string) (Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("%s: %w", name, err)
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}
