package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/mitosis-autoscaler/mitosis/agent"
)

func newAgentCmd() *cobra.Command {
	var (
		config, policyDir, listen, tokenFile, logLevel string
		dryRun                                         bool
	)
	cmd := &cobra.Command{
		Use:   "agent --config FILE --token-file FILE [flags]",
		Short: "Run the autoscaler daemon",
		Long: `Agent runs the controller: every tick it takes a metrics snapshot of each cluster
from Prometheus, evaluates the policy and records the decision. It serves its own
metrics on /metrics (docs/telemetry.md), /-/healthy, /-/ready, and the latest decisions
on /v1/decisions?cluster=NAME (bearer token from --token-file).

For now the agent runs dry only (--dry-run, or dry_run: true in the file): it decides
on real metrics and logs what it would have done, and touches no VM.`,
		Example: `  mitosis agent --config mitosis.yaml --token-file /etc/mitosis/token --dry-run`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if config == "" || tokenFile == "" {
				return withCode(2, errors.New("--config and --token-file are required"))
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return withCode(2, fmt.Errorf("--log-level: %q is not debug, info, warn or error", logLevel))
			}
			log := slog.New(slog.NewJSONHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			cfg, err := agent.LoadFile(config)
			if err != nil {
				return withCode(2, err)
			}
			tok, err := os.ReadFile(tokenFile)
			if err != nil {
				return withCode(2, fmt.Errorf("--token-file: %w", err))
			}
			token := strings.TrimSpace(string(tok))
			if token == "" {
				return withCode(2, fmt.Errorf("--token-file %s: empty", tokenFile))
			}
			engine, err := loadPolicy(policyDir)
			if err != nil {
				return withCode(2, err)
			}
			a, err := agent.New(cfg, agent.Options{
				Listen: listen, DryRun: dryRun, Token: token, Policy: engine, Version: version, Log: log,
			})
			if err != nil {
				return withCode(2, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "mitosis agent listening on http://%s\n", a.Addr())
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return a.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&config, "config", "", "the agent's configuration file (YAML)")
	f.StringVar(&policyDir, "policy", "", "directory of Rego policies (default: the embedded default policy)")
	f.StringVar(&listen, "listen", "127.0.0.1:9808", "HTTP address of /metrics, /-/healthy, /-/ready and /v1/")
	f.StringVar(&tokenFile, "token-file", "", "file holding the bearer token /v1/ requires")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.BoolVar(&dryRun, "dry-run", false, "decide and record, act on nothing")
	return cmd
}
