# The least a policy that looks at every node can cost: it reads one
# field of each. Ranking templates or victims costs at least this.
# BenchmarkFloor measures it.
package mitosis

ages := [node.age_s | some node in input.nodes]

decision := {"action": "none", "reason": "walked"} if count(ages) >= 0
