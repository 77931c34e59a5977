package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing/fstest"

	"github.com/mitosis-autoscaler/mitosis/agent/wire"
	"github.com/mitosis-autoscaler/mitosis/plan"
	"github.com/mitosis-autoscaler/mitosis/policy"
)

// The policy endpoints: the policy decided with, and validating or pushing
// one (compiled, its tests run and tried on each cluster's latest input
// first).

func (a *Agent) getPolicy(w http.ResponseWriter, _ *http.Request, _ principal) error {
	cur := a.policy.current()
	return reply(w, wire.PolicyFiles{Version: cur.engine.Version(), Files: cur.files})
}

// checkRunning answers a validate or push while another one runs: one at a
// time, so that hostile policies cannot add up their memory budgets.
var checkRunning = &apiError{code: http.StatusTooManyRequests, msg: "another policy is being checked (one at a time): retry when it is done"}

// maxPolicyFiles bounds a pushed policy.
const maxPolicyFiles = 64

// check compiles a policy's files and runs its tests; it answers the
// engine only if it compiles and every test passes.
func (a *Agent) check(ctx context.Context, files map[string]string) (*policy.Engine, wire.PolicyCheck, error) {
	if len(files) == 0 {
		return nil, wire.PolicyCheck{}, bad("files: no policy file given")
	}
	if len(files) > maxPolicyFiles {
		return nil, wire.PolicyCheck{}, bad("files: %d files, at most %d", len(files), maxPolicyFiles)
	}
	fsys := fstest.MapFS{}
	for name, text := range files {
		// A plain name (policy.CheckFileName): a name holding NUL, a
		// separator or a newline could pass for other files in the version
		// and in what is printed of the policy.
		if err := policy.CheckFileName(name); err != nil {
			return nil, wire.PolicyCheck{}, bad("files: %v", err)
		}
		if !strings.HasSuffix(name, ".rego") || strings.HasPrefix(name, ".") {
			return nil, wire.PolicyCheck{}, bad("files: %q: a name of a .rego file, with no directory", name)
		}
		fsys[name] = &fstest.MapFile{Data: []byte(text)}
	}
	var res wire.PolicyCheck
	engine, err := policy.LoadFS(fsys, "pushed")
	if err != nil {
		return nil, loadProblems(err), nil
	}
	res.Version = engine.Version()
	tctx, cancel := policy.WithDeadline(ctx, a.timing.handlerBudget()) // answered before the server's write timeout
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

func loadProblems(err error) wire.PolicyCheck {
	var le *policy.LoadError
	if errors.As(err, &le) {
		var out wire.PolicyCheck
		for _, p := range le.Problems {
			out.Problems = append(out.Problems, fmt.Sprintf("%s:%d:%d: %s", p.File, p.Row, p.Col, p.Message))
		}
		return out
	}
	return wire.PolicyCheck{Problems: []string{err.Error()}}
}

// readPolicy reads a validate's or a push's body and takes the one check
// that may run at once; done gives it back.
func (a *Agent) readPolicy(r *http.Request) (req wire.PolicyFiles, done func(), err error) {
	if err := decode(r, &req); err != nil {
		return req, nil, err
	}
	if !a.policy.checking.TryLock() {
		return req, nil, checkRunning
	}
	return req, a.policy.checking.Unlock, nil
}

// validatePolicy compiles a policy and runs its tests without using it:
// 200 if it would be accepted, 422 with the problems if not.
func (a *Agent) validatePolicy(w http.ResponseWriter, r *http.Request, _ principal) error {
	req, done, err := a.readPolicy(r)
	if err != nil {
		return err
	}
	defer done()
	engine, res, err := a.check(r.Context(), req.Files)
	if err != nil {
		return err
	}
	return replyCheck(w, engine != nil, res)
}

// pushPolicy compiles a policy, runs its tests, and if all pass records
// it in the registry (the same version on every replica) and decides
// with it from the next tick on. A policy no test of which passed is
// refused unless the push says no_tests: `mitosis policy test` fails on
// such a policy, and an untested policy in use must be a choice the audit
// trail shows.
func (a *Agent) pushPolicy(w http.ResponseWriter, r *http.Request, p principal) error {
	req, done, err := a.readPolicy(r)
	if err != nil {
		return err
	}
	defer done()
	files := req.Files
	engine, res, err := a.check(r.Context(), files)
	if err != nil {
		return err
	}
	if engine == nil {
		return replyCheck(w, false, res)
	}
	untested := res.Tests.Passed == 0
	if untested && !req.NoTests {
		return replyNoTests(w, res)
	}
	tested := fmt.Sprintf("%d tests passed", res.Tests.Passed)
	if untested {
		tested = "no tests: pushed with no_tests"
	}
	now := a.now()
	old := a.policy.current().engine.Version()
	if err := a.reg.PutPolicy(r.Context(), plan.PolicyVersion{Version: engine.Version(), Files: files, By: p.Name, At: now},
		plan.AuditRecord{At: now, By: p.Name, Action: "policy-push", Detail: fmt.Sprintf("%s -> %s (%s)", old, engine.Version(), tested)}); err != nil {
		return err
	}
	a.usePolicy(engine, files)
	a.log.Info("api: policy-push", "who", p.Name, "from", old, "to", engine.Version(), "tests", res.Tests.Passed, "no_tests", untested)
	return replyCheck(w, true, res)
}

// replyNoTests refuses (422) to push a policy that has no tests.
func replyNoTests(w http.ResponseWriter, res wire.PolicyCheck) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusUnprocessableEntity)
	return writeJSON(w, wire.PolicyRefusal{
		Message:  "the policy has no tests: push it with no_tests (mitosis policy push --no-tests) to use it untested",
		Problems: []string{"no tests: no test rule (test_*) of its *_test.rego files passed, and the push does not say no_tests"},
		Tests:    res.Tests, Version: res.Version})
}

// replyCheck answers a policy check: 200 with it, or 422 with its
// problems when the policy is refused.
func replyCheck(w http.ResponseWriter, ok bool, res wire.PolicyCheck) error {
	w.Header().Set("Content-Type", "application/json")
	if !ok {
		w.WriteHeader(http.StatusUnprocessableEntity)
		if len(res.Problems) == 0 {
			res.Problems = []string{"refused"}
		}
		return writeJSON(w, wire.PolicyRefusal{Message: "the policy does not compile, its tests fail, or it fails on a cluster's latest input",
			Problems: res.Problems, Tests: res.Tests, Version: res.Version})
	}
	return writeJSON(w, res)
}
