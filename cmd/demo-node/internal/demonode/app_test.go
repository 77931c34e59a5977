package demonode

import (
	"net/http"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/node"
)

func TestReadyNodeServesWorkInSessions(t *testing.T) {
	h := start(t, testConfig(t))
	first := h.work(t, "a", "")
	if first.code != http.StatusOK || first.cookie == "" || first.nodeID != "web-1" || first.cache != "miss" || first.units != 5 {
		t.Fatalf("first request: %+v, want 200, a new session, X-Node-ID web-1, a miss of 5 units", first)
	}
	again := h.work(t, "a", first.cookie)
	if again.code != http.StatusOK || again.cookie != "" || again.cache != "hit" || again.units != 1 {
		t.Errorf("same session, same key: %+v, want 200 in the same session, a hit of 1 unit", again)
	}
	h.work(t, "b", "")
	if st := h.status(t); st.Sessions != 2 || !st.Ready || st.CacheHitRatio < 0.33 || st.CacheHitRatio > 0.34 {
		t.Errorf("status %+v, want 2 sessions, ready, hit ratio 1/3", st)
	}
	if r := h.work(t, "", first.cookie); r.code != http.StatusBadRequest {
		t.Errorf("no key: %d, want 400", r.code)
	}
}

func TestPrepareSuspendHoldsSessionsAndRefusesNewOnes(t *testing.T) {
	h := start(t, testConfig(t))
	s1 := h.work(t, "a", "").cookie
	if r := h.prepare(t, "op-1", node.PrepareSuspend); !r.Accepted {
		t.Fatalf("prepare: %+v", r)
	}
	if r := h.work(t, "a", ""); r.code != http.StatusServiceUnavailable || r.retryIn == "" {
		t.Errorf("a new session while prepared: %+v, want 503 with Retry-After", r)
	}
	// A request of a suspended session waits for the resume; held, it is
	// not in flight, so the node settles.
	held := make(chan reply, 1)
	go func() { held <- h.work(t, "a", s1) }()
	st := h.awaitState(t, node.StatePrepared)
	if st.Sessions != 1 || st.Operation != "op-1" {
		t.Errorf("prepared: %+v, want the session kept, operation op-1", st)
	}
	select {
	case r := <-held:
		t.Fatalf("the suspended session's request was answered before the resume: %+v", r)
	default:
	}
	if err := h.api.Resume(t.Context(), h.addr, "op-1"); err != nil {
		t.Fatal(err)
	}
	if r := <-held; r.code != http.StatusOK || r.cookie != "" {
		t.Errorf("the held request after the resume: %+v, want 200 in its session", r)
	}
	if r := h.work(t, "b", ""); r.code != http.StatusOK || r.cookie == "" {
		t.Errorf("a new session after the resume: %+v, want 200", r)
	}
}

func TestHeldRequestGivesUpAfterHoldMax(t *testing.T) {
	cfg := testConfig(t)
	cfg.HoldMax = 50 * time.Millisecond
	h := start(t, cfg)
	s1 := h.work(t, "a", "").cookie
	h.prepare(t, "op-1", node.PrepareSuspend)
	if r := h.work(t, "a", s1); r.code != http.StatusServiceUnavailable {
		t.Errorf("a suspended session's request never resumed: %+v, want 503", r)
	}
	if n := h.status(t).Sessions; n != 1 {
		t.Errorf("%d sessions, want the suspended one kept", n)
	}
}

// Settled counts the requests in flight: a prepare waits for them.
func TestSettledWaitsForRequestsInFlight(t *testing.T) {
	a := NewApp(AppOptions{ID: "n", CacheSize: 10, SessionIdle: time.Minute, HoldMax: time.Second})
	if _, _, err := a.admit(t.Context(), ""); err != nil {
		t.Fatal(err)
	}
	if err := a.Prepare(t.Context(), node.PrepareSuspend); err != nil {
		t.Fatal(err)
	}
	if a.Settled() {
		t.Error("settled with a request in flight")
	}
	a.release()
	if !a.Settled() {
		t.Error("not settled once the request ended")
	}
}

func TestPrepareEndEndsPendingSessions(t *testing.T) {
	h := start(t, testConfig(t))
	s1 := h.work(t, "a", "").cookie
	h.work(t, "b", "")
	h.prepare(t, "op-1", node.PrepareEnd)
	if st := h.awaitState(t, node.StatePrepared); st.Sessions != 0 {
		t.Errorf("prepared in mode end: %d sessions, want none", st.Sessions)
	}
	if r := h.work(t, "a", s1); r.code != http.StatusServiceUnavailable {
		t.Errorf("an ended session's request while prepared: %+v, want 503 (it would be a new session)", r)
	}
}

func TestRefusePrepareLeavesTheNodeReady(t *testing.T) {
	cfg := testConfig(t)
	cfg.RefusePrepare = "batch job running"
	h := start(t, cfg)
	r := h.prepare(t, "op-1", node.PrepareSuspend)
	if r.Accepted || r.Reason != "batch job running" {
		t.Errorf("prepare: %+v, want refused with the reason", r)
	}
	if st := h.status(t); st.State != node.StateReady {
		t.Errorf("state %s after a refusal, want ready", st.State)
	}
	if w := h.work(t, "a", ""); w.code != http.StatusOK {
		t.Errorf("work after a refusal: %+v, want 200", w)
	}
}

func TestSettleDelayKeepsThePrepareGoing(t *testing.T) {
	cfg := testConfig(t)
	cfg.SettleDelay = 30 * time.Second
	h := start(t, cfg)
	h.prepare(t, "op-1", node.PrepareSuspend)
	if st := h.status(t); st.State != node.StatePreparing {
		t.Errorf("state %s, want preparing for the settle delay", st.State)
	}
	h.clock.advance(30 * time.Second)
	h.awaitState(t, node.StatePrepared)
}

func TestDetachLetsCurrentSessionsFinish(t *testing.T) {
	h := start(t, testConfig(t))
	s1 := h.work(t, "a", "").cookie
	if err := h.api.Detach(t.Context(), h.addr, "op-d"); err != nil {
		t.Fatal(err)
	}
	if r := h.work(t, "a", ""); r.code != http.StatusServiceUnavailable {
		t.Errorf("a new session while detaching: %+v, want 503", r)
	}
	h.clock.advance(8 * time.Second)
	if r := h.work(t, "a", s1); r.code != http.StatusOK {
		t.Errorf("the current session while detaching: %+v, want 200", r)
	}
	h.clock.advance(8 * time.Second) // 8 s idle: still live
	if st := h.status(t); st.State != node.StateDetaching || st.Sessions != 1 {
		t.Errorf("status %+v, want detaching with the session", st)
	}
	h.clock.advance(2 * time.Second) // idle for the idle timeout: it ends
	if st := h.status(t); st.State != node.StateDetached || st.Sessions != 0 {
		t.Errorf("status %+v, want detached with no session", st)
	}
}

// A clone of a prepared template starts in its state, with its identity,
// cache and sessions; it serves nothing until the operation that
// prepared the template finalizes it.
func TestCloneStartsPreparedAndFinalizeGivesItItsIdentity(t *testing.T) {
	cfg := testConfig(t)
	tmpl := start(t, cfg)
	s1 := tmpl.work(t, "a", "").cookie
	tmpl.work(t, "b", "")
	tmpl.work(t, "a", s1)
	tmpl.prepare(t, "op-1", node.PrepareSuspend)
	before := tmpl.awaitState(t, node.StatePrepared)
	file := cfg.StateDir + "/web-2.state"
	if code, body := tmpl.post(t, "/-/snapshot?file="+file, testToken); code != http.StatusOK {
		t.Fatalf("snapshot: %d %s", code, body)
	}

	cfg.ID, cfg.FromState = "vm-web-2", file
	clone := start(t, cfg)
	st := clone.status(t)
	if st.ID != "web-1" || st.State != node.StatePrepared || st.Operation != "op-1" || st.Generation != before.Generation ||
		st.Sessions != 2 || st.CacheHitRatio != before.CacheHitRatio {
		t.Errorf("clone before finalize: %+v, want the template's %+v", st, before)
	}
	if r := clone.work(t, "a", s1); r.code != http.StatusServiceUnavailable {
		t.Errorf("an inherited session's request before finalize: %+v, want 503", r)
	}
	if err := clone.api.Finalize(t.Context(), clone.addr, node.FinalizeRequest{Operation: "op-1", ID: "web-2", Address: clone.addr}); err != nil {
		t.Fatal(err)
	}
	st = clone.status(t)
	if st.ID != "web-2" || st.State != node.StateReady || st.Generation != before.Generation+1 || st.Sessions != 0 {
		t.Errorf("clone after finalize: %+v, want web-2, ready, generation %d, no inherited session", st, before.Generation+1)
	}
	r := clone.work(t, "a", s1)
	if r.code != http.StatusOK || r.nodeID != "web-2" || r.cookie == "" || r.cache != "hit" {
		t.Errorf("work on the finalized clone with an inherited cookie: %+v, want 200 from web-2 in a new session, a hit", r)
	}
	if ts := tmpl.status(t); ts.ID != "web-1" || ts.Sessions != 2 {
		t.Errorf("the template: %+v, want web-1 with its sessions", ts)
	}
}

func TestCloneOfAnUnpreparedNodeStartsCloned(t *testing.T) {
	cfg := testConfig(t)
	tmpl := start(t, cfg)
	tmpl.work(t, "a", "")
	file := cfg.StateDir + "/c.state"
	if code, body := tmpl.post(t, "/-/snapshot?file="+file, testToken); code != http.StatusOK {
		t.Fatalf("snapshot: %d %s", code, body)
	}
	cfg.FromState = file
	clone := start(t, cfg)
	if st := clone.status(t); st.State != node.StateCloned || st.ID != "web-1" || st.Sessions != 1 {
		t.Errorf("clone: %+v, want cloned with web-1's id and session", st)
	}
	if err := clone.api.Finalize(t.Context(), clone.addr, node.FinalizeRequest{Operation: "any", ID: "web-9", Address: clone.addr}); err != nil {
		t.Fatal(err)
	}
	if st := clone.status(t); st.State != node.StateReady || st.ID != "web-9" || st.Sessions != 0 {
		t.Errorf("clone after finalize: %+v", st)
	}
}
