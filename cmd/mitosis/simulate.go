package main

import "github.com/spf13/cobra"

// newSimulateCmd: `mitosis simulate` (to be written).
func newSimulateCmd() *cobra.Command {
	return &cobra.Command{Use: "simulate", Short: "Run a policy against recorded or synthetic load"}
}
