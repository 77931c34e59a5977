// Package process is a hypervisor whose VMs are local processes: the
// stand-in for vSphere or libvirt in end-to-end tests and demos, where
// each "VM" is an application server (cmd/demo-node, say) listening on
// its own loopback port.
//
// A live clone asks the running template to write its state to a file
// (Config.Snapshot) and starts a new process from that state
// (Config.Command), so the clone starts where its template was: warm
// caches, inherited sessions, the template's identity until it is
// finalized. The template keeps running.
//
// # Where the state lives
//
// Everything known of a VM lives in Config.Dir, not in memory, so several
// processes (the replicas of a mitosis agent, a test and the agents it
// runs) may share one Dir, and a VM outlives the process that started it:
//
//	<name>.json   the record: name, id, pid, address, host, operation,
//	              fence, method, template, state file; replaced atomically
//	              (a temporary file renamed over it)
//	<name>.state  the state the VM started from (a clone's snapshot)
//	<name>.log    its standard output and error (kept after Destroy)
//	<name>.run    held locked (flock, exclusive) by the VM's process for
//	              as long as it lives: the VM runs exactly when someone
//	              holds this lock, whoever started it and whatever became
//	              of its pid
//	<name>.lock   Boot, Clone and Destroy of a name hold it locked, so
//	              processes (and goroutines) acting on one name take turns
//
// The life of a record, under <name>.lock:
//
//	Clone ──► record (pid 0) ──► snapshot ──► start ──► record (pid) ──► ready
//	            │                                                        │
//	            └─ a crash anywhere here leaves a record: the next Clone ◄┘
//	               of the same operation finds it, returns the VM if it
//	               runs, restarts it from its state (or a new snapshot)
//	               if not; any other operation gets ErrNameTaken
//
// A VM's process runs in its own process group, so a signal to the
// process that started it does not reach it. Without Config.Detached,
// Close stops the VMs its Hypervisor started; with it, they run on, as a
// real hypervisor's VMs outlive mitosis.
//
// It needs Linux (flock, and /proc to find the pid of a VM whose starter
// died before recording it).
package process

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mitosis-autoscaler/mitosis/hypervisor"
)

// Config says how to run, snapshot and probe a VM's process.
type Config struct {
	// Dir holds each VM's record, state file, log and locks. It must
	// exist. Several processes may share it.
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
	// Detached: VMs outlive this Hypervisor: Close leaves them running,
	// as a real hypervisor's VMs outlive mitosis. Without it, Close stops
	// the VMs this Hypervisor started.
	Detached bool
}

// Hypervisor runs VMs as processes, recorded in Config.Dir. It is safe for
// concurrent use, and several Hypervisors (in one process or many) may
// share a Dir.
type Hypervisor struct {
	cfg Config

	mu     sync.Mutex
	closed bool
	// children are the processes this value started and has not yet
	// reaped, by VM name: Close stops them unless Detached.
	children map[string]*child
}

var _ hypervisor.Hypervisor = (*Hypervisor)(nil)

// child is a process this Hypervisor started; a goroutine reaps it.
type child struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

// record is a VM's <name>.json.
type record struct {
	Name string `json:"name"`
	// ID is "pid-<pid>"; "" while PID is 0.
	ID string `json:"id,omitempty"`
	// PID is the VM's process, the leader of its process group; 0 while
	// it is being started (or if its starter died before writing it).
	PID       int    `json:"pid"`
	Address   string `json:"address"`
	Host      string `json:"host"`
	Operation string `json:"operation,omitempty"`
	Fence     uint64 `json:"fence,omitempty"`
	Method    string `json:"method,omitempty"`
	// Template is the VM a clone was made from; "" for a booted VM.
	Template string `json:"template,omitempty"`
	// State is the state file the VM starts from; "" for a booted VM.
	State string `json:"state,omitempty"`
}

func (r record) vm(running bool) hypervisor.VM {
	return hypervisor.VM{Name: r.Name, Host: r.Host, Address: r.Address, ID: r.ID, Running: running,
		Operation: r.Operation, Fence: r.Fence, Method: r.Method}
}

const (
	// gracePeriod is how long a VM has to stop after SIGTERM before its
	// process group is killed.
	gracePeriod = 5 * time.Second
	// lockPoll is how often a lock held by another is tried again.
	lockPoll = 10 * time.Millisecond
)

// New returns a Hypervisor over the VMs recorded in cfg.Dir.
func New(cfg Config) (*Hypervisor, error) {
	if cfg.Command == nil || cfg.Snapshot == nil || cfg.Ready == nil {
		return nil, errors.New("process hypervisor: Command, Snapshot and Ready are required")
	}
	if st, err := os.Stat(cfg.Dir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("process hypervisor: dir %q: must be an existing directory", cfg.Dir)
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("process hypervisor: dir %q: %w", cfg.Dir, err)
	}
	cfg.Dir = dir
	if cfg.Host == "" {
		cfg.Host = "localhost"
	}
	if cfg.BootTimeout == 0 {
		cfg.BootTimeout = 15 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Hypervisor{cfg: cfg, children: map[string]*child{}}, nil
}

func (h *Hypervisor) path(name, ext string) string { return filepath.Join(h.cfg.Dir, name+ext) }

func validName(name string) error {
	if name == "" || strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, ".") {
		return fmt.Errorf("vm name %q: must be a plain file name", name)
	}
	return nil
}

func (h *Hypervisor) isClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}

var errClosed = errors.New("process hypervisor: closed")

// Boot starts VM name from nothing, as if made outside mitosis: the
// cluster's first nodes. Booting a name that runs, or that a clone's
// record holds, is an error wrapping hypervisor.ErrNameTaken; booting a
// stopped booted VM starts it afresh.
func (h *Hypervisor) Boot(ctx context.Context, name string) (hypervisor.VM, error) {
	if err := validName(name); err != nil {
		return hypervisor.VM{}, fmt.Errorf("booting: %w", err)
	}
	if h.isClosed() {
		return hypervisor.VM{}, errClosed
	}
	unlock, err := h.lock(ctx, name)
	if err != nil {
		return hypervisor.VM{}, fmt.Errorf("booting %s: %w", name, err)
	}
	defer h.unlock(name, unlock)
	rec, found, err := h.read(name)
	if err != nil {
		return hypervisor.VM{}, fmt.Errorf("booting %s: %w", name, err)
	}
	if found {
		running, err := h.running(name)
		if err != nil {
			return hypervisor.VM{}, fmt.Errorf("booting %s: %w", name, err)
		}
		if running || rec.Operation != "" {
			return hypervisor.VM{}, fmt.Errorf("booting %s: %w", name, hypervisor.ErrNameTaken)
		}
	}
	vm, err := h.start(ctx, record{Name: name, Host: h.cfg.Host})
	if err != nil {
		_ = h.remove(name)
		return hypervisor.VM{}, fmt.Errorf("booting %s: %w", name, err)
	}
	return vm, nil
}

// Clone keeps hypervisor.Cloner's contract, across every process sharing
// Dir: the clone of an operation is found by whoever asks next.
func (h *Hypervisor) Clone(ctx context.Context, req hypervisor.CloneRequest) (hypervisor.VM, error) {
	if err := validName(req.Name); err != nil {
		return hypervisor.VM{}, fmt.Errorf("cloning: %w", err)
	}
	if h.isClosed() {
		return hypervisor.VM{}, errClosed
	}
	unlock, err := h.lock(ctx, req.Name)
	if err != nil {
		return hypervisor.VM{}, fmt.Errorf("cloning %s: %w", req.Name, err)
	}
	defer h.unlock(req.Name, unlock)
	rec, found, err := h.read(req.Name)
	if err != nil {
		return hypervisor.VM{}, fmt.Errorf("cloning %s: %w", req.Name, err)
	}
	if found {
		return h.existing(ctx, rec, req)
	}
	if _, err := h.template(req.Template); err != nil {
		return hypervisor.VM{}, fmt.Errorf("cloning %s from %s: %w", req.Name, req.Template, err)
	}
	rec = record{Name: req.Name, Host: h.cfg.Host, Operation: req.Operation, Fence: req.Fence,
		Method: "process-restore", Template: req.Template, State: h.path(req.Name, ".state")}
	// The record first: whatever happens next, the name is this
	// operation's, and a retry finds it.
	if err := h.write(rec); err != nil {
		return hypervisor.VM{}, fmt.Errorf("cloning %s: %w", req.Name, err)
	}
	vm, err := h.snapshotAndStart(ctx, rec)
	if err != nil {
		// Nothing is left behind: no process runs (start stops what it
		// started), and the caller may retry from scratch.
		_ = h.remove(req.Name)
		return hypervisor.VM{}, fmt.Errorf("cloning %s from %s: %w", req.Name, req.Template, err)
	}
	return vm, nil
}

// existing answers a Clone whose name has a record, under the name's lock:
// the clone already made (or half made) for the same operation, or a name
// taken by another.
func (h *Hypervisor) existing(ctx context.Context, rec record, req hypervisor.CloneRequest) (hypervisor.VM, error) {
	if rec.Operation == "" || rec.Operation != req.Operation {
		return hypervisor.VM{}, fmt.Errorf("cloning %s: %w (made by %q)", req.Name, hypervisor.ErrNameTaken, rec.Operation)
	}
	running, err := h.running(rec.Name)
	if err != nil {
		return hypervisor.VM{}, fmt.Errorf("cloning %s: %w", req.Name, err)
	}
	if running {
		if rec.PID == 0 { // its starter died between starting it and recording it
			pid := findVM(h.path(rec.Name, ".run"))
			if pid == 0 {
				return hypervisor.VM{}, fmt.Errorf("cloning %s: its process runs, but its pid is not recorded and not found in /proc", req.Name)
			}
			rec.PID, rec.ID = pid, fmt.Sprintf("pid-%d", pid)
			if err := h.write(rec); err != nil {
				return hypervisor.VM{}, fmt.Errorf("cloning %s: %w", req.Name, err)
			}
		}
		alive := func() bool { ok, _ := h.running(rec.Name); return ok }
		if err := h.awaitReady(ctx, rec.Address, alive); err != nil {
			return hypervisor.VM{}, fmt.Errorf("cloning %s: the clone made before: %w", req.Name, err)
		}
		return rec.vm(true), nil
	}
	// Made but not running (its starter crashed, or it died): start it
	// again from its state, or from a new snapshot if the state never
	// made it to disk. A failure here leaves the record: the clone is
	// this operation's, and a retry or Destroy deals with it.
	if rec.State != "" {
		if _, err := os.Stat(rec.State); err == nil {
			vm, err := h.start(ctx, rec)
			if err != nil {
				return hypervisor.VM{}, fmt.Errorf("cloning %s: restarting it from its state: %w", req.Name, err)
			}
			return vm, nil
		}
	}
	if rec.Template == "" {
		return hypervisor.VM{}, fmt.Errorf("cloning %s: its record names no template and it has no state", req.Name)
	}
	rec.State = h.path(rec.Name, ".state")
	vm, err := h.snapshotAndStart(ctx, rec)
	if err != nil {
		return hypervisor.VM{}, fmt.Errorf("cloning %s from %s: %w", req.Name, rec.Template, err)
	}
	return vm, nil
}

// template returns the record of a running template.
func (h *Hypervisor) template(name string) (record, error) {
	if validName(name) != nil {
		return record{}, fmt.Errorf("template: %w", hypervisor.ErrNotFound)
	}
	t, found, err := h.read(name)
	if err != nil {
		return record{}, fmt.Errorf("template: %w", err)
	}
	if !found {
		return record{}, fmt.Errorf("template: %w", hypervisor.ErrNotFound)
	}
	running, err := h.running(name)
	if err != nil {
		return record{}, fmt.Errorf("template: %w", err)
	}
	if !running {
		return record{}, fmt.Errorf("template: not running: %w", hypervisor.ErrNotFound)
	}
	return t, nil
}

// snapshotAndStart writes the template's state to rec.State (through a
// temporary file, so that rec.State exists only whole) and starts rec.
func (h *Hypervisor) snapshotAndStart(ctx context.Context, rec record) (hypervisor.VM, error) {
	t, err := h.template(rec.Template)
	if err != nil {
		return hypervisor.VM{}, err
	}
	tmp := rec.State + ".tmp-" + randHex()
	if err := h.cfg.Snapshot(ctx, t.vm(true), tmp); err != nil {
		_ = os.Remove(tmp)
		return hypervisor.VM{}, fmt.Errorf("snapshot: %w", err)
	}
	if err := os.Rename(tmp, rec.State); err != nil {
		_ = os.Remove(tmp)
		return hypervisor.VM{}, fmt.Errorf("snapshot: %w", err)
	}
	return h.start(ctx, rec)
}

// start runs rec's process (from rec.State, if any) on a free port and
// waits until it serves, recording it before and after starting it. The
// caller holds the name's lock and has seen the VM not running. On error
// no process of it runs.
func (h *Hypervisor) start(ctx context.Context, rec record) (hypervisor.VM, error) {
	addr, err := freeAddr()
	if err != nil {
		return hypervisor.VM{}, err
	}
	rec.Address, rec.PID, rec.ID = addr, 0, ""
	if err := h.write(rec); err != nil {
		return hypervisor.VM{}, err
	}

	// The run lock, taken here and handed to the child: its open file
	// description stays locked for as long as the child (or anything it
	// forks) lives.
	run, err := os.OpenFile(h.path(rec.Name, ".run"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return hypervisor.VM{}, err
	}
	defer run.Close()
	if err := flockWait(ctx, run, syscall.LOCK_EX, time.Second); err != nil {
		return hypervisor.VM{}, fmt.Errorf("taking its run lock (does an old process of it still run?): %w", err)
	}
	logf, err := os.OpenFile(h.path(rec.Name, ".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return hypervisor.VM{}, err
	}
	defer logf.Close()
	cmd := h.cfg.Command(rec.Name, addr, rec.State)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = append(cmd.ExtraFiles, run)
	// Its own process group: a signal to the starter (a SIGKILL of the
	// agent, a ^C in its terminal) does not reach it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	h.mu.Lock() // no Close between the check and the registration
	if h.closed {
		h.mu.Unlock()
		return hypervisor.VM{}, errClosed
	}
	if err := cmd.Start(); err != nil {
		h.mu.Unlock()
		return hypervisor.VM{}, err
	}
	c := &child{cmd: cmd, exited: make(chan struct{})}
	h.children[rec.Name] = c
	h.mu.Unlock()
	_ = run.Close() // the child holds the lock now
	go h.reap(rec.Name, c)

	pid := cmd.Process.Pid
	rec.PID, rec.ID = pid, fmt.Sprintf("pid-%d", pid)
	if err := h.write(rec); err != nil {
		h.stopChild(c)
		return hypervisor.VM{}, err
	}
	alive := func() bool {
		select {
		case <-c.exited:
			return false
		default:
			return true
		}
	}
	if err := h.awaitReady(ctx, addr, alive); err != nil {
		h.stopChild(c)
		return hypervisor.VM{}, fmt.Errorf("%w (its log: %s)", err, logf.Name())
	}
	h.cfg.Logger.Info("vm started", "vm", rec.Name, "pid", pid, "addr", addr, "from_state", rec.State != "")
	return rec.vm(true), nil
}

// reap waits for a child, so that it leaves no zombie while this process
// lives.
func (h *Hypervisor) reap(name string, c *child) {
	_ = c.cmd.Wait()
	close(c.exited)
	h.mu.Lock()
	if h.children[name] == c {
		delete(h.children, name)
	}
	h.mu.Unlock()
}

// stopChild stops a child of this Hypervisor: SIGTERM to its group, then
// SIGKILL after the grace period. Its pid cannot be reused before it is
// reaped, so signalling it is safe.
func (h *Hypervisor) stopChild(c *child) {
	pid := c.cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(gracePeriod):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-c.exited
	}
}

func (h *Hypervisor) awaitReady(ctx context.Context, addr string, alive func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.BootTimeout)
	defer cancel()
	var last error
	for {
		if last = h.cfg.Ready(ctx, addr); last == nil {
			return nil
		}
		if !alive() {
			return errors.New("process exited before it served")
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready within %s: %w", h.cfg.BootTimeout, last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Destroy keeps hypervisor.Destroyer's contract: under the name's lock it
// stops the process (SIGTERM to its group, SIGKILL after a grace period),
// waits until its run lock is free, and removes its record, state and
// locks. The log stays, for the post-mortem.
func (h *Hypervisor) Destroy(ctx context.Context, name string) error {
	if err := validName(name); err != nil {
		return fmt.Errorf("destroying: %w", err)
	}
	unlock, err := h.lock(ctx, name)
	if err != nil {
		return fmt.Errorf("destroying %s: %w", name, err)
	}
	defer h.unlock(name, unlock)
	rec, found, err := h.read(name)
	if err != nil {
		return fmt.Errorf("destroying %s: %w", name, err)
	}
	if found {
		if err := h.stop(ctx, rec); err != nil {
			return fmt.Errorf("destroying %s: %w", name, err)
		}
	} else if running, _ := h.running(name); running {
		// No record, yet something holds its run lock: not ours to kill.
		return fmt.Errorf("destroying %s: a process holds its run lock but it has no record", name)
	}
	if err := h.remove(name); err != nil {
		return fmt.Errorf("destroying %s: %w", name, err)
	}
	if found {
		h.cfg.Logger.Info("vm destroyed", "vm", name, "pid", rec.PID)
	}
	return nil
}

// remove deletes a VM's state, run file and (last) record.
func (h *Hypervisor) remove(name string) error {
	for _, ext := range []string{".state", ".run", ".json"} {
		if err := os.Remove(h.path(name, ext)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// stop stops rec's process if it runs, by its process group, and waits
// until its run lock is free.
func (h *Hypervisor) stop(ctx context.Context, rec record) error {
	run := h.path(rec.Name, ".run")
	running, err := h.running(rec.Name)
	if err != nil || !running {
		return err
	}
	pid := rec.PID
	if pid <= 0 || !holds(pid, run) {
		pid = findVM(run)
	}
	if pid <= 0 {
		return errors.New("its process runs, but its pid is neither recorded nor found in /proc")
	}
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	if h.awaitStopped(ctx, rec.Name, gracePeriod) {
		h.cfg.Logger.Info("vm stopped", "vm", rec.Name, "pid", pid)
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	if h.awaitStopped(ctx, rec.Name, gracePeriod) {
		h.cfg.Logger.Info("vm killed", "vm", rec.Name, "pid", pid)
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return fmt.Errorf("process group %d still holds its run lock after SIGKILL", pid)
}

func (h *Hypervisor) awaitStopped(ctx context.Context, name string, d time.Duration) bool {
	deadline := time.After(d)
	for {
		if running, err := h.running(name); err == nil && !running {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-deadline:
			return false
		case <-time.After(lockPoll):
		}
	}
}

// Lookup keeps hypervisor.Finder's contract. It takes no lock: records
// are replaced atomically. A VM being cloned is found, not running, as
// soon as its record is written.
func (h *Hypervisor) Lookup(_ context.Context, name string) (hypervisor.VM, error) {
	if validName(name) != nil {
		return hypervisor.VM{}, fmt.Errorf("looking up %s: %w", name, hypervisor.ErrNotFound)
	}
	rec, found, err := h.read(name)
	if err != nil {
		return hypervisor.VM{}, fmt.Errorf("looking up %s: %w", name, err)
	}
	if !found {
		return hypervisor.VM{}, fmt.Errorf("looking up %s: %w", name, hypervisor.ErrNotFound)
	}
	running, err := h.running(name)
	if err != nil {
		return hypervisor.VM{}, fmt.Errorf("looking up %s: %w", name, err)
	}
	return rec.vm(running), nil
}

// List returns every VM recorded in Dir, sorted by name, each Running as
// its run lock says.
func (h *Hypervisor) List(_ context.Context) ([]hypervisor.VM, error) {
	recs, err := h.records()
	if err != nil {
		return nil, err
	}
	vms := make([]hypervisor.VM, 0, len(recs))
	for _, rec := range recs {
		running, err := h.running(rec.Name)
		if err != nil {
			return nil, fmt.Errorf("listing VMs: %s: %w", rec.Name, err)
		}
		vms = append(vms, rec.vm(running))
	}
	return vms, nil
}

// StopAll stops every VM recorded in Dir, whoever started it, by its
// process group; their records stay (stopped VMs). It is a test's
// teardown: the agents' clones included.
func (h *Hypervisor) StopAll(ctx context.Context) error {
	recs, err := h.records()
	if err != nil {
		return err
	}
	var errs []error
	for _, rec := range recs {
		errs = append(errs, h.stopLocked(ctx, rec.Name))
	}
	return errors.Join(errs...)
}

func (h *Hypervisor) stopLocked(ctx context.Context, name string) error {
	unlock, err := h.lock(ctx, name)
	if err != nil {
		return fmt.Errorf("stopping %s: %w", name, err)
	}
	defer h.unlock(name, unlock)
	rec, found, err := h.read(name)
	if err != nil || !found {
		return err
	}
	if err := h.stop(ctx, rec); err != nil {
		return fmt.Errorf("stopping %s: %w", name, err)
	}
	return nil
}

// Close stops every process this Hypervisor started, unless Detached;
// their records stay (stopped VMs). Later calls of Boot and Clone fail.
func (h *Hypervisor) Close() {
	h.mu.Lock()
	h.closed = true
	children := h.children
	h.children = map[string]*child{}
	h.mu.Unlock()
	if h.cfg.Detached {
		return
	}
	var wg sync.WaitGroup
	for _, c := range children {
		wg.Go(func() { h.stopChild(c) })
	}
	wg.Wait()
}

// records reads every record in Dir, sorted by name.
func (h *Hypervisor) records() ([]record, error) {
	files, err := filepath.Glob(filepath.Join(h.cfg.Dir, "*.json"))
	if err != nil {
		return nil, err
	}
	var recs []record
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		rec, found, err := h.read(name)
		if err != nil {
			return nil, fmt.Errorf("listing VMs: %w", err)
		}
		if found {
			recs = append(recs, rec)
		}
	}
	slices.SortFunc(recs, func(a, b record) int { return strings.Compare(a.Name, b.Name) })
	return recs, nil
}

func (h *Hypervisor) read(name string) (record, bool, error) {
	b, err := os.ReadFile(h.path(name, ".json"))
	if errors.Is(err, os.ErrNotExist) {
		return record{}, false, nil
	}
	if err != nil {
		return record{}, false, err
	}
	var rec record
	if err := json.Unmarshal(b, &rec); err != nil {
		return record{}, false, fmt.Errorf("record %s: %w", name, err)
	}
	if rec.Name != name {
		return record{}, false, fmt.Errorf("record %s: names %q", name, rec.Name)
	}
	return rec, true, nil
}

// write replaces rec's record atomically: a temporary file renamed over
// it. (Not synced: the failures it survives are a process's, not the
// machine's.)
func (h *Hypervisor) write(rec record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	path := h.path(rec.Name, ".json")
	tmp := path + ".tmp-" + randHex()
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("writing record: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("writing record: %w", err)
	}
	return nil
}

// running reports whether someone holds name's run lock. It probes with a
// shared lock, so probes do not collide with each other; a start that
// meets a probe tries again.
func (h *Hypervisor) running(name string) (bool, error) {
	f, err := os.Open(h.path(name, ".run"))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	switch err := flock(f, syscall.LOCK_SH|syscall.LOCK_NB); {
	case err == nil:
		_ = flock(f, syscall.LOCK_UN)
		return false, nil
	case errors.Is(err, syscall.EWOULDBLOCK):
		return true, nil
	default:
		return false, fmt.Errorf("probing %s: %w", f.Name(), err)
	}
}

// lock takes name's lock, polling so that ctx is honoured, and returns
// its release. A Destroy removes the lock file while holding it, so lock
// checks that the file it locked is still the one at the path.
func (h *Hypervisor) lock(ctx context.Context, name string) (func(), error) {
	path := h.path(name, ".lock")
	for {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return nil, err
		}
		if err := flockWait(ctx, f, syscall.LOCK_EX, 0); err != nil {
			f.Close()
			return nil, fmt.Errorf("taking its lock: %w", err)
		}
		held, err1 := f.Stat()
		now, err2 := os.Stat(path)
		if err1 == nil && err2 == nil && os.SameFile(held, now) {
			return func() { f.Close() }, nil
		}
		f.Close() // destroyed meanwhile: lock the new file
	}
}

// unlock releases name's lock, removing the lock file first if name has
// no record (a Destroy, a failed Clone), so that Dir does not fill with
// the lock files of VMs that are gone. Removing it while holding it is
// safe: lock checks that the file it locked is still the one in Dir.
func (h *Hypervisor) unlock(name string, release func()) {
	if _, err := os.Stat(h.path(name, ".json")); errors.Is(err, os.ErrNotExist) {
		_ = os.Remove(h.path(name, ".lock"))
	}
	release()
}

func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// flockWait takes a lock, polling every lockPoll until ctx ends or, if
// limit > 0, limit has passed.
func flockWait(ctx context.Context, f *os.File, how int, limit time.Duration) error {
	var deadline <-chan time.Time
	if limit > 0 {
		deadline = time.After(limit)
	}
	for {
		err := flock(f, how|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return err
		case <-time.After(lockPoll):
		}
	}
}

// holds reports whether process pid has the file at path open. If /proc
// cannot tell, it trusts the caller.
func holds(pid int, path string) bool {
	want, err := os.Stat(path)
	if err != nil {
		return false
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if errors.Is(err, os.ErrNotExist) {
		return false // no such process
	}
	if err != nil {
		return true
	}
	for _, fd := range fds {
		if st, err := os.Stat(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && os.SameFile(st, want) {
			return true
		}
	}
	return false
}

// findVM finds, through /proc, the process group of a process that has
// the run file at path open: the VM (whose pid is its group's), or one it
// forked. 0 means none found.
func findVM(path string) int {
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if holds(pid, path) {
			if pgrp := processGroup(pid); pgrp > 0 {
				return pgrp
			}
		}
	}
	return 0
}

// processGroup reads a process's group from /proc/<pid>/stat.
func processGroup(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// pid (comm) state ppid pgrp ...; comm may hold spaces and parens.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 3 {
		return 0
	}
	pgrp, _ := strconv.Atoi(f[2])
	return pgrp
}

func randHex() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
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
