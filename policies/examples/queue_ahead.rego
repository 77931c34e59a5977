# METADATA
# title: Scale ahead of a growing queue
# description: |
#   An example policy, not loaded by default: copy it into a policy
#   directory of its own. It scales on a cluster-level metric, the length
#   of the queue of requests waiting for a node (input.metrics.queue_length),
#   and looks ahead: a clone takes input.estimates.clone_seconds to join,
#   so it acts on the queue expected by then, the queue now plus its growth
#   (input.metrics.queue_growth_per_s) over that time.
package mitosis

defaults := {
	"high": 50, # expand when the projected queue is above this
	"low": 5, # contract when the queue, now and projected, is below this
	"per_node": 50, # one more node for each this many queued requests
	"max_step_out": 4,
	"clone_seconds": 60, # the lead time until the first clone has finished
}

params := {name: object.get(input, ["params", name], value) | some name, value in defaults}

param_errors contains sprintf("unknown param %q", [name]) if {
	some name, _ in object.get(input, "params", {})
	not name in object.keys(defaults)
}

param_errors contains sprintf("%s must be a number > 0", [name]) if {
	some name in ["high", "per_node", "max_step_out", "clone_seconds"]
	not positive(params[name])
}

param_errors contains "low must be a number < high" if {
	not params.low < params.high
}

positive(x) if {
	is_number(x)
	x > 0
}

size := input.cluster.size

queue := input.metrics.queue_length.value

growth := object.get(input.metrics, ["queue_growth_per_s", "value"], 0)

# The lead time: learned from past clones, else the param.
lead := input.estimates.clone_seconds if {
	input.estimates.clone_seconds > 0
} else := params.clone_seconds

projected := max([queue + (growth * lead), 0])

expand_count := min([ceil((projected - params.high) / params.per_node), params.max_step_out, input.cluster.max - size])

# The warmest ready node of a scalable role is the best template; the
# coldest, newest one the best victim. (Few nodes need ranking here, so
# this example scores with arithmetic; see target_tracking.rego for a
# policy that must stay cheap over thousands of nodes.)
template_score[node.id] := object.get(node.metrics, ["cache_hit_ratio", "value"], 0) if {
	some node in input.nodes
	node.state == "ready"
	node.role in input.cluster.roles
}

held contains id if {
	some op in input.operations
	some id in [op.node, op.template]
	id != ""
}

victim_score[node.id] := object.get(node.metrics, ["cache_hit_ratio", "value"], 0) + (min([node.age_s, 3600]) / 3600) if {
	some node in input.nodes
	node.state == "ready"
	node.role in input.cluster.roles
	not held[node.id]
}

# Best first: highest template score, lowest victim score; ties by id.
templates := [pair[1] | some pair in sort([[0 - score, id] | some id, score in template_score])]

victims := [pair[1] | some pair in sort([[score, id] | some id, score in victim_score])]

outlook := sprintf("queue %v, growing %v/s: %v expected in %v s", [queue, growth, round(projected), lead])

decision := {"action": "none", "reason": sprintf("invalid params: %s", [concat("; ", sort(param_errors))])} if {
	count(param_errors) > 0
} else := {"action": "none", "reason": "metrics unavailable: no action"} if {
	not input.health.metrics_available
} else := {"action": "none", "reason": "no queue_length metric: no action"} if {
	not input.metrics.queue_length
} else := {"action": "none", "reason": sprintf("%s > %v, but the cluster is at its max %d", [outlook, params.high, input.cluster.max])} if {
	projected > params.high
	size >= input.cluster.max
} else := {"action": "none", "reason": sprintf("%s > %v, but no ready node can be a template", [outlook, params.high])} if {
	projected > params.high
	count(templates) == 0
} else := {
	"action": "expand",
	"count": expand_count,
	"template": templates[0],
	"templates": templates,
	"reason": sprintf("%s > %v: expand by %d", [outlook, params.high, expand_count]),
} if {
	projected > params.high
} else := {
	"action": "contract",
	"count": 1,
	"nodes": victims,
	"reason": sprintf("%s, below %v: contract by 1", [outlook, params.low]),
} if {
	queue < params.low
	projected < params.low
	size > max([input.cluster.min, 1])
	count(victims) > 0
} else := {"action": "none", "reason": sprintf("%s, within [%v, %v]", [outlook, params.low, params.high])}
