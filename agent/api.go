package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mitosis-autoscaler/mitosis/autoscaler"
	"github.com/mitosis-autoscaler/mitosis/plan"
)

// The HTTP API (docs/api.md): JSON under /v1, every endpoint behind a
// bearer token of a sufficient role, except /-/healthy and /-/ready.

// maxBody bounds what a request may send.
const maxBody = 1 << 20

// Handler serves the API, the agent's metrics and its health.
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /-/healthy", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "mitosis is healthy\n") })
	mux.HandleFunc("GET /-/ready", func(w http.ResponseWriter, r *http.Request) {
		if !a.ready(r.Context()) {
			http.Error(w, "mitosis is starting: no tick yet", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "mitosis is ready\n")
	})
	for _, rt := range a.routes() {
		mux.Handle(rt.pattern, a.guard(rt.min, rt.h))
	}
	a.mountWeb(mux)
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

// routes are every endpoint behind a token (the API tests walk them).
func (a *Agent) routes() []route {
	return append([]route{
		{"GET /metrics", RoleRead, func(w http.ResponseWriter, r *http.Request, _ principal) error {
			a.telemetry.Handler().ServeHTTP(w, r)
			return nil
		}},
		{"GET /v1/whoami", RoleRead, func(w http.ResponseWriter, _ *http.Request, p principal) error {
			return reply(w, map[string]string{"name": p.Name, "role": p.Role.String()})
		}},
		{"GET /v1/status", RoleRead, a.status},
		{"GET /v1/clusters/{cluster}/nodes", RoleRead, a.nodes},
		{"GET /v1/targets", RoleRead, a.targets},
		{"GET /v1/clusters/{cluster}/operations", RoleRead, a.operations},
		{"GET /v1/operations/{id}", RoleRead, a.operation},
		{"GET /v1/clusters/{cluster}/decisions", RoleRead, a.decisions},
		{"GET /v1/clusters/{cluster}/why", RoleRead, a.why},
		{"POST /v1/clusters/{cluster}/clone", RoleOperate, a.clone},
		{"POST /v1/clusters/{cluster}/detach", RoleOperate, a.detach},
	}, a.adminRoutes()...)
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
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
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

// Status is GET /v1/status.
type Status struct {
	Version       string           `json:"version"`
	PolicyVersion string           `json:"policy_version"`
	Simulated     bool             `json:"simulated"`
	DryRun        bool             `json:"dry_run"`
	Clusters      []ClusterSummary `json:"clusters"`
	// Raft is this agent's place in the replicated registry (absent
	// without raft).
	Raft *RaftStatus `json:"raft,omitempty"`
}

// ClusterSummary is one cluster in the status.
type ClusterSummary struct {
	Name string `json:"name"`
	Min  int    `json:"min"`
	Max  int    `json:"max"`
	// Size is the projected size (scalable nodes ± operations in flight).
	Size int `json:"size"`
	// Nodes counts the registered nodes by state.
	Nodes        map[plan.NodeState]int `json:"nodes"`
	InFlight     int                    `json:"in_flight"`
	Paused       bool                   `json:"paused"`
	DryRun       bool                   `json:"dry_run"`
	LastDecision *plan.DecisionRecord   `json:"last_decision,omitempty"`
}

func (a *Agent) status(w http.ResponseWriter, r *http.Request, _ principal) error {
	st := Status{Version: a.opt.Version, PolicyVersion: a.policy.Version(), Simulated: a.cfg.Simulated(), DryRun: a.cfg.DryRun,
		Raft: a.raftStatus()}
	for _, cl := range a.cfg.Clusters {
		s, err := a.reg.State(r.Context(), cl.Name)
		if err != nil {
			return err
		}
		sum := ClusterSummary{Name: cl.Name, Min: cl.Min, Max: cl.Max, Size: plan.Size(cl.Limits(), s.Nodes, s.Operations),
			Nodes: map[plan.NodeState]int{}, InFlight: len(s.Operations)}
		for _, n := range s.Nodes {
			sum.Nodes[n.State]++
		}
		_, set, err := a.settingsOf(r.Context(), cl.Name)
		if err != nil {
			return err
		}
		sum.Paused, sum.DryRun = set.Paused, set.DryRun
		if recs, err := a.reg.Decisions(r.Context(), cl.Name, 1); err == nil && len(recs) == 1 {
			sum.LastDecision = &recs[0]
		}
		st.Clusters = append(st.Clusters, sum)
	}
	return reply(w, st)
}

func (a *Agent) nodes(w http.ResponseWriter, r *http.Request, _ principal) error {
	c, err := a.cluster(r)
	if err != nil {
		return err
	}
	s, err := a.reg.State(r.Context(), c)
	if err != nil {
		return err
	}
	nodes := s.Nodes
	if nodes == nil {
		nodes = []plan.Node{}
	}
	slices.SortFunc(nodes, func(x, y plan.Node) int { return x.CreatedAt.Compare(y.CreatedAt) })
	return reply(w, nodes)
}

// TargetGroup is one entry of GET /v1/targets: a node as Prometheus's
// HTTP service discovery (http_sd_configs) reads it.
type TargetGroup struct {
	// Targets is the node's address, host:port.
	Targets []string `json:"targets"`
	// Labels are cluster and node, kept on every series scraped from it,
	// and __meta_mitosis_* (role, state, host, vm, parent: those the node
	// has), which Prometheus drops unless relabelled.
	Labels map[string]string `json:"labels"`
}

// targets lists the registered nodes for Prometheus to scrape, so that a
// clone is scraped once registered and a destroyed node no longer. It
// reads the registry as nodes does, so a raft follower answers too.
func (a *Agent) targets(w http.ResponseWriter, r *http.Request, _ principal) error {
	clusters, err := a.targetClusters(r)
	if err != nil {
		return err
	}
	port, err := targetPort(r)
	if err != nil {
		return err
	}
	groups := []TargetGroup{} // no targets is [], as HTTP SD asks, never null
	for _, c := range clusters {
		s, err := a.reg.State(r.Context(), c)
		if err != nil {
			return err
		}
		// plan.Ledger keeps them by id, but a Registry promises no order.
		slices.SortFunc(s.Nodes, func(x, y plan.Node) int { return strings.Compare(x.ID, y.ID) })
		for _, n := range s.Nodes {
			if n.Address != "" { // not reachable yet: nothing to scrape
				groups = append(groups, targetOf(n, port))
			}
		}
	}
	return reply(w, groups)
}

// targetClusters are the cluster ?cluster= names, or every configured
// one, by name.
func (a *Agent) targetClusters(r *http.Request) ([]string, error) {
	if q := r.URL.Query(); q.Has("cluster") {
		c, err := a.configured(q.Get("cluster"))
		if err != nil {
			return nil, err
		}
		return []string{c}, nil
	}
	names := make([]string, len(a.cfg.Clusters))
	for i, cl := range a.cfg.Clusters {
		names[i] = cl.Name
	}
	slices.Sort(names)
	return names, nil
}

// targetPort reads ?port=, 1 to 65535; 0 when absent: each node's own.
func targetPort(r *http.Request) (int, error) {
	q := r.URL.Query()
	if !q.Has("port") {
		return 0, nil
	}
	s := q.Get("port")
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, bad("port: %q is not a port number from 1 to 65535", s)
	}
	return n, nil
}

// targetOf is n's target group; a port other than 0 replaces its
// address's, for an exporter that listens beside the node API.
func targetOf(n plan.Node, port int) TargetGroup {
	addr := n.Address
	if port != 0 {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr // a bare host: the port is all it lacks
		}
		addr = net.JoinHostPort(host, strconv.Itoa(port))
	}
	labels := map[string]string{"cluster": n.Cluster, "node": n.ID}
	for k, v := range map[string]string{"role": n.Role, "state": string(n.State), "host": n.Host, "vm": n.VM, "parent": n.Parent} {
		if v != "" {
			labels["__meta_mitosis_"+k] = v
		}
	}
	return TargetGroup{Targets: []string{addr}, Labels: labels}
}

// operations lists the cluster's latest operations, newest first: those
// in flight and those its recent decisions started.
func (a *Agent) operations(w http.ResponseWriter, r *http.Request, _ principal) error {
	c, err := a.cluster(r)
	if err != nil {
		return err
	}
	n, err := limit(r, 50)
	if err != nil {
		return err
	}
	ops, err := a.recentOperations(r.Context(), c, n)
	if err != nil {
		return err
	}
	return reply(w, ops)
}

func (a *Agent) recentOperations(ctx context.Context, cluster string, n int) ([]plan.Operation, error) {
	s, err := a.reg.State(ctx, cluster)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	ops := []plan.Operation{}
	for _, op := range s.Operations {
		seen[op.ID] = true
		ops = append(ops, op)
	}
	recs, err := a.reg.Decisions(ctx, cluster, 1000)
	if err != nil {
		return nil, err
	}
	for _, rec := range recs {
		for _, id := range rec.Operations {
			if seen[id] || len(ops) >= n+len(s.Operations) {
				continue
			}
			seen[id] = true
			if op, err := a.reg.Operation(ctx, id); err == nil {
				ops = append(ops, op)
			}
		}
	}
	slices.SortFunc(ops, func(x, y plan.Operation) int { return y.CreatedAt.Compare(x.CreatedAt) })
	return ops[:min(n, len(ops))], nil
}

func (a *Agent) operation(w http.ResponseWriter, r *http.Request, _ principal) error {
	op, err := a.reg.Operation(r.Context(), r.PathValue("id"))
	if errors.Is(err, plan.ErrNotFound) {
		return notFound("operation %q: not found (or forgotten: finished operations are kept for a while)", r.PathValue("id"))
	}
	if err != nil {
		return err
	}
	return reply(w, op)
}

func (a *Agent) decisions(w http.ResponseWriter, r *http.Request, _ principal) error {
	c, err := a.cluster(r)
	if err != nil {
		return err
	}
	n, err := limit(r, 20)
	if err != nil {
		return err
	}
	recs, err := a.reg.Decisions(r.Context(), c, n)
	if err != nil {
		return err
	}
	if recs == nil {
		recs = []plan.DecisionRecord{}
	}
	return reply(w, recs)
}

// why answers "why did (or didn't) it scale at T?": the decision in force
// at ?at= (RFC 3339; default now), that is the last one made at or before
// it, with its reasons and what the metrics said.
func (a *Agent) why(w http.ResponseWriter, r *http.Request, _ principal) error {
	c, err := a.cluster(r)
	if err != nil {
		return err
	}
	at := a.now()
	if s := r.URL.Query().Get("at"); s != "" {
		if at, err = time.Parse(time.RFC3339, s); err != nil {
			return bad("at: %q is not an RFC 3339 time (e.g. 2026-11-27T14:02:00Z)", s)
		}
	}
	recs, err := a.reg.Decisions(r.Context(), c, 1000)
	if err != nil {
		return err
	}
	for _, rec := range recs { // newest first
		if !rec.At.After(at) {
			return reply(w, rec)
		}
	}
	return notFound("no decision of cluster %s at or before %s is kept", c, at.Format(time.RFC3339))
}

// CloneRequest is POST /v1/clusters/{cluster}/clone.
type CloneRequest struct {
	// Template is the node to clone.
	Template string `json:"template"`
}

// DetachRequest is POST /v1/clusters/{cluster}/detach.
type DetachRequest struct {
	// Node is the node to detach and destroy.
	Node string `json:"node"`
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

// clone asks for a clone of a selected node. The answer is the decision
// record: its operations if one started, its reasons if the guardrails
// refused (201 or 409).
func (a *Agent) clone(w http.ResponseWriter, r *http.Request, p principal) error {
	c, err := a.cluster(r)
	if err != nil {
		return err
	}
	var req CloneRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.Template == "" {
		return bad("template: required")
	}
	if err := a.knownNode(r.Context(), c, req.Template); err != nil {
		return err
	}
	return a.manualReply(w, r, autoscaler.ManualRequest{Cluster: c, Action: plan.ActionExpand, Template: req.Template, By: p.Name})
}

// detach asks for a selected node to be detached and destroyed.
func (a *Agent) detach(w http.ResponseWriter, r *http.Request, p principal) error {
	c, err := a.cluster(r)
	if err != nil {
		return err
	}
	var req DetachRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.Node == "" {
		return bad("node: required")
	}
	if err := a.knownNode(r.Context(), c, req.Node); err != nil {
		return err
	}
	return a.manualReply(w, r, autoscaler.ManualRequest{Cluster: c, Action: plan.ActionContract, Node: req.Node, By: p.Name})
}

// knownNode is 404 for a node the cluster does not have: a mistyped name
// is the operator's mistake, not a guardrail's refusal.
func (a *Agent) knownNode(ctx context.Context, cluster, id string) error {
	st, err := a.reg.State(ctx, cluster)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(st.Nodes, func(n plan.Node) bool { return n.ID == id }) {
		return notFound("node %q is not a node of cluster %s (mitosis nodes %s lists them)", id, cluster, cluster)
	}
	return nil
}

func (a *Agent) manualReply(w http.ResponseWriter, r *http.Request, req autoscaler.ManualRequest) error {
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	rec, err := a.submit(ctx, req)
	if err != nil {
		if ae := (*apiError)(nil); errors.As(a.notLeader(err), &ae) {
			return ae
		}
		if ctx.Err() != nil {
			return &apiError{code: http.StatusServiceUnavailable, msg: "the agent's loop did not take the request in time: " + err.Error()}
		}
		return &apiError{code: http.StatusConflict, msg: err.Error()}
	}
	a.log.Info("api: manual decision", "who", req.By, "cluster", req.Cluster, "action", req.Action,
		"template", req.Template, "node", req.Node, "operations", len(rec.Operations))
	code := http.StatusCreated
	if len(rec.Operations) == 0 && !rec.DryRun {
		code = http.StatusConflict // refused by a guardrail: the reasons say which
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	return json.NewEncoder(w).Encode(rec)
}
