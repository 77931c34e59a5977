# METADATA
# title: Target tracking with hysteresis
# description: |
#   The default mitosis policy. It keeps the mean of a per-node metric
#   (utilization by default) of the ready nodes of scalable roles near a
#   target: it expands when the mean is above `high`, contracts when it is
#   below `low`, and does nothing in between. The size it aims for is
#   ceil(sum of the metric / target). Templates are the warmest, healthiest,
#   least loaded ready nodes; victims the coldest, least loaded, newest clones.
#   Parameters come from input.params; docs/policy.md lists them.
package mitosis

# ---- parameters ----

# Every parameter with its default. A parameter the cluster's
# configuration gives that is not listed here is an error.
defaults := {
	"metric": "utilization",
	"target": 0.6,
	"high": 0.75,
	"low": 0.4,
	"max_step_out": 0, # 0: as many as needed, up to the cluster's max
	"max_step_in": 0, # 0: as many as needed, down to the cluster's min
	"fail_safe_expand": false,
	"warm_after_s": 600, # uptime after which a node counts as fully warmed up
	"stale_after_s": 120, # a metric sample older than this is not healthy
	"max_lineage_depth": 3, # a template deeper in a lineage of clones ranks after shallower ones
	"surge_metric": "demand_nodes", # cluster-level demand over seconds, in warm nodes; "" for none
	"settle_s": 60, # the window `metric` is averaged over: after a join, it expands nothing for this long
}

# The params: the cluster's, over the defaults.
params := object.union(defaults, given_params)

given_params := object.get(input, "params", {})

known_params := object.keys(defaults)

known_given := object.keys(given_params)

number_params := {"target", "high", "low", "max_step_out", "max_step_in", "warm_after_s", "stale_after_s", "max_lineage_depth", "settle_s"}

# What is wrong with the params given (the defaults are known to be good).
# The engine evaluates this when it first sees a cluster's params and
# refuses to decide with any that are wrong.
param_errors contains sprintf("unknown param %q", [name]) if {
	some name, _ in given_params
	not name in known_params
}

param_errors contains "surge_metric must be a string" if {
	not is_string(params.surge_metric)
}

param_errors contains "metric must be a non-empty string" if {
	"metric" in known_given
	not metric_named
}

metric_named if {
	is_string(params.metric)
	params.metric != ""
}

param_errors contains sprintf("%s must be a number", [name]) if {
	some name, value in given_params
	name in number_params
	not is_number(value)
}

param_errors contains "fail_safe_expand must be a boolean" if {
	not is_boolean(params.fail_safe_expand)
}

param_errors contains "target must be > 0" if {
	params.target <= 0
}

param_errors contains "low <= target <= high must hold" if not ordered

ordered if {
	params.low <= params.target
	params.target <= params.high
}

param_errors contains sprintf("%s must be a whole number >= 0", [name]) if {
	some name in ["max_step_out", "max_step_in", "max_lineage_depth"]
	name in known_given
	is_number(params[name])
	not whole(params[name])
}

param_errors contains "warm_after_s must be > 0" if {
	params.warm_after_s <= 0
}

whole(x) if {
	x >= 0
	x == floor(x)
}

# ---- the nodes ----
#
# The decision reads the cluster's figures from input.node_stats and walks
# no node: a tick that changes nothing costs the same on 10 nodes as on
# 10,000. Only ranking templates or victims (on an expansion or a
# contraction) walks every node, so those rules are written for OPA's
# evaluator: rule values are bound to local
# variables before the loop (a reference to a rule costs more than a
# local), no user function is called per node (calls are memoized on
# their arguments), and there is no floating-point arithmetic per node
# (OPA computes it with arbitrary precision, at some microseconds an
# operation): nodes are compared, not weighed.

scalable_roles := {role | some role in input.cluster.roles}

# The same as an array, which the per-node rules iterate (cheaper than a
# look-up in a set).
role_list := [role | some role in scalable_roles]

# Nodes that an operation in flight works on (its template, its clone or
# its victim): never victims.
held contains id if {
	some op in input.operations
	some id in [op.node, op.template]
	id != ""
}

# Nodes being contracted: never templates.
contracting contains op.node if {
	some op in input.operations
	op.kind == "contract"
}

# The metric over the ready nodes of scalable roles, from the summary
# the engine derives (input.node_stats): the decision itself does not walk
# the nodes, only the choice of a template or a victim does.
stats := object.get(input.node_stats.metrics, params.metric, {"count": 0, "missing": input.node_stats.ready, "sum": 0})

# How many ready nodes of scalable roles do not report the metric.
unreported := stats.missing

load_count := stats.count

load_sum := stats.sum

load_mean := stats.mean if load_count > 0

# The load a template should not exceed: the mean, or high when no node
# reports the metric (a fail-safe expansion still needs a template).
typical_load := load_mean if {
	load_count > 0
} else := params.high

# The size the nodes' own averages ask for.
tracked_size := ceil(load_sum / params.target)

# The surge signal: the demand of the last seconds in warm nodes (requests
# arriving per second over what one warm node serves; the simulator's
# demand_nodes, from HAProxy a request rate over a short window divided by
# a node's capacity: docs/agent.md), fresh. It moves before the nodes'
# one-minute averages do, so a surge is seen within a tick of its start;
# it counts the requests that wait, which a saturated node's utilization
# cannot show; and adding capacity does not move it. Absent or stale: the
# node averages decide alone.
surge_value := v if {
	params.surge_metric != ""
	sample := input.metrics[params.surge_metric]
	sample.age_s <= params.stale_after_s
	v := sample.value
	v >= 0
}

# A surge: demand above the high mark of what the ready nodes serve.
surging if surge_value > params.high * input.node_stats.ready

# At the target, the demand needs this many nodes.
surge_size := ceil(surge_value / params.target) if surging

# A node's average over the last minute holds the load from before the
# last clone joined: it counts the clone's share twice (the old nodes' past
# and the clone's present) until a whole window has passed. Until then the
# averages expand nothing, and only the demand (which new capacity does
# not move) sizes a surge.
settled if joined_s_ago < 0

settled if joined_s_ago >= params.settle_s

joined_s_ago := input.history.last_join_s_ago

# The size to aim for: what the nodes' averages ask for (once settled), or
# what a surge asks for when it asks for more.
desired_size := max([tracked_size, surge_size]) if {
	surging
	settled
} else := surge_size if {
	surging
} else := tracked_size

size := input.cluster.size

# How many clones would bring the cluster to its desired size, within
# its max and the step.
expand_count := step(min([desired_size, input.cluster.max]) - size, params.max_step_out)

# How many nodes would go, keeping the cluster at or above its min (and
# one node), within the step.
contract_count := step(size - max([desired_size, floor_size]), params.max_step_in)

# The cluster never goes below its min, nor below one node.
floor_size := max([input.cluster.min, 1])

step(n, limit) := n if limit <= 0

step(n, limit) := min([n, limit]) if limit > 0

# ---- template and victim scores ----
#
# A score is an array compared element by element, as Rego compares
# arrays: the first element decides, the next breaks its ties, and so on.
# template_score and victim_score map node ids to scores. They are object
# comprehensions rather than partial rules (template_score[id] := ...):
# OPA checks each key a partial rule adds against all the others, which
# is quadratic over thousands of nodes. A policy still reads one score as
# template_score[id].

# template_score is what cloning the node is worth; the higher the
# better. In order: a healthy node (it reports the metric, and freshly),
# one that has run long enough to be warm (age_s >= warm_after_s), a
# shallow lineage (at most max_lineage_depth clones of clones), one no
# busier than the cluster's mean (preparing it holds fewer sessions back),
# then the warmest cache (cache_hit_ratio), then the shallowest lineage.
template_score := object.remove(scores, contracting) if {
	metric := params.metric
	stale := params.stale_after_s
	missing := {"value": 1, "age_s": stale + 1}
	mean := typical_load
	warm_after := params.warm_after_s
	deepest := params.max_lineage_depth
	roles := role_list
	scores := {node.id: [
		sample.age_s <= stale,
		node.age_s >= warm_after,
		node.lineage_depth <= deepest,
		sample.value <= mean,
		object.get(node.metrics, ["cache_hit_ratio", "value"], 0),
		0 - node.lineage_depth,
	] |
		some node in input.nodes
		node.state == "ready"
		node.role == roles[_]
		sample := object.get(node.metrics, metric, missing)
	}
}

# victim_score is what removing the node costs; the lower the better.
# In order: a clone costs less than a node mitosis did not make, a node
# still warming up (age_s < warm_after_s) less than a warm one, then the
# coldest cache (cache_hit_ratio), then the least loaded. Nodes held by an
# operation in flight are never victims.
victim_score := object.remove(scores, held) if {
	metric := params.metric
	warm_after := params.warm_after_s
	roles := role_list
	scores := {node.id: [
		node.parent == "",
		node.age_s >= warm_after,
		object.get(node.metrics, ["cache_hit_ratio", "value"], 0),
		object.get(node.metrics, [metric, "value"], 1),
	] |
		some node in input.nodes
		node.state == "ready"
		node.role == roles[_]
	}
}

# Templates ranked best (highest score) first, victims best (lowest
# score) first. Equal scores are ranked by id (templates by descending,
# victims by ascending id), so that the ranking is deterministic.
ranked_templates := [keys[i][1] | some i in numbers.range(count(keys) - 1, 0)] if {
	keys := sort([[score, id] | some id, score in template_score])
	count(keys) > 0
} else := []

ranked_victims := [pair[1] | some pair in sort([[score, id] | some id, score in victim_score])]

# ---- the decision ----

trusted if input.health.metrics_available

unavailable := sprintf("metrics unavailable (%s)", [input.health.reason]) if {
	input.health.reason != ""
} else := "metrics unavailable"

summary := sprintf("mean %s %s over %d nodes: desired %d, size %d", [params.metric, two(load_mean), load_count, desired_size, size])

# The decision is a short chain: a tick within the band evaluates only
# its first branches (each else branch costs a few microseconds, on every
# tick), and its last branch, the common tick, spends least: no call of
# none() or of two() for the params, which are printed as given. It takes
# its params as valid: the engine checks param_errors when it first sees
# them, and makes no decision with invalid ones.
decision := untrusted_decision if {
	not trusted
} else := none(sprintf("no ready node of a scalable role reports %s: no action", [params.metric])) if {
	load_count == 0
} else := expand_decision if {
	surging
} else := expand_decision if {
	load_mean > params.high
	settled
} else := none(sprintf("%s, above %s, but a clone joined %ds ago: the averages settle for %ds", [summary, two(params.high), round(joined_s_ago), params.settle_s])) if {
	load_mean > params.high
} else := contract_decision if {
	load_mean < params.low
} else := {"action": "none", "reason": sprintf("mean %s %s within [%v, %v] over %d nodes: size %d", [params.metric, two(load_mean), params.low, params.high, load_count, size])}

# Without trusted metrics: a fail-safe expansion by one if the params ask
# for it, else nothing.
untrusted_decision := {
	"action": "expand",
	"count": 1,
	"template": ranked_templates[0],
	"templates": ranked_templates,
	"fail_safe": true,
	"reason": sprintf("%s: fail-safe expansion by 1", [unavailable]),
} if {
	params.fail_safe_expand
	size < input.cluster.max
	count(ranked_templates) > 0
} else := none(sprintf("%s: no action", [unavailable]))

# Above the high mark.
expand_decision := none(sprintf("%s, above %s, but the cluster is at its max %d", [summary, two(params.high), input.cluster.max])) if {
	size >= input.cluster.max
} else := none(sprintf("%s, above %s, but operations in flight already bring the cluster to it", [summary, two(params.high)])) if {
	expand_count <= 0
} else := none(sprintf("%s, above %s, but no ready node can be a template", [summary, two(params.high)])) if {
	count(ranked_templates) == 0
} else := {
	"action": "expand",
	"count": expand_count,
	"template": ranked_templates[0],
	"templates": ranked_templates,
	"reason": expand_reason,
}

expand_reason := sprintf("surge: demand %s nodes > %s × %d ready: desired %d, size %d", [two(surge_value), two(params.high), input.node_stats.ready, desired_size, size]) if {
	surging
} else := sprintf("mean %s %s > %s over %d nodes: desired %d, size %d", [params.metric, two(load_mean), two(params.high), load_count, desired_size, size])

# Below the low mark.
contract_decision := none(sprintf("%s, below %s, but the cluster is at its min %d", [summary, two(params.low), floor_size])) if {
	size <= floor_size
} else := none(sprintf("%s, below %s, but operations in flight already bring the cluster to it", [summary, two(params.low)])) if {
	contract_count <= 0
} else := none(sprintf("%s, below %s, but %d ready nodes do not report %s: not contracting", [summary, two(params.low), unreported, params.metric])) if {
	unreported > 0
} else := none(sprintf("%s, below %s, but every node is held by an operation", [summary, two(params.low)])) if {
	count(ranked_victims) == 0
} else := {
	"action": "contract",
	"count": contract_count,
	"nodes": ranked_victims,
	"reason": sprintf("mean %s %s < %s over %d nodes: desired %d, size %d", [params.metric, two(load_mean), two(params.low), load_count, desired_size, size]),
}

none(reason) := {"action": "none", "reason": reason}

# two formats a number with two decimals.
two(x) := sprintf("%.2f", [x]) if x != floor(x)

two(x) := sprintf("%d.00", [floor(x)]) if x == floor(x)
