package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mitosis-autoscaler/mitosis/agent/client"
	"github.com/mitosis-autoscaler/mitosis/plan"
)

// The commands that read: status, nodes, ops, decisions, why.

// newOperatorCmds are the operator's commands on the root (policy push
// and show are under policy).
func newOperatorCmds() []*cobra.Command {
	return append([]*cobra.Command{newStatusCmd(), newNodesCmd(), newOpsCmd(), newDecisionsCmd(), newWhyCmd()},
		append(newActCmds(), newAuditCmd(), newPeersCmd())...)
}

func newStatusCmd() *cobra.Command {
	return apiCmd("status", "Show the agent and its clusters", noArgs,
		func(ctx context.Context, c *client.Client, o *out, _ []string) error {
			st, err := c.Status(ctx)
			if err != nil {
				return err
			}
			o.agentClock(st)
			return o.print(st, "CLUSTER\tSIZE\tMIN\tMAX\tREADY\tIN FLIGHT\tPAUSED\tDRY RUN\tLAST DECISION", func(tw io.Writer) {
				for _, cl := range st.Clusters {
					last := "-"
					if d := cl.LastDecision; d != nil {
						last = fmt.Sprintf("%s %s: %s", o.ago(d.At), d.Decision.Action, reasonOf(*d))
					}
					row(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%v\t%v\t%s\n", cl.Name, cl.Size, cl.Min, cl.Max, cl.Nodes[plan.NodeReady], cl.InFlight, cl.Paused, cl.DryRun, last)
				}
			})
		})
}

func newNodesCmd() *cobra.Command {
	var tree bool
	nodes := apiCmd("nodes [CLUSTER]", "List a cluster's nodes (every cluster's without CLUSTER) with their clone lineage", cobra.MaximumNArgs(1),
		func(ctx context.Context, c *client.Client, o *out, a []string) error {
			o.askAgentClock(ctx, c) // first: the last request is the listing
			names, err := clusterNames(ctx, c, a)
			if err != nil {
				return err
			}
			ns := []plan.Node{}
			for _, name := range names {
				more, err := c.Nodes(ctx, name)
				if err != nil {
					return err
				}
				ns = append(ns, more...)
			}
			if tree && !o.json {
				printLineage(o.w, ns, len(a) == 0, o.ago)
				return nil
			}
			all := len(a) == 0
			return o.print(ns, clusterColumn(all)+"ID\tSTATE\tROLE\tHOST\tPARENT\tDEPTH\tAGE", func(tw io.Writer) {
				for _, n := range ns {
					row(tw, "%s%s\t%s\t%s\t%s\t%s\t%d\t%s\n", clusterCell(all, n.Cluster), n.ID, n.State, dash(n.Role), dash(n.Host), dash(n.Parent), n.LineageDepth, o.ago(n.CreatedAt))
				}
			})
		})
	nodes.Flags().BoolVar(&tree, "tree", false, "print the clone lineage as an indented tree")
	return nodes
}

func newOpsCmd() *cobra.Command {
	var limit positive
	ops := apiCmd("ops [CLUSTER]", "List a cluster's (every cluster's without CLUSTER) latest operations and their steps", cobra.MaximumNArgs(1),
		func(ctx context.Context, c *client.Client, o *out, a []string) error {
			o.askAgentClock(ctx, c) // first: the last request is the listing
			names, err := clusterNames(ctx, c, a)
			if err != nil {
				return err
			}
			list, err := newestFirst(names, func(name string) ([]plan.Operation, error) { return c.Operations(ctx, name, int(limit)) },
				func(op plan.Operation) time.Time { return op.CreatedAt })
			if err != nil {
				return err
			}
			all := len(a) == 0
			return o.print(list, clusterColumn(all)+"ID\tKIND\tSTATUS\tSTEP\tTEMPLATE/NODE\tAGE\tERROR", func(tw io.Writer) {
				for _, op := range list {
					target := op.Template
					if op.Kind == plan.OpContract {
						target = op.Node
					} else if op.Node != "" {
						target += " → " + op.Node
					}
					row(tw, "%s%s\t%s\t%s\t%s\t%s\t%s\t%s\n", clusterCell(all, op.Cluster), op.ID, op.Kind, op.Status, op.Step, dash(target), o.ago(op.CreatedAt), dash(op.Error))
				}
			})
		})
	ops.Aliases = []string{"operations"}
	ops.Flags().Var(&limit, "limit", "at most this many, 1 to 1000 (default the agent's, 50)")
	return ops
}

func newDecisionsCmd() *cobra.Command {
	var limit positive
	decisions := apiCmd("decisions [CLUSTER]", "List a cluster's (every cluster's without CLUSTER) latest decisions with their reasons", cobra.MaximumNArgs(1),
		func(ctx context.Context, c *client.Client, o *out, a []string) error {
			names, err := clusterNames(ctx, c, a)
			if err != nil {
				return err
			}
			recs, err := newestFirst(names, func(name string) ([]plan.DecisionRecord, error) { return c.Decisions(ctx, name, int(limit)) },
				func(r plan.DecisionRecord) time.Time { return r.At })
			if err != nil {
				return err
			}
			all := len(a) == 0
			return o.print(recs, clusterColumn(all)+"AT\tACTION\tCOUNT\tOPS\tBY\tREASON", func(tw io.Writer) {
				for _, r := range recs {
					row(tw, "%s%s\t%s\t%d\t%d\t%s\t%s\n", clusterCell(all, r.Cluster), r.At.UTC().Format(time.RFC3339), r.Decision.Action, r.Decision.Count, len(r.Operations), dash(r.By), reasonOf(r))
				}
			})
		})
	decisions.Flags().Var(&limit, "limit", "at most this many (default the agent's, 20)")
	return decisions
}

func newWhyCmd() *cobra.Command {
	var at string
	why := apiCmd("why CLUSTER", "Show the decision in force at a time, with its reasons and what the metrics said", cobra.ExactArgs(1),
		func(ctx context.Context, c *client.Client, o *out, a []string) error {
			var t time.Time // zero: the agent's now
			if at != "" {
				var err error
				if t, err = whenAt(at, agentNow(ctx, c, at)); err != nil {
					return withCode(2, err)
				}
			}
			r, err := c.Why(ctx, a[0], t)
			if err != nil {
				return err
			}
			return o.print(r, "", func(tw io.Writer) { printWhy(tw, r) })
		})
	why.Flags().StringVar(&at, "at", "", "a time (RFC 3339) or how long ago (15m); default now")
	return why
}

// printWhy writes a decision record as why shows it: the decision, its
// reason, what the metrics said, the guardrails' reasons and operations.
func printWhy(tw io.Writer, r plan.DecisionRecord) {
	row(tw, "at\t%s\n", r.At.UTC().Format(time.RFC3339))
	row(tw, "decision\t%s %d (%s)\n", r.Decision.Action, r.Decision.Count, dash(r.By))
	row(tw, "reason\t%s\n", reasonOf(r))
	metrics := "trusted"
	switch {
	case r.PolicyVersion == "manual":
		metrics = "not read (an operator's selection)"
	case !r.Metrics.Available:
		metrics = "unavailable: " + r.Metrics.Reason
	}
	row(tw, "metrics\t%s\n", metrics)
	for _, name := range slices.Sorted(maps.Keys(r.Observed.NodeMeans)) {
		over := fmt.Sprintf("%d ready nodes", r.Observed.ReadyNodes)
		if n, ok := r.Observed.NodeCounts[name]; ok && n != r.Observed.ReadyNodes {
			over = fmt.Sprintf("the %d of %d ready nodes that report it", n, r.Observed.ReadyNodes)
		}
		row(tw, "mean %s\t%.3g over %s\n", name, r.Observed.NodeMeans[name], over)
	}
	for _, rs := range r.Reasons {
		row(tw, "guardrail\t%s: %s\n", rs.Code, rs.Message)
	}
	row(tw, "operations\t%s\n", dash(strings.Join(r.Operations, ", ")))
}

// clusterNames are the cluster named in args, or else every cluster of
// the agent's status.
func clusterNames(ctx context.Context, c *client.Client, args []string) ([]string, error) {
	if len(args) > 0 {
		return args[:1], nil
	}
	st, err := c.Status(ctx)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(st.Clusters))
	for _, cl := range st.Clusters {
		names = append(names, cl.Name)
	}
	return names, nil
}

// agentNow is the time a duration ago counts back from: the agent's clock
// (on a simulated world, its newest decision's time), else this
// machine's. at in RFC 3339 needs no clock and asks nothing.
func agentNow(ctx context.Context, c *client.Client, at string) time.Time {
	if _, err := time.Parse(time.RFC3339, at); err == nil {
		return time.Time{}
	}
	var clock out
	if st, err := c.Status(ctx); err == nil {
		clock.agentClock(st)
	}
	if clock.now.IsZero() {
		return time.Now()
	}
	return clock.now
}

// whenAt reads a time: RFC 3339, or a duration ago.
func whenAt(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("--at %q: want an RFC 3339 time or a duration ago such as 15m", s)
}

// newestFirst lists what list answers for each cluster named, newest first
// by at, never nil (so that JSON shows [] rather than null).
func newestFirst[T any](names []string, list func(cluster string) ([]T, error), at func(T) time.Time) ([]T, error) {
	all := []T{}
	for _, name := range names {
		more, err := list(name)
		if err != nil {
			return nil, err
		}
		all = append(all, more...)
	}
	slices.SortStableFunc(all, func(x, y T) int { return at(y).Compare(at(x)) })
	return all, nil
}
