package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/hypervisor"
	"github.com/mitosis-autoscaler/mitosis/hypervisor/process"
	"github.com/mitosis-autoscaler/mitosis/node"
)

const token = "e2e-canary-token-4d1f"

// The whole life of a clone, with the real binary under the process
// hypervisor: boot a template, warm it, prepare it, clone it, resume it,
// finalize the clone, destroy everything.
func TestCloneWithTheProcessHypervisor(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	bin := filepath.Join(dir, "demo-node")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building demo-node: %v\n%s", err, out)
	}
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	vms := filepath.Join(dir, "vms")
	if err := os.Mkdir(vms, 0o700); err != nil {
		t.Fatal(err)
	}
	api := node.NewClient(token, node.ClientOptions{Timeout: 2 * time.Second, Retries: -1})
	hv, err := process.New(process.Config{
		Dir: vms,
		Command: func(name, addr, state string) *exec.Cmd {
			args := []string{"--id", name, "--listen", addr, "--token-file", tokenFile, "--state-dir", vms,
				"--log-level", "debug", "--miss-cost", "10", "--cache-size", "1000"}
			if state != "" {
				args = append(args, "--from-state", state)
			}
			return exec.Command(bin, args...)
		},
		Snapshot: func(ctx context.Context, vm hypervisor.VM, file string) error {
			return api.Snapshot(ctx, vm.Address, "/-/snapshot?file="+url.QueryEscape(file))
		},
		Ready: func(ctx context.Context, addr string) error {
			_, err := api.Status(ctx, addr)
			return err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hv.Close) // stops every process by its pid

	tmpl, err := hv.Boot(ctx, "web-1")
	if err != nil {
		t.Fatal(err)
	}
	keys := rand.NewZipf(rand.New(rand.NewPCG(1, 1)), 1.1, 5, 199)
	users := clients(t, 3)
	coldUnits := 0
	for i := range 600 {
		r := work(t, users[i%len(users)], tmpl.Address, keys.Uint64())
		if r.code != http.StatusOK || r.nodeID != "web-1" {
			t.Fatalf("warming web-1: %+v", r)
		}
		if i < 50 {
			coldUnits += r.units
		}
	}

	const op = "op-1"
	if reply, err := api.Prepare(ctx, tmpl.Address, node.PrepareRequest{Operation: op, Mode: node.PrepareSuspend, Deadline: time.Now().Add(time.Minute)}); err != nil || !reply.Accepted {
		t.Fatalf("prepare: %+v %v", reply, err)
	}
	before := awaitState(t, api, tmpl.Address, node.StatePrepared)

	vm, err := hv.Clone(ctx, hypervisor.CloneRequest{Operation: op, Name: "mitosis-" + op, Template: "web-1"})
	if err != nil {
		t.Fatal(err)
	}
	if vm.Address == tmpl.Address || !strings.HasPrefix(vm.Address, "127.0.0.1:") {
		t.Fatalf("clone at %q, template at %q: want an address of its own", vm.Address, tmpl.Address)
	}
	st, err := api.Status(ctx, vm.Address)
	if err != nil {
		t.Fatal(err)
	}
	if st.ID != "web-1" || st.State != node.StatePrepared || st.Operation != op || st.Generation != before.Generation ||
		st.Sessions != before.Sessions || st.Sessions != len(users) || st.CacheHitRatio < before.CacheHitRatio-0.05 {
		t.Errorf("the clone before finalize: %+v, want the template's state, id, sessions and warmth: %+v", st, before)
	}
	if r := work(t, users[0], vm.Address, 1); r.code != http.StatusServiceUnavailable {
		t.Errorf("work on the clone before finalize: %+v, want 503", r)
	}

	if err := api.Resume(ctx, tmpl.Address, op); err != nil {
		t.Fatal(err)
	}
	if err := api.Finalize(ctx, vm.Address, node.FinalizeRequest{Operation: op, ID: "web-2", Address: vm.Address}); err != nil {
		t.Fatal(err)
	}
	st, err = api.Status(ctx, vm.Address)
	if err != nil {
		t.Fatal(err)
	}
	if st.ID != "web-2" || st.State != node.StateReady || st.Generation != before.Generation+1 || st.Sessions != 0 {
		t.Errorf("the clone after finalize: %+v, want web-2, ready, generation %d, no inherited session", st, before.Generation+1)
	}
	if ts, err := api.Status(ctx, tmpl.Address); err != nil || ts.ID != "web-1" || ts.State != node.StateReady || ts.Sessions != len(users) {
		t.Errorf("the template after the clone: %+v %v, want web-1 ready with its sessions", ts, err)
	}

	// The clone starts warm: its first requests cost a fraction of the
	// template's first ones.
	warmUnits := 0
	for range 50 {
		r := work(t, users[0], vm.Address, keys.Uint64())
		if r.code != http.StatusOK || r.nodeID != "web-2" {
			t.Fatalf("work on the clone: %+v", r)
		}
		warmUnits += r.units
	}
	t.Logf("work units of the first 50 requests: template %d (cold), clone %d", coldUnits, warmUnits)
	if warmUnits*3 > coldUnits {
		t.Errorf("the clone's first 50 requests cost %d units, the template's %d: want the clone several times cheaper", warmUnits, coldUnits)
	}

	if err := hv.Destroy(ctx, vm.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := api.Status(ctx, vm.Address); err == nil {
		t.Error("the destroyed clone still answers")
	}
	logs, _ := filepath.Glob(filepath.Join(vms, "*.log"))
	for _, f := range logs {
		b, _ := os.ReadFile(f)
		if len(b) == 0 || strings.Contains(string(b), token) {
			t.Errorf("%s: empty, or it holds the token", f)
		}
	}
}

func clients(t *testing.T, n int) []*http.Client {
	out := make([]*http.Client, n)
	for i := range out {
		jar, err := cookiejar.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = &http.Client{Jar: jar, Timeout: 5 * time.Second}
	}
	return out
}

type answer struct {
	code   int
	nodeID string
	units  int
}

func work(t *testing.T, c *http.Client, addr string, key uint64) answer {
	t.Helper()
	resp, err := c.Get(fmt.Sprintf("http://%s/work?key=k%d", addr, key))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	units, _ := strconv.Atoi(resp.Header.Get("X-Work-Units"))
	return answer{code: resp.StatusCode, nodeID: resp.Header.Get("X-Node-ID"), units: units}
}

func awaitState(t *testing.T, api *node.Client, addr string, want node.State) node.Status {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := api.Status(t.Context(), addr)
		if err == nil && st.State == want {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %+v %v, want state %s within 10 s", addr, st, err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
