package hypervisor_test

import (
	"github.com/mitosis-autoscaler/mitosis/autoscaler"
	"github.com/mitosis-autoscaler/mitosis/hypervisor"
)

// The controller declares its own roles; a back-end that keeps this
// package's contract must fit them.
var _ autoscaler.Hypervisor = hypervisor.Hypervisor(nil)
