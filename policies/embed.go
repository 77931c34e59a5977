// Package policies holds the default Rego policies of mitosis and their
// tests. They are embedded in the binary; the policy engine compiles the
// files of FS that are not tests (*_test.rego):
//
//	engine, err := policy.LoadFS(policies.FS, "policies")
//
// The examples/ directory holds further policies to copy from; they are
// not embedded and not loaded by default.
package policies

import "embed"

// FS holds the default policies (*.rego, tests included).
//
//go:embed *.rego
var FS embed.FS
