//go:build !linux

package demonode

import "errors"

// sethostname is Linux's only: demo-node's guests are Linux VMs.
func sethostname(string) error { return errors.New("setting the host name is supported on Linux only") }
