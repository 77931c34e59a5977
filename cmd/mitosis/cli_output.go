package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/mitosis-autoscaler/mitosis/agent/client"
	"github.com/mitosis-autoscaler/mitosis/agent/wire"
	"github.com/mitosis-autoscaler/mitosis/plan"
)

// How the operator's commands print: a table for people, or with -o json
// the API's answer as it came; ages counted on the agent's clock.

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

// row writes a line of a table (or of any output for people) with
// format, which is the command's own text, and args, which come from the
// agent or a policy: every string among them (a string, a string type, an
// error, a Stringer) goes through cell first, unless it is a safe, so that
// no value can move the cursor, end a row, add a cell or turn text around.
// Numbers and booleans are printed as they are.
func row(w io.Writer, format string, args ...any) {
	for i, a := range args {
		switch v := a.(type) {
		case safe:
			args[i] = string(v)
		case string:
			args[i] = cell(v)
		case error:
			args[i] = cell(v.Error())
		case fmt.Stringer:
			args[i] = cell(v.String())
		default:
			if rv := reflect.ValueOf(a); rv.Kind() == reflect.String {
				args[i] = cell(rv.String())
			}
		}
	}
	fmt.Fprintf(w, format, args...)
}

// safe is text row prints as it is: cells already escaped, or joined with
// the table's own separators.
type safe string

// cell renders untrusted text for a terminal: control characters (C0 with
// ESC, CR, LF and TAB, DEL, C1), the bidirectional overrides, isolates
// and marks, the line and paragraph separators, and bytes that are not
// UTF-8 are shown escaped as Go writes them (\x1b, \r, \n, \t, \u202e,
// \x9b); all else is left as it is.
func cell(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f || r == utf8.RuneError || unsafeRune(r) }) < 0 {
		return s // the usual case: nothing to escape
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafeRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// unsafeRune is a rune above ASCII that a terminal acts on rather than
// shows: a C1 control, or one that reorders or breaks the text around it.
func unsafeRune(r rune) bool {
	switch {
	case r >= 0x80 && r <= 0x9f: // C1 controls, CSI (0x9b) among them
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069: // bidi embeddings, overrides, isolates
		return true
	case r == 0x200e, r == 0x200f, r == 0x061c: // bidi marks
		return true
	case r == 0x2028, r == 0x2029: // line and paragraph separators
		return true
	}
	return false
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

// clusterColumn and clusterCell lead a table with the cluster when it
// lists every cluster's rows.
func clusterColumn(all bool) string {
	if all {
		return "CLUSTER\t"
	}
	return ""
}

func clusterCell(all bool, cluster string) safe {
	if all {
		return safe(cell(cluster) + "\t")
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
		row(w, "%s%s%s  %s %s %s%s\n", lead, branch, n.ID, n.State, dash(n.Host), ago(n.CreatedAt), gone)
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
				row(w, "%s\n", cluster)
			}
			lead = "  "
		}
		walk(r, lead, "")
	}
}
