package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mitosis-autoscaler/mitosis/agent/client"
)

// The operator's commands: each calls the agent's API (docs/api.md)
// through the typed methods of agent/client. This file is what they share
// (flags, the client, exit codes); cli_output.go how they print;
// cli_read.go, cli_act.go and cli_admin.go the commands.
//
// Exit codes: 0 done; 1 the agent refused (403 a role too weak, 409 a
// guardrail or a conflict, 422 a policy that fails); 2 bad input (a flag,
// an argument, or a 400/404 from the agent); 3 the agent cannot be used
// (unreachable, 401 no valid token, 5xx).

// apiFlags are the flags every API command takes.
type apiFlags struct {
	server, tokenFile, caFile, output string
	timeout                           time.Duration
}

const exitCodes = `
Exit codes: 0 done; 1 refused by the agent (403, 409, 422); 2 bad input (flags,
arguments, 400, 404); 3 the agent cannot be used (unreachable, 401, 5xx).
The agent is --server (or $MITOSIS_SERVER); the token is read from --token-file
(or $MITOSIS_TOKEN_FILE), or taken from $MITOSIS_TOKEN.`

// apiCmd makes a command that calls the agent with run.
func apiCmd(use, short string, args cobra.PositionalArgs, run func(ctx context.Context, c *client.Client, o *out, args []string) error) *cobra.Command {
	var f apiFlags
	cmd := &cobra.Command{
		Use: use, Short: short, Long: short + "\n" + exitCodes, Args: usage(args),
		RunE: func(cmd *cobra.Command, a []string) error {
			if f.output != "table" && f.output != "json" {
				return withCode(2, fmt.Errorf("-o %q: want table or json", f.output))
			}
			if f.timeout <= 0 {
				return withCode(2, fmt.Errorf("--timeout %s: want a positive duration, such as 30s", f.timeout))
			}
			c, err := f.client()
			if err != nil {
				return withCode(2, err)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
			defer cancel()
			return apiExit(run(ctx, c, &out{w: cmd.OutOrStdout(), json: f.output == "json"}, a))
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.server, "server", envOr("MITOSIS_SERVER", "http://127.0.0.1:9808"), "the agent's address")
	fl.StringVar(&f.tokenFile, "token-file", os.Getenv("MITOSIS_TOKEN_FILE"), "file holding the bearer token")
	fl.StringVar(&f.caFile, "ca-file", "", "CA to verify an https agent with")
	fl.StringVarP(&f.output, "output", "o", "table", "table or json")
	fl.DurationVar(&f.timeout, "timeout", 30*time.Second, "how long to wait for the agent")
	return cmd
}

// usage makes argument errors exit 2.
func usage(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if check == nil {
			return nil
		}
		return withCode(2, check(cmd, args))
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func (f apiFlags) client() (*client.Client, error) {
	token := os.Getenv("MITOSIS_TOKEN")
	if f.tokenFile != "" {
		b, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %w", err)
		}
		token = strings.TrimSpace(string(b))
		if token == "" {
			return nil, fmt.Errorf("--token-file %s: the file is empty", f.tokenFile)
		}
	}
	if token == "" {
		return nil, errors.New("no token: give --token-file, or set MITOSIS_TOKEN_FILE or MITOSIS_TOKEN")
	}
	return client.New(f.server, token, client.Options{CAFile: f.caFile, Timeout: f.timeout})
}

// apiExit maps the agent's answer to the exit codes.
func apiExit(err error) error {
	if err == nil {
		return nil
	}
	var ee *exitError
	if errors.As(err, &ee) { // the command chose the code
		return err
	}
	err = agentError{err} // its text is the agent's, or the network's
	var ce *client.Error
	if !errors.As(err, &ce) {
		return withCode(3, err) // could not reach it
	}
	switch {
	case ce.Status == http.StatusForbidden, ce.Status == http.StatusConflict, ce.Status == http.StatusUnprocessableEntity:
		return withCode(1, err)
	case ce.Status == http.StatusBadRequest, ce.Status == http.StatusNotFound, ce.Status == http.StatusRequestEntityTooLarge:
		return withCode(2, err)
	}
	return withCode(3, err)
}

// agentError is an error whose text came from the agent: it reads as a
// table's cell does (cell), so an answer cannot write on the terminal.
type agentError struct{ err error }

func (e agentError) Error() string { return cell(e.err.Error()) }
func (e agentError) Unwrap() error { return e.err }

// positive is a flag of a whole number that, when given, must be at least
// 1 (0, its default, leaves the choice to the agent).
type positive int

func (p *positive) String() string { return strconv.Itoa(int(*p)) }
func (p *positive) Type() string   { return "int" }
func (p *positive) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return errors.New("want a whole number")
	}
	if n <= 0 {
		return errors.New("want at least 1")
	}
	*p = positive(n)
	return nil
}
