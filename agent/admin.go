package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing/fstest"
	"time"

	"github.com/mitosis-autoscaler/mitosis/autoscaler"
	"github.com/mitosis-autoscaler/mitosis/plan"
	"github.com/mitosis-autoscaler/mitosis/policy"
)

// adminRoutes are the endpoints that change what the agent does: a
// cluster's switches, the policy, and the audit trail of those writes.
// Every write is recorded in the registry with who made it.
func (a *Agent) adminRoutes() []route {
	return []route{
		{"GET /v1/clusters/{cluster}/settings", RoleRead, a.getSettings},
		{"POST /v1/clusters/{cluster}/pause", RoleOperate, a.setPaused(true)},
		{"POST /v1/clusters/{cluster}/resume", RoleOperate, a.setPaused(false)},
		{"PUT /v1/clusters/{cluster}/dry-run", RoleOperate, a.setDryRun},
		{"GET /v1/audit", RoleRead, a.audits},
		{"GET /v1/policy", RoleRead, a.getPolicy},
		{"POST /v1/policy/validate", RoleOperate, a.validatePolicy},
		{"PUT /v1/policy", RoleAdmin, a.pushPolicy},
		{"GET /v1/peers", RoleRead, a.peers},
		{"POST /v1/peers", RoleAdmin, a.joinPeer},
		{"DELETE /v1/peers/{id}", RoleAdmin, a.removePeer},
	}
}

// Settings is a cluster's switches as the API shows them: DryRun is the
// one in force (the operator's switch, or else the configuration's).
type Settings struct {
	Paused bool      `json:"paused"`
	DryRun bool      `json:"dry_run"`
	By     string    `json:"by,omitempty"`
	At     time.Time `json:"at,omitzero"`
}

func (a *Agent) settingsOf(ctx context.Context, cluster string) (plan.ClusterSettings, Settings, error) {
	st, err := a.reg.State(ctx, cluster)
	if err != nil {
		return plan.ClusterSettings{}, Settings{}, err
	}
	s := st.Settings
	dry := a.cfg.DryRun
	if !dry && s.DryRun != nil {
		dry = *s.DryRun
	}
	return s, Settings{Paused: s.Paused, DryRun: dry, By: s.By, At: s.At}, nil
}

func (a *Agent) getSettings(w http.ResponseWriter, r *http.Request, _ principal) error {
	c, err := a.cluster(r)
	if err != nil {
		return err
	}
	_, view, err := a.settingsOf(r.Context(), c)
	if err != nil {
		return err
	}
	return reply(w, view)
}

// change applies edit to a cluster's switches and records who did it.
func (a *Agent) change(w http.ResponseWriter, r *http.Request, p principal, action, detail string, edit func(*plan.ClusterSettings)) error {
	c, err := a.cluster(r)
	if err != nil {
		return err
	}
	s, _, err := a.settingsOf(r.Context(), c)
	if err != nil {
		return err
	}
	now := a.now()
	edit(&s)
	s.By, s.At = p.Name, now
	if err := a.reg.PutSettings(r.Context(), c, s, plan.AuditRecord{At: now, By: p.Name, Cluster: c, Action: action, Detail: detail}); err != nil {
		return err
	}
	a.log.Info("api: "+action, "who", p.Name, "cluster", c, "detail", detail)
	_, view, err := a.settingsOf(r.Context(), c)
	if err != nil {
		return err
	}
	return reply(w, view)
}

// setPaused pauses or resumes a cluster's decisions. Operations in flight
// finish either way; an operator's clone or detach still runs.
func (a *Agent) setPaused(paused bool) func(w http.ResponseWriter, r *http.Request, p principal) error {
	action := map[bool]string{true: "pause", false: "resume"}[paused]
	return func(w http.ResponseWriter, r *http.Request, p principal) error {
		if err := noBody(r); err != nil {
			return err
		}
		return a.change(w, r, p, action, "", func(s *plan.ClusterSettings) { s.Paused = paused })
	}
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

// DryRunRequest is PUT /v1/clusters/{cluster}/dry-run.
type DryRunRequest struct {
	Enabled *bool `json:"enabled"`
}

func (a *Agent) setDryRun(w http.ResponseWriter, r *http.Request, p principal) error {
	var req DryRunRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.Enabled == nil {
		return bad("enabled: required (true or false)")
	}
	if a.cfg.DryRun && !*req.Enabled {
		return &apiError{code: http.StatusConflict, msg: "the agent is configured to run dry (dry_run, --dry-run, or real machines without a dispatcher): a cluster cannot be switched to act"}
	}
	on := *req.Enabled
	return a.change(w, r, p, "dry-run", fmt.Sprintf("enabled=%v", on), func(s *plan.ClusterSettings) { s.DryRun = &on })
}

func (a *Agent) audits(w http.ResponseWriter, r *http.Request, _ principal) error {
	n, err := limit(r, 100)
	if err != nil {
		return err
	}
	recs, err := a.reg.Audits(r.Context(), n)
	if err != nil {
		return err
	}
	if recs == nil {
		recs = []plan.AuditRecord{}
	}
	return reply(w, recs)
}

// PolicyFiles is a policy's files by name (*.rego, tests included), as
// GET /v1/policy answers and PUT /v1/policy and POST /v1/policy/validate
// take them.
type PolicyFiles struct {
	Version string            `json:"version,omitempty"`
	Files   map[string]string `json:"files"`
}

// PolicyCheck is what validating or pushing a policy found.
type PolicyCheck struct {
	Version  string           `json:"version,omitempty"`
	Tests    TestCounts       `json:"tests"`
	Problems []string         `json:"problems,omitempty"`
	Results  []map[string]any `json:"results,omitempty"`
}

// TestCounts counts a policy's Rego tests by outcome.
type TestCounts struct {
	Passed int `json:"passed"`
	Failed int `json:"failed"`
}

func (a *Agent) getPolicy(w http.ResponseWriter, _ *http.Request, _ principal) error {
	cur := a.policy.current()
	return reply(w, PolicyFiles{Version: cur.engine.Version(), Files: cur.files})
}

// maxPolicyFiles bounds a pushed policy.
const maxPolicyFiles = 64

// check compiles a policy's files and runs its tests; it answers the
// engine only if it compiles and every test passes.
func (a *Agent) check(ctx context.Context, files map[string]string) (*policy.Engine, PolicyCheck, error) {
	if len(files) == 0 {
		return nil, PolicyCheck{}, bad("files: no policy file given")
	}
	if len(files) > maxPolicyFiles {
		return nil, PolicyCheck{}, bad("files: %d files, at most %d", len(files), maxPolicyFiles)
	}
	fsys := fstest.MapFS{}
	for name, text := range files {
		if name != path.Base(name) || !strings.HasSuffix(name, ".rego") || strings.HasPrefix(name, ".") {
			return nil, PolicyCheck{}, bad("files: %q: a name of a .rego file, with no directory", name)
		}
		fsys[name] = &fstest.MapFile{Data: []byte(text)}
	}
	var res PolicyCheck
	engine, err := policy.LoadFS(fsys, "pushed")
	if err != nil {
		return nil, loadProblems(err), nil
	}
	res.Version = engine.Version()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	results, err := policy.RunTestsFS(tctx, fsys, "pushed")
	if err != nil {
		return nil, loadProblems(err), nil
	}
	for _, t := range results {
		switch t.Outcome {
		case policy.Pass:
			res.Tests.Passed++
		case policy.Fail, policy.Error:
			res.Tests.Failed++
			res.Problems = append(res.Problems, fmt.Sprintf("%s:%d: %s %s: %s", t.File, t.Row, t.FullName(), t.Outcome, t.Message))
		}
	}
	if res.Tests.Failed > 0 {
		return nil, res, nil
	}
	if res.Problems = a.policy.tryOn(tctx, engine); len(res.Problems) > 0 {
		return nil, res, nil
	}
	return engine, res, nil
}

func loadProblems(err error) PolicyCheck {
	var le *policy.LoadError
	if errors.As(err, &le) {
		var out PolicyCheck
		for _, p := range le.Problems {
			out.Problems = append(out.Problems, fmt.Sprintf("%s:%d:%d: %s", p.File, p.Row, p.Col, p.Message))
		}
		return out
	}
	return PolicyCheck{Problems: []string{err.Error()}}
}

func (a *Agent) readPolicy(r *http.Request) (map[string]string, error) {
	var req PolicyFiles
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	return req.Files, nil
}

// validatePolicy compiles a policy and runs its tests without using it:
// 200 if it would be accepted, 422 with the problems if not.
func (a *Agent) validatePolicy(w http.ResponseWriter, r *http.Request, _ principal) error {
	files, err := a.readPolicy(r)
	if err != nil {
		return err
	}
	engine, res, err := a.check(r.Context(), files)
	if err != nil {
		return err
	}
	return replyCheck(w, engine != nil, res)
}

// pushPolicy compiles a policy, runs its tests, and if all pass records
// it in the registry (the same version on every replica) and decides
// with it from the next tick on.
func (a *Agent) pushPolicy(w http.ResponseWriter, r *http.Request, p principal) error {
	files, err := a.readPolicy(r)
	if err != nil {
		return err
	}
	engine, res, err := a.check(r.Context(), files)
	if err != nil {
		return err
	}
	if engine == nil {
		return replyCheck(w, false, res)
	}
	now := a.now()
	old := a.policy.current().engine.Version()
	if err := a.reg.PutPolicy(r.Context(), plan.PolicyVersion{Version: engine.Version(), Files: files, By: p.Name, At: now},
		plan.AuditRecord{At: now, By: p.Name, Action: "policy-push", Detail: fmt.Sprintf("%s -> %s (%d tests passed)", old, engine.Version(), res.Tests.Passed)}); err != nil {
		return err
	}
	a.usePolicy(engine, files)
	a.log.Info("api: policy-push", "who", p.Name, "from", old, "to", engine.Version(), "tests", res.Tests.Passed)
	return replyCheck(w, true, res)
}

func replyCheck(w http.ResponseWriter, ok bool, res PolicyCheck) error {
	w.Header().Set("Content-Type", "application/json")
	if !ok {
		w.WriteHeader(http.StatusUnprocessableEntity)
		if len(res.Problems) == 0 {
			res.Problems = []string{"refused"}
		}
		return writeJSON(w, map[string]any{"error": "the policy does not compile, its tests fail, or it fails on a cluster's latest input", "problems": res.Problems, "tests": res.Tests, "version": res.Version})
	}
	return writeJSON(w, res)
}

// livePolicy is the policy the controller decides with, replaced whole
// when one is pushed: a tick uses the one it found when it began.
type livePolicy struct {
	cur atomic.Pointer[policyInUse]
	// last is each cluster's latest input and time (cluster name →
	// lastInput), on which a policy pushed to replace this one must
	// decide.
	last sync.Map
}

type lastInput struct {
	in  *policy.Input
	now time.Time
}

type policyInUse struct {
	engine autoscaler.PolicyEngine
	files  map[string]string // its sources, for GET /v1/policy; nil if unknown
}

func (p *livePolicy) current() *policyInUse { return p.cur.Load() }

func (p *livePolicy) Decide(ctx context.Context, in *policy.Input, now time.Time) (plan.Decision, error) {
	p.last.Store(in.Cluster.Name, lastInput{in, now}) // never modified after: the controller builds one a tick
	return p.cur.Load().engine.Decide(ctx, in, now)
}

// tryOn decides with engine on each cluster's latest input, and says
// where it fails: a policy that compiles and passes its own tests may
// still break on the inputs it is pushed to decide on (a decision of the
// wrong shape, params it does not accept).
func (p *livePolicy) tryOn(ctx context.Context, engine *policy.Engine) []string {
	var problems []string
	p.last.Range(func(k, v any) bool {
		l := v.(lastInput)
		if _, err := engine.Decide(ctx, l.in, l.now); err != nil {
			problems = append(problems, fmt.Sprintf("cluster %s: on its input of %s: %v", k, l.now.UTC().Format(time.RFC3339), err))
		}
		return true
	})
	slices.Sort(problems)
	return problems
}

func (p *livePolicy) Version() string { return p.cur.Load().engine.Version() }

// usePolicy makes engine the policy decided with.
func (a *Agent) usePolicy(engine autoscaler.PolicyEngine, files map[string]string) {
	a.policy.cur.Store(&policyInUse{engine: engine, files: files})
	a.telemetry.policyVersion(engine.Version())
}
