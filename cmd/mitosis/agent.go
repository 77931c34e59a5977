package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/mitosis-autoscaler/mitosis/agent"
	"github.com/mitosis-autoscaler/mitosis/config"
	"github.com/mitosis-autoscaler/mitosis/policies"
	"github.com/mitosis-autoscaler/mitosis/policy"
	"github.com/mitosis-autoscaler/mitosis/sim"
)

func newAgentCmd() *cobra.Command {
	var (
		configFile, policyDir, listen, tokenFile, logLevel string
		dryRun, simulate, ignorePushed                     bool
		insecure                                           bool
	)
	cmd := &cobra.Command{
		Use:   "agent (--config FILE --token-file FILE | --simulate) [flags]",
		Short: "Run the autoscaler daemon",
		Long: `Agent runs the controller: every tick it takes a metrics snapshot of each cluster
from Prometheus, evaluates the policy and records the decision. It serves its own
metrics on /metrics (docs/telemetry.md), /-/healthy, /-/ready, and its API under /v1
(docs/api.md): bearer tokens with roles from the file's api section, and --token-file
for an admin token (token files: 16 bytes at least, writable by their owner only).
Without api.tls the API listens on loopback only, unless --insecure (or api.insecure).

On real machines it acts through the file's hypervisor, dispatcher (HAProxy) and
node_api sections; with --dry-run (or dry_run: true) it decides on real metrics, logs
what it would have done and touches nothing, and needs none of them. On a simulated world (world: {kind: sim} in the file, or --simulate for the embedded
defaults) it acts: it clones and detaches simulated nodes under a synthetic load, a
simulated minute every second. Without --token-file it makes a token and prints it.`,
		Example: `  mitosis agent --config mitosis.yaml --token-file /etc/mitosis/token --dry-run
  mitosis agent --simulate`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configFile == "" && !simulate {
				return withCode(2, errors.New("--config is required (or --simulate, for a simulated world on the embedded defaults)"))
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return withCode(2, fmt.Errorf("--log-level: %q is not debug, info, warn or error", logLevel))
			}
			log := slog.New(slog.NewJSONHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			var opts []config.ParseOption
			if dryRun { // before the file is checked: a dry run needs less
				opts = append(opts, config.AsDryRun())
			}
			file := configFile
			if file == "" {
				file = "embedded defaults"
			}
			var cfg config.File
			var err error
			if configFile != "" {
				cfg, err = config.LoadFile(configFile, opts...)
			} else {
				cfg, err = config.Parse(agent.SimulatedDefaults, file, opts...)
			}
			if err != nil {
				return withCode(2, err)
			}
			var world agent.World
			if cfg.Simulated() {
				// The agent acts on it as on machines, and knows nothing of sim.
				w, err := sim.WorldOf(cfg)
				if err != nil {
					return withCode(2, fmt.Errorf("%s: %w", file, err))
				}
				world = w
			}
			if simulate && !cfg.Simulated() {
				return withCode(2, fmt.Errorf("--simulate: %s: its world is machines (world.kind is not sim)", configFile))
			}
			if err := config.CheckListen(listen, cfg.API, insecure); err != nil {
				return withCode(2, err)
			}
			for _, risk := range cfg.InTheClear(listen) { // on every start, allowed or not
				log.Warn("in the clear: "+risk, "file", file)
			}
			token, made, err := readToken(tokenFile, cfg.Simulated(), len(cfg.API.Tokens) > 0, log)
			if err != nil {
				return withCode(2, err)
			}
			if err := checkTokenFiles(cfg.API, log); err != nil {
				return withCode(2, err)
			}
			engine, err := loadPolicy(policyDir)
			if err != nil {
				return withCode(2, err)
			}
			// Params the policy refuses would fail every tick: refuse the
			// file now, naming it.
			pctx, cancel := policy.WithDeadline(context.Background(), cfg.Config.PolicyDeadline())
			err = config.CheckPolicyParams(pctx, engine, cfg.Clusters)
			cancel()
			if err != nil {
				return withCode(2, fmt.Errorf("%s: %w", file, err))
			}
			files, err := policyFiles(policyDir)
			if err != nil {
				return withCode(2, err)
			}
			a, err := agent.New(cfg, agent.Options{
				Listen: listen, DryRun: dryRun, Token: token, Policy: engine, PolicyFiles: files, Version: version, Log: log,
				World: world, IgnorePushedPolicy: ignorePushed,
			})
			if err != nil {
				return withCode(2, err)
			}
			scheme := "http"
			if cfg.API.TLS != nil {
				scheme = "https"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "mitosis agent listening on %s://%s\n", scheme, a.Addr())
			if made {
				fmt.Fprintf(cmd.OutOrStdout(), "API token (made for this run): %s\n", token)
				fmt.Fprintf(cmd.OutOrStdout(), "dashboard: %s://%s/#token=%s\n", scheme, a.Addr(), token)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return a.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&configFile, "config", "", "the agent's configuration file (YAML)")
	f.StringVar(&policyDir, "policy", "", "directory of Rego policies (default: the embedded default policy)")
	f.StringVar(&listen, "listen", "127.0.0.1:9808", "HTTP address of /metrics, /-/healthy, /-/ready and /v1/")
	f.StringVar(&tokenFile, "token-file", "", "file holding an admin bearer token for the API (besides the file's api.tokens)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.BoolVar(&dryRun, "dry-run", false, "decide and record, act on nothing")
	f.BoolVar(&insecure, "insecure", false, "serve the API without TLS on a --listen the network reaches (as api.insecure: true)")
	f.BoolVar(&ignorePushed, "ignore-pushed-policy", false, "decide with --policy (or the embedded default) even if the raft registry holds a pushed policy")
	f.BoolVar(&simulate, "simulate", false, "run on a simulated world (the embedded defaults, or a --config with world.kind sim)")
	return cmd
}

// readToken reads the admin token from file (config.ReadTokenFile: it
// refuses a file others may write and a short token, and warns of one
// others may read). Without a file, an agent on a simulated world makes
// one (made is true); a real one needs the file's api.tokens.
func readToken(file string, simulated, listed bool, log *slog.Logger) (token string, made bool, err error) {
	if file == "" {
		if listed {
			return "", false, nil
		}
		if !simulated {
			return "", false, errors.New("--token-file or the file's api.tokens is required")
		}
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			return "", false, err
		}
		return hex.EncodeToString(b), true, nil
	}
	token, warn, err := config.ReadTokenFile(file)
	if err != nil {
		return "", false, fmt.Errorf("--token-file: %w", err)
	}
	if warn != "" {
		log.Warn("--token-file: " + warn)
	}
	return token, false, nil
}

// checkTokenFiles checks the files of the file's api.tokens as
// --token-file's, before the agent reads them, warning of each that
// others may read.
func checkTokenFiles(api config.APIConfig, log *slog.Logger) error {
	for i, t := range api.Tokens {
		_, warn, err := config.ReadTokenFile(t.File)
		if err != nil {
			return fmt.Errorf("api.tokens[%d].file: %w", i, err)
		}
		if warn != "" {
			log.Warn(fmt.Sprintf("api.tokens[%d].file: %s", i, warn))
		}
	}
	return nil
}

// policyFiles reads the .rego files of a policy directory, or of the
// embedded default policy, by name: what GET /v1/policy shows.
func policyFiles(dir string) (map[string]string, error) {
	var fsys fs.FS = policies.FS
	if dir != "" {
		fsys = os.DirFS(dir)
	}
	names, err := fs.Glob(fsys, "*.rego")
	if err != nil {
		return nil, err
	}
	files := make(map[string]string, len(names))
	for _, n := range names {
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		files[n] = string(b)
	}
	return files, nil
}
