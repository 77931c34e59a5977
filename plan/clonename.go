package plan

import (
	"strconv"
	"strings"
)

// LegacyClonePrefix begins the name of a clone whose expansion was
// recorded before clones were named by NameClones: "mitosis-" and the
// operation's id.
const LegacyClonePrefix = "mitosis-"

// CloneName is the name of the VM and node an expansion makes: the one
// given when it was planned (op.Clone), or, for an expansion recorded
// before clones were named, LegacyClonePrefix and its id. The name is a
// function of the operation alone, so a retried clone step, compensation
// and a new leader all look for the same VM: that is what makes cloning
// idempotent per operation.
func CloneName(op Operation) string {
	if op.Clone != "" {
		return op.Clone
	}
	return LegacyClonePrefix + op.ID
}

// cloneMark separates a clone's cluster from its number: web-c17.
const cloneMark = "-c"

// FormatCloneName is the name of a cluster's n-th clone: "web-c17".
// It is made of the cluster's name, a dash, a "c" and digits, so it is
// valid wherever the cluster's name is (a VM, a libvirt domain, an
// HAProxy server, a file name).
func FormatCloneName(cluster string, n int) string {
	return cluster + cloneMark + strconv.Itoa(n)
}

// IsCloneOf says whether name is one mitosis gives a clone of cluster
// (FormatCloneName); never for an empty cluster.
func IsCloneOf(cluster, name string) bool {
	_, ok := cloneNumber(cluster, name)
	return ok && cluster != ""
}

// cloneNumber is n when name is FormatCloneName(cluster, n).
func cloneNumber(cluster, name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, cluster+cloneMark)
	if !ok || rest == "" || rest[0] == '0' {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	return n, err == nil && rest == strconv.Itoa(n)
}

// NameClones gives every expansion among ops that has no clone name yet
// the cluster's next one, FormatCloneName(op.Cluster, n) with n counting
// on from scaling.Clones, and records the last number used there. A
// number whose name taken reports (a node's id, another operation's
// clone, an operator-named node) is skipped. The numbers only grow:
// with scaling stored by the registry, a name is never given twice in a
// cluster.
func NameClones(ops []Operation, scaling *ScalingState, taken func(name string) bool) {
	for i := range ops {
		op := &ops[i]
		if op.Kind != OpExpand || op.Clone != "" {
			continue
		}
		for {
			scaling.Clones++
			name := FormatCloneName(op.Cluster, scaling.Clones)
			if taken == nil || !taken(name) {
				op.Clone = name
				break
			}
		}
	}
}

// Taken returns the names a new clone of a cluster must not have: its
// nodes' ids and the clones of its operations (CloneName), plus more. It
// gathers them on its first call: most ticks name no clone.
func Taken(nodes []Node, ops []Operation, more ...string) func(name string) bool {
	var names map[string]bool
	return func(name string) bool {
		if names == nil {
			names = make(map[string]bool, len(nodes)+len(ops)+len(more))
			for _, n := range nodes {
				names[n.ID] = true
			}
			for _, op := range ops {
				if op.Kind == OpExpand {
					names[CloneName(op)] = true
				}
			}
			for _, m := range more {
				names[m] = true
			}
		}
		return names[name]
	}
}
