package haproxy_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/dispatcher/haproxy"
	"github.com/mitosis-autoscaler/mitosis/internal/testenv"
)

// field is column col of server name's line of "show servers state app",
// as an int; -1 when the server is absent.
func (l *lb) field(t *testing.T, name, col string) int {
	t.Helper()
	lines := strings.Split(l.servers(t), "\n")
	header := strings.Fields(strings.TrimPrefix(lines[1], "# "))
	for _, line := range lines[2:] {
		f := strings.Fields(line)
		if len(f) != len(header) || f[3] != name {
			continue
		}
		for i, h := range header {
			if h == col {
				n, err := strconv.Atoi(f[i])
				if err != nil {
					t.Fatalf("%s of %s: %q", col, name, f[i])
				}
				return n
			}
		}
		t.Fatalf("no column %s in %q", col, lines[1])
	}
	return -1
}

func (l *lb) dispatcherWith(t *testing.T, options string) *haproxy.Dispatcher {
	t.Helper()
	d, err := haproxy.New(context.Background(), haproxy.Config{
		Socket: l.socket, Backend: "app", Servers: []string{"web-1"}, ServerOptions: options,
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// HAProxy's srv_check_state / srv_agent_state bits and admin state bits.
const (
	chkConfigured = 0x2
	chkEnabled    = 0x4
	admDrain      = 0x8
)

func TestDrainUnderLoadLosesNoRequestAndSendsNoNewOne(t *testing.T) {
	l := startHAProxy(t)
	d := l.dispatcher(t)
	ctx := context.Background()

	// A request held open on web-1 (the only server yet) across the drain.
	held := make(chan string, 1)
	go func() {
		resp, err := http.Get(l.frontend + "/hold")
		if err != nil {
			held <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		held <- resp.Status + " " + string(b)
	}()
	eventually(t, "the held request on web-1", func() error {
		if n, err := d.Sessions(ctx, "web-1"); err != nil || n != 1 {
			return fmt.Errorf("%d sessions, %v", n, err)
		}
		return nil
	})
	clone := newBackend(t, "clone")
	if err := d.Attach(ctx, "mitosis-op-1", clone.addr()); err != nil {
		t.Fatal(err)
	}

	// Steady load from keep-alive clients: their connections to HAProxy
	// stay open across the drain.
	type result struct {
		start  time.Time
		answer string
		err    error
	}
	var (
		mu      sync.Mutex
		results []result
		stop    = make(chan struct{})
		wg      sync.WaitGroup
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}, Timeout: 5 * time.Second}
			defer c.CloseIdleConnections()
			for {
				select {
				case <-stop:
					return
				default:
				}
				r := result{start: time.Now()}
				resp, err := c.Get(l.frontend + "/")
				if err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					r.answer = string(b)
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("%s: %s", resp.Status, b)
					}
				}
				r.err = err
				mu.Lock()
				results = append(results, r)
				mu.Unlock()
			}
		}()
	}
	count := func(answer string, after time.Time) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, r := range results {
			if r.answer == answer && r.start.After(after) {
				n++
			}
		}
		return n
	}
	eventually(t, "load reaching both servers", func() error {
		if a, b := count("web-1", time.Time{}), count("clone", time.Time{}); a == 0 || b == 0 {
			return fmt.Errorf("web-1 %d, clone %d", a, b)
		}
		return nil
	})

	if err := d.Drain(ctx, "web-1"); err != nil {
		t.Fatal(err)
	}
	drained := time.Now()
	eventually(t, "load going on after the drain", func() error {
		if n := count("clone", drained); n < 50 {
			return fmt.Errorf("%d answers", n)
		}
		return nil
	})
	l.web1.release()
	if got := <-held; got != "200 OK web-1" {
		t.Errorf("the request held across the drain: %s", got)
	}
	close(stop)
	wg.Wait()

	if n := count("web-1", drained); n != 0 {
		t.Errorf("%d requests started after the drain were sent to web-1", n)
	}
	for _, r := range results {
		if r.err != nil {
			t.Errorf("request failed: %v", r.err)
		}
	}
	t.Logf("%d requests, %d after the drain, none failed", len(results), count("clone", drained))
	eventually(t, "web-1's sessions ending", func() error {
		if n, err := d.Sessions(ctx, "web-1"); err != nil || n != 0 {
			return fmt.Errorf("%d sessions, %v", n, err)
		}
		return nil
	})
}

func TestAttachTurnsHealthChecksOn(t *testing.T) {
	l := startHAProxy(t)
	d := l.dispatcherWith(t, "check inter 100ms fall 1 rise 1 pool-purge-delay 200ms")
	ctx := context.Background()

	// Nothing listens there: with its check on, the server goes down and
	// takes no traffic (with HAProxy's default, check off, it would stay
	// up and every other request would fail).
	dead := testenv.FreeAddr(t)
	if err := d.Attach(ctx, "mitosis-dead", dead); err != nil {
		t.Fatal(err)
	}
	if st := l.field(t, "mitosis-dead", "srv_check_state"); st&chkEnabled == 0 {
		t.Fatalf("check state %#x after Attach: not enabled", st)
	}
	eventually(t, "mitosis-dead marked down", func() error {
		if op := l.field(t, "mitosis-dead", "srv_op_state"); op != 0 {
			return fmt.Errorf("operational state %d", op)
		}
		return nil
	})
	for range 10 {
		if got := l.who(t); got != "web-1" {
			t.Fatalf("answered by %s", got)
		}
	}

	// A crash between "add server" and "enable health": the retried
	// Attach finds the server and turns its check on.
	live := newBackend(t, "live")
	l.Command(t, "add server app/mitosis-live "+live.addr()+" check inter 100ms")
	if err := d.Attach(ctx, "mitosis-live", live.addr()); err != nil {
		t.Fatal(err)
	}
	if st := l.field(t, "mitosis-live", "srv_check_state"); st&(chkConfigured|chkEnabled) != chkConfigured|chkEnabled {
		t.Errorf("check state %#x after a retried Attach", st)
	}
	eventually(t, "traffic to mitosis-live", func() error {
		if got := l.who(t); got != "live" {
			return fmt.Errorf("answered by %s", got)
		}
		return nil
	})

	// A checked server is removed like any other.
	eventually(t, "mitosis-dead removed", func() error { return d.Remove(ctx, "mitosis-dead") })
	if l.field(t, "mitosis-dead", "srv_op_state") != -1 {
		t.Error("mitosis-dead still there")
	}
}

// agent answers HAProxy's agent checks with "ready" and counts them.
func agent(t *testing.T) (port string, checks *atomic.Int64) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	checks = new(atomic.Int64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			checks.Add(1)
			_, _ = io.WriteString(c, "ready\n")
			c.Close()
		}
	}()
	_, port, _ = net.SplitHostPort(ln.Addr().String())
	return port, checks
}

func TestAnAgentCheckCannotUndoADrain(t *testing.T) {
	l := startHAProxy(t)
	port, checks := agent(t)
	d := l.dispatcherWith(t, "agent-check agent-port "+port+" agent-inter 100ms pool-purge-delay 200ms")
	ctx := context.Background()
	clone := newBackend(t, "clone")
	if err := d.Attach(ctx, "mitosis-a", clone.addr()); err != nil {
		t.Fatal(err)
	}
	if st := l.field(t, "mitosis-a", "srv_agent_state"); st&chkEnabled == 0 {
		t.Fatalf("agent state %#x after Attach: not enabled", st)
	}

	// The hazard: a drain by hand is cancelled by the agent's "ready".
	l.Command(t, "set server app/mitosis-a state drain")
	eventually(t, "the agent cancelling a drain by hand", func() error {
		if adm := l.field(t, "mitosis-a", "srv_admin_state"); adm&admDrain != 0 {
			return fmt.Errorf("admin state %#x, %d agent checks", adm, checks.Load())
		}
		return nil
	})

	// Drain turns the agent off first, so the drain holds.
	if err := d.Drain(ctx, "mitosis-a"); err != nil {
		t.Fatal(err)
	}
	if st, adm := l.field(t, "mitosis-a", "srv_agent_state"), l.field(t, "mitosis-a", "srv_admin_state"); st&chkEnabled != 0 || adm&admDrain == 0 {
		t.Fatalf("after Drain: agent state %#x, admin state %#x", st, adm)
	}
	// Attach turns it back on.
	if err := d.Attach(ctx, "mitosis-a", clone.addr()); err != nil {
		t.Fatal(err)
	}
	if st, adm := l.field(t, "mitosis-a", "srv_agent_state"), l.field(t, "mitosis-a", "srv_admin_state"); st&chkEnabled == 0 || adm != 0 {
		t.Fatalf("after Attach: agent state %#x, admin state %#x", st, adm)
	}
	eventually(t, "mitosis-a removed", func() error { return d.Remove(ctx, "mitosis-a") })
	if l.field(t, "mitosis-a", "srv_op_state") != -1 {
		t.Error("mitosis-a still there")
	}
}

func TestAnOperatorLevelSocketIsRefusedByHAProxy(t *testing.T) {
	l := startHAProxy(t)
	d, err := haproxy.New(context.Background(), haproxy.Config{Socket: l.OperatorSocket, Backend: "app", Servers: []string{"web-1"}})
	if err != nil {
		t.Fatal(err)
	}
	err = d.Drain(context.Background(), "web-1")
	var ce *haproxy.CommandError
	if !errors.As(err, &ce) || !strings.Contains(ce.Answer, "ermission denied") {
		t.Fatalf("draining through an operator-level socket: %v", err)
	}
	t.Log(err)
	if adm := l.field(t, "web-1", "srv_admin_state"); adm != 0 {
		t.Errorf("web-1's admin state %#x", adm)
	}
}

func TestBadServerOptionsSurfaceAndLeaveNothing(t *testing.T) {
	l := startHAProxy(t)
	d := l.dispatcherWith(t, "chek inter 1s")
	err := d.Attach(context.Background(), "mitosis-x", "127.0.0.1:9")
	var ce *haproxy.CommandError
	if !errors.As(err, &ce) || !strings.HasPrefix(ce.Command, "add server app/mitosis-x") || !strings.Contains(ce.Answer, "chek") {
		t.Fatalf("Attach with a misspelt option: %v", err)
	}
	t.Log(err)
	if l.field(t, "mitosis-x", "srv_op_state") != -1 {
		t.Error("a failed add left a server")
	}
}
