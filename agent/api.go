package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/mitosis-autoscaler/mitosis/agent/dashboard"
	"github.com/mitosis-autoscaler/mitosis/agent/wire"
)

// The HTTP API (docs/api.md): JSON under /v1, every endpoint behind a
// bearer token of a sufficient role, except /-/healthy and /-/ready. This
// file routes, guards and decodes; the handlers are in api_*.go, by what
// they serve, and the bodies they read and write are agent/wire's types.

// maxBody bounds what a request may send.
const maxBody = 1 << 20

// Handler serves the API, the agent's metrics and its health.
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /-/healthy", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "mitosis is healthy\n") })
	mux.HandleFunc("GET /-/ready", func(w http.ResponseWriter, r *http.Request) {
		if why := a.ready(r.Context()); why != "" {
			http.Error(w, why, http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "mitosis is ready\n")
	})
	for _, rt := range a.routes() {
		mux.Handle(rt.pattern, a.guard(rt.min, rt.h))
	}
	// The dashboard's files need no token: they hold no data (docs/dashboard.md).
	dashboard.Mount(mux)
	return jsonMisses(mux)
}

// jsonMisses answers a request under /v1 that no route takes (an unknown
// path, a method the path does not have) as the API answers every error:
// in JSON, with the mux's status and Allow header.
func jsonMisses(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern != "" || !strings.HasPrefix(r.URL.Path, "/v1/") {
			mux.ServeHTTP(w, r)
			return
		}
		miss := &missed{header: http.Header{}, code: http.StatusOK}
		mux.ServeHTTP(miss, r)
		msg := fmt.Sprintf("no endpoint %s (docs/api.md lists them)", r.URL.Path)
		if allow := miss.header.Get("Allow"); miss.code == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", allow)
			msg = fmt.Sprintf("%s %s: method not allowed (allowed: %s)", r.Method, r.URL.Path, allow)
		}
		writeError(w, miss.code, msg)
	})
}

// missed keeps the status and headers of the mux's own answer to a miss,
// and drops its plain-text body.
type missed struct {
	header http.Header
	code   int
}

func (m *missed) Header() http.Header         { return m.header }
func (m *missed) WriteHeader(code int)        { m.code = code }
func (m *missed) Write(b []byte) (int, error) { return len(b), nil }

// route is one endpoint: its method and path, the least role it needs.
type route struct {
	pattern string
	min     Role
	h       func(w http.ResponseWriter, r *http.Request, p principal) error
}

// routes are every endpoint behind a token (the API tests walk them); the
// handlers are in the api_*.go files named for what they serve. Every
// write is recorded in the registry with who made it.
func (a *Agent) routes() []route {
	return []route{
		{"GET /metrics", RoleRead, func(w http.ResponseWriter, r *http.Request, _ principal) error {
			a.telemetry.Handler().ServeHTTP(w, r)
			return nil
		}},
		{"GET /v1/whoami", RoleRead, func(w http.ResponseWriter, _ *http.Request, p principal) error {
			return reply(w, wire.Whoami{Name: p.Name, Role: p.Role.String()})
		}},
		// api_clusters.go
		{"GET /v1/status", RoleRead, a.status},
		{"GET /v1/clusters/{cluster}/nodes", RoleRead, a.nodes},
		{"GET /v1/targets", RoleRead, a.targets},
		{"GET /v1/clusters/{cluster}/operations", RoleRead, a.operations},
		{"GET /v1/operations/{id}", RoleRead, a.operation},
		{"GET /v1/clusters/{cluster}/decisions", RoleRead, a.decisions},
		{"GET /v1/clusters/{cluster}/why", RoleRead, a.why},
		// api_selection.go
		{"POST /v1/clusters/{cluster}/clone", RoleOperate, a.clone},
		{"POST /v1/clusters/{cluster}/detach", RoleOperate, a.detach},
		// api_settings.go
		{"GET /v1/clusters/{cluster}/settings", RoleRead, a.getSettings},
		{"POST /v1/clusters/{cluster}/pause", RoleOperate, a.setPaused(true)},
		{"POST /v1/clusters/{cluster}/resume", RoleOperate, a.setPaused(false)},
		{"PUT /v1/clusters/{cluster}/dry-run", RoleOperate, a.setDryRun},
		{"GET /v1/audit", RoleRead, a.audits},
		// api_policy.go
		{"GET /v1/policy", RoleRead, a.getPolicy},
		{"POST /v1/policy/validate", RoleOperate, a.validatePolicy},
		{"PUT /v1/policy", RoleAdmin, a.pushPolicy},
		// api_peers.go
		{"GET /v1/peers", RoleRead, a.peers},
		{"POST /v1/peers", RoleAdmin, a.joinPeer},
		{"DELETE /v1/peers/{id}", RoleAdmin, a.removePeer},
	}
}

// apiError is an error with its HTTP status.
type apiError struct {
	code int
	msg  string
	// leader is the leader's API address, for a write sent to a follower.
	leader string
}

func (e *apiError) Error() string { return e.msg }

func bad(format string, args ...any) error {
	return &apiError{code: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) error {
	return &apiError{code: http.StatusNotFound, msg: fmt.Sprintf(format, args...)}
}

// guard admits a request whose token has at least min's role, bounds its
// body, and writes the handler's error as JSON.
func (a *Agent) guard(min Role, h func(w http.ResponseWriter, r *http.Request, p principal) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := a.tokens.who(r)
		switch {
		case p.Role == RoleNone:
			w.Header().Set("WWW-Authenticate", `Bearer realm="mitosis"`)
			writeError(w, http.StatusUnauthorized, "a valid bearer token is required")
			return
		case p.Role < min:
			writeError(w, http.StatusForbidden, fmt.Sprintf("%s has the %s role; this needs %s", p.Name, p.Role, min))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		if err := h(w, r, p); err != nil {
			var ae *apiError
			var mb *http.MaxBytesError
			switch {
			case errors.As(err, &ae), errors.As(a.notLeader(err), &ae):
				if ae.leader != "" {
					w.Header().Set("Location", ae.leader+r.URL.RequestURI())
				}
				writeError(w, ae.code, ae.msg)
			case errors.As(err, &mb):
				writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the request body is over %d bytes", mb.Limit))
			default:
				a.log.Error("api", "path", r.URL.Path, "who", p.Name, "error", err)
				writeError(w, http.StatusInternalServerError, err.Error())
			}
		}
	})
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(wire.ErrorBody{Message: msg})
}

func reply(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	return writeJSON(w, v)
}

func writeJSON(w http.ResponseWriter, v any) error { return json.NewEncoder(w).Encode(v) }

// cluster is the request's {cluster}, which must be configured.
func (a *Agent) cluster(r *http.Request) (string, error) {
	return a.configured(r.PathValue("cluster"))
}

// configured is name, if a cluster of that name is configured.
func (a *Agent) configured(name string) (string, error) {
	for _, cl := range a.cfg.Clusters {
		if cl.Name == name {
			return name, nil
		}
	}
	return "", notFound("cluster %q is not configured", name)
}

// limit reads ?limit=, 1 to 1,000, default def.
func limit(r *http.Request, def int) (int, error) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 1000 {
		return 0, bad("limit: %q is not a number from 1 to 1000", s)
	}
	return n, nil
}

// decode reads a JSON body strictly: one object, no unknown field.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return err
		}
		if err == io.EOF {
			return bad("request body: empty; a JSON object is expected (docs/api.md)")
		}
		return bad("request body: %v", err)
	}
	if err := dec.Decode(&struct{}{}); err != io.EOF {
		return bad("request body: one JSON object expected, and nothing after it")
	}
	return nil
}

// noBody refuses a body on an endpoint that takes none; an empty one or
// {} is no body.
func noBody(r *http.Request) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	if t := strings.TrimSpace(string(b)); t != "" && t != "{}" {
		return bad("request body: %s %s takes none (or {})", r.Method, r.URL.Path)
	}
	return nil
}
