package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mitosis-autoscaler/mitosis/autoscaler"
	"github.com/mitosis-autoscaler/mitosis/policies"
	"github.com/mitosis-autoscaler/mitosis/policy"
)

// defaultPolicyDir is where `mitosis policy test|check` look without an
// argument; when it does not exist they use the embedded defaults.
const defaultPolicyDir = "policies"

func newPolicyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Test, check and evaluate Rego scaling policies",
		Long: `A policy is the .rego files of one directory; it defines data.mitosis.decision
(docs/policy.md). Its unit tests are the *_test.rego files beside it.`,
	}
	cmd.AddCommand(newPolicyTestCmd(), newPolicyEvalCmd(), newPolicyCheckCmd(), newPolicyPushCmd(), newPolicyShowCmd())
	return cmd
}

// policySource is a tree of policy directories: one on disk, or the
// embedded defaults.
type policySource struct {
	root     string // "" for the embedded defaults
	embedded bool
}

// sourceFor picks the directory named by args, else ./policies, else the
// embedded defaults.
func sourceFor(args []string) (policySource, error) {
	if len(args) == 1 {
		st, err := os.Stat(args[0])
		if err != nil {
			return policySource{}, withCode(2, err)
		}
		if !st.IsDir() {
			return policySource{}, withCode(2, fmt.Errorf("%s: not a directory", args[0]))
		}
		return policySource{root: args[0]}, nil
	}
	if st, err := os.Stat(defaultPolicyDir); err == nil && st.IsDir() {
		return policySource{root: defaultPolicyDir}, nil
	}
	return policySource{embedded: true}, nil
}

// dirs lists the directories of the tree that hold .rego files, the root
// first: each is a policy of its own (policies/examples/ beside policies/).
func (s policySource) dirs() ([]string, error) {
	if s.embedded {
		return []string{defaultPolicyDir}, nil
	}
	var out []string
	err := filepath.WalkDir(s.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if p != s.root && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		if m, _ := filepath.Glob(filepath.Join(p, "*.rego")); len(m) > 0 {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		return nil, withCode(2, err)
	}
	if len(out) == 0 {
		return nil, withCode(2, fmt.Errorf("%s: no .rego files", s.root))
	}
	return out, nil
}

func (s policySource) runTests(ctx context.Context, dir string) ([]policy.TestResult, error) {
	if s.embedded {
		return policy.RunTestsFS(ctx, policies.FS, defaultPolicyDir)
	}
	return policy.RunTests(ctx, dir)
}

func (s policySource) check(dir string) ([]string, error) {
	if s.embedded {
		return policy.CheckFS(policies.FS, defaultPolicyDir)
	}
	return policy.Check(dir)
}

func (s policySource) describe(w io.Writer) {
	if s.embedded {
		fmt.Fprintf(w, "no %s/ directory here: using the embedded default policies\n", defaultPolicyDir)
	}
}

// loadError makes a policy that cannot be loaded end the process with 2.
func loadError(err error) error {
	var le *policy.LoadError
	if errors.As(err, &le) {
		return withCode(2, err)
	}
	return err
}

func newPolicyTestCmd() *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "test [DIR]",
		Short: "Run the Rego unit tests of the policies in DIR (default: policies)",
		Long: `Test runs the test_* rules of the *_test.rego files in DIR and in each of its
subdirectories, each directory with its own policy, with the capabilities and strict
mode the agent compiles policies with. Without DIR it tests ./policies, or the
embedded default policies when there is no such directory.

Exit status: 0 when every test passes, 1 when one fails (or errs, or there is
none, or the tests overrun --timeout), 2 when a file does not parse or compile.`,
		Example: `  mitosis policy test
  mitosis policy test my-policies/`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, err := sourceFor(args)
			if err != nil {
				return err
			}
			dirs, err := src.dirs()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			src.describe(cmd.ErrOrStderr())
			var results []policy.TestResult
			ctx, cancel := policy.WithDeadline(cmd.Context(), timeout)
			defer cancel()
			for _, dir := range dirs {
				rs, err := src.runTests(ctx, dir)
				if err != nil {
					return loadError(err)
				}
				if len(dirs) > 1 {
					fmt.Fprintf(out, "%s/\n", filepath.ToSlash(filepath.Clean(dir)))
				}
				printTests(out, rs)
				results = append(results, rs...)
			}
			return summarizeTests(out, results)
		},
	}
	// A test that loops for ever is cut rather than holding the command.
	cmd.Flags().DurationVar(&timeout, "timeout", time.Minute, "how long all the tests may run")
	return cmd
}

// printTests prints a line per test, and why a test failed under it.
func printTests(w io.Writer, results []policy.TestResult) {
	for _, r := range results {
		row(w, "%s %s (%s)\n", r.Outcome, r.FullName(), ms(r.Duration))
		if r.Outcome == policy.Fail || r.Outcome == policy.Error {
			// A failure's message names the expression's place, a line
			// more precise than the rule's: the place is shown once.
			where := fmt.Sprintf("%s:%d: ", r.File, r.Row)
			if strings.HasPrefix(r.Message, r.File+":") {
				where = ""
			}
			fmt.Fprintf(w, "    %s%s\n", where, indent(r.Message))
			if r.Output != "" {
				fmt.Fprintf(w, "    printed: %s\n", indent(r.Output))
			}
		}
	}
}

// summarizeTests prints the summary and says which tests failed.
func summarizeTests(w io.Writer, results []policy.TestResult) error {
	var passed, skipped int
	var failed []string
	for _, r := range results {
		switch r.Outcome {
		case policy.Pass:
			passed++
		case policy.Skip:
			skipped++
		default:
			failed = append(failed, r.FullName())
		}
	}
	summary := fmt.Sprintf("%d passed, %d failed", passed, len(failed))
	if skipped > 0 {
		summary += fmt.Sprintf(", %d skipped", skipped)
	}
	fmt.Fprintln(w, summary)
	switch {
	case len(failed) > 0:
		return withCode(1, fmt.Errorf("%d of %d tests failed: %s", len(failed), len(results), strings.Join(failed, ", ")))
	case passed == 0:
		return withCode(1, errors.New("no tests: write test_* rules in *_test.rego files"))
	}
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }

// indent lays out a test's message or printed output (the policy's text)
// under its test, a line at a time, each escaped as a table's cell is.
func indent(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = cell(l)
	}
	return strings.Join(lines, "\n    ")
}

type policyEvalFlags struct {
	policy, input, now string
	timeout            time.Duration
}

func newPolicyEvalCmd() *cobra.Command {
	var f policyEvalFlags
	cmd := &cobra.Command{
		Use:   "eval --input FILE [--policy DIR] [--now RFC3339]",
		Short: "Evaluate a policy on an input document and print its decision",
		Long: `Eval reads a policy input document (JSON, contract version 1: docs/policy.md),
evaluates the policy on it as the agent does, and prints the decision, checked against
the policy contract, as JSON; the reason goes to standard error too.

The input is read strictly: a field the contract does not define is an error that
names it, and so is a field it defines that is missing (every field is always
present), a schema other than 1, or an input that contradicts itself (two nodes with
one id, a node state the contract does not define, cluster.min above cluster.max, a
negative size); bad JSON is named by line and column. time.now_ns is pinned to --now,
else to the input's "now".

Exit status: 0 with a decision, 2 when the input or the policy cannot be used (or the
policy's decision breaks the contract, or its evaluation overruns --timeout), with the
file and line at fault.`,
		Example: `  mitosis policy eval --input policy/testdata/input-4-nodes.json
  mitosis policy eval --policy my-policies/ --input tick.json --now 2026-01-01T12:00:00Z
  mitosis policy eval --input - < tick.json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runPolicyEval(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), cmd.InOrStdin(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.policy, "policy", "", "policy `DIR` (default: the embedded default policies)")
	fl.StringVar(&f.input, "input", "", "input document `FILE` (JSON; - for standard input)")
	fl.StringVar(&f.now, "now", "", "the evaluation's time, RFC 3339 (default: the input's now)")
	fl.DurationVar(&f.timeout, "timeout", autoscaler.MaxPolicyDeadline, "how long the evaluation may take (the agent's is half its tick, at most 10s)")
	_ = cmd.MarkFlagRequired("input")
	return cmd
}

func runPolicyEval(ctx context.Context, stdout, stderr io.Writer, stdin io.Reader, f policyEvalFlags) error {
	var engine *policy.Engine
	var err error
	if f.policy == "" {
		engine, err = policy.LoadFS(policies.FS, defaultPolicyDir)
	} else {
		engine, err = policy.Load(f.policy)
	}
	if err != nil {
		return loadError(err)
	}

	var now time.Time
	if f.now != "" {
		if now, err = time.Parse(time.RFC3339Nano, f.now); err != nil {
			return withCode(2, fmt.Errorf("--now %q: want RFC 3339, e.g. 2026-11-27T14:02:00Z", f.now))
		}
	}

	r, name := stdin, "standard input"
	if f.input != "-" {
		file, err := os.Open(f.input)
		if err != nil {
			return withCode(2, err)
		}
		defer file.Close()
		r, name = file, f.input
	}
	in, err := policy.ReadInput(r, name)
	if err != nil {
		return withCode(2, err)
	}
	if now.IsZero() { // the input always has its now
		now = time.Unix(in.Now, 0)
	}

	ctx, cancel := policy.WithDeadline(ctx, f.timeout)
	defer cancel()
	d, err := engine.Decide(ctx, in, now)
	if err != nil {
		var de *policy.DecisionError
		var ee *policy.EvalError
		if errors.As(err, &de) || errors.As(err, &ee) {
			return withCode(2, err)
		}
		return withCode(2, fmt.Errorf("%s: %w", name, err))
	}
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "policy %s (%s) at %s: %s: %s\n", engine.Version(), strings.Join(engine.Files(), ", "),
		now.UTC().Format(time.RFC3339), d.Action, cell(d.Reason)) // the policy's text
	return nil
}

func newPolicyCheckCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "check [DIR]",
		Short: "Check that the policies in DIR are formatted (opa fmt) and compile in strict mode",
		Long: `Check parses and compiles the .rego files in DIR and in each of its subdirectories,
tests included, as the agent does (strict mode, no network built-in functions), and
lists the files that are not formatted as "opa fmt" formats them. Without DIR it
checks ./policies, or the embedded default policies when there is no such directory.

Exit status: 0 when all is well, 1 when files need formatting (they are listed),
2 when a file does not parse or compile, or a directory defines no decision in
package mitosis (the agent and eval refuse such a policy).`,
		Example: `  mitosis policy check policies`,
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, err := sourceFor(args)
			if err != nil {
				return err
			}
			dirs, err := src.dirs()
			if err != nil {
				return err
			}
			src.describe(cmd.ErrOrStderr())
			var unformatted []string
			for _, dir := range dirs {
				u, err := src.check(dir)
				if err != nil {
					return loadError(err)
				}
				unformatted = append(unformatted, u...)
			}
			out := cmd.OutOrStdout()
			if len(unformatted) > 0 {
				slices.Sort(unformatted)
				for _, f := range unformatted {
					fmt.Fprintf(out, "%s: not formatted\n", f)
				}
				files := fmt.Sprintf("%d files are", len(unformatted))
				if len(unformatted) == 1 {
					files = "1 file is"
				}
				return withCode(1, fmt.Errorf("%s not formatted as `opa fmt` formats them (opa fmt -w fixes them)", files))
			}
			fmt.Fprintf(out, "%d policy directories: formatted, strict compilation clean\n", len(dirs))
			return nil
		},
	}
}
