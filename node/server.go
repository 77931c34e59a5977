package node

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// App is what an application server implements to take part in the clone
// protocol. Server calls it at most once per operation and call, never
// concurrently, and only in the states the protocol allows; it calls
// Settled, Sessions and Warmth whenever it reports a status, so those
// must be cheap and must not call back into the Server.
type App interface {
	// Prepare gets the app ready to be cloned: it stops taking new
	// sessions: it holds or refuses their requests, and suspends (or, in
	// PrepareEnd mode, ends) the pending ones. Holding is better: the
	// saga keeps the last ready node of its role in the dispatcher while
	// it is cloned, so there a refused request is a failed client. A held
	// request is not in flight. It returns quickly: an error made with
	// Refuse declines (the app must then be as it was: ready), any other
	// error fails the call (answered 500, retried by the client) and
	// must leave the app ready. Settling may go on after it returns;
	// Settled says when it is done.
	Prepare(ctx context.Context, mode PrepareMode) error
	// Settled reports whether a preparing app has no work in flight, so
	// that a copy of its memory is consistent.
	Settled() bool
	// Resume takes new sessions again, after a prepare.
	Resume(ctx context.Context) error
	// Finalize is called on a clone: it purges the sessions it inherited
	// (every one it has: a clone takes none before its finalize), lets go
	// of the requests it holds (a live clone's are its template's
	// clients', which the template serves), takes its own identity (id,
	// advertised address) and takes new sessions.
	Finalize(ctx context.Context, id, address string) error
	// Detach stops taking new sessions; the current ones finish. The
	// node is detached once Sessions reports 0.
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
	// Cloned starts the node in state cloned, waiting for its finalize:
	// for an app that knows it is a clone (a guest agent told so by its
	// hypervisor, say) but not which operation made it.
	Cloned bool
	// Generation is the generation to start at.
	Generation int
	// Restore, when set, starts the server in a saved protocol state
	// (see Server.Save) instead: what a process-level clone does, so that
	// it starts where its template was. ID, Cloned and Generation are
	// then ignored.
	Restore *Snapshot
}

// Snapshot is a Server's protocol state, as an application saves it
// alongside its own (Server.Save) and starts again from it
// (ServerOptions.Restore).
type Snapshot struct {
	ID         string `json:"id"`
	State      State  `json:"state"`
	Generation int    `json:"generation"`
	Operation  string `json:"operation,omitempty"`
	// Records are the calls remembered for idempotency, oldest first.
	Records []Record `json:"records,omitempty"`
}

// Record is a call the server has done for an operation, remembered so
// that the same call again answers the same and does nothing more.
type Record struct {
	Call      string `json:"call"` // prepare, resume, finalize or detach
	Operation string `json:"operation"`
	// Reply is what a prepare answered.
	Reply *PrepareReply `json:"reply,omitempty"`
	// ID and Address are what a finalize gave the node: the same
	// operation asking for another identity is not a retry.
	ID      string `json:"id,omitempty"`
	Address string `json:"address,omitempty"`
}

// maxRecords bounds the idempotency records: a node sees a handful of
// operations in its life, and the oldest are the least likely retried.
const maxRecords = 64

// Server serves the node API for an App: it owns the state machine, the
// idempotency per operation, the authentication and the validation. It
// is an http.Handler for the /v1/ paths; mount it on the application's
// mux. It is safe for concurrent use.
type Server struct {
	app   App
	token []byte

	mu         sync.Mutex
	id         string
	state      State
	generation int
	operation  string // the operation of the current state
	records    []Record
	mux        *http.ServeMux
}

// maxBody bounds a request body: the largest legitimate one is a few
// hundred bytes.
const maxBody = 64 << 10

// NewServer returns a Server for app.
func NewServer(app App, opts ServerOptions) (*Server, error) {
	if opts.Token == "" {
		return nil, errors.New("node: a server needs a token")
	}
	s := &Server{app: app, token: []byte(opts.Token), id: opts.ID, state: StateReady, generation: opts.Generation}
	if opts.Cloned {
		s.state = StateCloned
	}
	if r := opts.Restore; r != nil {
		if !slices.Contains(states, r.State) {
			return nil, fmt.Errorf("node: restoring state %q: not a state", r.State)
		}
		s.id, s.state, s.generation, s.operation = r.ID, r.State, r.Generation, r.Operation
		s.records = slices.Clone(r.Records)
	}
	if s.id == "" {
		return nil, errors.New("node: a server needs an id")
	}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET /v1/status", s.status)
	s.mux.HandleFunc("POST /v1/prepare", s.prepare)
	s.mux.HandleFunc("POST /v1/resume", s.resume)
	s.mux.HandleFunc("POST /v1/finalize", s.finalize)
	s.mux.HandleFunc("POST /v1/detach", s.detach)
	s.mux.HandleFunc("/", notFound)
	return s, nil
}

var states = []State{StateReady, StatePreparing, StatePrepared, StateCloned, StateDetaching, StateDetached}

// ServeHTTP authenticates the call and serves it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The scheme is case-insensitive (RFC 7235).
	scheme, got, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare([]byte(got), s.token) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="mitosis node API"`)
		writeJSON(w, http.StatusUnauthorized, Problem{Error: "missing or wrong bearer token"})
		return
	}
	s.mux.ServeHTTP(w, r)
}

// notFound answers what the routes do not match, in JSON like the rest.
func notFound(w http.ResponseWriter, r *http.Request) {
	allow := map[string]string{
		"/v1/status": http.MethodGet, "/v1/prepare": http.MethodPost, "/v1/resume": http.MethodPost,
		"/v1/finalize": http.MethodPost, "/v1/detach": http.MethodPost,
	}
	if m, ok := allow[r.URL.Path]; ok {
		w.Header().Set("Allow", m)
		writeJSON(w, http.StatusMethodNotAllowed, Problem{Error: fmt.Sprintf("%s %s: use %s", r.Method, r.URL.Path, m)})
		return
	}
	writeJSON(w, http.StatusNotFound, Problem{Error: fmt.Sprintf("%s: no such call", r.URL.Path)})
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

// Save calls save with the server's protocol state while no call can
// change it, so that the application saves its own state consistently
// with it. save may lock the app but must not call the Server.
func (s *Server) Save(save func(Snapshot) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.statusLocked() // settle derived states first
	return save(Snapshot{
		ID: s.id, State: s.state, Generation: s.generation, Operation: s.operation,
		Records: slices.Clone(s.records),
	})
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
	if !decode(w, r, &req) || !hasOperation(w, req.Operation) {
		return
	}
	if req.Mode != PrepareSuspend && req.Mode != PrepareEnd {
		writeJSON(w, http.StatusBadRequest, Problem{Error: fmt.Sprintf("mode: %q is not %q or %q", req.Mode, PrepareSuspend, PrepareEnd)})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if rec, ok := s.recorded("prepare", req.Operation); ok {
		writeJSON(w, http.StatusOK, *rec.Reply)
		return
	}
	if _, ok := s.recorded("resume", req.Operation); ok {
		// A prepare that arrives after its operation resumed the node (a
		// request its client gave up on, then compensated) is stale:
		// preparing now would hold the node for an operation that has
		// moved on, and its resume is already spent.
		reply := PrepareReply{Accepted: false, Reason: fmt.Sprintf("operation %s has resumed this node already: its prepare comes too late", req.Operation)}
		s.record(Record{Call: "prepare", Operation: req.Operation, Reply: &reply})
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
	var reply PrepareReply
	switch {
	case errors.As(err, &refusal):
		reply = PrepareReply{Accepted: false, Reason: refusal.Reason}
	case err != nil:
		writeJSON(w, http.StatusInternalServerError, Problem{Error: "prepare: " + err.Error()})
		return
	default:
		s.state, s.operation = StatePreparing, req.Operation
		reply = PrepareReply{Accepted: true}
	}
	s.record(Record{Call: "prepare", Operation: req.Operation, Reply: &reply})
	writeJSON(w, http.StatusOK, reply)
}

func (s *Server) resume(w http.ResponseWriter, r *http.Request) {
	var req OperationRequest
	if !decode(w, r, &req) || !hasOperation(w, req.Operation) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.recorded("resume", req.Operation); ok {
		writeJSON(w, http.StatusOK, s.statusLocked())
		return
	}
	switch st := s.statusLocked(); {
	case st.State == StateReady:
		// Never prepared, or refused: ready is what resume asks for.
	case (st.State == StatePreparing || st.State == StatePrepared) && s.operation == req.Operation:
		if err := s.app.Resume(r.Context()); err != nil {
			writeJSON(w, http.StatusInternalServerError, Problem{Error: "resume: " + err.Error()})
			return
		}
		s.state, s.operation = StateReady, ""
	case st.State == StatePreparing || st.State == StatePrepared:
		// Another operation holds the node: resuming it would pull
		// the template from under that operation's clone.
		s.conflict(w, "resume", "the node is prepared for another operation")
		return
	default:
		s.conflict(w, "resume", "only a node being prepared resumes")
		return
	}
	s.record(Record{Call: "resume", Operation: req.Operation})
	writeJSON(w, http.StatusOK, s.statusLocked())
}

// finalize gives a clone its identity. A live clone continues its
// template's memory, so its node starts in the template's state:
// preparing or prepared by the operation that made it. Only that
// operation finalizes it. The template itself, in the same state, is
// safe because the saga resumes it (back to ready) before it finalizes
// the clone, and sends the finalize to the clone's address.
func (s *Server) finalize(w http.ResponseWriter, r *http.Request) {
	var req FinalizeRequest
	if !decode(w, r, &req) || !hasOperation(w, req.Operation) {
		return
	}
	switch {
	case req.ID == "":
		writeJSON(w, http.StatusBadRequest, Problem{Error: "id: required"})
		return
	case req.Address == "":
		writeJSON(w, http.StatusBadRequest, Problem{Error: "address: required"})
		return
	case !hostPort(req.Address):
		writeJSON(w, http.StatusBadRequest, Problem{Error: fmt.Sprintf("address: %q is not host:port with a port in 1-65535", req.Address)})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if rec, ok := s.recorded("finalize", req.Operation); ok {
		// A retry answers as the first time; another id or address under
		// the same operation is a caller confused (or lying), and the node
		// keeps the identity it took. A record saved without them (before
		// they were kept) answers as a retry.
		if rec.ID != "" && (rec.ID != req.ID || rec.Address != req.Address) {
			s.conflict(w, "finalize", fmt.Sprintf("operation %s finalized this node as %s at %s, not as %s at %s", req.Operation, rec.ID, rec.Address, req.ID, req.Address))
			return
		}
		writeJSON(w, http.StatusOK, s.statusLocked())
		return
	}
	switch st := s.statusLocked(); {
	case st.State == StateCloned:
	case (st.State == StatePreparing || st.State == StatePrepared) && s.operation == req.Operation:
	case st.State == StatePreparing || st.State == StatePrepared:
		s.conflict(w, "finalize", "the node was prepared by another operation")
		return
	default:
		s.conflict(w, "finalize", "only a clone that has not taken its identity is finalized")
		return
	}
	if err := s.app.Finalize(r.Context(), req.ID, req.Address); err != nil {
		writeJSON(w, http.StatusInternalServerError, Problem{Error: "finalize: " + err.Error()})
		return
	}
	s.id, s.generation, s.state, s.operation = req.ID, s.generation+1, StateReady, ""
	s.record(Record{Call: "finalize", Operation: req.Operation, ID: req.ID, Address: req.Address})
	writeJSON(w, http.StatusOK, s.statusLocked())
}

func (s *Server) detach(w http.ResponseWriter, r *http.Request) {
	var req OperationRequest
	if !decode(w, r, &req) || !hasOperation(w, req.Operation) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.recorded("detach", req.Operation); ok {
		writeJSON(w, http.StatusOK, s.statusLocked())
		return
	}
	if s.statusLocked().State != StateReady {
		s.conflict(w, "detach", "a node detaches only from ready")
		return
	}
	if err := s.app.Detach(r.Context()); err != nil {
		writeJSON(w, http.StatusInternalServerError, Problem{Error: "detach: " + err.Error()})
		return
	}
	s.state, s.operation = StateDetaching, req.Operation
	s.record(Record{Call: "detach", Operation: req.Operation})
	writeJSON(w, http.StatusOK, s.statusLocked())
}

func (s *Server) recorded(call, op string) (Record, bool) {
	for _, r := range s.records {
		if r.Call == call && r.Operation == op {
			return r, true
		}
	}
	return Record{}, false
}

func (s *Server) record(r Record) {
	if len(s.records) >= maxRecords {
		s.records = slices.Delete(s.records, 0, len(s.records)-maxRecords+1)
	}
	s.records = append(s.records, r)
}

func (s *Server) conflict(w http.ResponseWriter, call, why string) {
	writeJSON(w, http.StatusConflict, Problem{Error: call + ": " + why, State: s.state, Operation: s.operation})
}

// maxOperation bounds an operation id: mitosis makes ids of some tens
// of characters, and each is remembered (and saved with the state).
const maxOperation = 256

func hasOperation(w http.ResponseWriter, op string) bool {
	switch {
	case op == "":
		writeJSON(w, http.StatusBadRequest, Problem{Error: "operation: required"})
		return false
	case len(op) > maxOperation:
		writeJSON(w, http.StatusBadRequest, Problem{Error: fmt.Sprintf("operation: %d bytes, at most %d", len(op), maxOperation)})
		return false
	}
	return true
}

// hostPort says whether addr is host:port with a decimal port in range.
func hostPort(addr string) bool {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || port == "" || strings.TrimLeft(port, "0123456789") != "" {
		return false
	}
	n, err := strconv.Atoi(port)
	return err == nil && n >= 1 && n <= 65535
}

// decode reads a JSON body strictly: unknown fields, trailing data and
// oversized bodies are refused with 400 naming the problem.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeJSON(w, http.StatusBadRequest, Problem{Error: "request body: " + describe(err)})
		return false
	}
	if _, err := dec.Token(); err != io.EOF {
		msg := "unexpected data after the JSON object"
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			msg = describe(err)
		}
		writeJSON(w, http.StatusBadRequest, Problem{Error: "request body: " + msg})
		return false
	}
	return true
}

// describe names the field a decoding error is about, where it can.
func describe(err error) string {
	var te *json.UnmarshalTypeError
	var mbe *http.MaxBytesError
	var pe *time.ParseError
	switch {
	case errors.As(err, &te) && te.Field != "":
		return fmt.Sprintf("%s: must be a JSON %s, not %s", te.Field, te.Type, te.Value)
	case errors.As(err, &te):
		return fmt.Sprintf("want a JSON object, not %s", te.Value)
	case strings.Contains(err.Error(), "Time.UnmarshalJSON"): // the only time in a request
		return "deadline: must be an RFC 3339 time in a JSON string"
	case errors.As(err, &pe): // the only time in a request
		return fmt.Sprintf("deadline: %q is not an RFC 3339 time", pe.Value)
	case errors.As(err, &mbe):
		return fmt.Sprintf("larger than %d bytes", mbe.Limit)
	case errors.Is(err, io.EOF):
		return "empty, want a JSON object"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
