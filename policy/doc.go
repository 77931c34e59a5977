// Package policy is the policy engine of mitosis: it compiles Rego
// policies with the embedded Open Policy Agent and evaluates them on every
// tick of the controller.
//
// A policy is the .rego files of one directory (tests, *_test.rego,
// aside). It defines data.mitosis.decision from the Input (contract
// version 1, see docs/policy.md):
//
//	{"action": "expand"|"contract"|"none", "count": n, "template": id,
//	 "templates": [id], "hosts": [name], "nodes": [id], "force": bool,
//	 "fail_safe": bool, "reason": text}
//
// and may define helpers such as template_score and victim_score.
//
// The engine
//
//   - compiles once (Load, LoadFS): Rego v1, strict mode, and OPA's
//     capabilities minus the built-in functions that reach the network or
//     the runtime (http.send, net.*, opa.runtime); every problem is a
//     *LoadError naming file and line;
//   - evaluates with the tick's time pinned (time.now_ns is the now given
//     to Decide) and the input handed over already converted to OPA's AST;
//   - checks the decision against the contract and the input before
//     anyone acts on it: an invalid or undefined decision is a
//     *DecisionError naming the file and line of the rule that produced
//     it, an evaluation failure an *EvalError; Decide never returns an
//     invalid decision;
//   - runs the Rego unit tests with OPA's tester (RunTests) under the same
//     capabilities, and checks formatting and strict compilation (Check)
//     as `opa fmt` and `opa check --strict` do.
//
// The plan package applies its guardrails (min, max, cooldowns, budgets,
// protected nodes) to the decision afterwards: a policy asks, plan decides
// what happens.
package policy
