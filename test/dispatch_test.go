package test

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/autoscaler"
	"github.com/mitosis-autoscaler/mitosis/node"
	"github.com/mitosis-autoscaler/mitosis/plan"
	"github.com/mitosis-autoscaler/mitosis/policy"
)

// scripted is a policy engine whose next decision the test sets; it
// decides nothing until told, and once its decision is taken up, nothing
// again.
type scripted struct {
	mu   sync.Mutex
	next *plan.Decision
}

func (s *scripted) decide(d plan.Decision) { s.mu.Lock(); s.next = &d; s.mu.Unlock() }

func (s *scripted) Decide(context.Context, *policy.Input, time.Time) (plan.Decision, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.next == nil {
		return plan.Decision{Action: plan.ActionNone, Reason: "scripted: nothing"}, nil
	}
	d := *s.next
	s.next = nil
	return d, nil
}

func (s *scripted) Version() string { return "scripted" }

// hit is one request of the load.
type hit struct {
	start, end time.Time
	node       string // X-Node-ID
	newSession bool   // the client had no session: the answer opened one
	err        string // "" when it succeeded
}

// load is steady traffic through HAProxy: clients that each open a
// session, make a few requests in it, and start over with a new one.
type load struct {
	mu   sync.Mutex
	hits []hit
	stop chan struct{}
	wg   sync.WaitGroup
}

func startLoad(t *testing.T, frontend string, clients, perSession int) *load {
	l := &load{stop: make(chan struct{})}
	for c := range clients {
		l.wg.Go(func() {
			for i := 0; ; i++ {
				jar, _ := cookiejar.New(nil)
				// As long as HAProxy waits for a server (timeout server): a
				// request held while its node is cloned is slow, not failed.
				hc := &http.Client{Jar: jar, Timeout: 30 * time.Second}
				for r := range perSession {
					select {
					case <-l.stop:
						return
					default:
					}
					h := hit{start: time.Now(), newSession: r == 0}
					resp, err := hc.Get(frontend + "/work?key=k" + string(rune('a'+(c+i+r)%20)))
					h.end = time.Now()
					if err != nil {
						h.err = err.Error()
					} else {
						h.node = resp.Header.Get("X-Node-ID")
						_ = resp.Body.Close()
						if resp.StatusCode != http.StatusOK {
							h.err = resp.Status
						}
					}
					l.mu.Lock()
					l.hits = append(l.hits, h)
					l.mu.Unlock()
					time.Sleep(20 * time.Millisecond)
				}
			}
		})
	}
	t.Cleanup(l.halt)
	return l
}

func (l *load) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

func (l *load) snapshot() []hit {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]hit(nil), l.hits...)
}

// journalAt is when the operation entered step s.
func journalAt(t *testing.T, op plan.Operation, s plan.Step) (time.Time, string) {
	t.Helper()
	for _, j := range op.Journal {
		if j.Step == s {
			return j.At, j.Note
		}
	}
	t.Fatalf("operation %s never reached %s: %+v", op.ID, s, op.Journal)
	return time.Time{}, ""
}

// The acceptance run of the dispatcher: three demo-nodes behind HAProxy
// under steady load; one is drained and detached while the load goes on,
// and a new one is cloned and attached.
func TestDrainDetachAndAttachUnderLoad(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	reg := autoscaler.NewMemRegistry()
	for _, name := range []string{"web-1", "web-2", "web-3"} {
		w.boot(t, reg, name)
	}
	k := &knob{util: 0.5, nodes: w.nodes}
	policyEngine := &scripted{}
	c := w.controllerWith(t, reg, k, policyEngine, "")
	traffic := startLoad(t, w.frontend, 6, 5)
	time.Sleep(time.Second) // sessions on every node

	// Drain and detach web-3 while the load goes on.
	policyEngine.decide(plan.Decision{Action: plan.ActionContract, Count: 1, Nodes: []string{"web-3"}, Reason: "test"})
	contract := runOne(t, c, reg, plan.ActionContract)
	if contract.Status != plan.OpDone {
		t.Fatalf("the contraction ended %s: %s", contract.Status, contract.Error)
	}

	// Clone web-1 and attach the clone, still under load.
	policyEngine.decide(plan.Decision{Action: plan.ActionExpand, Count: 1, Template: "web-1", Reason: "test"})
	expand := runOne(t, c, reg, plan.ActionExpand)
	if expand.Status != plan.OpDone {
		t.Fatalf("the expansion ended %s: %s", expand.Status, expand.Error)
	}
	attached, _ := journalAt(t, expand, autoscaler.StepDone)
	deadline := attached.Add(2 * time.Second)
	for time.Now().Before(deadline.Add(500 * time.Millisecond)) {
		time.Sleep(100 * time.Millisecond)
	}
	traffic.halt()
	hits := traffic.snapshot()

	// The measurements.
	// The journal stamps a step with the time its actuation pass began,
	// just before the drain call: a request started in the few
	// milliseconds the call takes may still get a new session on web-3.
	drained, _ := journalAt(t, contract, autoscaler.StepDetach)
	drainApplied := drained.Add(100 * time.Millisecond)
	removing, note := journalAt(t, contract, autoscaler.StepRemove)
	var failed, newOnDrained, toClone int
	firstOnClone := time.Time{}
	for _, h := range hits {
		switch {
		case h.err != "":
			failed++
			t.Logf("failed request at %s on %q: %s", h.start.Format("15:04:05.000"), h.node, h.err)
		case h.node == "web-3" && h.newSession && h.start.After(drainApplied):
			newOnDrained++
		case h.node == expand.Node:
			toClone++
			if firstOnClone.IsZero() || h.end.Before(firstOnClone) {
				firstOnClone = h.end
			}
		}
	}
	t.Logf("%d requests; drain at %s, removal at %s (%s); clone attached at %s, first served at %s",
		len(hits), drained.Format("15:04:05.000"), removing.Format("15:04:05.000"), note,
		attached.Format("15:04:05.000"), firstOnClone.Format("15:04:05.000"))
	if failed != 0 {
		t.Errorf("%d of %d requests failed", failed, len(hits))
	}
	if newOnDrained != 0 {
		t.Errorf("%d new sessions went to web-3 after its drain", newOnDrained)
	}
	if !strings.Contains(note, "sessions finished") {
		t.Errorf("web-3 was removed before its sessions reached 0: %q", note)
	}
	if toClone == 0 || firstOnClone.Sub(attached) > 2*time.Second {
		t.Errorf("the clone served %d requests, the first %s after its attach; want within 2 s", toClone, firstOnClone.Sub(attached))
	}
	if st, err := w.nodes.Status(ctx, w.addrOf(t, reg, expand.Node)); err != nil || st.State != node.StateReady {
		t.Errorf("the clone: %+v, %v", st, err)
	}
}

func (w *world) addrOf(t *testing.T, reg autoscaler.Registry, id string) string {
	t.Helper()
	st, err := reg.State(context.Background(), "web")
	if err != nil {
		t.Fatal(err)
	}
	n, ok := nodeByID(st.Nodes, id)
	if !ok {
		t.Fatalf("node %s is not registered", id)
	}
	return n.Address
}

// A template that refuses to prepare: the saga aborts and the template
// is back in service.
func TestARefusingTemplateIsBackInService(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	reg := autoscaler.NewMemRegistry()
	w.flags["web-1"] = []string{"--refuse-prepare", "running the nightly batch"}
	tmpl := w.boot(t, reg, "web-1")
	policyEngine := &scripted{}
	c := w.controllerWith(t, reg, &knob{util: 0.5, nodes: w.nodes}, policyEngine, "")
	policyEngine.decide(plan.Decision{Action: plan.ActionExpand, Count: 1, Template: "web-1", Reason: "test"})
	op := runOne(t, c, reg, plan.ActionExpand)
	if op.Status != plan.OpCompensated || !strings.Contains(op.Error, "running the nightly batch") {
		t.Fatalf("operation %s: %q, want compensated with the node's reason", op.Status, op.Error)
	}
	if st, err := w.nodes.Status(ctx, tmpl.Address); err != nil || st.State != node.StateReady {
		t.Errorf("the template after the refusal: %+v, %v", st, err)
	}
	if by := w.work(t, 10); by["web-1"] != 10 {
		t.Errorf("work after the refusal: %v, want web-1 back in HAProxy", by)
	}
	if _, err := w.hv.Lookup(ctx, plan.CloneName(op)); err == nil {
		t.Error("a clone was made")
	}
}

// A template that does not settle by the prepare deadline: the saga
// aborts, or with force goes on and clones it anyway.
func TestAPrepareDeadlineAbortsOrIsForced(t *testing.T) {
	for _, force := range []bool{false, true} {
		t.Run(map[bool]string{false: "abort", true: "force"}[force], func(t *testing.T) {
			w := newWorld(t)
			ctx := context.Background()
			reg := autoscaler.NewMemRegistry()
			w.flags["web-1"] = []string{"--settle-delay", "1m"}
			tmpl := w.boot(t, reg, "web-1")
			policyEngine := &scripted{}
			c := w.controllerWith(t, reg, &knob{util: 0.5, nodes: w.nodes}, policyEngine, "    prepare: {deadline: 1s, mode: suspend}\n")
			policyEngine.decide(plan.Decision{Action: plan.ActionExpand, Count: 1, Template: "web-1", Force: force, Reason: "test"})
			op := runOne(t, c, reg, plan.ActionExpand)
			if force {
				if op.Status != plan.OpDone {
					t.Fatalf("forced: %s %q, want done", op.Status, op.Error)
				}
				if _, note := journalAt(t, op, autoscaler.StepClone); !strings.Contains(note, "forced") {
					t.Errorf("the journal does not say the clone was forced: %q", note)
				}
			} else if op.Status != plan.OpCompensated || !strings.Contains(op.Error, "did not settle within 1s") {
				t.Fatalf("not forced: %s %q, want compensated", op.Status, op.Error)
			}
			if st, err := w.nodes.Status(ctx, tmpl.Address); err != nil || st.State != node.StateReady {
				t.Errorf("the template afterwards: %+v, %v", st, err)
			}
		})
	}
}

// runOne ticks until the operation the scripted decision started ends.
func runOne(t *testing.T, c *autoscaler.Controller, reg autoscaler.Registry, action plan.Action) plan.Operation {
	t.Helper()
	ctx := context.Background()
	var op plan.Operation
	runUntil(t, c, "the operation ends", func() bool {
		recs, err := reg.Decisions(ctx, "web", 16)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range recs {
			if d.Decision.Action == action && len(d.Operations) == 1 {
				if op, err = reg.Operation(ctx, d.Operations[0]); err != nil {
					t.Fatal(err)
				}
				return op.Status.Finished()
			}
		}
		return false
	})
	return op
}
