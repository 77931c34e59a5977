// Command demo-node is the reference application server mitosis scales:
// cached work, sessions, the node API and Prometheus metrics on one
// address. docs/demo-node.md describes it; the logic lives in
// internal/demonode.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/mitosis-autoscaler/mitosis/cmd/demo-node/internal/demonode"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := demonode.Main(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	os.Exit(code)
}
