// Package nodetest is the conformance suite of the node API, in the manner
// of testing/fstest: an application that embeds node.Server (or speaks
// the API by itself) runs it from its tests against real instances.
//
//	func TestNodeAPI(t *testing.T) {
//		nodetest.Run(t, nodetest.Harness{
//			New:      func(t *testing.T) nodetest.Target { return start(t, "") },
//			NewClone: func(t *testing.T) nodetest.Target { return start(t, "--from-state ...") },
//			Refusing: func(t *testing.T) nodetest.Target { return start(t, "--refuse-prepare busy") },
//		})
//	}
package nodetest

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/node"
)

// Target is one running node under test, with no sessions.
type Target struct {
	Addr  string // host:port of its node API
	Token string
}

// Harness starts the nodes the suite needs; each call a fresh one,
// stopped by the test's cleanup.
type Harness struct {
	// New starts a node in state ready.
	New func(t *testing.T) Target
	// NewClone starts a node in state cloned: a copy of a prepared
	// template that has not been finalized.
	NewClone func(t *testing.T) Target
	// Refusing starts a ready node that refuses to prepare.
	Refusing func(t *testing.T) Target
}

// Run runs every case as a subtest of t.
func Run(t *testing.T, h Harness) {
	if h.New == nil || h.NewClone == nil || h.Refusing == nil {
		t.Fatal("nodetest: the harness needs New, NewClone and Refusing")
	}
	cases := []struct {
		name string
		f    func(t *testing.T, h Harness)
	}{
		{"StatusOfAFreshNode", testStatus},
		{"EveryCallNeedsTheToken", testAuth},
		{"PrepareSettlesThenResume", testPrepareResume},
		{"PrepareIsIdempotentPerOperation", testPrepareIdempotent},
		{"RefusedPrepareLeavesTheNodeReady", testRefusal},
		{"FinalizeGivesACloneItsIdentity", testFinalize},
		{"FinalizeNeverTouchesANonClone", testFinalizeNonClone},
		{"DetachFinishesAndRefusesPrepare", testDetach},
		{"BadBodiesAreRefused", testBadBodies},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.f(t, h) })
	}
}

func client(tg Target) *node.Client {
	return node.NewClient(tg.Token, node.ClientOptions{Timeout: 5 * time.Second, Retries: 2, Backoff: 20 * time.Millisecond})
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func status(t *testing.T, tg Target) node.Status {
	t.Helper()
	st, err := client(tg).Status(ctx(t), tg.Addr)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	return st
}

// await polls the node's status until want holds (10 s at most).
func await(t *testing.T, tg Target, what string, want func(node.Status) bool) node.Status {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := status(t, tg)
		if want(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: never happened; last status %+v", what, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func prepare(t *testing.T, tg Target, op string) node.PrepareReply {
	t.Helper()
	r, err := client(tg).Prepare(ctx(t), tg.Addr, node.PrepareRequest{Operation: op, Mode: node.PrepareSuspend, Deadline: time.Now().Add(time.Minute)})
	if err != nil {
		t.Fatalf("prepare %s: %v", op, err)
	}
	return r
}

func wantState(t *testing.T, err error, call string, state node.State) {
	t.Helper()
	var se *node.StateError
	if !errors.As(err, &se) || se.State != state {
		t.Errorf("%s: got %v, want a 409 in state %s", call, err, state)
	}
}

func testStatus(t *testing.T, h Harness) {
	st := status(t, h.New(t))
	if st.ID == "" || st.State != node.StateReady || !st.Ready || st.Sessions != 0 {
		t.Errorf("fresh node: %+v, want an id, ready, no sessions", st)
	}
	if st.CacheHitRatio < 0 || st.CacheHitRatio > 1 || st.UptimeSeconds < 0 {
		t.Errorf("warmth out of range: %+v", st)
	}
}

func testAuth(t *testing.T, h Harness) {
	tg := h.New(t)
	bad := Target{Addr: tg.Addr, Token: tg.Token + "-wrong"}
	c := client(bad)
	calls := map[string]error{}
	_, calls["status"] = c.Status(ctx(t), tg.Addr)
	_, calls["prepare"] = c.Prepare(ctx(t), tg.Addr, node.PrepareRequest{Operation: "op-a", Mode: node.PrepareSuspend})
	calls["resume"] = c.Resume(ctx(t), tg.Addr, "op-a")
	calls["finalize"] = c.Finalize(ctx(t), tg.Addr, node.FinalizeRequest{Operation: "op-a", ID: "x", Address: "127.0.0.1:1"})
	calls["detach"] = c.Detach(ctx(t), tg.Addr, "op-a")
	for call, err := range calls {
		if !errors.Is(err, node.ErrUnauthorized) {
			t.Errorf("%s with a wrong token: %v, want unauthorized", call, err)
		}
	}
	for _, path := range []string{"/v1/status", "/v1/prepare"} {
		method := http.MethodPost
		if path == "/v1/status" {
			method = http.MethodGet
		}
		req, _ := http.NewRequestWithContext(ctx(t), method, "http://"+tg.Addr+path, strings.NewReader(`{"operation":"op-a","mode":"suspend"}`))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s %s without a token: %s, want 401", method, path, resp.Status)
		}
	}
	if st := status(t, tg); st.State != node.StateReady {
		t.Errorf("refused calls changed the node: %+v", st)
	}
}

func testPrepareResume(t *testing.T, h Harness) {
	tg := h.New(t)
	if r := prepare(t, tg, "op-1"); !r.Accepted {
		t.Fatalf("prepare refused: %q", r.Reason)
	}
	st := await(t, tg, "prepared", func(s node.Status) bool { return s.State == node.StatePrepared })
	if st.Ready || st.Operation != "op-1" {
		t.Errorf("prepared: %+v, want not ready, in op-1", st)
	}
	for range 2 { // resume is idempotent
		if err := client(tg).Resume(ctx(t), tg.Addr, "op-1"); err != nil {
			t.Fatalf("resume: %v", err)
		}
		if st := status(t, tg); st.State != node.StateReady || !st.Ready {
			t.Errorf("after resume: %+v", st)
		}
	}
}

func testPrepareIdempotent(t *testing.T, h Harness) {
	tg := h.New(t)
	first := prepare(t, tg, "op-1")
	await(t, tg, "prepared", func(s node.Status) bool { return s.State == node.StatePrepared })
	if again := prepare(t, tg, "op-1"); again != first {
		t.Errorf("prepare again: %+v, first %+v", again, first)
	}
	_, err := client(tg).Prepare(ctx(t), tg.Addr, node.PrepareRequest{Operation: "op-2", Mode: node.PrepareSuspend})
	wantState(t, err, "prepare by another operation", node.StatePrepared)
}

func testRefusal(t *testing.T, h Harness) {
	tg := h.Refusing(t)
	r := prepare(t, tg, "op-1")
	if r.Accepted || r.Reason == "" {
		t.Errorf("reply %+v, want a refusal with its reason", r)
	}
	if again := prepare(t, tg, "op-1"); again != r {
		t.Errorf("the same prepare again: %+v, first %+v", again, r)
	}
	if st := status(t, tg); st.State != node.StateReady || !st.Ready {
		t.Errorf("after a refusal: %+v, want ready", st)
	}
	// The saga resumes a template that refused: a no-op.
	if err := client(tg).Resume(ctx(t), tg.Addr, "op-1"); err != nil {
		t.Errorf("resume after a refusal: %v", err)
	}
}

func testFinalize(t *testing.T, h Harness) {
	tg := h.NewClone(t)
	before := status(t, tg)
	if before.State != node.StateCloned || before.Ready {
		t.Fatalf("a clone before finalize: %+v, want cloned, not ready", before)
	}
	req := node.FinalizeRequest{Operation: "op-1", ID: "mitosis-op-1", Address: tg.Addr}
	for range 2 { // idempotent
		if err := client(tg).Finalize(ctx(t), tg.Addr, req); err != nil {
			t.Fatalf("finalize: %v", err)
		}
		st := status(t, tg)
		if st.ID != "mitosis-op-1" || st.State != node.StateReady || st.Generation != before.Generation+1 || st.Sessions != 0 {
			t.Errorf("after finalize: %+v, want id mitosis-op-1, ready, generation %d, no sessions", st, before.Generation+1)
		}
	}
	err := client(tg).Finalize(ctx(t), tg.Addr, node.FinalizeRequest{Operation: "op-2", ID: "other", Address: tg.Addr})
	wantState(t, err, "finalize by another operation", node.StateReady)
}

func testFinalizeNonClone(t *testing.T, h Harness) {
	tg := h.New(t)
	c := client(tg)
	err := c.Finalize(ctx(t), tg.Addr, node.FinalizeRequest{Operation: "op-1", ID: "stolen", Address: tg.Addr})
	wantState(t, err, "finalize of a ready node", node.StateReady)
	prepare(t, tg, "op-1")
	await(t, tg, "prepared", func(s node.Status) bool { return s.State == node.StatePrepared })
	err = c.Finalize(ctx(t), tg.Addr, node.FinalizeRequest{Operation: "op-1", ID: "stolen", Address: tg.Addr})
	wantState(t, err, "finalize of a prepared template", node.StatePrepared)
	if st := status(t, tg); st.ID == "stolen" {
		t.Error("a template took its clone's identity")
	}
}

func testDetach(t *testing.T, h Harness) {
	tg := h.New(t)
	c := client(tg)
	for range 2 { // idempotent
		if err := c.Detach(ctx(t), tg.Addr, "op-9"); err != nil {
			t.Fatalf("detach: %v", err)
		}
	}
	st := await(t, tg, "detached", func(s node.Status) bool { return s.State == node.StateDetached })
	if st.Ready {
		t.Errorf("detached but ready: %+v", st)
	}
	_, err := c.Prepare(ctx(t), tg.Addr, node.PrepareRequest{Operation: "op-1", Mode: node.PrepareSuspend})
	wantState(t, err, "prepare of a detached node", node.StateDetached)
	err = c.Detach(ctx(t), tg.Addr, "op-10")
	wantState(t, err, "detach by another operation", node.StateDetached)
}

func testBadBodies(t *testing.T, h Harness) {
	tg := h.New(t)
	for _, c := range []struct{ path, body, names string }{
		{"/v1/prepare", `{"operation":"op-1","mode":"suspend","force":true}`, "force"},
		{"/v1/prepare", `{"mode":"suspend"}`, "operation"},
		{"/v1/prepare", `{"operation":"op-1","mode":"nap"}`, "nap"},
		{"/v1/prepare", `{"operation":"op-1","mode":"suspend"} {}`, "after"},
		{"/v1/finalize", `{"operation":"op-1","id":"x"}`, "address"},
		{"/v1/detach", `not json`, "invalid"},
		{"/v1/resume", `{}`, "operation"},
	} {
		req, _ := http.NewRequestWithContext(ctx(t), http.MethodPost, "http://"+tg.Addr+c.path, strings.NewReader(c.body))
		req.Header.Set("Authorization", "Bearer "+tg.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), c.names) {
			t.Errorf("POST %s %s: %s %s, want 400 naming %q", c.path, c.body, resp.Status, b, c.names)
		}
	}
	if st := status(t, tg); st.State != node.StateReady {
		t.Errorf("bad bodies changed the node: %+v", st)
	}
}
