package policy

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"

	"github.com/mitosis-autoscaler/mitosis/plan"
)

// DecisionQuery is the document a policy defines: its decision.
const DecisionQuery = "data.mitosis.decision"

var decisionRef = ast.MustParseRef(DecisionQuery)

// Engine is a compiled policy. It is immutable and safe for concurrent
// use: compile once with Load or LoadFS, then call Decide on every tick.
type Engine struct {
	version string
	files   []string
	query   rego.PreparedEvalQuery
	// decision is where the decision rule is defined (its first
	// definition, in file order), for errors that cannot be placed more
	// precisely.
	decision *ast.Location
	// params checks input.params with the policy's param_errors rule, if
	// it has one; nil otherwise.
	params *paramsChecker
	// memory is how much the heap may grow during one evaluation
	// (DefaultMemoryBudget): one that would grow it more is cut.
	memory uint64
}

// Load compiles the policy in dir: every .rego file directly in it that
// is not a test (*_test.rego). Subdirectories are not read. Errors are
// *LoadError, naming file and line.
func Load(dir string) (*Engine, error) {
	return LoadFS(os.DirFS(dir), filepath.ToSlash(filepath.Clean(dir)))
}

// LoadFS is Load for the files at the root of fsys (an embedded
// directory, say); name labels them in errors and rule locations as
// name/file.rego.
func LoadFS(fsys fs.FS, name string) (*Engine, error) {
	srcs, err := readSources(fsys, name, false)
	if err != nil {
		return nil, err
	}
	c, err := compile(srcs, false)
	if err != nil {
		return nil, err
	}
	rules := c.GetRules(decisionRef)
	if len(rules) == 0 {
		return nil, &LoadError{Problems: []Problem{{File: name, Message: "no decision: a policy must define `decision` in `package mitosis` (" + DecisionQuery + ")"}}}
	}
	first := rules[0].Location
	for _, r := range rules[1:] {
		if before(r.Location, first) {
			first = r.Location
		}
	}
	pq, err := rego.New(
		rego.Compiler(c),
		rego.Query(DecisionQuery),
		rego.Capabilities(c.Capabilities()),
		rego.StrictBuiltinErrors(true),
	).PrepareForEval(context.Background())
	if err != nil {
		return nil, &LoadError{Problems: problems(err, name)}
	}
	params, err := newParamsChecker(c)
	if err != nil {
		return nil, &LoadError{Problems: problems(err, name)}
	}
	e := &Engine{version: digest(srcs), query: pq, decision: first, params: params, memory: DefaultMemoryBudget}
	for _, s := range srcs {
		e.files = append(e.files, s.label)
	}
	return e, nil
}

// Version identifies the policy: 32 hex digits (128 bits) of a SHA-256
// digest of its sources (file names within the directory, and contents,
// each length-prefixed) in name order. The same files give the same
// version wherever they are loaded from, and different files different
// versions.
func (e *Engine) Version() string { return e.version }

// Files lists the files the policy was compiled from, as errors name them.
func (e *Engine) Files() []string { return slices.Clone(e.files) }

// Decide evaluates the policy on in with time.now_ns pinned to now and
// returns its decision, checked against the policy contract and against
// in. It never returns an invalid decision: the error is then a
// *ParamsError (the policy's param_errors rule rejects input.params), a
// *DecisionError (the decision breaks the contract or is undefined) or an
// *EvalError (evaluation failed), the last two naming the policy's file
// and line.
func (e *Engine) Decide(ctx context.Context, in *Input, now time.Time) (plan.Decision, error) {
	p, err := Prepare(in)
	if err != nil {
		return plan.Decision{}, err
	}
	return e.DecidePrepared(ctx, p, now)
}

// DecidePrepared is Decide on a prepared input.
func (e *Engine) DecidePrepared(ctx context.Context, p *Prepared, now time.Time) (plan.Decision, error) {
	if ctx.Err() != nil {
		err := context.Cause(ctx) // a *DeadlineError names the deadline
		return plan.Decision{}, &EvalError{Message: "evaluation cancelled: " + err.Error(), Err: err}
	}
	ctx, stop := watchMemory(ctx, e.memory) // a *MemoryBudgetError names the budget
	defer stop()
	in := p.in
	if err := e.params.check(ctx, in.Params); err != nil {
		return plan.Decision{}, err
	}
	// First with the heavy keys unconverted; if the policy read one, the
	// evaluation is discarded (it is pure) and made again on the whole
	// input.
	var read atomic.Bool
	v := p.lazy(&read)
	rs, err := e.eval(ctx, v, now)
	if read.Load() {
		v = p.value()
		rs, err = e.eval(ctx, v, now)
	}
	if err != nil {
		ee := e.evalError(ctx, err)
		// OPA's message may quote a value of the policy's (a string a
		// built-in refused): it is recorded as the tick's error, so capped.
		ee.Message = plan.CutText(ee.Message, plan.MaxReason)
		return plan.Decision{}, ee
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return plan.Decision{}, &DecisionError{File: e.decision.File, Row: e.decision.Row,
			Message: "undefined: no rule body of decision matched, and it has no default"}
	}
	t, _ := rs[0].Expressions[0].Value.(*ast.Term)
	d, derr := decode(t, in)
	if derr != nil {
		loc := e.locate(ctx, p.value(), now)
		derr.File, derr.Row = loc.File, loc.Row
		derr.Message = plan.CutText(derr.Message, plan.MaxReason) // it may quote a key or value
		return plan.Decision{}, derr
	}
	return d, nil
}

func (e *Engine) eval(ctx context.Context, input ast.Value, now time.Time) (rego.ResultSet, error) {
	return e.query.Eval(ctx,
		rego.EvalParsedInput(input),
		rego.EvalTime(now),
		rego.EvalGenerateJSON(keepTerm),
	)
}

// keepTerm hands results back as OPA terms, which decode reads directly,
// instead of converting them to Go maps first.
func keepTerm(t *ast.Term, _ *rego.EvalContext) (any, error) { return t, nil }

// locate finds the rule, or else branch, that produced the decision, by
// evaluating again with a tracer. It runs only when a decision is invalid.
func (e *Engine) locate(ctx context.Context, input ast.Value, now time.Time) *ast.Location {
	var tr topdown.BufferTracer
	_, err := e.query.Eval(ctx,
		rego.EvalParsedInput(input),
		rego.EvalTime(now),
		rego.EvalQueryTracer(&tr),
		rego.EvalGenerateJSON(keepTerm),
	)
	if err != nil {
		return e.decision
	}
	for _, ev := range slices.Backward(tr) {
		if ev.Op != topdown.ExitOp {
			continue
		}
		if r, ok := ev.Node.(*ast.Rule); ok && r.Location != nil && r.Module != nil &&
			r.Module.Package.Path.Extend(r.Head.Ref().GroundPrefix()).Equal(decisionRef) {
			return r.Location
		}
	}
	return e.decision
}

func (e *Engine) evalError(ctx context.Context, err error) *EvalError {
	if topdown.IsCancel(err) || ctx.Err() != nil {
		cause := context.Cause(ctx) // a *DeadlineError names the deadline
		if cause == nil {
			cause = err
		}
		return &EvalError{Message: "evaluation cancelled: " + cause.Error(), Err: cause}
	}
	ee := &EvalError{Message: err.Error(), Err: err}
	if te, ok := errors.AsType[*topdown.Error](err); ok {
		ee.Message = te.Code + ": " + te.Message
		if te.Location != nil {
			ee.File, ee.Row = te.Location.File, te.Location.Row
		}
	}
	return ee
}

// source is one policy file.
type source struct {
	name  string // within its directory
	label string // as errors and locations name it
	text  []byte
}

func isTest(name string) bool { return strings.HasSuffix(name, "_test.rego") }

// readSources reads the .rego files at the root of fsys, in name order,
// tests only if asked to.
func readSources(fsys fs.FS, label string, tests bool) ([]source, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, &LoadError{Problems: []Problem{{File: label, Message: "reading policies: " + unwrapPath(err)}}}
	}
	var out []source
	for _, de := range entries {
		n := de.Name()
		if de.IsDir() || !strings.HasSuffix(n, ".rego") || (!tests && isTest(n)) {
			continue
		}
		if err := CheckFileName(n); err != nil {
			return nil, &LoadError{Problems: []Problem{{File: label, Message: err.Error()}}}
		}
		text, err := fs.ReadFile(fsys, n)
		l := path.Join(label, n)
		if err != nil {
			return nil, &LoadError{Problems: []Problem{{File: l, Message: unwrapPath(err)}}}
		}
		out = append(out, source{name: n, label: l, text: text})
	}
	if len(out) == 0 {
		what := "policy"
		if tests {
			what = ".rego"
		}
		return nil, &LoadError{Problems: []Problem{{File: label, Message: "no " + what + " files (*.rego) in the directory"}}}
	}
	return out, nil
}

// unwrapPath drops the *fs.PathError's path, which is relative to the
// directory and would only repeat the label.
func unwrapPath(err error) string {
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		return pe.Op + ": " + pe.Err.Error()
	}
	return err.Error()
}

// parse parses every source as Rego v1 and refuses forbidden built-in
// functions.
func parse(srcs []source, caps *ast.Capabilities) (map[string]*ast.Module, error) {
	mods := make(map[string]*ast.Module, len(srcs))
	var probs []Problem
	for _, s := range srcs {
		m, err := ast.ParseModuleWithOpts(s.label, string(s.text), ast.ParserOptions{
			RegoVersion:       ast.RegoV1,
			Capabilities:      caps,
			ProcessAnnotation: true,
		})
		if err != nil {
			probs = append(probs, problems(err, s.label)...)
			continue
		}
		probs = append(probs, forbiddenCalls(m)...)
		mods[s.label] = m
	}
	if len(probs) > 0 {
		return nil, &LoadError{Problems: probs}
	}
	return mods, nil
}

// newCompiler is the one compiler configuration of policies and of their
// tests: restricted capabilities, strict mode, Rego v1.
func newCompiler(caps *ast.Capabilities, print bool) *ast.Compiler {
	return ast.NewCompiler().
		WithCapabilities(caps).
		WithStrict(true).
		WithDefaultRegoVersion(ast.RegoV1).
		WithEnablePrintStatements(print).
		WithUseTypeCheckAnnotations(true)
}

// compile parses and compiles srcs. print keeps print() calls (tests);
// the engine erases them.
func compile(srcs []source, print bool) (*ast.Compiler, error) {
	caps := capabilities()
	mods, err := parse(srcs, caps)
	if err != nil {
		return nil, err
	}
	c := newCompiler(caps, print)
	if c.Compile(mods); c.Failed() {
		return nil, &LoadError{Problems: problems(c.Errors, "")}
	}
	return c, nil
}

// problems turns OPA's errors into Problems, sorted by place.
func problems(err error, file string) []Problem {
	var list ast.Errors
	switch e := err.(type) {
	case ast.Errors:
		list = e
	case *ast.Error:
		list = ast.Errors{e}
	default:
		if ae, ok := errors.AsType[ast.Errors](err); ok {
			list = ae
		} else {
			return []Problem{{File: file, Message: err.Error()}}
		}
	}
	out := make([]Problem, 0, len(list))
	for _, e := range list {
		p := Problem{File: file, Message: e.Message}
		if e.Code != "" {
			p.Message = e.Code + ": " + e.Message
		}
		if e.Details != nil {
			for _, l := range e.Details.Lines() {
				p.Message += "\n\t" + l
			}
		}
		if e.Location != nil {
			p.Row, p.Col = e.Location.Row, e.Location.Col
			if e.Location.File != "" {
				p.File = e.Location.File
			}
		}
		out = append(out, p)
	}
	slices.SortStableFunc(out, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Row, b.Row), cmp.Compare(a.Col, b.Col))
	})
	return out
}

func before(a, b *ast.Location) bool {
	if b == nil {
		return a != nil
	}
	if a == nil {
		return false
	}
	return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Row, b.Row)) < 0
}

// digest is the policy's version: 128 bits (32 hex digits) of the SHA-256
// of its sources in name order, each name and each content preceded by its
// length, so that no two different sets of files frame to the same bytes
// (a name cannot swallow the file after it).
func digest(srcs []source) string {
	sorted := slices.SortedFunc(slices.Values(srcs), func(a, b source) int { return cmp.Compare(a.name, b.name) })
	h := sha256.New()
	var n [8]byte
	frame := func(b []byte) {
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	binary.BigEndian.PutUint64(n[:], uint64(len(sorted)))
	h.Write(n[:])
	for _, s := range sorted {
		frame([]byte(s.name))
		frame(s.text)
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}
