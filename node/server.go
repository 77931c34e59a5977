package node

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// App is what an application server implements to take part in the clone
// protocol. Server calls it at most once per operation and call, never
// concurrently, and only in the states the protocol allows.
type App interface {
	// Prepare gets the app ready to be cloned: it stops taking new
	// sessions and suspends (or, in PrepareEnd mode, ends) the pending
	// ones. It returns quickly: an error made with Refuse declines (the
	// app must then be as it was: ready), any other error fails the call.
	// Settling may go on after it returns; Settled says when it is done.
	Prepare(ctx context.Context, mode PrepareMode) error
	// Settled reports whether a prepared app has no work in flight, so
	// that a copy of its memory is consistent.
	Settled() bool
	// Resume takes new sessions again, after a prepare.
	Resume(ctx context.Context) error
	// Finalize is called on a clone: it purges the sessions it inherited
	// and takes its own identity (id, advertised address).
	Finalize(ctx context.Context, id, address string) error
	// Detach stops taking new sessions; the current ones finish.
	Detach(ctx context.Context) error
	// Sessions returns how many sessions the app holds.
	Sessions() int
	// Warmth returns the figures a policy ranks templates by.
	Warmth() Warmth
}

// Warmth says how warm an app is.
type Warmth struct {
	CacheHitRatio float64
	Uptime        time.Duration
}

// Refusal is an app declining to prepare, with its reason.
type Refusal struct{ Reason string }

func (r *Refusal) Error() string { return "refused: " + r.Reason }

// Refuse returns the error an App's Prepare declines with.
func Refuse(reason string) error { return &Refusal{Reason: reason} }

// ServerOptions configure a Server.
type ServerOptions struct {
	// ID is the node's id until a finalize gives it another.
	ID string
	// Token is the bearer token every call must carry. Required.
	Token string
	// Cloned starts the node as a clone (state cloned), waiting for its
	// finalize, as a process restored from a template's state does.
	Cloned bool
	// Generation is the generation to start at (a clone inherits its
	// template's, and finalize bumps it).
	Generation int
}

// Server serves the node API for an App. It is an http.Handler for the
// /v1/ paths; mount it on the application's mux.
type Server struct {
	app   App
	token []byte

	mu         sync.Mutex
	id         string
	state      State
	generation int
	operation  string // the operation of the current state
	// done remembers what each operation's calls answered, so that a
	// repeated call answers the same and does nothing more.
	done map[string]any
	mux  *http.ServeMux
}

// maxBody bounds a request body: the largest legitimate one is a few
// hundred bytes.
const maxBody = 64 << 10

// NewServer returns a Server for app.
func NewServer(app App, opts ServerOptions) (*Server, error) {
	if opts.Token == "" {
		return nil, errors.New("node: a server needs a token")
	}
	if opts.ID == "" {
		return nil, errors.New("node: a server needs an id")
	}
	s := &Server{
		app: app, token: []byte(opts.Token), id: opts.ID, state: StateReady,
		generation: opts.Generation, done: map[string]any{}, mux: http.NewServeMux(),
	}
	if opts.Cloned {
		s.state = StateCloned
	}
	s.mux.HandleFunc("GET /v1/status", s.status)
	s.mux.HandleFunc("POST /v1/prepare", s.prepare)
	s.mux.HandleFunc("POST /v1/resume", s.resume)
	s.mux.HandleFunc("POST /v1/finalize", s.finalize)
	s.mux.HandleFunc("POST /v1/detach", s.detach)
	return s, nil
}

// ServeHTTP authenticates the call and serves it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(got), s.token) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="mitosis node API"`)
		writeJSON(w, http.StatusUnauthorized, Problem{Error: "missing or wrong bearer token"})
		return
	}
	s.mux.ServeHTTP(w, r)
}

// MarkCloned tells the server its process is a clone that has not been
// finalized, for an application that finds out after it started.
func (s *Server) MarkCloned() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state, s.operation = StateCloned, ""
}

// Status returns what GET /v1/status answers.
func (s *Server) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.statusLocked()
}

// ID returns the node's current id.
func (s *Server) ID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.id
}

// statusLocked settles the derived states: a preparing app that has
// settled is prepared; a detaching one without sessions is detached.
func (s *Server) statusLocked() Status {
	sessions := s.app.Sessions()
	switch {
	case s.state == StatePreparing && s.app.Settled():
		s.state = StatePrepared
	case s.state == StateDetaching && sessions == 0:
		s.state = StateDetached
	}
	w := s.app.Warmth()
	return Status{
		ID: s.id, State: s.state, Sessions: sessions, Ready: s.state == StateReady,
		Generation: s.generation, Operation: s.operation,
		CacheHitRatio: w.CacheHitRatio, UptimeSeconds: w.Uptime.Seconds(),
	}
}

func (s *Server) status(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Status())
}

func (s *Server) prepare(w http.ResponseWriter, r *http.Request) {
	var req PrepareRequest
	if !decode(w, r, &req) {
		return
	}
	if req.Operation == "" {
		writeJSON(w, http.StatusBadRequest, Problem{Error: "operation: required"})
		return
	}
	if req.Mode != PrepareSuspend && req.Mode != PrepareEnd {
		writeJSON(w, http.StatusBadRequest, Problem{Error: fmt.Sprintf("mode %q: must be %q or %q", req.Mode, PrepareSuspend, PrepareEnd)})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if reply, ok := s.done["prepare "+req.Operation]; ok {
		writeJSON(w, http.StatusOK, reply)
		return
	}
	if st := s.statusLocked(); st.State != StateReady {
		s.conflict(w, "prepare", "a node prepares only from ready")
		return
	}
	ctx := r.Context()
	if !req.Deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, req.Deadline)
		defer cancel()
	}
	err := s.app.Prepare(ctx, req.Mode)
	var refusal *Refusal
	switch {
	case errors.As(err, &refusal):
		reply := PrepareReply{Accepted: false, Reason: refusal.Reason}
		s.remember("prepare "+req.Operation, reply)
		writeJSON(w, http.StatusOK, reply)
	case err != nil:
		writeJSON(w, http.StatusInternalServerError, Problem{Error: "prepare: " + err.Error()})
	default:
		s.state, s.operation = StatePreparing, req.Operation
		reply := PrepareReply{Accepted: true}
		s.remember("prepare "+req.Operation, reply)
		writeJSON(w, http.StatusOK, reply)
	}
}

func (s *Server) resume(w http.ResponseWriter, r *http.Request) {
	var req OperationRequest
	if !decode(w, r, &req) || !hasOperation(w, req.Operation) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.statusLocked().State {
	case StateReady: // never prepared, refused, or resumed already: ready is what resume asks
		writeJSON(w, http.StatusOK, s.statusLocked())
		return
	case StatePreparing, StatePrepared:
	default:
		s.conflict(w, "resume", "only a node being prepared resumes")
		return
	}
	if err := s.app.Resume(r.Context()); err != nil {
		writeJSON(w, http.StatusInternalServerError, Problem{Error: "resume: " + err.Error()})
		return
	}
	s.state, s.operation = StateReady, ""
	writeJSON(w, http.StatusOK, s.statusLocked())
}

func (s *Server) finalize(w http.ResponseWriter, r *http.Request) {
	var req FinalizeRequest
	if !decode(w, r, &req) || !hasOperation(w, req.Operation) {
		return
	}
	if req.ID == "" || req.Address == "" {
		writeJSON(w, http.StatusBadRequest, Problem{Error: "id and address: required"})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.done["finalize "+req.Operation]; ok {
		writeJSON(w, http.StatusOK, s.statusLocked())
		return
	}
	if s.statusLocked().State != StateCloned {
		s.conflict(w, "finalize", "only a clone that has not taken its identity is finalized")
		return
	}
	if err := s.app.Finalize(r.Context(), req.ID, req.Address); err != nil {
		writeJSON(w, http.StatusInternalServerError, Problem{Error: "finalize: " + err.Error()})
		return
	}
	s.id, s.generation, s.state, s.operation = req.ID, s.generation+1, StateReady, ""
	s.remember("finalize "+req.Operation, true)
	writeJSON(w, http.StatusOK, s.statusLocked())
}

func (s *Server) detach(w http.ResponseWriter, r *http.Request) {
	var req OperationRequest
	if !decode(w, r, &req) || !hasOperation(w, req.Operation) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.statusLocked()
	if (st.State == StateDetaching || st.State == StateDetached) && s.operation == req.Operation {
		writeJSON(w, http.StatusOK, st)
		return
	}
	if st.State != StateReady {
		s.conflict(w, "detach", "a node detaches only from ready")
		return
	}
	if err := s.app.Detach(r.Context()); err != nil {
		writeJSON(w, http.StatusInternalServerError, Problem{Error: "detach: " + err.Error()})
		return
	}
	s.state, s.operation = StateDetaching, req.Operation
	writeJSON(w, http.StatusOK, s.statusLocked())
}

// remember records what an operation's call answered. The record is
// bounded: a node sees a handful of operations in its life.
func (s *Server) remember(key string, v any) {
	if len(s.done) >= 256 {
		clear(s.done)
	}
	s.done[key] = v
}

func (s *Server) conflict(w http.ResponseWriter, call, why string) {
	writeJSON(w, http.StatusConflict, Problem{Error: call + ": " + why, State: s.state})
}

func hasOperation(w http.ResponseWriter, op string) bool {
	if op == "" {
		writeJSON(w, http.StatusBadRequest, Problem{Error: "operation: required"})
		return false
	}
	return true
}

// decode reads a JSON body strictly: unknown fields, trailing data and
// oversized bodies are refused with 400 naming the problem.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeJSON(w, http.StatusBadRequest, Problem{Error: "request body: " + err.Error()})
		return false
	}
	if _, err := dec.Token(); err != io.EOF {
		writeJSON(w, http.StatusBadRequest, Problem{Error: "request body: unexpected data after the JSON object"})
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
