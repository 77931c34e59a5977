// Package process is a hypervisor whose VMs are local processes: the
// stand-in for vSphere or libvirt in end-to-end tests and demos, where
// each "VM" is an application server (cmd/demo-node, say) listening on
// its own loopback port.
//
// A live clone asks the running template to write its state to a file
// (Config.Snapshot) and starts a new process from that state
// (Config.Command), so the clone starts where its template was: warm
// caches, inherited sessions, the template's identity until it is
// finalized. The template keeps running. Each VM's state file and log
// live in Config.Dir.
//
// It keeps the hypervisor contract (hypervisortest passes) within one
// process's lifetime: what it knows of its VMs, their operation and fence
// included, is in memory, and Close stops every process it started.
package process

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/mitosis-autoscaler/mitosis/hypervisor"
)

// Config says how to run, snapshot and probe a VM's process.
type Config struct {
	// Dir holds each VM's state file and log. It must exist.
	Dir string
	// Command returns the command that runs VM name listening on addr
	// (127.0.0.1:port), restoring it from the state file when state is
	// not "".
	Command func(name, addr, state string) *exec.Cmd
	// Snapshot asks the running VM to write its state to file.
	Snapshot func(ctx context.Context, vm hypervisor.VM, file string) error
	// Ready returns nil once the VM at addr serves.
	Ready func(ctx context.Context, addr string) error
	// Host is what every VM reports as its host; "" means "localhost".
	Host string
	// BootTimeout bounds the wait for Ready; 0 means 15 s.
	BootTimeout time.Duration
	// Logger receives one line per start and stop; nil means none.
	Logger *slog.Logger
}

// Hypervisor runs VMs as processes. It is safe for concurrent use.
type Hypervisor struct {
	cfg  Config
	mu   sync.Mutex
	vms  map[string]*vm
	stop bool
}

var _ hypervisor.Hypervisor = (*Hypervisor)(nil)

type vm struct {
	info   hypervisor.VM
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited
	// made is closed once the VM's clone attempt has ended, so that a
	// retry racing the first attempt finds its clone rather than starting
	// a second process.
	made chan struct{}
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (v *vm) running() bool {
	select {
	case <-v.exited:
		return false
	default:
		return true
	}
}

// New returns a Hypervisor with no VMs.
func New(cfg Config) (*Hypervisor, error) {
	if cfg.Command == nil || cfg.Snapshot == nil || cfg.Ready == nil {
		return nil, errors.New("process hypervisor: Command, Snapshot and Ready are required")
	}
	if st, err := os.Stat(cfg.Dir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("process hypervisor: dir %q: must be an existing directory", cfg.Dir)
	}
	if cfg.Host == "" {
		cfg.Host = "localhost"
	}
	if cfg.BootTimeout == 0 {
		cfg.BootTimeout = 15 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Hypervisor{cfg: cfg, vms: map[string]*vm{}}, nil
}

// Boot starts VM name from nothing, as if made outside mitosis: the
// cluster's first nodes. Booting a name that runs is an error wrapping
// hypervisor.ErrNameTaken.
func (h *Hypervisor) Boot(ctx context.Context, name string) (hypervisor.VM, error) {
	h.mu.Lock()
	if v, ok := h.vms[name]; ok && v.running() {
		h.mu.Unlock()
		return hypervisor.VM{}, fmt.Errorf("booting %s: %w", name, hypervisor.ErrNameTaken)
	}
	h.mu.Unlock()
	return h.start(ctx, hypervisor.VM{Name: name}, "")
}

// Clone keeps hypervisor.Cloner's contract.
func (h *Hypervisor) Clone(ctx context.Context, req hypervisor.CloneRequest) (hypervisor.VM, error) {
	h.mu.Lock()
	if h.stop {
		h.mu.Unlock()
		return hypervisor.VM{}, errors.New("process hypervisor: closed")
	}
	if v, ok := h.vms[req.Name]; ok {
		h.mu.Unlock()
		return h.existing(ctx, v, req)
	}
	t, ok := h.vms[req.Template]
	if !ok || !t.running() {
		h.mu.Unlock()
		return hypervisor.VM{}, fmt.Errorf("cloning %s from %s: template: %w", req.Name, req.Template, hypervisor.ErrNotFound)
	}
	// Reserve the name before the slow part, so that a concurrent retry
	// waits for this clone instead of making another.
	placeholder := &vm{info: hypervisor.VM{Name: req.Name, Operation: req.Operation, Fence: req.Fence}, exited: make(chan struct{}), made: make(chan struct{})}
	h.vms[req.Name] = placeholder
	template := t.info
	h.mu.Unlock()

	made, err := h.cloneFrom(ctx, template, req)
	close(placeholder.made)
	if err != nil {
		h.mu.Lock()
		if h.vms[req.Name] == placeholder {
			delete(h.vms, req.Name)
		}
		h.mu.Unlock()
		return hypervisor.VM{}, err
	}
	return made, nil
}

// existing answers a Clone whose name is known: the clone already made
// (or being made) for the same operation, or a name taken by another.
func (h *Hypervisor) existing(ctx context.Context, v *vm, req hypervisor.CloneRequest) (hypervisor.VM, error) {
	select { // wait for a clone in progress
	case <-v.made:
	case <-ctx.Done():
		return hypervisor.VM{}, ctx.Err()
	}
	h.mu.Lock()
	cur, ok := h.vms[req.Name]
	h.mu.Unlock()
	if !ok { // the attempt in progress failed: try again
		return h.Clone(ctx, req)
	}
	if cur.info.Operation != req.Operation {
		return hypervisor.VM{}, fmt.Errorf("cloning %s: %w (made by %q)", req.Name, hypervisor.ErrNameTaken, cur.info.Operation)
	}
	if !cur.running() { // it died: start it again from its state
		return h.start(ctx, cur.info, h.statePath(req.Name))
	}
	return cur.snapshot(), nil
}

func (h *Hypervisor) cloneFrom(ctx context.Context, template hypervisor.VM, req hypervisor.CloneRequest) (hypervisor.VM, error) {
	state := h.statePath(req.Name)
	if err := h.cfg.Snapshot(ctx, template, state); err != nil {
		return hypervisor.VM{}, fmt.Errorf("cloning %s from %s: snapshot: %w", req.Name, req.Template, err)
	}
	made, err := h.start(ctx, hypervisor.VM{Name: req.Name, Operation: req.Operation, Fence: req.Fence, Method: "process-restore"}, state)
	if err != nil {
		return hypervisor.VM{}, fmt.Errorf("cloning %s from %s: %w", req.Name, req.Template, err)
	}
	return made, nil
}

func (h *Hypervisor) statePath(name string) string {
	return filepath.Join(h.cfg.Dir, name+".state")
}

// start runs info's process (from state, if given) on a free port and
// waits until it serves.
func (h *Hypervisor) start(ctx context.Context, info hypervisor.VM, state string) (hypervisor.VM, error) {
	addr, err := freeAddr()
	if err != nil {
		return hypervisor.VM{}, err
	}
	logf, err := os.OpenFile(filepath.Join(h.cfg.Dir, info.Name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return hypervisor.VM{}, fmt.Errorf("starting %s: %w", info.Name, err)
	}
	defer logf.Close()
	cmd := h.cfg.Command(info.Name, addr, state)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return hypervisor.VM{}, fmt.Errorf("starting %s: %w", info.Name, err)
	}
	v := &vm{cmd: cmd, exited: make(chan struct{}), made: closedChan}
	go func() { _ = cmd.Wait(); close(v.exited) }()

	info.ID = fmt.Sprintf("pid-%d", cmd.Process.Pid)
	info.Host, info.Address, info.Running = h.cfg.Host, addr, true
	v.info = info
	if err := h.awaitReady(ctx, v); err != nil {
		stopProcess(v)
		return hypervisor.VM{}, fmt.Errorf("starting %s: %w (its log: %s)", info.Name, err, logf.Name())
	}
	h.mu.Lock()
	old := h.vms[info.Name]
	h.vms[info.Name] = v
	h.mu.Unlock()
	if old != nil && old.cmd != nil {
		stopProcess(old)
	}
	h.cfg.Logger.Info("vm started", "vm", info.Name, "pid", cmd.Process.Pid, "addr", addr, "from_state", state != "")
	return v.snapshot(), nil
}

func (h *Hypervisor) awaitReady(ctx context.Context, v *vm) error {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.BootTimeout)
	defer cancel()
	var last error
	for {
		if last = h.cfg.Ready(ctx, v.info.Address); last == nil {
			return nil
		}
		select {
		case <-v.exited:
			return fmt.Errorf("process exited: %v", v.cmd.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("not ready within %s: %w", h.cfg.BootTimeout, last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (v *vm) snapshot() hypervisor.VM {
	info := v.info
	info.Running = v.running()
	return info
}

// Destroy keeps hypervisor.Destroyer's contract: it stops the process and
// deletes its state file.
func (h *Hypervisor) Destroy(_ context.Context, name string) error {
	h.mu.Lock()
	v, ok := h.vms[name]
	h.mu.Unlock()
	if !ok {
		return nil
	}
	<-v.made // let a clone in progress finish, then destroy what it made
	h.mu.Lock()
	v, ok = h.vms[name]
	delete(h.vms, name)
	h.mu.Unlock()
	if ok && v.cmd != nil {
		stopProcess(v)
		h.cfg.Logger.Info("vm destroyed", "vm", name, "pid", v.cmd.Process.Pid)
	}
	if err := os.Remove(h.statePath(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("destroying %s: %w", name, err)
	}
	return nil
}

// Lookup keeps hypervisor.Finder's contract.
func (h *Hypervisor) Lookup(_ context.Context, name string) (hypervisor.VM, error) {
	h.mu.Lock()
	v, ok := h.vms[name]
	h.mu.Unlock()
	if !ok || v.cmd == nil {
		return hypervisor.VM{}, fmt.Errorf("looking up %s: %w", name, hypervisor.ErrNotFound)
	}
	return v.snapshot(), nil
}

// Close stops every process it started.
func (h *Hypervisor) Close() {
	h.mu.Lock()
	h.stop = true
	vms := h.vms
	h.vms = map[string]*vm{}
	h.mu.Unlock()
	for _, v := range vms {
		if v.cmd != nil {
			stopProcess(v)
		}
	}
}

// stopProcess asks the process to stop (SIGTERM), and kills its process
// group after a grace period.
func stopProcess(v *vm) {
	pid := v.cmd.Process.Pid
	_ = syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-v.exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-v.exited
	}
}

// freeAddr picks a free loopback port. Another process may take it before
// the VM binds it; the VM then fails to start and the caller retries.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}
