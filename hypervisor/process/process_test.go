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
	"strings"
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
func TestMain(m *testing.M) {
	if os.Getenv("PROCESS_TEST_VM") == "1" {
		os.Exit(runVM())
	}
	os.Exit(m.Run())
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
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	h, err := process.New(process.Config{
		Dir: t.TempDir(),
		Command: func(name, addr, state string) *exec.Cmd {
			cmd := exec.Command(self, "-name", name, "-addr", addr, "-state", state)
			cmd.Env = append(os.Environ(), "PROCESS_TEST_VM=1")
			return cmd
		},
		Snapshot: func(ctx context.Context, vm hypervisor.VM, file string) error {
			return post(ctx, "http://"+vm.Address+"/snapshot?file="+file)
		},
		Ready: func(ctx context.Context, addr string) error {
			_, err := state(ctx, addr)
			return err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
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
	hypervisortest.Run(t, func(t *testing.T) hypervisortest.Harness {
		h := newHypervisor(t)
		if _, err := h.Boot(context.Background(), "web-0"); err != nil {
			t.Fatal(err)
		}
		return hypervisortest.Harness{Hypervisor: h, Template: "web-0", Timeout: 20 * time.Second}
	})
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
