package node_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/node"
)

// post sends an authenticated call straight to the handler.
func post(t *testing.T, h http.Handler, path, body string) (int, []byte) {
	t.Helper()
	method := http.MethodPost
	if path == "/v1/status" {
		method = http.MethodGet
	}
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	b, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, b
}

// Every transition of the state machine drawn in doc.go, from a node
// restored in each state, held by op-1.
func TestTransitions(t *testing.T) {
	const (
		prepare1  = `{"operation":"op-1","mode":"suspend"}`
		prepare2  = `{"operation":"op-2","mode":"end"}`
		op1       = `{"operation":"op-1"}`
		op2       = `{"operation":"op-2"}`
		finalize1 = `{"operation":"op-1","id":"web-9","address":"127.0.0.1:9"}`
		finalize2 = `{"operation":"op-2","id":"web-9","address":"127.0.0.1:9"}`
	)
	for _, c := range []struct {
		name      string
		from      node.State
		app       *app
		path      string
		body      string
		code      int
		to        node.State
		appCalled string // what the app was asked, "" for nothing
	}{
		{"prepare from ready settles", node.StateReady, &app{settle: -1}, "/v1/prepare", prepare1, 200, node.StatePrepared, "prepare suspend"},
		{"prepare from ready, not settled yet", node.StateReady, &app{settle: time.Hour}, "/v1/prepare", prepare2, 200, node.StatePreparing, "prepare end"},
		{"prepare refused stays ready", node.StateReady, &app{refuse: "busy"}, "/v1/prepare", prepare1, 200, node.StateReady, ""},
		{"prepare failing stays ready", node.StateReady, &app{fail: errors.New("disk full")}, "/v1/prepare", prepare1, 500, node.StateReady, ""},
		{"prepare while preparing", node.StatePreparing, &app{settle: time.Hour}, "/v1/prepare", prepare2, 409, node.StatePreparing, ""},
		{"prepare while prepared", node.StatePrepared, &app{}, "/v1/prepare", prepare1, 409, node.StatePrepared, ""},
		{"prepare of a clone", node.StateCloned, &app{}, "/v1/prepare", prepare1, 409, node.StateCloned, ""},
		{"prepare while detaching", node.StateDetaching, &app{sessions: 1}, "/v1/prepare", prepare1, 409, node.StateDetaching, ""},
		{"prepare when detached", node.StateDetached, &app{}, "/v1/prepare", prepare1, 409, node.StateDetached, ""},

		{"resume from prepared", node.StatePrepared, &app{}, "/v1/resume", op1, 200, node.StateReady, "resume"},
		{"resume from preparing", node.StatePreparing, &app{settle: time.Hour}, "/v1/resume", op1, 200, node.StateReady, "resume"},
		{"resume failing stays prepared", node.StatePrepared, &app{fail: errors.New("boom")}, "/v1/resume", op1, 500, node.StatePrepared, ""},
		{"resume by another operation", node.StatePrepared, &app{}, "/v1/resume", op2, 409, node.StatePrepared, ""},
		{"resume of a ready node is a no-op", node.StateReady, &app{}, "/v1/resume", op1, 200, node.StateReady, ""},
		{"resume of a clone", node.StateCloned, &app{}, "/v1/resume", op1, 409, node.StateCloned, ""},
		{"resume while detaching", node.StateDetaching, &app{sessions: 1}, "/v1/resume", op1, 409, node.StateDetaching, ""},

		{"finalize a prepared copy", node.StatePrepared, &app{sessions: 3}, "/v1/finalize", finalize1, 200, node.StateReady, "finalize web-9"},
		{"finalize a forced copy (preparing)", node.StatePreparing, &app{settle: time.Hour}, "/v1/finalize", finalize1, 200, node.StateReady, "finalize web-9"},
		{"finalize a clone", node.StateCloned, &app{}, "/v1/finalize", finalize2, 200, node.StateReady, "finalize web-9"},
		{"finalize failing stays cloned", node.StateCloned, &app{fail: errors.New("boom")}, "/v1/finalize", finalize1, 500, node.StateCloned, ""},
		{"finalize by another operation", node.StatePrepared, &app{}, "/v1/finalize", finalize2, 409, node.StatePrepared, ""},
		{"finalize a ready node", node.StateReady, &app{}, "/v1/finalize", finalize1, 409, node.StateReady, ""},
		{"finalize a detached node", node.StateDetached, &app{}, "/v1/finalize", finalize1, 409, node.StateDetached, ""},

		{"detach with sessions", node.StateReady, &app{sessions: 2}, "/v1/detach", op1, 200, node.StateDetaching, "detach"},
		{"detach without sessions", node.StateReady, &app{}, "/v1/detach", op1, 200, node.StateDetached, "detach"},
		{"detach of a prepared template", node.StatePrepared, &app{}, "/v1/detach", op2, 409, node.StatePrepared, ""},
		{"detach of a clone", node.StateCloned, &app{}, "/v1/detach", op2, 409, node.StateCloned, ""},
		{"detach by another operation", node.StateDetaching, &app{sessions: 1}, "/v1/detach", op2, 409, node.StateDetaching, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := c.app
			op := ""
			if c.from != node.StateReady && c.from != node.StateCloned {
				op = "op-1"
			}
			s, err := node.NewServer(a, node.ServerOptions{Token: token, Restore: &node.Snapshot{ID: "web-1", State: c.from, Operation: op, Generation: 2}})
			if err != nil {
				t.Fatal(err)
			}
			code, body := post(t, s, c.path, c.body)
			if code != c.code {
				t.Errorf("answered %d %s, want %d", code, body, c.code)
			}
			if code == http.StatusConflict {
				var p node.Problem
				if err := json.Unmarshal(body, &p); err != nil || p.State != c.from || p.Operation != op {
					t.Errorf("409 body %s: want state %s, operation %q", body, c.from, op)
				}
			}
			st := s.Status()
			if st.State != c.to || st.Ready != (c.to == node.StateReady) {
				t.Errorf("state %s (ready %v), want %s", st.State, st.Ready, c.to)
			}
			if got := strings.Join(a.calls, ","); got != c.appCalled {
				t.Errorf("the app was asked %q, want %q", got, c.appCalled)
			}
			if c.appCalled == "finalize web-9" && (st.ID != "web-9" || st.Generation != 3 || st.Operation != "") {
				t.Errorf("after finalize: %+v, want id web-9, generation 3, no operation", st)
			}
			if c.appCalled == "" && (st.ID != "web-1" || st.Generation != 2) {
				t.Errorf("identity changed without the app: %+v", st)
			}
		})
	}
}

// A repeated call answers what it answered first without a second side
// effect, even once the node has moved on.
func TestRepeatedCallsAnswerTheSame(t *testing.T) {
	a := &app{settle: -1}
	s, err := node.NewServer(a, node.ServerOptions{ID: "web-1", Token: token})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		path, body string
		code       int
	}{
		{"/v1/prepare", `{"operation":"op-1","mode":"suspend"}`, 200},
		{"/v1/prepare", `{"operation":"op-1","mode":"suspend"}`, 200},
		{"/v1/resume", `{"operation":"op-1"}`, 200},
		{"/v1/prepare", `{"operation":"op-2","mode":"suspend"}`, 200},
		// A late retry of op-1's resume must not pull the node from op-2.
		{"/v1/resume", `{"operation":"op-1"}`, 200},
		{"/v1/prepare", `{"operation":"op-1","mode":"suspend"}`, 200},
	}
	for _, st := range steps {
		if code, body := post(t, s, st.path, st.body); code != st.code || !strings.Contains(string(body), `"accepted":true`) && st.path == "/v1/prepare" {
			t.Fatalf("%s %s: %d %s", st.path, st.body, code, body)
		}
	}
	if st := s.Status(); st.State != node.StatePrepared || st.Operation != "op-2" {
		t.Errorf("status %+v, want prepared for op-2", st)
	}
	if got := strings.Join(a.calls, ","); got != "prepare suspend,resume,prepare suspend" {
		t.Errorf("the app was asked %q", got)
	}
}

// A process-level clone saves its template's protocol state and starts
// from it: same state, identity, operation and remembered answers.
func TestSaveAndRestore(t *testing.T) {
	a := &app{settle: -1}
	tmpl, err := node.NewServer(a, node.ServerOptions{ID: "web-1", Token: token, Generation: 4})
	if err != nil {
		t.Fatal(err)
	}
	post(t, tmpl, "/v1/prepare", `{"operation":"op-1","mode":"suspend"}`)
	var saved []byte
	if err := tmpl.Save(func(s node.Snapshot) error {
		saved, err = json.Marshal(s)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var snap node.Snapshot
	if err := json.Unmarshal(saved, &snap); err != nil {
		t.Fatal(err)
	}
	ca := &app{sessions: 5}
	clone, err := node.NewServer(ca, node.ServerOptions{ID: "ignored", Token: token, Restore: &snap})
	if err != nil {
		t.Fatal(err)
	}
	if st := clone.Status(); st.ID != "web-1" || st.State != node.StatePrepared || st.Operation != "op-1" || st.Generation != 4 {
		t.Fatalf("restored %+v from %s", st, saved)
	}
	if code, body := post(t, clone, "/v1/prepare", `{"operation":"op-1","mode":"suspend"}`); code != 200 || !strings.Contains(string(body), `"accepted":true`) || len(ca.calls) != 0 {
		t.Errorf("the template's prepare again on the clone: %d %s, app asked %v; want the remembered answer", code, body, ca.calls)
	}
	if code, body := post(t, clone, "/v1/finalize", `{"operation":"op-1","id":"mitosis-op-1","address":"127.0.0.1:2"}`); code != 200 {
		t.Fatalf("finalize: %d %s", code, body)
	}
	if st := clone.Status(); st.ID != "mitosis-op-1" || st.Generation != 5 || st.Sessions != 0 || st.State != node.StateReady {
		t.Errorf("finalized clone: %+v", st)
	}
	if st := tmpl.Status(); st.ID != "web-1" || st.State != node.StatePrepared {
		t.Errorf("the template moved: %+v", st)
	}
}

func TestRecordsAreBounded(t *testing.T) {
	s, err := node.NewServer(&app{settle: -1}, node.ServerOptions{ID: "web-1", Token: token})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		op := "op-" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + time.Duration(i).String()
		post(t, s, "/v1/prepare", `{"operation":"`+op+`","mode":"suspend"}`)
		post(t, s, "/v1/resume", `{"operation":"`+op+`"}`)
	}
	_ = s.Save(func(snap node.Snapshot) error {
		if n := len(snap.Records); n == 0 || n > 64 {
			t.Errorf("%d records kept, want at most 64", n)
		}
		return nil
	})
}

// The Server answers every body, however malformed, with JSON and one
// of the codes the API documents; it never panics.
func FuzzRequest(f *testing.F) {
	paths := []string{"/v1/prepare", "/v1/resume", "/v1/finalize", "/v1/detach", "/v1/status"}
	for _, seed := range []string{
		`{"operation":"op-1","mode":"suspend"}`,
		`{"operation":"op-1","mode":"end","deadline":"2030-01-01T00:00:00Z"}`,
		`{"operation":"op-1","id":"web-2","address":"127.0.0.1:1"}`,
		`{"operation":"op-1"} {}`, `{"operation":1}`, `{"operation":"op-1","deadline":"x"}`, `[`, ``, `null`,
	} {
		for i := range paths {
			f.Add(uint8(i), seed)
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, body string) {
		a := &app{settle: -1}
		s, err := node.NewServer(a, node.ServerOptions{ID: "web-1", Token: token, Restore: &node.Snapshot{
			ID: "web-1", State: []node.State{node.StateReady, node.StatePrepared, node.StateCloned}[which%3], Operation: "op-1",
		}})
		if err != nil {
			t.Fatal(err)
		}
		path := paths[int(which)%len(paths)]
		code, out := post(t, s, path, body)
		if !slices.Contains([]int{200, 400, 409}, code) {
			t.Fatalf("%s %q: code %d", path, body, code)
		}
		var v map[string]any
		if err := json.Unmarshal(out, &v); err != nil {
			t.Fatalf("%s %q: answer %q is not JSON: %v", path, body, out, err)
		}
		if code == 400 && (v["error"] == "" || len(a.calls) != 0) {
			t.Fatalf("%s %q: a 400 %s reached the app (%v)", path, body, out, a.calls)
		}
	})
}

func TestClientCarriesTheStateAndOperationOfA409(t *testing.T) {
	s, err := node.NewServer(&app{}, node.ServerOptions{Token: token, Restore: &node.Snapshot{ID: "web-1", State: node.StatePrepared, Operation: "op-1"}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()
	err = node.NewClient(token, node.ClientOptions{}).Resume(context.Background(), strings.TrimPrefix(srv.URL, "http://"), "op-2")
	var se *node.StateError
	if !errors.As(err, &se) || se.State != node.StatePrepared || se.Operation != "op-1" || !strings.Contains(err.Error(), "op-1") {
		t.Errorf("error %v, want a StateError in prepared, held by op-1", err)
	}
}

// A prepare that arrives after its operation's resume (sent, given up on,
// compensated, and only then applied) is refused: the node stays ready
// instead of held for an operation that has moved on, with its resume
// spent.
func TestAPrepareAfterItsOperationsResumeIsRefused(t *testing.T) {
	a := &app{settle: -1}
	s, err := node.NewServer(a, node.ServerOptions{ID: "web-1", Token: token})
	if err != nil {
		t.Fatal(err)
	}
	if code, body := post(t, s, "/v1/resume", `{"operation":"op-1"}`); code != 200 {
		t.Fatalf("resume: %d %s", code, body)
	}
	for range 2 { // and its retry answers the same
		code, body := post(t, s, "/v1/prepare", `{"operation":"op-1","mode":"suspend"}`)
		var reply node.PrepareReply
		if code != 200 || json.Unmarshal(body, &reply) != nil || reply.Accepted || !strings.Contains(reply.Reason, "too late") {
			t.Fatalf("a late prepare: %d %s, want a refusal", code, body)
		}
	}
	if st := s.Status(); st.State != node.StateReady || len(a.calls) != 0 {
		t.Errorf("status %+v, app asked %v: want ready, untouched", st, a.calls)
	}
	// Another operation still prepares it.
	if code, body := post(t, s, "/v1/prepare", `{"operation":"op-2","mode":"suspend"}`); code != 200 || !strings.Contains(string(body), `"accepted":true`) {
		t.Errorf("op-2's prepare: %d %s", code, body)
	}
}

// Bad requests are refused naming what is wrong, in the caller's terms.
func TestBadRequestsAreNamed(t *testing.T) {
	long := strings.Repeat("x", 300)
	for _, c := range []struct{ path, body, want string }{
		{"/v1/prepare", `{"operation":"a","mode":"suspend","deadline":5}`, "deadline: must be an RFC 3339 time"},
		{"/v1/prepare", `[]`, "want a JSON object, not array"},
		{"/v1/resume", `{"operation":"a"}` + strings.Repeat(" ", 70000), "larger than 65536 bytes"},
		{"/v1/resume", `{"operation":"` + long + `"}`, "operation: 300 bytes, at most 256"},
		{"/v1/finalize", `{"operation":"a","id":"c1","address":"nonsense"}`, "nonsense"},
		{"/v1/finalize", `{"operation":"a","id":"c1","address":"127.0.0.1:+80"}`, "is not host:port with a port in 1-65535"},
	} {
		s, err := node.NewServer(&app{settle: -1}, node.ServerOptions{ID: "web-1", Token: token})
		if err != nil {
			t.Fatal(err)
		}
		if code, body := post(t, s, c.path, c.body); code != 400 || !strings.Contains(string(body), c.want) {
			t.Errorf("%s %.60s: %d %s, want 400 with %q", c.path, c.body, code, body, c.want)
		}
	}
}

// The bearer scheme is case-insensitive (RFC 7235); the token is not.
func TestTheBearerSchemeIsCaseInsensitive(t *testing.T) {
	s, err := node.NewServer(&app{}, node.ServerOptions{ID: "web-1", Token: token})
	if err != nil {
		t.Fatal(err)
	}
	for auth, want := range map[string]int{"bearer " + token: 200, "BEARER " + token: 200, "Bearer " + strings.ToUpper(token): 401, "Basic " + token: 401} {
		req := httptest.NewRequest(http.MethodGet, "/v1/status", nil)
		req.Header.Set("Authorization", auth)
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("Authorization %q: %d, want %d", auth, rec.Code, want)
		}
	}
}
