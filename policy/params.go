package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/mitosis-autoscaler/mitosis/plan"
)

// ParamsQuery is the optional rule that validates a policy's params: a
// set of messages, one per thing wrong with input.params. The engine
// evaluates it when the params are first seen (a cluster's params come
// from configuration and rarely change), not on every tick, so a
// decision may take its params as valid.
const ParamsQuery = "data.mitosis.param_errors"

var paramsRef = ast.MustParseRef(ParamsQuery)

// ParamsError says why a cluster's policy params are not valid for the
// policy. No decision is made with them.
type ParamsError struct {
	Errors []string
}

func (e *ParamsError) Error() string {
	// The messages are the policy's text, recorded as the tick's error.
	return plan.CutText("invalid policy params: "+strings.Join(e.Errors, "; "), plan.MaxReason)
}

// paramsChecker evaluates param_errors once per distinct params value.
type paramsChecker struct {
	query rego.PreparedEvalQuery
	mu    sync.Mutex
	seen  map[string][]string // params as canonical JSON → their errors
}

// seenLimit bounds the cache: params come from configuration, so more
// distinct values than this means someone is varying them per tick.
const seenLimit = 64

func newParamsChecker(c *ast.Compiler) (*paramsChecker, error) {
	if len(c.GetRules(paramsRef)) == 0 {
		return nil, nil
	}
	q, err := rego.New(
		rego.Compiler(c),
		rego.Query(ParamsQuery),
		rego.Capabilities(c.Capabilities()),
		rego.StrictBuiltinErrors(true),
	).PrepareForEval(context.Background())
	if err != nil {
		return nil, err
	}
	return &paramsChecker{query: q, seen: map[string][]string{}}, nil
}

// check returns a *ParamsError if params are not valid for the policy.
func (p *paramsChecker) check(ctx context.Context, params map[string]any) error {
	if p == nil {
		return nil
	}
	key, err := json.Marshal(params) // map keys sorted: canonical
	if err != nil {
		return fmt.Errorf("policy params: %w", err)
	}
	p.mu.Lock()
	errs, ok := p.seen[string(key)]
	p.mu.Unlock()
	if !ok {
		if errs, err = p.eval(ctx, params); err != nil {
			return err
		}
		p.mu.Lock()
		if len(p.seen) >= seenLimit {
			clear(p.seen)
		}
		p.seen[string(key)] = errs
		p.mu.Unlock()
	}
	if len(errs) > 0 {
		return &ParamsError{Errors: errs}
	}
	return nil
}

func (p *paramsChecker) eval(ctx context.Context, params map[string]any) ([]string, error) {
	pt, err := paramsTerm(params)
	if err != nil {
		return nil, err
	}
	rs, err := p.query.Eval(ctx, rego.EvalParsedInput(ast.NewObject([2]*ast.Term{kParams, pt})))
	if err != nil {
		if ctx.Err() != nil { // cut: a *DeadlineError names the deadline
			return nil, &EvalError{Message: "evaluating " + ParamsQuery + " cancelled: " + context.Cause(ctx).Error(), Err: context.Cause(ctx)}
		}
		return nil, fmt.Errorf("evaluating %s: %w", ParamsQuery, err)
	}
	var errs []string
	if len(rs) > 0 && len(rs[0].Expressions) > 0 {
		set, ok := rs[0].Expressions[0].Value.([]any)
		if !ok {
			return nil, fmt.Errorf("%s must be a set of strings, is %T", ParamsQuery, rs[0].Expressions[0].Value)
		}
		for _, x := range set {
			s, ok := x.(string)
			if !ok {
				s = fmt.Sprint(x)
			}
			errs = append(errs, s)
		}
	}
	sort.Strings(errs)
	return errs, nil
}

// CheckParams evaluates the policy's param_errors rule on params, as a
// tick would: for refusing a configuration before its first tick. A
// policy without the rule accepts any params.
func (e *Engine) CheckParams(ctx context.Context, params map[string]any) error {
	return e.params.check(ctx, params)
}
