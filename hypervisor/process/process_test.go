package process_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/hypervisor"
	"github.com/mitosis-autoscaler/mitosis/hypervisor/hypervisortest"
	"github.com/mitosis-autoscaler/mitosis/hypervisor/process"
)

// The test binary doubles as the VM's program: with PROCESS_TEST_VM=1 it
// serves a tiny "application" whose state is a name and a counter that
// rises with every request, so that a clone can be seen to start from its
// template's state.
//
// With PROCESS_TEST_AGENT=1 it is an agent: it opens a Detached Hypervisor
// on a Dir, clones, prints the clone as JSON and waits to be killed.
func TestMain(m *testing.M) {
	if os.Getenv("PROCESS_TEST_VM") == "1" {
		os.Exit(runVM())
	}
	if os.Getenv("PROCESS_TEST_AGENT") == "1" {
		os.Exit(runAgent())
	}
	os.Exit(m.Run())
}

func runAgent() int {
	dir := flag.String("dir", "", "")
	template := flag.String("template", "", "")
	op := flag.String("op", "", "")
	flag.Parse()
	h, err := process.New(config(*dir, true))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	vm, err := h.Clone(context.Background(), hypervisor.CloneRequest{Operation: *op, Name: "mitosis-" + *op, Template: *template, Fence: 9})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	_ = json.NewEncoder(os.Stdout).Encode(vm)
	time.Sleep(time.Hour) // until killed
	return 0
}

type vmState struct {
	Name     string `json:"name"`
	Requests int    `json:"requests"`
	Restored bool   `json:"restored"`
}

func runVM() int {
	name := flag.String("name", "", "")
	addr := flag.String("addr", "", "")
	from := flag.String("state", "", "")
	flag.Parse()
	st := vmState{Name: *name}
	if *from != "" {
		b, err := os.ReadFile(*from)
		if err != nil || json.Unmarshal(b, &st) != nil {
			fmt.Fprintln(os.Stderr, "bad state", err)
			return 1
		}
		st.Restored = true
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /state", func(w http.ResponseWriter, _ *http.Request) {
		st.Requests++
		_ = json.NewEncoder(w).Encode(st)
	})
	mux.HandleFunc("POST /snapshot", func(w http.ResponseWriter, r *http.Request) {
		b, _ := json.Marshal(st)
		if err := os.WriteFile(r.URL.Query().Get("file"), b, 0o600); err != nil {
			http.Error(w, err.Error(), 500)
		}
	})
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	srv := &http.Server{Handler: mux}
	go func() {
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM)
		<-c
		_ = srv.Close()
	}()
	_ = srv.Serve(l)
	return 0
}

func newHypervisor(t *testing.T) *process.Hypervisor {
	t.Helper()
	return open(t, t.TempDir(), false)
}

// open opens a Hypervisor on dir; every VM recorded in dir is stopped
// when the test ends.
func open(t *testing.T, dir string, detached bool) *process.Hypervisor {
	t.Helper()
	h, err := process.New(config(dir, detached))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.Close()
		if err := h.StopAll(context.Background()); err != nil {
			t.Errorf("StopAll: %v", err)
		}
	})
	return h
}

// config runs the test binary as the VMs' program.
func config(dir string, detached bool) process.Config {
	self, err := os.Executable()
	if err != nil {
		panic(err)
	}
	return process.Config{
		Dir: dir, Detached: detached,
		Command: func(name, addr, state string) *exec.Cmd {
			cmd := exec.Command(self, "-name", name, "-addr", addr, "-state", state)
			// A race-detecting binary sleeps 1 s at exit unless told not to.
			cmd.Env = append(os.Environ(), "PROCESS_TEST_VM=1", "GORACE=atexit_sleep_ms=0")
			return cmd
		},
		Snapshot: func(ctx context.Context, vm hypervisor.VM, file string) error {
			return post(ctx, "http://"+vm.Address+"/snapshot?file="+file)
		},
		Ready: func(ctx context.Context, addr string) error {
			_, err := state(ctx, addr)
			return err
		},
	}
}

func post(ctx context.Context, url string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s: %s", resp.Status, b)
	}
	return nil
}

func state(ctx context.Context, addr string) (vmState, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/state", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return vmState{}, err
	}
	defer resp.Body.Close()
	var st vmState
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

func TestConformance(t *testing.T) {
	for _, detached := range []bool{false, true} {
		t.Run(fmt.Sprintf("Detached=%v", detached), func(t *testing.T) {
			hypervisortest.Run(t, func(t *testing.T) hypervisortest.Harness {
				h := open(t, t.TempDir(), detached)
				if _, err := h.Boot(context.Background(), "web-0"); err != nil {
					t.Fatal(err)
				}
				return hypervisortest.Harness{Hypervisor: h, Template: "web-0", Timeout: 20 * time.Second}
			})
		})
	}
}

func TestCloneStartsFromItsTemplatesState(t *testing.T) {
	ctx := context.Background()
	h := newHypervisor(t)
	tmpl, err := h.Boot(ctx, "web-0")
	if err != nil {
		t.Fatal(err)
	}
	for range 5 { // warm it: its counter rises
		if _, err := state(ctx, tmpl.Address); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := state(ctx, tmpl.Address)
	clone, err := h.Clone(ctx, hypervisor.CloneRequest{Operation: "op-1", Name: "mitosis-op-1", Template: "web-0", Fence: 3})
	if err != nil {
		t.Fatal(err)
	}
	if clone.Address == tmpl.Address || !strings.HasPrefix(clone.Address, "127.0.0.1:") {
		t.Errorf("clone address %q, template %q: want a loopback address of its own", clone.Address, tmpl.Address)
	}
	got, err := state(ctx, clone.Address)
	if err != nil {
		t.Fatal(err)
	}
	// The clone continues the template's state (its name included, until
	// the node API gives it its own identity).
	if !got.Restored || got.Name != "web-0" || got.Requests <= before.Requests {
		t.Errorf("clone state %+v, want restored from web-0, counting on from its %d requests", got, before.Requests)
	}
	if clone.Method != "process-restore" || clone.Operation != "op-1" || clone.Fence != 3 {
		t.Errorf("clone metadata %+v", clone)
	}
}

func TestDestroyStopsTheProcess(t *testing.T) {
	ctx := context.Background()
	h := newHypervisor(t)
	vm, err := h.Boot(ctx, "web-0")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Destroy(ctx, "web-0"); err != nil {
		t.Fatal(err)
	}
	if _, err := state(ctx, vm.Address); err == nil {
		t.Error("the VM still answers after Destroy")
	}
	if _, err := h.Lookup(ctx, "web-0"); !errors.Is(err, hypervisor.ErrNotFound) {
		t.Errorf("Lookup after Destroy: %v", err)
	}
}

func TestBootRefusesARunningName(t *testing.T) {
	h := newHypervisor(t)
	if _, err := h.Boot(context.Background(), "web-0"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Boot(context.Background(), "web-0"); !errors.Is(err, hypervisor.ErrNameTaken) {
		t.Errorf("second Boot: %v, want ErrNameTaken", err)
	}
}

// pidOf is the pid in a VM's ID ("pid-<pid>").
func pidOf(t *testing.T, vm hypervisor.VM) int {
	t.Helper()
	pid, err := strconv.Atoi(strings.TrimPrefix(vm.ID, "pid-"))
	if err != nil || pid <= 0 {
		t.Fatalf("VM %s has ID %q, want pid-<pid>", vm.Name, vm.ID)
	}
	return pid
}

func list(t *testing.T, h *process.Hypervisor) []hypervisor.VM {
	t.Helper()
	vms, err := h.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return vms
}

// names lists the names of vms, with "!" after those not running.
func names(vms []hypervisor.VM) []string {
	var out []string
	for _, vm := range vms {
		n := vm.Name
		if !vm.Running {
			n += "!"
		}
		out = append(out, n)
	}
	return out
}

func wantVMs(t *testing.T, h *process.Hypervisor, want ...string) []hypervisor.VM {
	t.Helper()
	vms := list(t, h)
	if got := names(vms); !slices.Equal(got, want) {
		t.Fatalf("List = %v, want %v (! = not running)", got, want)
	}
	return vms
}

// Two Hypervisors over one Dir are two agents sharing a hypervisor: what
// one makes, the other finds, returns instead of making again, refuses to
// another operation, and destroys.
func TestTwoHypervisorsShareADir(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, b := open(t, dir, true), open(t, dir, true)
	if _, err := a.Boot(ctx, "web-0"); err != nil {
		t.Fatal(err)
	}
	req := hypervisor.CloneRequest{Operation: "op-1", Name: "mitosis-op-1", Template: "web-0", Fence: 2}
	made, err := a.Clone(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	found, err := b.Lookup(ctx, req.Name)
	if err != nil {
		t.Fatal(err)
	}
	if found != made {
		t.Errorf("the other's Lookup = %+v, want %+v", found, made)
	}
	retried := req
	retried.Fence = 3 // a new leader retrying
	again, err := b.Clone(ctx, retried)
	if err != nil {
		t.Fatal(err)
	}
	if again != made {
		t.Errorf("the other's Clone of the same operation = %+v, want the clone made %+v", again, made)
	}
	vms := wantVMs(t, b, "mitosis-op-1", "web-0")
	if pidOf(t, vms[0]) != pidOf(t, made) {
		t.Errorf("List has %s, want the pid of the clone made, %s", vms[0].ID, made.ID)
	}
	stranger := req
	stranger.Operation = "op-2"
	if _, err := b.Clone(ctx, stranger); !errors.Is(err, hypervisor.ErrNameTaken) {
		t.Errorf("Clone of the name for another operation: %v, want ErrNameTaken", err)
	}
	if err := b.Destroy(ctx, req.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Lookup(ctx, req.Name); !errors.Is(err, hypervisor.ErrNotFound) {
		t.Errorf("Lookup by the maker after the other destroyed it: %v", err)
	}
	if _, err := state(ctx, made.Address); err == nil {
		t.Error("the clone still answers after the other destroyed it")
	}
	wantVMs(t, a, "web-0")
	files, _ := filepath.Glob(filepath.Join(dir, "mitosis-op-1.*"))
	if want := []string{filepath.Join(dir, "mitosis-op-1.log")}; !slices.Equal(files, want) {
		t.Errorf("after Destroy the Dir holds %v, want only its log", files)
	}
}

// A VM outlives the agent that made it: the agent, a process of its own,
// is SIGKILLed; the VM runs on, and the test's own Hypervisor finds it
// and destroys it.
func TestVMOutlivesItsMaker(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	h := open(t, dir, false)
	if _, err := h.Boot(ctx, "web-0"); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	agent := exec.Command(self, "-dir", dir, "-template", "web-0", "-op", "op-7")
	agent.Env = append(os.Environ(), "PROCESS_TEST_AGENT=1")
	agent.Stderr = os.Stderr
	out, err := agent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = agent.Process.Kill(); _ = agent.Wait() })
	var made hypervisor.VM
	if err := json.NewDecoder(out).Decode(&made); err != nil {
		t.Fatalf("reading the agent's clone: %v", err)
	}
	if err := agent.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = agent.Wait()

	if _, err := state(ctx, made.Address); err != nil {
		t.Fatalf("the clone stopped answering with its maker: %v", err)
	}
	got, err := h.Lookup(ctx, made.Name)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Running || got.ID != made.ID || got.Operation != "op-7" || got.Fence != 9 {
		t.Errorf("Lookup after its maker died = %+v, want %+v running", got, made)
	}
	if err := h.Destroy(ctx, made.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := state(ctx, made.Address); err == nil {
		t.Error("the clone still answers after Destroy")
	}
	if _, err := h.Lookup(ctx, made.Name); !errors.Is(err, hypervisor.ErrNotFound) {
		t.Errorf("Lookup after Destroy: %v", err)
	}
	wantVMs(t, h, "web-0")
}

// A crash of the Clone's caller leaves a record: the next Clone of the
// same operation finishes the clone, whatever point the crash reached.
func TestCloneFinishesACloneCutShort(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name  string
		state *vmState // the state file the crash left, if any
	}{
		{"before the snapshot", nil},
		{"after the snapshot, before the process", &vmState{Name: "web-0", Requests: 41}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			h := open(t, dir, false)
			if _, err := h.Boot(ctx, "web-0"); err != nil {
				t.Fatal(err)
			}
			stateFile := filepath.Join(dir, "mitosis-op-3.state")
			rec := fmt.Sprintf(`{"name":"mitosis-op-3","pid":0,"address":"127.0.0.1:1","host":"localhost","operation":"op-3","fence":4,"method":"process-restore","template":"web-0","state":%q}`, stateFile)
			if err := os.WriteFile(filepath.Join(dir, "mitosis-op-3.json"), []byte(rec), 0o600); err != nil {
				t.Fatal(err)
			}
			if c.state != nil {
				b, _ := json.Marshal(c.state)
				if err := os.WriteFile(stateFile, b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := h.Clone(ctx, hypervisor.CloneRequest{Operation: "op-9", Name: "mitosis-op-3", Template: "web-0"}); !errors.Is(err, hypervisor.ErrNameTaken) {
				t.Errorf("Clone for another operation: %v, want ErrNameTaken", err)
			}
			vm, err := h.Clone(ctx, hypervisor.CloneRequest{Operation: "op-3", Name: "mitosis-op-3", Template: "web-0", Fence: 5})
			if err != nil {
				t.Fatal(err)
			}
			if !vm.Running || vm.Fence != 4 || vm.Address == "127.0.0.1:1" {
				t.Errorf("finished clone = %+v, want running, with the fence it was made with (4), on a new address", vm)
			}
			st, err := state(ctx, vm.Address)
			if err != nil {
				t.Fatal(err)
			}
			if !st.Restored || st.Name != "web-0" || (c.state != nil && st.Requests <= c.state.Requests) {
				t.Errorf("its state = %+v, want restored from web-0's (from the state file left, if any)", st)
			}
			vms := wantVMs(t, h, "mitosis-op-3", "web-0")
			if vms[0].ID != vm.ID {
				t.Errorf("List has %s, Clone returned %s", vms[0].ID, vm.ID)
			}
		})
	}

	// The crash came between the process's start and the record of its
	// pid: the process runs, its pid is found through its run lock.
	t.Run("after the process, before its pid", func(t *testing.T) {
		dir := t.TempDir()
		a, b := open(t, dir, true), open(t, dir, true)
		if _, err := a.Boot(ctx, "web-0"); err != nil {
			t.Fatal(err)
		}
		req := hypervisor.CloneRequest{Operation: "op-4", Name: "mitosis-op-4", Template: "web-0", Fence: 1}
		made, err := a.Clone(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "mitosis-op-4.json")
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var rec map[string]any
		if err := json.Unmarshal(raw, &rec); err != nil {
			t.Fatal(err)
		}
		rec["pid"], rec["id"] = 0, ""
		raw, _ = json.Marshal(rec)
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		again, err := b.Clone(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if again != made {
			t.Errorf("Clone after the pid was lost = %+v, want %+v", again, made)
		}
		if err := b.Destroy(ctx, req.Name); err != nil {
			t.Fatal(err)
		}
		if _, err := state(ctx, made.Address); err == nil {
			t.Error("the clone still answers after Destroy")
		}
		wantVMs(t, a, "web-0")
	})
}

// Two agents asking for the same clone at once make one process.
func TestConcurrentClonesMakeOneProcess(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	hs := []*process.Hypervisor{open(t, dir, true), open(t, dir, true), open(t, dir, true)}
	if _, err := hs[0].Boot(ctx, "web-0"); err != nil {
		t.Fatal(err)
	}
	req := hypervisor.CloneRequest{Operation: "op-5", Name: "mitosis-op-5", Template: "web-0", Fence: 1}
	vms := make([]hypervisor.VM, 2*len(hs))
	errs := make([]error, len(vms))
	var wg sync.WaitGroup
	for i := range vms {
		wg.Go(func() { vms[i], errs[i] = hs[i%len(hs)].Clone(ctx, req) })
	}
	wg.Wait()
	for i := range vms {
		if errs[i] != nil {
			t.Fatalf("Clone #%d: %v", i, errs[i])
		}
		if vms[i] != vms[0] {
			t.Errorf("Clone #%d = %+v, #0 = %+v: want one clone", i, vms[i], vms[0])
		}
	}
	listed := wantVMs(t, hs[1], "mitosis-op-5", "web-0")
	if listed[0].ID != vms[0].ID {
		t.Errorf("List has %s, the Clones returned %s", listed[0].ID, vms[0].ID)
	}
}

// Close stops the VMs its Hypervisor started, unless Detached.
func TestCloseStopsItsVMsUnlessDetached(t *testing.T) {
	ctx := context.Background()
	for _, detached := range []bool{false, true} {
		t.Run(fmt.Sprintf("Detached=%v", detached), func(t *testing.T) {
			dir := t.TempDir()
			observer := open(t, dir, false)
			h, err := process.New(config(dir, detached))
			if err != nil {
				t.Fatal(err)
			}
			vm, err := h.Boot(ctx, "web-0")
			if err != nil {
				t.Fatal(err)
			}
			h.Close()
			if _, err := h.Boot(ctx, "web-1"); err == nil {
				t.Error("Boot after Close succeeded")
			}
			got, err := observer.Lookup(ctx, "web-0")
			if err != nil {
				t.Fatal(err)
			}
			if got.Running != detached {
				t.Errorf("after Close, web-0 Running = %v, want %v", got.Running, detached)
			}
			_, err = state(ctx, vm.Address)
			if answers := err == nil; answers != detached {
				t.Errorf("after Close, web-0 answers = %v, want %v", answers, detached)
			}
			if err := observer.StopAll(ctx); err != nil {
				t.Fatal(err)
			}
			wantVMs(t, observer, "web-0!")
		})
	}
}
