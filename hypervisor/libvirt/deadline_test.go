package libvirt

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/hypervisor"
	"github.com/mitosis-autoscaler/mitosis/hypervisor/libvirt/libvirttest"
)

var errBlocked = errors.New("still blocked")

// within runs f and fails the test if it has not returned within limit
// (the call is left running: a hung call must not hang the test too). It
// may run on a goroutine of its own.
func within(t *testing.T, limit time.Duration, what string, f func() error) error {
	t.Helper()
	ch := make(chan error, 1)
	start := time.Now()
	go func() { ch <- f() }()
	select {
	case err := <-ch:
		t.Logf("%s returned after %v: %v", what, time.Since(start).Round(time.Millisecond), err)
		return err
	case <-time.After(limit):
		t.Errorf("%s still blocked after %v: its context's deadline is ignored", what, limit)
		return errBlocked
	}
}

func shortCtx(t *testing.T, d time.Duration) context.Context {
	c, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return c
}

// silentSocket is a unix socket that accepts connections and never
// answers: a daemon that hangs.
func silentSocket(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "mitosis-silent-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	path := filepath.Join(dir, "sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return path
}

func TestNewGivesUpAtItsDeadlineOnADaemonThatNeverAnswers(t *testing.T) {
	sock := silentSocket(t)
	cfg := Config{URI: "test+unix:///default?socket=" + sock, ImageDir: t.TempDir(), Logger: testLogger(t)}
	err := within(t, 3*time.Second, "New", func() error {
		c, err := New(shortCtx(t, 300*time.Millisecond), cfg)
		if err == nil {
			_ = c.Close()
		}
		return err
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("New against a silent socket: err = %v, want one wrapping context.DeadlineExceeded", err)
	}
}

// stopDaemon stops libvirtd with SIGSTOP until the test ends.
func stopDaemon(t *testing.T, d *libvirttest.Daemon) (resume func()) {
	t.Helper()
	var once sync.Once
	resume = func() { once.Do(func() { _ = syscall.Kill(d.PID, syscall.SIGCONT) }) }
	t.Cleanup(resume) // before the daemon's own cleanup stops it
	if err := syscall.Kill(d.PID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	return resume
}

func TestCallsGiveUpAtTheirDeadlineWhileTheDaemonIsStoppedAndReconnectAfter(t *testing.T) {
	d := libvirttest.Start(t, libvirttest.Options{})
	_ = d.Connect(t, "test:///default") // keeps the test driver's state
	cfg := Config{URI: d.URI("test", "/default"), ImageDir: t.TempDir(), Logger: testLogger(t), CloneMode: CloneModeCold}
	c, err := New(ctx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	resume := stopDaemon(t, d)

	const limit = 3 * time.Second
	calls := []struct {
		name string
		f    func(context.Context) error
	}{
		{"Lookup", func(ctx context.Context) error { _, err := c.Lookup(ctx, testTemplate); return err }},
		{"Destroy", func(ctx context.Context) error { return c.Destroy(ctx, "mitosis-gone") }},
		{"Clone", func(ctx context.Context) error { _, err := c.Clone(ctx, req("stopped", 1)); return err }},
		{"New", func(ctx context.Context) error {
			c2, err := New(ctx, cfg)
			if err == nil {
				_ = c2.Close()
			}
			return err
		}},
	}
	// Concurrently, so that each call also waits for the others' dial, or
	// has the connection dropped under it by another's deadline (its
	// error then wraps that call's context error).
	var wg sync.WaitGroup
	errs := make([]error, len(calls))
	for i, call := range calls {
		wg.Go(func() {
			errs[i] = within(t, limit, call.name, func() error { return call.f(shortCtx(t, 500*time.Millisecond)) })
		})
	}
	wg.Wait()
	for i, call := range calls {
		if !errors.Is(errs[i], context.DeadlineExceeded) {
			t.Errorf("%s on a stopped daemon: err = %v, want one wrapping context.DeadlineExceeded", call.name, errs[i])
		}
	}
	// Again, on the connection the first calls dropped.
	err = within(t, limit, "Lookup again", func() error {
		_, err := c.Lookup(shortCtx(t, 500*time.Millisecond), testTemplate)
		return err
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("second Lookup on a stopped daemon: err = %v, want one wrapping context.DeadlineExceeded", err)
	}
	// A call waiting for another's dial (here one with a long deadline)
	// gives up at its own.
	slow := make(chan error, 1)
	go func() {
		_, err := c.Lookup(shortCtx(t, 5*time.Second), testTemplate)
		slow <- err
	}()
	time.Sleep(100 * time.Millisecond) // the slow Lookup dials
	err = within(t, limit, "Lookup behind another's dial", func() error {
		_, err := c.Lookup(shortCtx(t, 300*time.Millisecond), testTemplate)
		return err
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Lookup waiting for another's dial: err = %v, want one wrapping context.DeadlineExceeded", err)
	}

	resume()
	if err := <-slow; err != nil {
		t.Logf("the slow Lookup, once the daemon runs again: %v", err)
	}
	vm, err := c.Lookup(ctx(t), testTemplate)
	if err != nil || !vm.Running {
		t.Fatalf("Lookup once the daemon runs again = %+v, %v: want the template, on a new connection", vm, err)
	}
	if err := c.Destroy(ctx(t), "mitosis-gone"); err != nil {
		t.Errorf("Destroy once the daemon runs again: %v", err)
	}
	if _, err := c.Lookup(ctx(t), "mitosis-gone"); !errors.Is(err, hypervisor.ErrNotFound) {
		t.Errorf("Lookup of a missing domain once the daemon runs again: err = %v, want ErrNotFound", err)
	}
}
