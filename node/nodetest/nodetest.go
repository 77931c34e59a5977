// Package nodetest is the conformance suite of the node API, in the manner
// of testing/fstest: an application that embeds node.Server (or speaks
// the API by itself) runs it from its tests against real instances.
//
//	func TestNodeAPI(t *testing.T) {
//		nodetest.Run(t, nodetest.Harness{
//			New:      func(t *testing.T) nodetest.Target { return start(t) },
//			NewClone: func(t *testing.T, op string) nodetest.Target { return cloneOf(t, start(t), op) },
//			Refusing: func(t *testing.T) nodetest.Target { return start(t, "--refuse-prepare", "busy") },
//		})
//	}
//
// It covers every transition of the state machine drawn in package
// node, the idempotency of every call, the 409s, the refusal of prepare,
// authentication and the refusal of bad requests.
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
	// NewClone starts a live copy of a template that operation prepared:
	// a node in the template's state (preparing or prepared by
	// operation, or cloned), with its identity, not yet finalized.
	NewClone func(t *testing.T, operation string) Target
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
		{"ResumeOnlyByTheOperationThatPrepared", testResumeOther},
		{"FinalizeGivesACloneItsIdentity", testFinalize},
		{"FinalizeNeverTouchesATemplate", testFinalizeNonClone},
		{"DetachFinishesAndRefusesEverythingElse", testDetach},
		{"DetachOnlyFromReady", testDetachFromPrepared},
		{"BadBodiesAreRefused", testBadBodies},
		{"UnknownCallsAreRefused", testUnknownCalls},
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

func testResumeOther(t *testing.T, h Harness) {
	tg := h.New(t)
	c := client(tg)
	prepare(t, tg, "op-1")
	await(t, tg, "prepared", func(s node.Status) bool { return s.State == node.StatePrepared })
	err := c.Resume(ctx(t), tg.Addr, "op-2")
	wantState(t, err, "resume by another operation", node.StatePrepared)
	var se *node.StateError
	if errors.As(err, &se) && se.Operation != "op-1" {
		t.Errorf("the 409 names operation %q, want op-1, the one holding the node", se.Operation)
	}
	if st := status(t, tg); st.State != node.StatePrepared || st.Operation != "op-1" {
		t.Errorf("after another operation's resume: %+v, want still prepared for op-1", st)
	}
	if err := c.Resume(ctx(t), tg.Addr, "op-1"); err != nil {
		t.Fatalf("resume: %v", err)
	}
	// Once ready, a late resume of any operation is a no-op.
	if err := c.Resume(ctx(t), tg.Addr, "op-2"); err != nil {
		t.Errorf("resume of a ready node: %v", err)
	}
	if st := status(t, tg); st.State != node.StateReady || st.Operation != "" {
		t.Errorf("after resume: %+v, want ready, in no operation", st)
	}
}

func testFinalize(t *testing.T, h Harness) {
	tg := h.NewClone(t, "op-1")
	c := client(tg)
	before := status(t, tg)
	switch {
	case before.Ready || before.ID == "mitosis-op-1":
		t.Fatalf("a clone before finalize: %+v, want not ready, with its template's id", before)
	case before.State == node.StateCloned:
	case before.State != node.StatePreparing && before.State != node.StatePrepared || before.Operation != "op-1":
		t.Fatalf("a clone before finalize: %+v, want its template's state: prepared by op-1", before)
	}
	if before.State != node.StateCloned {
		err := c.Finalize(ctx(t), tg.Addr, node.FinalizeRequest{Operation: "op-2", ID: "mitosis-op-2", Address: tg.Addr})
		wantState(t, err, "finalize by an operation that did not make the clone", before.State)
		if st := status(t, tg); st.ID != before.ID {
			t.Errorf("a refused finalize changed the identity: %+v", st)
		}
	}
	_, err := c.Prepare(ctx(t), tg.Addr, node.PrepareRequest{Operation: "op-3", Mode: node.PrepareSuspend})
	wantState(t, err, "prepare of an unfinalized clone", before.State)
	err = c.Detach(ctx(t), tg.Addr, "op-3")
	wantState(t, err, "detach of an unfinalized clone", before.State)

	req := node.FinalizeRequest{Operation: "op-1", ID: "mitosis-op-1", Address: tg.Addr}
	for range 2 { // idempotent
		if err := c.Finalize(ctx(t), tg.Addr, req); err != nil {
			t.Fatalf("finalize: %v", err)
		}
		st := status(t, tg)
		if st.ID != "mitosis-op-1" || st.State != node.StateReady || !st.Ready || st.Generation != before.Generation+1 || st.Sessions != 0 || st.Operation != "" {
			t.Errorf("after finalize: %+v, want id mitosis-op-1, ready, generation %d, no sessions, no operation", st, before.Generation+1)
		}
	}
	err = c.Finalize(ctx(t), tg.Addr, node.FinalizeRequest{Operation: "op-2", ID: "other", Address: tg.Addr})
	wantState(t, err, "finalize by another operation", node.StateReady)
	// The same operation asking for another identity is no retry.
	err = c.Finalize(ctx(t), tg.Addr, node.FinalizeRequest{Operation: "op-1", ID: "mitosis-op-1-other", Address: tg.Addr})
	wantState(t, err, "finalize by its operation again, as another id", node.StateReady)
	if st := status(t, tg); st.ID != "mitosis-op-1" {
		t.Errorf("a refused finalize changed the identity: %+v", st)
	}
	// A finalized clone is a node like any other: it can be a template.
	if r := prepare(t, tg, "op-4"); !r.Accepted {
		t.Errorf("prepare of a finalized clone refused: %q", r.Reason)
	}
}

func testFinalizeNonClone(t *testing.T, h Harness) {
	tg := h.New(t)
	c := client(tg)
	id := status(t, tg).ID
	err := c.Finalize(ctx(t), tg.Addr, node.FinalizeRequest{Operation: "op-1", ID: "stolen", Address: tg.Addr})
	wantState(t, err, "finalize of a ready node", node.StateReady)
	prepare(t, tg, "op-1")
	await(t, tg, "prepared", func(s node.Status) bool { return s.State == node.StatePrepared })
	err = c.Finalize(ctx(t), tg.Addr, node.FinalizeRequest{Operation: "op-2", ID: "stolen", Address: tg.Addr})
	wantState(t, err, "finalize of a template by another operation", node.StatePrepared)
	// The saga resumes the template before it finalizes the clone: the
	// template's own operation then finds it ready.
	if err := c.Resume(ctx(t), tg.Addr, "op-1"); err != nil {
		t.Fatalf("resume: %v", err)
	}
	err = c.Finalize(ctx(t), tg.Addr, node.FinalizeRequest{Operation: "op-1", ID: "stolen", Address: tg.Addr})
	wantState(t, err, "finalize of a resumed template", node.StateReady)
	if st := status(t, tg); st.ID != id {
		t.Errorf("a template took its clone's identity: %+v", st)
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
	err = c.Resume(ctx(t), tg.Addr, "op-9")
	wantState(t, err, "resume of a detached node", node.StateDetached)
	err = c.Finalize(ctx(t), tg.Addr, node.FinalizeRequest{Operation: "op-9", ID: "x", Address: tg.Addr})
	wantState(t, err, "finalize of a detached node", node.StateDetached)
}

func testDetachFromPrepared(t *testing.T, h Harness) {
	tg := h.New(t)
	prepare(t, tg, "op-1")
	await(t, tg, "prepared", func(s node.Status) bool { return s.State == node.StatePrepared })
	err := client(tg).Detach(ctx(t), tg.Addr, "op-2")
	wantState(t, err, "detach of a prepared template", node.StatePrepared)
	if st := status(t, tg); st.State != node.StatePrepared {
		t.Errorf("a refused detach changed the node: %+v", st)
	}
}

func testUnknownCalls(t *testing.T, h Harness) {
	tg := h.New(t)
	for _, c := range []struct {
		method, path string
		code         int
	}{
		{http.MethodPost, "/v1/explode", http.StatusNotFound},
		{http.MethodGet, "/v1/", http.StatusNotFound}, // what is outside /v1 is the application's
		{http.MethodGet, "/v1/prepare", http.StatusMethodNotAllowed},
		{http.MethodDelete, "/v1/status", http.StatusMethodNotAllowed},
	} {
		code, body := do(t, tg, c.method, c.path, `{"operation":"op-1"}`)
		if code != c.code || !strings.Contains(body, `"error"`) {
			t.Errorf("%s %s: %d %s, want %d with a JSON error", c.method, c.path, code, body, c.code)
		}
	}
}

// do sends an authenticated request and returns the answer's code and body.
func do(t *testing.T, tg Target, method, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx(t), method, "http://"+tg.Addr+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tg.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func testBadBodies(t *testing.T, h Harness) {
	tg := h.New(t)
	for _, c := range []struct{ path, body, names string }{
		{"/v1/prepare", `{"operation":"op-1","mode":"suspend","force":true}`, "force"},
		{"/v1/prepare", `{"mode":"suspend"}`, "operation"},
		{"/v1/prepare", `{"operation":"op-1","mode":"nap"}`, "mode"},
		{"/v1/prepare", `{"operation":"op-1","mode":1}`, "mode"},
		{"/v1/prepare", `{"operation":"op-1","mode":"suspend","deadline":"soon"}`, "deadline"},
		{"/v1/prepare", `{"operation":"op-1","mode":"suspend"} {}`, "after"},
		{"/v1/prepare", `{"operation":"op-1","mode":"suspend","pad":"` + strings.Repeat("x", 1<<20) + `"}`, ""},
		{"/v1/prepare", ``, ""},
		{"/v1/finalize", `{"operation":"op-1","id":"x"}`, "address"},
		{"/v1/finalize", `{"operation":"op-1","address":"127.0.0.1:1"}`, "id"},
		{"/v1/detach", `not json`, ""},
		{"/v1/detach", `{"operation":["op-1"]}`, "operation"},
		{"/v1/resume", `{}`, "operation"},
	} {
		code, body := do(t, tg, http.MethodPost, c.path, c.body)
		if code != http.StatusBadRequest || !strings.Contains(body, `"error"`) || !strings.Contains(body, c.names) {
			t.Errorf("POST %s %.60s: %d %.200s, want 400 naming %q", c.path, c.body, code, body, c.names)
		}
	}
	if st := status(t, tg); st.State != node.StateReady {
		t.Errorf("bad bodies changed the node: %+v", st)
	}
}
