package demonode

import (
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/internal/testenv"
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

// A prepared node holds every request until the resume, a new session's
// as an existing one's: the last node of a cluster stays in the
// dispatcher while it is cloned. Held requests are not in flight, so the
// node settles; resumed, they are served.
func TestAPreparedNodeHoldsEveryRequestUntilTheResume(t *testing.T) {
	h := start(t, testConfig(t))
	s1 := h.work(t, "a", "").cookie
	if r := h.prepare(t, "op-1", node.PrepareSuspend); !r.Accepted {
		t.Fatalf("prepare: %+v", r)
	}
	old, fresh := h.workLater(t, "a", s1), h.workLater(t, "b", "")
	notYet(t, "a request while prepared", old, fresh)
	st := h.awaitState(t, node.StatePrepared)
	if st.Sessions != 1 || st.Operation != "op-1" {
		t.Errorf("prepared: %+v, want the session kept (and no new one), operation op-1", st)
	}
	notYet(t, "a request while prepared", old, fresh)
	if err := h.api.Resume(t.Context(), h.addr, "op-1"); err != nil {
		t.Fatal(err)
	}
	if r := within(t, "the existing session's request", old); r.code != http.StatusOK || r.cookie != "" {
		t.Errorf("the existing session's held request after the resume: %+v, want 200 in its session", r)
	}
	if r := within(t, "the new session's request", fresh); r.code != http.StatusOK || r.cookie == "" || r.cookie == s1 {
		t.Errorf("the new session's held request after the resume: %+v, want 200 in a new session", r)
	}
	if st := h.status(t); st.Sessions != 2 {
		t.Errorf("%d sessions after the resume, want 2", st.Sessions)
	}
}

func TestHeldRequestGivesUpAfterHoldMax(t *testing.T) {
	cfg := testConfig(t)
	cfg.HoldMax = 50 * time.Millisecond
	h := start(t, cfg)
	s1 := h.work(t, "a", "").cookie
	h.prepare(t, "op-1", node.PrepareSuspend)
	if r := h.work(t, "a", s1); r.code != http.StatusServiceUnavailable || r.retryIn == "" {
		t.Errorf("a suspended session's request never resumed: %+v, want 503 with Retry-After", r)
	}
	if r := h.work(t, "a", ""); r.code != http.StatusServiceUnavailable || r.retryIn == "" {
		t.Errorf("a new session's request never resumed: %+v, want 503 with Retry-After", r)
	}
	if n := h.status(t).Sessions; n != 1 {
		t.Errorf("%d sessions, want the suspended one kept and no new one", n)
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
	// An ended session's request is a new session's: held, then served in
	// a new session.
	held := h.workLater(t, "a", s1)
	notYet(t, "an ended session's request while prepared", held)
	if err := h.api.Resume(t.Context(), h.addr, "op-1"); err != nil {
		t.Fatal(err)
	}
	if r := within(t, "an ended session's request", held); r.code != http.StatusOK || r.cookie == "" || r.cookie == s1 {
		t.Errorf("an ended session's request after the resume: %+v, want 200 in a new session", r)
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

// A live clone of a VM continues its template's memory: the same
// process, prepared, with the template's sessions (none marked
// inherited: nothing was restored) and the requests the template held.
// Its finalize purges every session and lets the held requests go, as
// 503s: they are the template's clients', and the template serves them.
func TestFinalizeOfALiveCloneDropsTheTemplatesSessionsAndHeldRequests(t *testing.T) {
	h := start(t, testConfig(t))
	s1 := h.work(t, "a", "").cookie
	h.work(t, "b", "")
	h.prepare(t, "op-1", node.PrepareSuspend)
	old, fresh := h.workLater(t, "a", s1), h.workLater(t, "c", "")
	before := h.awaitState(t, node.StatePrepared)
	notYet(t, "a request of the prepared template", old, fresh)

	if err := h.api.Finalize(t.Context(), h.addr, node.FinalizeRequest{Operation: "op-1", ID: "web-2", Address: h.addr}); err != nil {
		t.Fatal(err)
	}
	for what, c := range map[string]<-chan reply{"the template's session's": old, "the template's new session's": fresh} {
		if r := within(t, what+" held request", c); r.code != http.StatusServiceUnavailable {
			t.Errorf("%s held request after the clone's finalize: %+v, want 503", what, r)
		}
	}
	st := h.status(t)
	if st.ID != "web-2" || st.State != node.StateReady || st.Generation != before.Generation+1 || st.Sessions != 0 {
		t.Errorf("finalized: %+v, want web-2, ready, generation %d, none of the template's 2 sessions", st, before.Generation+1)
	}
	r := h.work(t, "a", s1)
	if r.code != http.StatusOK || r.nodeID != "web-2" || r.cookie == "" || r.cookie == s1 || r.cache != "hit" {
		t.Errorf("the template's cookie on the finalized clone: %+v, want 200 from web-2 in a new session, a hit", r)
	}
}

// --cloned: a VM booted from a copy of its template's disk knows it is a
// clone, not which operation made it. It serves nothing until any
// operation finalizes it.
func TestACloneThatKnowsItStartsClonedAndServesNothingUntilFinalized(t *testing.T) {
	cfg := testConfig(t)
	cfg.Cloned = true
	h := start(t, cfg)
	if st := h.status(t); st.State != node.StateCloned || st.ID != "web-1" || st.Ready {
		t.Errorf("started --cloned: %+v, want cloned, with the id it was given, not ready", st)
	}
	if r := h.work(t, "a", ""); r.code != http.StatusServiceUnavailable {
		t.Errorf("work before the finalize: %+v, want 503", r)
	}
	if err := h.api.Finalize(t.Context(), h.addr, node.FinalizeRequest{Operation: "any", ID: "web-7", Address: h.addr}); err != nil {
		t.Fatal(err)
	}
	if r := h.work(t, "a", ""); r.code != http.StatusOK || r.nodeID != "web-7" || r.cookie == "" {
		t.Errorf("work after the finalize: %+v, want 200 from web-7 in a new session", r)
	}
}

// --set-hostname: a finalize also makes the node's new id the kernel's
// host name, and logs it; a failure to is logged and the finalize holds.
func TestSetHostnameTakesTheNewIDOnFinalize(t *testing.T) {
	for _, tc := range []struct {
		name    string
		on      bool
		err     error
		wantSet []string
		wantLog string
	}{
		{name: "off by default", wantLog: ""},
		{name: "on", on: true, wantSet: []string{"web-2"}, wantLog: `msg="host name set" hostname=web-2`},
		{name: "a failure is logged", on: true, err: errors.New("operation not permitted"), wantSet: []string{"web-2"},
			wantLog: `msg="setting the host name" hostname=web-2 err="operation not permitted"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var set []string
			cfg := testConfig(t)
			cfg.Cloned, cfg.SetHostname = true, tc.on
			cfg.sethostname = func(name string) error { set = append(set, name); return tc.err }
			var logs testenv.Buffer
			h := startLogged(t, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
			if err := h.api.Finalize(t.Context(), h.addr, node.FinalizeRequest{Operation: "op-1", ID: "web-2", Address: h.addr}); err != nil {
				t.Fatalf("finalize: %v", err)
			}
			if st := h.status(t); st.ID != "web-2" || st.State != node.StateReady {
				t.Errorf("after the finalize: %+v, want web-2, ready", st)
			}
			if !slices.Equal(set, tc.wantSet) {
				t.Errorf("host names set: %q, want %q", set, tc.wantSet)
			}
			if out := logs.String(); !strings.Contains(out, tc.wantLog) || (tc.wantLog == "" && strings.Contains(out, "host name")) {
				t.Errorf("logs:\n%s\nwant %q", out, tc.wantLog)
			}
		})
	}
}
