package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/mitosis-autoscaler/mitosis/agent/client"
	"github.com/mitosis-autoscaler/mitosis/agent/wire"
	"github.com/mitosis-autoscaler/mitosis/policy"
)

// The commands about the agent itself: its audit trail, its raft peers,
// and the policy it decides with (policy push and policy show).

func newAuditCmd() *cobra.Command {
	var limit positive
	audit := apiCmd("audit", "List the audit trail: who changed what, when", noArgs,
		func(ctx context.Context, c *client.Client, o *out, _ []string) error {
			recs, err := c.Audit(ctx, int(limit))
			if err != nil {
				return err
			}
			return o.print(recs, "AT\tBY\tACTION\tCLUSTER\tDETAIL", func(tw io.Writer) {
				for _, r := range recs {
					row(tw, "%s\t%s\t%s\t%s\t%s\n", r.At.UTC().Format(time.RFC3339), r.By, r.Action, dash(r.Cluster), dash(r.Detail))
				}
			})
		})
	audit.Flags().Var(&limit, "limit", "at most this many (default the agent's, 100)")
	return audit
}

func newPeersCmd() *cobra.Command {
	peers := &cobra.Command{Use: "peers", Short: "List and change the agents of a replicated registry"}
	// peersCmd makes a subcommand that prints the voters as call answers them.
	peersCmd := func(use, short string, args cobra.PositionalArgs, call func(ctx context.Context, c *client.Client, a []string) (wire.RaftStatus, error)) *cobra.Command {
		return apiCmd(use, short, args, func(ctx context.Context, c *client.Client, o *out, a []string) error {
			st, err := call(ctx, c, a)
			if err != nil {
				return err
			}
			return o.print(st, "ID\tADDRESS\tLEADER", func(tw io.Writer) {
				for _, p := range st.Peers {
					row(tw, "%s\t%s\t%v\n", p.ID, p.Address, p.ID == st.Leader)
				}
			})
		})
	}
	peers.AddCommand(
		peersCmd("list", "List the voters and the leader", noArgs,
			func(ctx context.Context, c *client.Client, _ []string) (wire.RaftStatus, error) { return c.Peers(ctx) }),
		peersCmd("join ID ADDRESS", "Add an agent as a voter (ask the leader)", cobra.ExactArgs(2),
			func(ctx context.Context, c *client.Client, a []string) (wire.RaftStatus, error) {
				return c.JoinPeer(ctx, a[0], a[1])
			}),
		peersCmd("remove ID", "Remove an agent (ask the leader)", cobra.ExactArgs(1),
			func(ctx context.Context, c *client.Client, a []string) (wire.RaftStatus, error) {
				return c.RemovePeer(ctx, a[0])
			}),
	)
	return peers
}

// newPolicyPushCmd and newPolicyShowCmd are `policy push DIR` and
// `policy show`.
func newPolicyPushCmd() *cobra.Command {
	var noTests bool
	push := apiCmd("push DIR", "Push a policy directory to the agent: compiled and its tests run there first", cobra.ExactArgs(1),
		func(ctx context.Context, c *client.Client, o *out, a []string) error {
			files, err := regoFiles(a[0])
			if err != nil {
				return withCode(2, err)
			}
			var opts []client.PushOption
			if noTests {
				opts = append(opts, client.NoTests())
			}
			res, err := c.PushPolicy(ctx, files, opts...)
			if ce := (*client.Error)(nil); errors.As(err, &ce) && ce.Status == http.StatusUnprocessableEntity {
				for _, p := range ce.Problems {
					row(o.w, "%s\n", p)
				}
			}
			if err != nil {
				return err
			}
			return o.print(res, "", func(tw io.Writer) {
				if res.Tests.Passed == 0 {
					row(tw, "policy %s in use (no tests)\n", res.Version)
					return
				}
				row(tw, "policy %s in use (%d tests passed)\n", res.Version, res.Tests.Passed)
			})
		})
	push.Flags().BoolVar(&noTests, "no-tests", false, "use the policy even if it has no tests (the agent refuses it otherwise; the audit trail says so)")
	return push
}

// regoFiles are the .rego files of dir by name, tests included.
func regoFiles(dir string) (map[string]string, error) {
	switch st, err := os.Stat(dir); {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%s: no such directory", dir)
	case err != nil:
		return nil, err
	case !st.IsDir():
		return nil, fmt.Errorf("%s is a file; give the directory that holds it", dir)
	}
	fsys := os.DirFS(dir)
	names, err := fs.Glob(fsys, "*.rego")
	if err != nil || len(names) == 0 {
		return nil, fmt.Errorf("%s: no .rego file", dir)
	}
	files := map[string]string{}
	for _, n := range names {
		if err := policy.CheckFileName(n); err != nil { // as the agent would refuse it
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		files[n] = string(b)
	}
	return files, nil
}

func newPolicyShowCmd() *cobra.Command {
	return apiCmd("show", "Show the policy the agent decides with", noArgs,
		func(ctx context.Context, c *client.Client, o *out, _ []string) error {
			p, err := c.Policy(ctx)
			if err != nil {
				return err
			}
			return o.print(p, "", func(tw io.Writer) {
				row(tw, "version\t%s\n", p.Version)
				for _, n := range slices.Sorted(maps.Keys(p.Files)) {
					row(tw, "file\t%s\n", n)
				}
			})
		})
}
