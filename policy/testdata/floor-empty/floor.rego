# The least a policy can cost: it reads nothing and decides nothing.
# BenchmarkFloor measures the engine's own cost with it.
package mitosis

decision := {"action": "none", "reason": "nothing"}
