package mitosis_test

import data.mitosis

node(id, warmth) := {
	"id": id,
	"role": "app",
	"state": "ready",
	"host": "esx1",
	"vm": concat("-", ["vm", id]),
	"age_s": 3600,
	"parent": "",
	"lineage_depth": 0,
	"metrics": {"cache_hit_ratio": {"value": warmth, "age_s": 5}},
}

# queued is a 3-node cluster with the queue given, growing by growth/s;
# a clone takes 45 s.
queued(length, growth) := {
	"schema": 1,
	"now": 1767258000,
	"cluster": {"name": "web", "min": 1, "max": 10, "size": 3, "roles": ["app"]},
	"nodes": [node("a", 0.9), node("b", 0.95), node("c", 0.5)],
	"hosts": [],
	"metrics": {
		"queue_length": {"value": length, "age_s": 5},
		"queue_growth_per_s": {"value": growth, "age_s": 5},
	},
	"health": {"metrics_available": true, "reason": ""},
	"history": {"last_expand_s_ago": -1, "last_contract_s_ago": -1, "last_join_s_ago": -1, "recent": []},
	"estimates": {"clone_seconds": 45, "drain_seconds": 0},
	"operations": [],
	"params": {},
}

changed(doc, patch) := object.union(doc, patch)

test_expands_ahead_of_a_growing_queue if {
	# 20 now, below high, but 20 + 2 * 45 = 110 by the time a clone joins
	d := mitosis.decision with input as queued(20, 2)
	d.action == "expand"
	d.count == 2
	d.template == "b"
	d.templates == ["b", "a", "c"]
	d.reason == "queue 20, growing 2/s: 110 expected in 45 s > 50: expand by 2"
}

test_no_expansion_for_a_long_queue_that_drains_in_time if {
	d := mitosis.decision with input as queued(60, -1)
	d.action == "none"
}

test_expansion_is_capped_by_max_step_out_and_max if {
	d1 := mitosis.decision with input as queued(1000, 0)
	d1.count == 4
	d2 := mitosis.decision with input as changed(queued(1000, 0), {"cluster": {"max": 4}})
	d2.count == 1
}

test_no_expansion_at_max if {
	d := mitosis.decision with input as changed(queued(100, 0), {"cluster": {"max": 3}})
	d.action == "none"
	contains(d.reason, "at its max 3")
}

test_lead_time_defaults_to_the_param_before_any_clone if {
	# no clone finished yet: 60 s by default, 10 + 1 * 60 = 70 > 50
	d := mitosis.decision with input as changed(queued(10, 1), {"estimates": {"clone_seconds": 0}})
	d.action == "expand"
	d.count == 1
}

test_contracts_an_empty_queue_coldest_first if {
	d := mitosis.decision with input as queued(0, 0)
	d.action == "contract"
	d.count == 1
	d.nodes == ["c", "a", "b"]
}

test_no_contraction_at_min if {
	d := mitosis.decision with input as changed(queued(0, 0), {"cluster": {"min": 3}})
	d.action == "none"
}

test_victims_exclude_held_nodes if {
	op := {"id": "op-1", "kind": "expand", "step": "clone", "template": "c", "node": "", "host": "esx1", "age_s": 1}
	d := mitosis.decision with input as changed(queued(0, 0), {"operations": [op]})
	d.nodes == ["a", "b"]
}

test_within_the_band_does_nothing if {
	d := mitosis.decision with input as queued(20, 0)
	d == {"action": "none", "reason": "queue 20, growing 0/s: 20 expected in 45 s, within [5, 50]"}
}

test_needs_the_queue_metric if {
	d := mitosis.decision with input as changed(queued(20, 0), {"metrics": {"queue_length": null}}) with input.metrics as {}
	d.reason == "no queue_length metric: no action"
}

test_no_action_without_metrics if {
	d := mitosis.decision with input as changed(queued(500, 0), {"health": {"metrics_available": false}})
	d.action == "none"
}

test_invalid_params if {
	d := mitosis.decision with input as changed(queued(20, 0), {"params": {"low": 80, "per_node": 0}})
	d.reason == "invalid params: low must be a number < high; per_node must be a number > 0"
}
