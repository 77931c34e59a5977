package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mitosis-autoscaler/mitosis/agent/client"
	"github.com/mitosis-autoscaler/mitosis/agent/wire"
	"github.com/mitosis-autoscaler/mitosis/plan"
)

// The operator's commands: each calls the agent's API (docs/api.md).
//
// Exit codes: 0 done; 1 the agent refused (403 a role too weak, 409 a
// guardrail or a conflict, 422 a policy that fails); 2 bad input (a flag,
// an argument, or a 400/404 from the agent); 3 the agent cannot be used
// (unreachable, 401 no valid token, 5xx).

// apiFlags are the flags every API command takes.
type apiFlags struct {
	server, tokenFile, caFile, output string
	timeout                           time.Duration
}

const exitCodes = `
Exit codes: 0 done; 1 refused by the agent (403, 409, 422); 2 bad input (flags,
arguments, 400, 404); 3 the agent cannot be used (unreachable, 401, 5xx).
The agent is --server (or $MITOSIS_SERVER); the token is read from --token-file
(or $MITOSIS_TOKEN_FILE), or taken from $MITOSIS_TOKEN.`

// apiCmd makes a command that calls the agent with run.
func apiCmd(use, short string, args cobra.PositionalArgs, run func(ctx context.Context, c *client.Client, o *out, args []string) error) *cobra.Command {
	var f apiFlags
	cmd := &cobra.Command{
		Use: use, Short: short, Long: short + "\n" + exitCodes, Args: usage(args),
		RunE: func(cmd *cobra.Command, a []string) error {
			if f.output != "table" && f.output != "json" {
				return withCode(2, fmt.Errorf("-o %q: want table or json", f.output))
			}
			if f.timeout <= 0 {
				return withCode(2, fmt.Errorf("--timeout %s: want a positive duration, such as 30s", f.timeout))
			}
			c, err := f.client()
			if err != nil {
				return withCode(2, err)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
			defer cancel()
			return apiExit(run(ctx, c, &out{w: cmd.OutOrStdout(), json: f.output == "json"}, a))
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.server, "server", envOr("MITOSIS_SERVER", "http://127.0.0.1:9808"), "the agent's address")
	fl.StringVar(&f.tokenFile, "token-file", os.Getenv("MITOSIS_TOKEN_FILE"), "file holding the bearer token")
	fl.StringVar(&f.caFile, "ca-file", "", "CA to verify an https agent with")
	fl.StringVarP(&f.output, "output", "o", "table", "table or json")
	fl.DurationVar(&f.timeout, "timeout", 30*time.Second, "how long to wait for the agent")
	return cmd
}

// usage makes argument errors exit 2.
func usage(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if check == nil {
			return nil
		}
		return withCode(2, check(cmd, args))
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func (f apiFlags) client() (*client.Client, error) {
	token := os.Getenv("MITOSIS_TOKEN")
	if f.tokenFile != "" {
		b, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %w", err)
		}
		token = strings.TrimSpace(string(b))
		if token == "" {
			return nil, fmt.Errorf("--token-file %s: the file is empty", f.tokenFile)
		}
	}
	if token == "" {
		return nil, errors.New("no token: give --token-file, or set MITOSIS_TOKEN_FILE or MITOSIS_TOKEN")
	}
	return client.New(f.server, token, client.Options{CAFile: f.caFile, Timeout: f.timeout})
}

// apiExit maps the agent's answer to the exit codes.
func apiExit(err error) error {
	if err == nil {
		return nil
	}
	var ee *exitError
	if errors.As(err, &ee) { // the command chose the code
		return err
	}
	var ce *client.Error
	if !errors.As(err, &ce) {
		return withCode(3, err) // could not reach it
	}
	switch {
	case ce.Status == http.StatusForbidden, ce.Status == http.StatusConflict, ce.Status == http.StatusUnprocessableEntity:
		return withCode(1, err)
	case ce.Status == http.StatusBadRequest, ce.Status == http.StatusNotFound, ce.Status == http.StatusRequestEntityTooLarge:
		return withCode(2, err)
	}
	return withCode(3, err)
}

// out writes a table or the JSON of what it is given.
type out struct {
	w    io.Writer
	json bool
	// now is the agent's time, when it is not this machine's (a simulated
	// world's clock); zero for time.Now.
	now time.Time
}

// print writes v as JSON, or as the table rows gives.
func (o *out) print(v any, header string, rows func(tw io.Writer)) error {
	if o.json {
		enc := json.NewEncoder(o.w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(o.w, 0, 4, 2, ' ', 0)
	if header != "" {
		fmt.Fprintln(tw, header)
	}
	rows(tw)
	return tw.Flush()
}

// ago is how long before the agent's now t was: 45s, 12m, 3h5m, 4d3h.
func (o *out) ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	now := o.now
	if now.IsZero() {
		now = time.Now()
	}
	d := max(now.Sub(t), 0)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

// agentClock sets o's now from the status: on a simulated world, the time
// of the newest decision (its clock runs apart from this machine's).
func (o *out) agentClock(st wire.Status) {
	if !st.Simulated {
		return
	}
	for _, cl := range st.Clusters {
		if d := cl.LastDecision; d != nil && d.At.After(o.now) {
			o.now = d.At
		}
	}
}

// askAgentClock is agentClock for the commands that show ages but not the
// status; without a status (a token that may not read it), this machine's.
func (o *out) askAgentClock(ctx context.Context, c *client.Client) {
	if o.json {
		return
	}
	if st, err := c.Status(ctx); err == nil {
		o.agentClock(st)
	}
}

// positive is a flag of a whole number that, when given, must be at least
// 1 (0, its default, leaves the choice to the agent).
type positive int

func (p *positive) String() string { return strconv.Itoa(int(*p)) }
func (p *positive) Type() string   { return "int" }
func (p *positive) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return errors.New("want a whole number")
	}
	if n <= 0 {
		return errors.New("want at least 1")
	}
	*p = positive(n)
	return nil
}

// reasonOf is what a decision record says of itself: the policy's reason,
// or the error that kept the policy from deciding.
func reasonOf(r plan.DecisionRecord) string {
	if r.Error != "" {
		return "error: " + r.Error
	}
	return r.Decision.Reason
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newOperatorCmds() []*cobra.Command {
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
					fmt.Fprintf(tw, "%s%s\t%s\t%s\t%s\t%s\t%d\t%s\n", clusterCell(all, n.Cluster), n.ID, n.State, dash(n.Role), dash(n.Host), dash(n.Parent), n.LineageDepth, o.ago(n.CreatedAt))
				}
			})
		})
	nodes.Flags().BoolVar(&tree, "tree", false, "print the clone lineage as an indented tree")
	var opsLimit, decLimit, auditLimit positive
	ops := apiCmd("ops [CLUSTER]", "List a cluster's (every cluster's without CLUSTER) latest operations and their steps", cobra.MaximumNArgs(1),
		func(ctx context.Context, c *client.Client, o *out, a []string) error {
			o.askAgentClock(ctx, c) // first: the last request is the listing
			names, err := clusterNames(ctx, c, a)
			if err != nil {
				return err
			}
			list := []plan.Operation{}
			for _, name := range names {
				more, err := c.Operations(ctx, name, int(opsLimit))
				if err != nil {
					return err
				}
				list = append(list, more...)
			}
			slices.SortStableFunc(list, func(x, y plan.Operation) int { return y.CreatedAt.Compare(x.CreatedAt) })
			all := len(a) == 0
			return o.print(list, clusterColumn(all)+"ID\tKIND\tSTATUS\tSTEP\tTEMPLATE/NODE\tAGE\tERROR", func(tw io.Writer) {
				for _, op := range list {
					target := op.Template
					if op.Kind == plan.OpContract {
						target = op.Node
					} else if op.Node != "" {
						target += " → " + op.Node
					}
					fmt.Fprintf(tw, "%s%s\t%s\t%s\t%s\t%s\t%s\t%s\n", clusterCell(all, op.Cluster), op.ID, op.Kind, op.Status, op.Step, dash(target), o.ago(op.CreatedAt), dash(op.Error))
				}
			})
		})
	ops.Aliases = []string{"operations"}
	ops.Flags().Var(&opsLimit, "limit", "at most this many, 1 to 1000 (default the agent's, 50)")
	decisions := apiCmd("decisions [CLUSTER]", "List a cluster's (every cluster's without CLUSTER) latest decisions with their reasons", cobra.MaximumNArgs(1),
		func(ctx context.Context, c *client.Client, o *out, a []string) error {
			names, err := clusterNames(ctx, c, a)
			if err != nil {
				return err
			}
			recs := []plan.DecisionRecord{}
			for _, name := range names {
				more, err := c.Decisions(ctx, name, int(decLimit))
				if err != nil {
					return err
				}
				recs = append(recs, more...)
			}
			slices.SortStableFunc(recs, func(x, y plan.DecisionRecord) int { return y.At.Compare(x.At) })
			all := len(a) == 0
			return o.print(recs, clusterColumn(all)+"AT\tACTION\tCOUNT\tOPS\tBY\tREASON", func(tw io.Writer) {
				for _, r := range recs {
					fmt.Fprintf(tw, "%s%s\t%s\t%d\t%d\t%s\t%s\n", clusterCell(all, r.Cluster), r.At.UTC().Format(time.RFC3339), r.Decision.Action, r.Decision.Count, len(r.Operations), dash(r.By), reasonOf(r))
				}
			})
		})
	decisions.Flags().Var(&decLimit, "limit", "at most this many (default the agent's, 20)")
	var at string
	why := apiCmd("why CLUSTER", "Show the decision in force at a time, with its reasons and what the metrics said", cobra.ExactArgs(1),
		func(ctx context.Context, c *client.Client, o *out, a []string) error {
			path := client.ClusterPath(a[0], "why")
			if at != "" {
				t, err := whenAt(at, agentNow(ctx, c, at))
				if err != nil {
					return withCode(2, err)
				}
				path += "?at=" + url.QueryEscape(t.Format(time.RFC3339))
			}
			var r plan.DecisionRecord
			if err := c.Get(ctx, path, &r); err != nil {
				return err
			}
			return o.print(r, "", func(tw io.Writer) {
				fmt.Fprintf(tw, "at\t%s\n", r.At.UTC().Format(time.RFC3339))
				fmt.Fprintf(tw, "decision\t%s %d (%s)\n", r.Decision.Action, r.Decision.Count, dash(r.By))
				fmt.Fprintf(tw, "reason\t%s\n", reasonOf(r))
				metrics := "trusted"
				switch {
				case r.PolicyVersion == "manual":
					metrics = "not read (an operator's selection)"
				case !r.Metrics.Available:
					metrics = "unavailable: " + r.Metrics.Reason
				}
				fmt.Fprintf(tw, "metrics\t%s\n", metrics)
				for _, name := range slices.Sorted(maps.Keys(r.Observed.NodeMeans)) {
					over := fmt.Sprintf("%d ready nodes", r.Observed.ReadyNodes)
					if n, ok := r.Observed.NodeCounts[name]; ok && n != r.Observed.ReadyNodes {
						over = fmt.Sprintf("the %d of %d ready nodes that report it", n, r.Observed.ReadyNodes)
					}
					fmt.Fprintf(tw, "mean %s\t%.3g over %s\n", name, r.Observed.NodeMeans[name], over)
				}
				for _, rs := range r.Reasons {
					fmt.Fprintf(tw, "guardrail\t%s: %s\n", rs.Code, rs.Message)
				}
				fmt.Fprintf(tw, "operations\t%s\n", dash(strings.Join(r.Operations, ", ")))
			})
		})
	why.Flags().StringVar(&at, "at", "", "a time (RFC 3339) or how long ago (15m); default now")

	status := apiCmd("status", "Show the agent and its clusters", noArgs,
		func(ctx context.Context, c *client.Client, o *out, _ []string) error {
			var st wire.Status
			if err := c.Get(ctx, "/v1/status", &st); err != nil {
				return err
			}
			o.agentClock(st)
			return o.print(st, "CLUSTER\tSIZE\tMIN\tMAX\tREADY\tIN FLIGHT\tPAUSED\tDRY RUN\tLAST DECISION", func(tw io.Writer) {
				for _, cl := range st.Clusters {
					last := "-"
					if d := cl.LastDecision; d != nil {
						last = fmt.Sprintf("%s %s: %s", o.ago(d.At), d.Decision.Action, reasonOf(*d))
					}
					fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%v\t%v\t%s\n", cl.Name, cl.Size, cl.Min, cl.Max, cl.Nodes[plan.NodeReady], cl.InFlight, cl.Paused, cl.DryRun, last)
				}
			})
		})

	selection := func(use, short, field, path string) *cobra.Command {
		return apiCmd(use, short, cobra.ExactArgs(2), func(ctx context.Context, c *client.Client, o *out, a []string) error {
			var rec plan.DecisionRecord
			err := c.Do(ctx, http.MethodPost, client.ClusterPath(a[0], path), map[string]string{field: a[1]}, &rec)
			var ce *client.Error
			if errors.As(err, &ce) && ce.Status == http.StatusConflict && json.Unmarshal(ce.Body, &rec) == nil && len(rec.Reasons) > 0 {
				if o.json { // the API's answer; the error says it was refused
					if perr := o.print(rec, "", nil); perr != nil {
						return perr
					}
					return err
				}
				for _, r := range rec.Reasons {
					fmt.Fprintf(o.w, "refused: %s: %s\n", r.Code, r.Message)
				}
				return shown(1, err) // the reasons are the message
			}
			if err != nil {
				return err
			}
			return o.print(rec, "", func(tw io.Writer) {
				if len(rec.Operations) == 0 {
					fmt.Fprintf(tw, "dry run: would start %d operation(s)\n", len(rec.Proposals))
				}
				for _, id := range rec.Operations {
					fmt.Fprintf(tw, "operation %s started\n", id)
				}
			})
		})
	}
	settings := func(use, short, method, path string, body func(a []string) (any, error)) *cobra.Command {
		return apiCmd(use, short, cobra.ExactArgs(len(strings.Fields(use))-1), func(ctx context.Context, c *client.Client, o *out, a []string) error {
			b, err := body(a)
			if err != nil {
				return withCode(2, err)
			}
			var s wire.Settings
			if err := c.Do(ctx, method, client.ClusterPath(a[0], path), b, &s); err != nil {
				return err
			}
			return o.print(s, "CLUSTER\tPAUSED\tDRY RUN\tBY\tAT", func(tw io.Writer) {
				at := "-"
				if !s.At.IsZero() {
					at = s.At.UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%v\t%v\t%s\t%s\n", a[0], s.Paused, s.DryRun, dash(s.By), at)
			})
		})
	}
	none := func([]string) (any, error) { return nil, nil }
	dryRun := settings("dry-run CLUSTER on|off", "Switch a cluster's dry run on or off", http.MethodPut, "dry-run", func(a []string) (any, error) {
		switch a[1] {
		case "on":
			return map[string]bool{"enabled": true}, nil
		case "off":
			return map[string]bool{"enabled": false}, nil
		}
		return nil, fmt.Errorf("%q: want on or off", a[1])
	})
	audit := apiCmd("audit", "List the audit trail: who changed what, when", noArgs,
		func(ctx context.Context, c *client.Client, o *out, _ []string) error {
			recs, err := c.Audit(ctx, int(auditLimit))
			if err != nil {
				return err
			}
			return o.print(recs, "AT\tBY\tACTION\tCLUSTER\tDETAIL", func(tw io.Writer) {
				for _, r := range recs {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.At.UTC().Format(time.RFC3339), r.By, r.Action, dash(r.Cluster), dash(r.Detail))
				}
			})
		})
	audit.Flags().Var(&auditLimit, "limit", "at most this many (default the agent's, 100)")
	return []*cobra.Command{status, nodes, ops, decisions, why,
		selection("clone CLUSTER NODE", "Clone a node of your choice", "template", "clone"),
		selection("detach CLUSTER NODE", "Detach a node and destroy its VM", "node", "detach"),
		settings("pause CLUSTER", "Pause a cluster's decisions (operations in flight finish)", http.MethodPost, "pause", none),
		settings("resume CLUSTER", "Resume a cluster's decisions", http.MethodPost, "resume", none),
		dryRun, audit, newPeersCmd()}
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

// clusterColumn and clusterCell lead a table with the cluster when it
// lists every cluster's rows.
func clusterColumn(all bool) string {
	if all {
		return "CLUSTER\t"
	}
	return ""
}

func clusterCell(all bool, cluster string) string {
	if all {
		return cluster + "\t"
	}
	return ""
}

// printLineage writes nodes as a tree of clones under their templates,
// oldest first; a node whose parent is not listed (is gone) is a root,
// marked "from PARENT (gone)" as the dashboard marks it. With every
// cluster's nodes, each cluster heads its own trees.
func printLineage(w io.Writer, nodes []plan.Node, byCluster bool, ago func(time.Time) string) {
	listed := map[string]bool{}
	children := map[string][]plan.Node{}
	for _, n := range nodes {
		listed[n.Cluster+"/"+n.ID] = true
	}
	var roots []plan.Node
	for _, n := range nodes {
		if n.Parent != "" && listed[n.Cluster+"/"+n.Parent] {
			children[n.Cluster+"/"+n.Parent] = append(children[n.Cluster+"/"+n.Parent], n)
		} else {
			roots = append(roots, n)
		}
	}
	var walk func(n plan.Node, lead, branch string)
	walk = func(n plan.Node, lead, branch string) {
		gone := ""
		if n.Parent != "" && !listed[n.Cluster+"/"+n.Parent] {
			gone = "  from " + n.Parent + " (gone)"
		}
		fmt.Fprintf(w, "%s%s%s  %s %s %s%s\n", lead, branch, n.ID, n.State, dash(n.Host), ago(n.CreatedAt), gone)
		kids := children[n.Cluster+"/"+n.ID]
		next := lead
		switch branch {
		case "├─ ":
			next += "│  "
		case "└─ ":
			next += "   "
		}
		for i, k := range kids {
			b := "├─ "
			if i == len(kids)-1 {
				b = "└─ "
			}
			walk(k, next, b)
		}
	}
	cluster := ""
	for _, r := range roots {
		lead := ""
		if byCluster {
			if r.Cluster != cluster {
				cluster = r.Cluster
				fmt.Fprintf(w, "%s\n", cluster)
			}
			lead = "  "
		}
		walk(r, lead, "")
	}
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

func newPeersCmd() *cobra.Command {
	peers := &cobra.Command{Use: "peers", Short: "List and change the agents of a replicated registry"}
	show := func(o *out, st wire.RaftStatus) error {
		return o.print(st, "ID\tADDRESS\tLEADER", func(tw io.Writer) {
			for _, p := range st.Peers {
				fmt.Fprintf(tw, "%s\t%s\t%v\n", p.ID, p.Address, p.ID == st.Leader)
			}
		})
	}
	peers.AddCommand(
		apiCmd("list", "List the voters and the leader", noArgs, func(ctx context.Context, c *client.Client, o *out, _ []string) error {
			var st wire.RaftStatus
			if err := c.Get(ctx, "/v1/peers", &st); err != nil {
				return err
			}
			return show(o, st)
		}),
		apiCmd("join ID ADDRESS", "Add an agent as a voter (ask the leader)", cobra.ExactArgs(2), func(ctx context.Context, c *client.Client, o *out, a []string) error {
			var st wire.RaftStatus
			if err := c.Do(ctx, http.MethodPost, "/v1/peers", wire.PeerRequest{ID: a[0], Address: a[1]}, &st); err != nil {
				return err
			}
			return show(o, st)
		}),
		apiCmd("remove ID", "Remove an agent (ask the leader)", cobra.ExactArgs(1), func(ctx context.Context, c *client.Client, o *out, a []string) error {
			var st wire.RaftStatus
			if err := c.Do(ctx, http.MethodDelete, "/v1/peers/"+url.PathEscape(a[0]), nil, &st); err != nil {
				return err
			}
			return show(o, st)
		}),
	)
	return peers
}

// newPolicyPushCmd and newPolicyShowCmd are `policy push DIR` and
// `policy show`.
func newPolicyPushCmd() *cobra.Command {
	return apiCmd("push DIR", "Push a policy directory to the agent: compiled and its tests run there first", cobra.ExactArgs(1),
		func(ctx context.Context, c *client.Client, o *out, a []string) error {
			switch st, err := os.Stat(a[0]); {
			case errors.Is(err, fs.ErrNotExist):
				return withCode(2, fmt.Errorf("%s: no such directory", a[0]))
			case err != nil:
				return withCode(2, err)
			case !st.IsDir():
				return withCode(2, fmt.Errorf("%s is a file; give the directory that holds it", a[0]))
			}
			fsys := os.DirFS(a[0])
			names, err := fs.Glob(fsys, "*.rego")
			if err != nil || len(names) == 0 {
				return withCode(2, fmt.Errorf("%s: no .rego file", a[0]))
			}
			files := map[string]string{}
			for _, n := range names {
				b, err := fs.ReadFile(fsys, n)
				if err != nil {
					return withCode(2, err)
				}
				files[n] = string(b)
			}
			var res wire.PolicyCheck
			err = c.Do(ctx, http.MethodPut, "/v1/policy", wire.PolicyFiles{Files: files}, &res)
			var ce *client.Error
			if errors.As(err, &ce) && ce.Status == http.StatusUnprocessableEntity {
				var refused struct {
					Problems []string `json:"problems"`
				}
				_ = json.Unmarshal(ce.Body, &refused)
				for _, p := range refused.Problems {
					fmt.Fprintln(o.w, p)
				}
			}
			if err != nil {
				return err
			}
			return o.print(res, "", func(tw io.Writer) {
				fmt.Fprintf(tw, "policy %s in use (%d tests passed)\n", res.Version, res.Tests.Passed)
			})
		})
}

func newPolicyShowCmd() *cobra.Command {
	return apiCmd("show", "Show the policy the agent decides with", noArgs,
		func(ctx context.Context, c *client.Client, o *out, _ []string) error {
			var p wire.PolicyFiles
			if err := c.Get(ctx, "/v1/policy", &p); err != nil {
				return err
			}
			return o.print(p, "", func(tw io.Writer) {
				fmt.Fprintf(tw, "version\t%s\n", p.Version)
				for _, n := range slices.Sorted(maps.Keys(p.Files)) {
					fmt.Fprintf(tw, "file\t%s\n", n)
				}
			})
		})
}
