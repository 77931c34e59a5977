package policy

import (
	"fmt"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// A policy decides from its input alone: it may not reach the network nor
// read the environment of the process that runs it. The built-in
// functions below are removed from the capabilities every policy and
// every policy test is compiled with, and a call to one is refused at
// load time with the place of the call.
//
//   - http.send and net.lookup_ip_addr reach the network; the other net.*
//     functions are removed with them, so that the whole family is out;
//   - opa.runtime exposes the process' environment and configuration;
//   - every other built-in OPA marks nondeterministic (rand.intn,
//     uuid.rfc4122, io.jwt.encode_sign*, io.jwt.decode_verify,
//     json.match_schema and json.verify_schema, whose schemas may fetch
//     remote references), and the two crypto.x509 functions that verify a
//     chain against the machine's clock: two evaluations of one input
//     must give one decision, or a decision cannot be replayed, tested or
//     agreed on by the replicas.
//
// time.now_ns stays, though OPA marks it nondeterministic: the engine pins
// it to the tick's time (rego.EvalTime), so a policy reading it is as
// deterministic as its input.

// forbidden reports why a built-in function may not be called, or "".
func forbidden(name string) string {
	switch {
	case name == "http.send", strings.HasPrefix(name, "net."):
		return "policies cannot reach the network"
	case name == "opa.runtime":
		return "policies cannot read the runtime environment"
	case name == "time.now_ns":
		return "" // pinned by the engine
	case wallClock[name]:
		return "it reads the machine's clock, and a policy must decide from its input alone"
	case name == ast.RenderTemplate.Name:
		return "a template's loops can make a result of any size at once, which no budget can stop (MaxValueBytes)"
	}
	if b, ok := ast.BuiltinMap[name]; ok && b.Nondeterministic {
		return "it is nondeterministic, and a policy must decide the same on the same input"
	}
	return ""
}

// wallClock are built-in functions OPA does not mark nondeterministic that
// read the machine's clock rather than the pinned time.
var wallClock = map[string]bool{
	"crypto.x509.parse_and_verify_certificates":              true,
	"crypto.x509.parse_and_verify_certificates_with_options": true,
}

// capabilities are OPA's own for this version minus the forbidden
// built-in functions, with no host allowed to be reached.
func capabilities() *ast.Capabilities {
	caps := ast.CapabilitiesForThisVersion()
	kept := caps.Builtins[:0]
	for _, b := range caps.Builtins {
		if forbidden(b.Name) == "" {
			kept = append(kept, b)
		}
	}
	caps.Builtins = kept
	caps.AllowNet = []string{}
	return caps
}

// forbiddenCalls lists every call of a forbidden built-in function in m,
// in the order they appear.
func forbiddenCalls(m *ast.Module) []Problem {
	var out []Problem
	report := func(op *ast.Term) {
		if op == nil {
			return
		}
		name := op.String()
		why := forbidden(name)
		if why == "" {
			return
		}
		p := Problem{Message: fmt.Sprintf("%s is not allowed in a mitosis policy: %s", name, why)}
		if loc := op.Location; loc != nil {
			p.File, p.Row, p.Col = loc.File, loc.Row, loc.Col
		}
		out = append(out, p)
	}
	ast.WalkExprs(m, func(e *ast.Expr) bool {
		if e.IsCall() {
			report(e.OperatorTerm())
		}
		return false
	})
	ast.WalkTerms(m, func(t *ast.Term) bool {
		if call, ok := t.Value.(ast.Call); ok && len(call) > 0 {
			report(call[0])
		}
		return false
	})
	// `x with http.send as ...` names a built-in function without calling it.
	ast.WalkExprs(m, func(e *ast.Expr) bool {
		for _, w := range e.With {
			report(w.Target)
		}
		return false
	})
	return out
}
