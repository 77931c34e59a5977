package policy

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// Outcome is how one Rego test ended.
type Outcome string

const (
	Pass  Outcome = "PASS"
	Fail  Outcome = "FAIL"
	Error Outcome = "ERROR"
	Skip  Outcome = "SKIP"
)

// TestResult is the result of one Rego test rule (test_*).
type TestResult struct {
	// Package is the test's package, "data.mitosis"; Name its rule,
	// "test_expands_when_busy".
	Package string
	Name    string
	// File and Row locate the test rule.
	File string
	Row  int
	// Outcome: Pass, Fail (the body was false or undefined), Error (the
	// evaluation failed), Skip (a todo_test_ rule).
	Outcome  Outcome
	Duration time.Duration
	// Message says why a test failed (the expression that was false, with
	// its place) or the error; Output is what the test printed.
	Message string
	Output  string
}

// FullName is the test's full path, "data.mitosis.test_x".
func (r TestResult) FullName() string { return r.Package + "." + r.Name }

// RunTests runs the Rego tests (rules named test_*) of the .rego files
// directly in dir, tests and policies together, with the capabilities
// and strict mode of Load; as in Decide, an error of a built-in function
// is an error of the test, not an undefined value. A file that does not
// parse or compile is a *LoadError; the results are in file and line
// order.
func RunTests(ctx context.Context, dir string) ([]TestResult, error) {
	return RunTestsFS(ctx, os.DirFS(dir), filepath.ToSlash(filepath.Clean(dir)))
}

// RunTestsFS is RunTests for the files at the root of fsys, labelled name
// as in LoadFS.
func RunTestsFS(ctx context.Context, fsys fs.FS, name string) ([]TestResult, error) {
	ctx, stop := watchMemory(ctx, DefaultMemoryBudget) // tests are policy code too
	defer stop()
	srcs, err := readSources(fsys, name, true)
	if err != nil {
		return nil, err
	}
	caps := capabilities()
	mods, err := parse(srcs, caps)
	if err != nil {
		return nil, err
	}
	ch, err := tester.NewRunner().
		SetCompiler(newCompiler(caps, true)).
		SetDefaultRegoVersion(ast.RegoV1).
		EnableTracing(true).
		RaiseBuiltinErrors(true).
		CapturePrintOutput(true).
		SetModules(mods).
		RunTests(ctx, nil)
	if err != nil {
		return nil, &LoadError{Problems: problems(err, name)}
	}
	var out []TestResult
	for r := range ch {
		out = append(out, result(r))
	}
	if ctx.Err() != nil {
		return out, context.Cause(ctx) // a *DeadlineError or *MemoryBudgetError says why
	}
	slices.SortFunc(out, func(a, b TestResult) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Row, b.Row), cmp.Compare(a.Name, b.Name))
	})
	return out, nil
}

func result(r *tester.Result) TestResult {
	tr := TestResult{
		Package:  r.Package,
		Name:     r.Name,
		Duration: r.Duration,
		Output:   strings.TrimSpace(string(r.Output)),
	}
	if r.Location != nil {
		tr.File, tr.Row = r.Location.File, r.Location.Row
	}
	switch {
	case r.Skip:
		tr.Outcome = Skip
	case r.Error != nil:
		tr.Outcome, tr.Message = Error, r.Error.Error()
	case r.Fail:
		tr.Outcome, tr.Message = Fail, failure(r)
	default:
		tr.Outcome = Pass
	}
	return tr
}

// failure describes why a test failed: the last expression that was
// false, with its place, as `opa test` does; and for a test with cases
// (test_x[name]), which cases failed.
func failure(r *tester.Result) string {
	var b bytes.Buffer
	for name, sr := range r.SubResults.Iter {
		if sr.Fail && len(sr.SubResults) == 0 {
			fmt.Fprintf(&b, "case %s failed", strings.Join(name, "/"))
			if m := failedExpr(sr.Trace); m != "" {
				fmt.Fprintf(&b, ": %s", m)
			}
			b.WriteString("\n")
		}
	}
	if b.Len() > 0 {
		return strings.TrimSpace(b.String())
	}
	if m := failedExpr(r.Trace); m != "" {
		return m
	}
	return "the test's body is false or undefined"
}

func failedExpr(trace []*topdown.Event) string {
	for _, e := range slices.Backward(trace) {
		if e.Op != topdown.FailOp || e.Location == nil || e.QueryID == 0 {
			continue
		}
		expr, ok := e.Node.(*ast.Expr)
		if !ok {
			continue
		}
		if _, every := expr.Terms.(*ast.Every); every {
			continue
		}
		return fmt.Sprintf("%s:%d: %s is false", e.Location.File, e.Location.Row, exprText(expr))
	}
	return ""
}

// exprText is the expression as written, else as OPA prints it.
func exprText(e *ast.Expr) string {
	if e.Location != nil && len(e.Location.Text) > 0 {
		return string(e.Location.Text)
	}
	return e.String()
}
