// Package demonode is the reference application server, cmd/demo-node:
// HTTP work whose cost depends on a warm-up cache, sessions kept by
// cookie, the node API through node.Server, Prometheus metrics, and a
// state file a clone starts from. docs/demo-node.md describes it.
package demonode

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// shutdownGrace bounds how long a stopping node waits for its requests.
const shutdownGrace = 5 * time.Second

// Main runs the node with args until ctx is done, logging to stderr, and
// returns the process's exit code: 2 for bad flags, 1 for a failure.
func Main(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	cfg, err := ParseConfig(args, getenv, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "demo-node:", err)
		}
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	if err := run(ctx, cfg, log); err != nil {
		log.Error("demo-node failed", "err", err)
		return 1
	}
	return 0
}

func run(ctx context.Context, cfg Config, log *slog.Logger) error {
	n, err := New(cfg, log)
	if err != nil {
		return err
	}
	defer n.App.Close()
	l, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	st := n.API.Status()
	log.Info("serving", "addr", l.Addr().String(), "id", st.ID, "state", st.State, "generation", st.Generation,
		"token_from", cfg.TokenSource, "state_dir", cfg.StateDir, "cache_size", cfg.CacheSize,
		"miss_cost", cfg.MissCost, "session_idle", cfg.SessionIdle)
	srv := &http.Server{
		Handler:           n.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	select {
	case err := <-done:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	log.Info("stopping")
	n.App.Close() // release the held requests, so that shutdown need not wait for them
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("shutting down: %w", err)
	}
	log.Info("stopped")
	return nil
}
