// Command mitosis is the one binary of the project: the agent, the
// simulator, and the policy tools. It holds wiring only, no logic.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

// exitError carries a process exit code through cobra.
type exitError struct {
	code int
	err  error
	// told is true when the command has already said what err says (a
	// refusal's reasons, on standard output): main only exits.
	told bool
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// withCode makes err end the process with code: 1 for a failed check (a
// test that fails), 2 for bad input (a file that cannot be used).
func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

// shown is withCode for an error the command has already printed.
func shown(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err, told: true}
}

// noArgs refuses arguments to a command that takes none, saying so (cobra's
// NoArgs calls an argument an unknown command).
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return withCode(2, fmt.Errorf("%s takes no arguments; got %q", cmd.CommandPath(), args))
	}
	return nil
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "mitosis",
		Short:         "Policy-driven autoscaler that grows VM clusters by live-cloning warm nodes",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	agent := newAgentCmd()
	agent.Args = noArgs
	version := newVersionCmd()
	version.Args = noArgs
	root.AddCommand(agent, newSimulateCmd(), newPolicyCmd(), version)
	root.AddCommand(newOperatorCmds()...)
	return root
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs the command args and says how the process exits: the error is
// printed on stderr, once.
func run(args []string, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if err == nil {
		return 0
	}
	var ee *exitError
	if !errors.As(err, &ee) {
		fmt.Fprintln(stderr, "mitosis:", err)
		return 2
	}
	if !ee.told {
		fmt.Fprintln(stderr, "mitosis:", err)
	}
	return ee.code
}
