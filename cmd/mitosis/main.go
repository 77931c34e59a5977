// Command mitosis is the one binary of the project: the agent, the
// simulator, and the policy tools. It holds wiring only, no logic.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// exitError carries a process exit code through cobra.
type exitError struct {
	code int
	err  error
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

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "mitosis",
		Short:         "Policy-driven autoscaler that grows VM clusters by live-cloning warm nodes",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newAgentCmd(), newSimulateCmd(), newPolicyCmd(), newVersionCmd())
	root.AddCommand(newOperatorCmds()...)
	return root
}

func main() {
	err := newRootCmd().Execute()
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, "mitosis:", err)
	var ee *exitError
	if errors.As(err, &ee) {
		os.Exit(ee.code)
	}
	os.Exit(2)
}
