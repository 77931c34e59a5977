// Package plan is the pure decision core of mitosis: the domain types
// (cluster, node, operation, decision) and the function that turns a
// policy's decision into operations.
//
// Plan is deterministic: it imports only the standard library, reads no
// clock (time enters as Input.Now), does no I/O and keeps no state of its
// own; what it must remember between ticks (cooldowns, the stabilization
// window) it returns in Result.Scaling for the caller to store.
//
// The guardrails below hold whatever the policy says:
//
//   - the projected size stays within [Min, Max] and never below one node;
//   - a scale-up cooldown from the last clone's join (capacity the metrics
//     already see), and a scale-down cooldown from the last decision;
//   - growth: clones in flight at most (MaxGrowth-1) times the ready nodes;
//   - a scale-down stabilization window: contract only if contraction was
//     wanted on every tick of the window, and then only as far as the
//     most conservative recommendation in it (as Kubernetes' HPA does);
//   - budgets of concurrent operations per cluster, per template, per host;
//   - never contract a node of a non-scalable role, a node in use as a
//     template, a node another operation holds, or the last node;
//   - missing or stale metrics: no contraction, and no expansion unless
//     the decision explicitly asks for fail-safe expansion.
//
// Every capped or refused intent is explained by a Reason with a stable
// Code, so an operator (and a metric) can tell why a decision did less
// than the policy asked.
package plan
