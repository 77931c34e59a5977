package demonode

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mitosis-autoscaler/mitosis/node"
)

// SessionCookie is the cookie a session is kept by.
const SessionCookie = "demo_session"

// maxKey bounds a work key.
const maxKey = 256

// Node is one demo node: the App, the node API server over it, its
// metrics and its HTTP handler.
type Node struct {
	App     *App
	API     *node.Server
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	handler http.Handler
}

// New builds a node from cfg: a fresh one, or a clone restored from
// cfg.FromState.
func New(cfg Config, log *slog.Logger) (*Node, error) {
	app := NewApp(AppOptions{
		ID: cfg.ID, CacheSize: cfg.CacheSize, MissCost: cfg.MissCost, SessionIdle: cfg.SessionIdle,
		RefusePrepare: cfg.RefusePrepare, SettleDelay: cfg.SettleDelay, HoldMax: cfg.HoldMax,
		Cloned: cfg.Cloned, Finalized: hostnameSetter(cfg, log), Now: cfg.now,
	})
	opts := node.ServerOptions{ID: cfg.ID, Token: string(cfg.Token), Cloned: cfg.Cloned}
	if cfg.FromState != "" {
		st, err := ReadState(cfg.FromState)
		if err != nil {
			return nil, err
		}
		if err := app.Restore(st); err != nil {
			return nil, fmt.Errorf("restoring from %s: %w", cfg.FromState, err)
		}
		opts.Restore = cloneOf(st.Node)
		log.Info("restored as a clone", "from", cfg.FromState, "template", st.Node.ID, "vm", cfg.ID,
			"state", opts.Restore.State, "operation", opts.Restore.Operation, "generation", st.Node.Generation,
			"cache_entries", len(st.Cache), "sessions", len(st.Sessions))
	}
	api, err := node.NewServer(app, opts)
	if err != nil {
		return nil, fmt.Errorf("node API: %w", err)
	}
	n := &Node{App: app, API: api, cfg: cfg, log: log, metrics: newMetrics(app)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /work", n.work)
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.metrics.reg, promhttp.HandlerOpts{}))
	mux.Handle("/v1/", n.logCalls(api))
	mux.Handle("POST /-/snapshot", n.logCalls(http.HandlerFunc(n.snapshot)))
	mux.Handle("/-/snapshot", n.logCalls(http.HandlerFunc(onlyPost))) // the other methods: a JSON 405
	n.handler = mux
	return n, nil
}

// hostnameSetter returns what a finalize does besides the app's own:
// with --set-hostname, it takes the new id as the kernel's host name, as
// a clone's guest takes its own identity. A failure is logged and does
// not fail the finalize: the node has its id either way.
func hostnameSetter(cfg Config, log *slog.Logger) func(id string) {
	if !cfg.SetHostname {
		return nil
	}
	set := cfg.sethostname
	if set == nil {
		set = sethostname
	}
	return func(id string) {
		if err := set(id); err != nil {
			log.Error("setting the host name", "hostname", id, "err", err)
			return
		}
		log.Info("host name set", "hostname", id)
	}
}

// cloneOf is the protocol state a clone of a node saved in snap starts
// in. A live clone continues its template's memory: the template's id,
// generation and state, so that the operation that prepared the
// template finalizes it. A copy of a node no operation prepared knows it
// is a clone but not whose: it starts cloned, and any operation
// finalizes it. The --id a clone is given is its VM's name only.
func cloneOf(snap node.Snapshot) *node.Snapshot {
	if snap.State != node.StatePreparing && snap.State != node.StatePrepared {
		snap.State, snap.Operation = node.StateCloned, ""
	}
	return &snap
}

// Handler returns the node's handler: work, metrics, the node API and
// the snapshot call, on one address.
func (n *Node) Handler() http.Handler { return n.handler }

// work serves GET /work?key=K within the caller's session.
func (n *Node) work(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	w.Header().Set("X-Node-ID", n.App.ID())
	key := r.URL.Query().Get("key")
	if key == "" || len(key) > maxKey {
		n.metrics.requests.WithLabelValues(resultBadRequest).Inc()
		http.Error(w, fmt.Sprintf("key: required, at most %d bytes", maxKey), http.StatusBadRequest)
		return
	}
	var cookie string
	if c, err := r.Cookie(SessionCookie); err == nil {
		cookie = c.Value
	}
	id, created, err := n.App.admit(r.Context(), cookie)
	if err != nil {
		n.metrics.requests.WithLabelValues(resultUnavailable).Inc()
		w.Header().Set("Retry-After", "1")
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		n.log.Debug("work refused", "key", key, "reason", err)
		return
	}
	defer n.App.release()
	if created {
		http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	}
	value, render, hit, units := n.App.lookup(key)
	result := resultMiss
	if hit {
		result = resultHit
	}
	w.Header().Set("X-Cache", result)
	w.Header().Set("X-Work-Units", strconv.Itoa(units))
	w.Header().Set("ETag", `"`+render[:16]+`"`)
	writeJSON(w, http.StatusOK, map[string]any{"key": key, "value": value, "cache": result, "units": units})
	n.metrics.requests.WithLabelValues(result).Inc()
	n.metrics.units.Add(float64(units))
	n.metrics.duration.Observe(time.Since(start).Seconds())
	n.log.Debug("work", "key", key, "cache", result, "units", units, "new_session", created)
}

// snapshot serves POST /-/snapshot?file=PATH: it writes the node's state
// to PATH, which must lie inside the state directory.
func (n *Node) snapshot(w http.ResponseWriter, r *http.Request) {
	if !n.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="mitosis node API"`)
		writeJSON(w, http.StatusUnauthorized, node.Problem{Error: "missing or wrong bearer token"})
		return
	}
	file := r.URL.Query().Get("file")
	var st State
	_ = n.API.Save(func(snap node.Snapshot) error { st = n.App.State(snap); return nil })
	if err := WriteState(n.cfg.StateDir, file, st); err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, errOutside) || errors.Is(err, errSnapshotsOff) {
			code = http.StatusBadRequest
		}
		n.log.Warn("snapshot refused", "file", file, "err", err)
		writeJSON(w, code, node.Problem{Error: "snapshot: " + err.Error()})
		return
	}
	n.log.Info("snapshot written", "file", file, "id", st.Node.ID, "state", st.Node.State,
		"generation", st.Node.Generation, "cache_entries", len(st.Cache), "sessions", len(st.Sessions))
	writeJSON(w, http.StatusOK, map[string]any{"file": file, "cache_entries": len(st.Cache), "sessions": len(st.Sessions)})
}

// onlyPost answers 405 in JSON, like every other error of the node API,
// with the Allow header ServeMux would have set.
func onlyPost(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Allow", http.MethodPost)
	writeJSON(w, http.StatusMethodNotAllowed, node.Problem{Error: r.Method + " " + r.URL.Path + ": method not allowed, use POST"})
}

func (n *Node) authorized(r *http.Request) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(n.cfg.Token)) == 1
}

// logCalls logs each call of the node API: method, path and status,
// never a header (the token travels in one).
func (n *Node) logCalls(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		start := time.Now()
		h.ServeHTTP(rec, r)
		level := slog.LevelDebug
		switch {
		case rec.code == http.StatusUnauthorized:
			level = slog.LevelWarn
		case r.Method != http.MethodGet:
			level = slog.LevelInfo
		}
		n.log.Log(r.Context(), level, "node API call", "method", r.Method, "path", r.URL.Path,
			"status", rec.code, "duration", time.Since(start), "remote", r.RemoteAddr)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v) // a failure is the client gone: nobody to tell
}
