package mitosis_test

import data.mitosis

# ---- fixtures ----

# node is a ready app node, warm and an hour old, with the given
# utilization.
node(id, util) := {
	"id": id,
	"role": "app",
	"state": "ready",
	"host": "esx1",
	"vm": concat("-", ["vm", id]),
	"age_s": 3600,
	"parent": "",
	"lineage_depth": 0,
	"metrics": {
		"utilization": {"value": util, "age_s": 5},
		"cache_hit_ratio": {"value": 0.9, "age_s": 5},
		"sessions": {"value": 100, "age_s": 5},
	},
}

# with_fields is node n with some fields replaced (metrics merged).
with_fields(n, fields) := object.union(n, fields)

# cluster is an input with the nodes given, all counted in its size.
cluster(nodes) := {
	"schema": 1,
	"now": 1767258000,
	"cluster": {"name": "web", "min": 1, "max": 10, "size": count(nodes), "roles": ["app"]},
	"nodes": nodes,
	"hosts": [{"name": "esx1", "capacity": 0, "vms": count(nodes)}],
	"metrics": {},
	"health": {"metrics_available": true, "reason": ""},
	"history": {"last_expand_s_ago": -1, "last_contract_s_ago": -1, "last_join_s_ago": -1, "recent": []},
	"estimates": {"clone_seconds": 0, "drain_seconds": 0},
	"operations": [],
	"params": {},
	"node_stats": node_stats(nodes, ["app"]),
}

# node_stats is what the engine derives from the nodes and hands the
# policy as input.node_stats: each metric summarized over the ready nodes
# of the roles given.
node_stats(nodes, roles) := {
	"ready": count(ready),
	"metrics": {name: summary(ready, name) | some n in ready; some name, _ in n.metrics},
} if {
	ready := [n | some n in nodes; n.state == "ready"; n.role in roles]
}

summary(ready, name) := {
	"count": count(values),
	"missing": count(ready) - count(values),
	"sum": sum(values),
	"mean": sum(values) / count(values),
	"min": min(values),
	"max": max(values),
	"max_age_s": max(ages),
} if {
	values := [n.metrics[name].value | some n in ready]
	ages := [n.metrics[name].age_s | some n in ready]
}

# changed is the input doc with the fields of patch merged in.
changed(doc, patch) := object.union(doc, patch)

busy := cluster([node("a", 0.9), node("b", 0.85), node("c", 0.8), node("d", 0.75)])

idle := cluster([node("a", 0.2), node("b", 0.2), node("c", 0.2), node("d", 0.2)])

# quiet is a ready node that reports no utilization.
quiet := object.union(object.remove(node("quiet", 0), ["metrics"]), {"metrics": {"sessions": {"value": 1, "age_s": 5}}})

calm := cluster([node("a", 0.6), node("b", 0.55), node("c", 0.65), node("d", 0.6)])

# ---- the decision: expand ----

test_expands_to_the_desired_size_when_the_mean_is_above_high if {
	d := mitosis.decision with input as busy

	# sum 3.3 / target 0.6 = 5.5 -> 6 nodes, 4 now
	d.action == "expand"
	d.count == 2
	d.reason == "mean utilization 0.82 > 0.75 over 4 nodes: desired 6, size 4"
	not d.fail_safe
}

test_expand_names_the_best_template_and_ranks_all if {
	d := mitosis.decision with input as busy

	# c and d are no busier than the mean (0.825); both warm: ties on the
	# score are ranked by descending id
	d.template == "d"
	d.templates == ["d", "c", "b", "a"]
}

test_expand_is_capped_by_max if {
	d := mitosis.decision with input as changed(busy, {"cluster": {"max": 5}})
	d.action == "expand"
	d.count == 1
}

test_expand_is_capped_by_max_step_out if {
	d := mitosis.decision with input as changed(busy, {"params": {"max_step_out": 1}})
	d.count == 1
}

test_no_expansion_at_max if {
	d := mitosis.decision with input as changed(busy, {"cluster": {"max": 4}})
	d.action == "none"
	d.reason == "mean utilization 0.82 over 4 nodes: desired 6, size 4, above 0.75, but the cluster is at its max 4"
}

test_expansions_in_flight_count if {
	# two clones in flight: the size is already 6
	d := mitosis.decision with input as changed(busy, {"cluster": {"size": 6}})
	d.action == "none"
	contains(d.reason, "operations in flight already bring the cluster to it")
}

test_no_expansion_without_a_template if {
	ops := [{"id": concat("-", ["op", id]), "kind": "contract", "step": "drain", "template": "", "node": id, "host": "esx1", "age_s": 1} |
		some id in ["a", "b", "c", "d"]
	]
	d := mitosis.decision with input as changed(busy, {"operations": ops})
	d.action == "none"
	contains(d.reason, "no ready node can be a template")
}

test_mean_at_high_is_within_the_band if {
	d := mitosis.decision with input as cluster([node("a", 0.75), node("b", 0.75)])
	d.action == "none"
}

# ---- the decision: a surge ----

# surged is calm (a mean of 0.6 over 4 nodes) when the demand of the last
# seconds is n nodes' worth.
surged(n) := changed(calm, {"metrics": {"demand_nodes": {"value": n, "age_s": 2}}})

test_a_surge_expands_before_the_averages_move if {
	# the nodes' one-minute averages are within the band; the demand is
	# 9 nodes' worth: sized to it, 9 / 0.6 = 15, within the max of 10
	d := mitosis.decision with input as surged(9)
	d.action == "expand"
	d.count == 6
	d.reason == "surge: demand 9.00 nodes > 0.75 × 4 ready: desired 15, size 4"
	count(d.templates) == 4
}

test_demand_within_the_high_mark_is_no_surge if {
	d := mitosis.decision with input as surged(3)
	d.action == "none"
}

test_a_stale_or_disowned_surge_signal_is_ignored if {
	stale := changed(calm, {"metrics": {"demand_nodes": {"value": 9, "age_s": 600}}})
	d1 := mitosis.decision with input as stale
	d1.action == "none"
	d2 := mitosis.decision with input as changed(surged(9), {"params": {"surge_metric": ""}})
	d2.action == "none"
	d3 := mitosis.decision with input as changed(surged(9), {"params": {"surge_metric": "queue"}})
	d3.action == "none"
}

test_a_surge_is_sized_by_the_averages_when_they_ask_for_more if {
	# busy's averages ask for 6; a demand of 3.1 nodes is a surge (> 3)
	# that asks for 6 too; with 5.5 it asks for 10
	d := mitosis.decision with input as changed(busy, {"metrics": {"demand_nodes": {"value": 5.5, "age_s": 2}}})
	d.count == 6
}

test_after_a_join_the_averages_expand_nothing_until_they_settle if {
	joined := changed(busy, {"history": {"last_expand_s_ago": 30, "last_contract_s_ago": -1, "last_join_s_ago": 20, "recent": []}})
	d := mitosis.decision with input as joined
	d.action == "none"
	d.reason == "mean utilization 0.82 over 4 nodes: desired 6, size 4, above 0.75, but a clone joined 20s ago: the averages settle for 60s"

	# settled: the averages decide again
	settled := changed(joined, {"history": {"last_expand_s_ago": 90, "last_contract_s_ago": -1, "last_join_s_ago": 60, "recent": []}})
	d1 := mitosis.decision with input as settled
	d1.action == "expand"

	# a surge does not wait: the demand does not count the clone twice
	d2 := mitosis.decision with input as changed(joined, {"metrics": {"demand_nodes": {"value": 4.5, "age_s": 2}}})
	d2.action == "expand"
	d2.count == 4 # 4.5 / 0.6 = 7.5 -> 8, the averages' 6 left out while they settle
}

# ---- the decision: contract ----

test_contracts_to_the_desired_size_when_the_mean_is_below_low if {
	d := mitosis.decision with input as idle

	# sum 0.8 / 0.6 = 1.33 -> 2 nodes, 4 now
	d.action == "contract"
	d.count == 2
	d.reason == "mean utilization 0.20 < 0.40 over 4 nodes: desired 2, size 4"
	d.nodes == ["a", "b", "c", "d"]
}

test_contraction_keeps_min if {
	d := mitosis.decision with input as changed(idle, {"cluster": {"min": 3}})
	d.count == 1
}

test_contraction_is_capped_by_max_step_in if {
	d := mitosis.decision with input as changed(idle, {"params": {"max_step_in": 1}})
	d.count == 1
}

test_no_contraction_at_min if {
	d := mitosis.decision with input as changed(idle, {"cluster": {"min": 4}})
	d.action == "none"
	d.reason == "mean utilization 0.20 over 4 nodes: desired 2, size 4, below 0.40, but the cluster is at its min 4"
}

test_never_contracts_the_last_node if {
	d := mitosis.decision with input as changed(cluster([node("a", 0.1)]), {"cluster": {"min": 0}})
	d.action == "none"
	contains(d.reason, "at its min 1")
}

test_contractions_in_flight_count if {
	d := mitosis.decision with input as changed(idle, {"cluster": {"size": 2}})
	d.action == "none"
	contains(d.reason, "operations in flight already bring the cluster to it")
}

test_no_contraction_while_ready_nodes_lack_the_metric if {
	d := mitosis.decision with input as cluster(array.concat(idle.nodes, [quiet]))
	d.action == "none"
	contains(d.reason, "but 1 ready nodes do not report utilization: not contracting")
}

test_no_contraction_when_every_node_is_held if {
	ops := [{"id": concat("-", ["op", id]), "kind": "expand", "step": "prepare", "template": id, "node": "", "host": "esx1", "age_s": 1} |
		some id in ["a", "b", "c", "d"]
	]
	d := mitosis.decision with input as changed(idle, {"operations": ops})
	d.action == "none"
	contains(d.reason, "every node is held by an operation")
}

# ---- the decision: none ----

test_within_the_band_does_nothing if {
	d := mitosis.decision with input as calm
	d == {"action": "none", "reason": "mean utilization 0.60 within [0.4, 0.75] over 4 nodes: size 4"}
}

test_nodes_missing_the_metric_are_ignored if {
	d := mitosis.decision with input as cluster(array.concat(busy.nodes, [quiet]))
	d.action == "expand"
	d.count == 1
	contains(d.reason, "over 4 nodes: desired 6, size 5")
}

test_no_node_reports_the_metric if {
	d := mitosis.decision with input as changed(busy, {"params": {"metric": "cpu"}})
	d == {"action": "none", "reason": "no ready node of a scalable role reports cpu: no action"}
}

test_other_roles_and_states_do_not_count if {
	central := with_fields(node("central", 0.99), {"role": "central"})
	draining := with_fields(node("x", 0.99), {"state": "draining"})
	d := mitosis.decision with input as calm with input.nodes as array.concat(calm.nodes, [central, draining])
	d.action == "none"
	contains(d.reason, "over 4 nodes")
}

test_the_metric_is_a_param if {
	doc := changed(calm, {"params": {"metric": "sessions", "target": 50, "low": 40, "high": 80}})

	# sessions 100 each: mean 100 > 80, desired ceil(400 / 50) = 8
	d := mitosis.decision with input as doc
	d.action == "expand"
	d.count == 4
}

# ---- metrics unavailable ----

test_no_action_when_metrics_are_unavailable if {
	d := mitosis.decision with input as changed(busy, {"health": {"metrics_available": false, "reason": "prometheus down"}})
	d == {"action": "none", "reason": "metrics unavailable (prometheus down): no action"}
}

test_fail_safe_expansion_when_asked if {
	doc := changed(busy, {"health": {"metrics_available": false, "reason": ""}, "params": {"fail_safe_expand": true}})
	d := mitosis.decision with input as doc
	d.action == "expand"
	d.count == 1
	d.fail_safe == true
	d.template == "d"
	d.reason == "metrics unavailable: fail-safe expansion by 1"
}

test_no_fail_safe_expansion_at_max if {
	doc := changed(busy, {"cluster": {"max": 4}, "health": {"metrics_available": false}, "params": {"fail_safe_expand": true}})
	d := mitosis.decision with input as doc
	d.action == "none"
}

# ---- params ----

test_invalid_params_do_nothing[name] if {
	some name, params in {
		"unknown": {"traget": 0.6},
		"target zero": {"target": 0},
		"target text": {"target": "0.6"},
		"band inverted": {"low": 0.8, "high": 0.5},
		"fractional step": {"max_step_out": 1.5},
		"empty metric": {"metric": ""},
		"fail_safe text": {"fail_safe_expand": "yes"},
		"warm_after zero": {"warm_after_s": 0},
		"surge_metric number": {"surge_metric": 3},
		"settle_s text": {"settle_s": "1m"},
	}
	errors := mitosis.param_errors with input as changed(busy, {"params": params})
	count(errors) > 0
}

test_invalid_params_are_named if {
	errors := mitosis.param_errors with input as changed(busy, {"params": {"traget": 0.6, "target": 0}})
	errors == {"low <= target <= high must hold", "target must be > 0", "unknown param \"traget\""}
}

test_valid_params_have_no_errors if {
	params := {"metric": "sessions", "target": 50, "low": 40, "high": 80, "max_step_out": 2, "fail_safe_expand": true}
	count(mitosis.param_errors) == 0 with input as changed(busy, {"params": params})
}

# ---- template_score ----

test_template_score_order[name] if {
	some name, pair in {
		"fresh metric before stale": [{}, {"metrics": {"utilization": {"age_s": 600}}}],
		"warmed up before young": [{}, {"age_s": 60}],
		"shallow lineage before deep": [{"lineage_depth": 3}, {"lineage_depth": 4}],
		"no busier than the mean before busier": [{"metrics": {"utilization": {"value": 0.5}}}, {"metrics": {"utilization": {"value": 0.7}}}],
		"warmer cache before colder": [{}, {"metrics": {"cache_hit_ratio": {"value": 0.5}}}],
		"shallower before deeper": [{"lineage_depth": 1}, {"lineage_depth": 2}],
	}
	better := with_fields(node("better", 0.6), pair[0])
	worse := with_fields(node("worse", 0.6), pair[1])
	scores := mitosis.template_score with input as cluster([better, worse])
	scores.better > scores.worse
}

test_template_score_missing_samples if {
	bare := object.union(object.remove(node("bare", 0.6), ["metrics"]), {"metrics": {}})
	scores := mitosis.template_score with input as cluster([node("a", 0.6)]) with input.nodes as [node("a", 0.6), bare]

	# no sample: not healthy, counted as busy and cold
	scores.bare == [false, true, true, false, 0, 0]
	scores.a > scores.bare
}

test_templates_are_ready_scalable_nodes_not_being_contracted if {
	nodes := [
		node("a", 0.9),
		with_fields(node("preparing", 0.9), {"state": "preparing"}),
		with_fields(node("central", 0.9), {"role": "central"}),
		node("victim", 0.9),
	]
	op := {"id": "op-1", "kind": "contract", "step": "drain", "template": "", "node": "victim", "host": "esx1", "age_s": 1}
	scores := mitosis.template_score with input as changed(cluster(nodes), {"operations": [op]})
	object.keys(scores) == {"a"}
}

# ---- victim_score ----

test_victim_score_order[name] if {
	some name, pair in {
		"clone before original": [{"parent": "a"}, {}],
		"young before warmed up": [{"age_s": 60}, {}],
		"colder before warmer": [{"metrics": {"cache_hit_ratio": {"value": 0.3}}}, {}],
		"less loaded before busier": [{"metrics": {"utilization": {"value": 0.1}}}, {"metrics": {"utilization": {"value": 0.3}}}],
	}
	better := with_fields(node("better", 0.2), pair[0])
	worse := with_fields(node("worse", 0.2), pair[1])
	scores := mitosis.victim_score with input as cluster([better, worse])
	scores.better < scores.worse
}

test_victims_exclude_nodes_held_by_operations if {
	ops := [
		{"id": "op-1", "kind": "expand", "step": "clone", "template": "a", "node": "", "host": "esx1", "age_s": 1},
		{"id": "op-2", "kind": "contract", "step": "drain", "template": "", "node": "b", "host": "esx1", "age_s": 1},
	]
	scores := mitosis.victim_score with input as changed(idle, {"operations": ops})
	object.keys(scores) == {"c", "d"}
}

test_victims_are_ranked_coldest_first if {
	nodes := [
		with_fields(node("warm", 0.2), {"metrics": {"cache_hit_ratio": {"value": 0.95}}}),
		with_fields(node("cold", 0.2), {"metrics": {"cache_hit_ratio": {"value": 0.1}}}),
		with_fields(node("clone", 0.2), {"parent": "warm", "metrics": {"cache_hit_ratio": {"value": 0.99}}}),
	]
	d := mitosis.decision with input as cluster(nodes)
	d.nodes == ["clone", "cold", "warm"]
}

# ---- helpers ----

test_two_decimals if {
	mitosis.two(0.825) == "0.82"
	mitosis.two(1) == "1.00"
	mitosis.two(0.6) == "0.60"
}
