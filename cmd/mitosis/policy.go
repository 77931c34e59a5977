package main

import "github.com/spf13/cobra"

// newPolicyCmd: `mitosis policy test|eval` (to be written).
func newPolicyCmd() *cobra.Command {
	return &cobra.Command{Use: "policy", Short: "Test and evaluate Rego scaling policies"}
}
