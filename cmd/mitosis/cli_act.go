package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mitosis-autoscaler/mitosis/agent/client"
	"github.com/mitosis-autoscaler/mitosis/agent/wire"
	"github.com/mitosis-autoscaler/mitosis/plan"
)

// The commands that act on a cluster: an operator's selection (clone,
// detach) and the cluster's switches (pause, resume, dry-run).

func newActCmds() []*cobra.Command {
	return []*cobra.Command{
		newSelectionCmd("clone CLUSTER NODE", "Clone a node of your choice",
			func(ctx context.Context, c *client.Client, cluster, node string) (plan.DecisionRecord, error) {
				return c.Clone(ctx, cluster, node)
			}),
		newSelectionCmd("detach CLUSTER NODE", "Detach a node and destroy its VM",
			func(ctx context.Context, c *client.Client, cluster, node string) (plan.DecisionRecord, error) {
				return c.Detach(ctx, cluster, node)
			}),
		newSwitchCmd("pause CLUSTER", "Pause a cluster's decisions (operations in flight finish)",
			func(ctx context.Context, c *client.Client, a []string) (wire.Settings, error) {
				return c.Pause(ctx, a[0])
			}),
		newSwitchCmd("resume CLUSTER", "Resume a cluster's decisions",
			func(ctx context.Context, c *client.Client, a []string) (wire.Settings, error) {
				return c.Resume(ctx, a[0])
			}),
		newDryRunCmd(),
	}
}

// newSelectionCmd is clone or detach: selectNode asks the agent (the
// client answers a refused selection's record with its error). A refusal
// by the guardrails prints their reasons and exits 1.
func newSelectionCmd(use, short string, selectNode func(ctx context.Context, c *client.Client, cluster, node string) (plan.DecisionRecord, error)) *cobra.Command {
	return apiCmd(use, short, cobra.ExactArgs(2), func(ctx context.Context, c *client.Client, o *out, a []string) error {
		rec, err := selectNode(ctx, c, a[0], a[1])
		if ce := (*client.Error)(nil); errors.As(err, &ce) && ce.Status == http.StatusConflict && len(rec.Reasons) > 0 {
			if o.json { // the API's answer; the error says it was refused
				if perr := o.print(rec, "", nil); perr != nil {
					return perr
				}
				return err
			}
			for _, r := range rec.Reasons {
				row(o.w, "refused: %s: %s\n", r.Code, r.Message)
			}
			return shown(1, err) // the reasons are the message
		}
		if err != nil {
			return err
		}
		return o.print(rec, "", func(tw io.Writer) {
			if len(rec.Operations) == 0 {
				row(tw, "dry run: would start %d operation(s)\n", len(rec.Proposals))
			}
			for _, id := range rec.Operations {
				row(tw, "operation %s started\n", id)
			}
		})
	})
}

// newSwitchCmd is a command that changes a cluster's switches with
// change and prints them as they are after it.
func newSwitchCmd(use, short string, change func(ctx context.Context, c *client.Client, a []string) (wire.Settings, error)) *cobra.Command {
	return apiCmd(use, short, cobra.ExactArgs(len(strings.Fields(use))-1), func(ctx context.Context, c *client.Client, o *out, a []string) error {
		s, err := change(ctx, c, a)
		if err != nil {
			return err
		}
		return o.print(s, "CLUSTER\tPAUSED\tDRY RUN\tBY\tAT", func(tw io.Writer) {
			at := "-"
			if !s.At.IsZero() {
				at = s.At.UTC().Format(time.RFC3339)
			}
			row(tw, "%s\t%v\t%v\t%s\t%s\n", a[0], s.Paused, s.DryRun, dash(s.By), at)
		})
	})
}

func newDryRunCmd() *cobra.Command {
	return newSwitchCmd("dry-run CLUSTER on|off", "Switch a cluster's dry run on or off",
		func(ctx context.Context, c *client.Client, a []string) (wire.Settings, error) {
			var enabled bool
			switch a[1] {
			case "on":
				enabled = true
			case "off":
			default:
				return wire.Settings{}, withCode(2, fmt.Errorf("%q: want on or off", a[1])) // asked nothing
			}
			return c.SetDryRun(ctx, a[0], enabled)
		})
}
