package demonode

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// secret is a string that never shows in logs or formatted output.
type secret string

func (secret) String() string               { return "[redacted]" }
func (secret) GoString() string             { return "[redacted]" }
func (secret) LogValue() slog.Value         { return slog.StringValue("[redacted]") }
func (secret) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }

// Config is the node's configuration, from its flags and environment.
type Config struct {
	Listen      string
	AllowRemote bool
	ID          string
	Token       secret
	TokenSource string // where the token came from, for the log
	StateDir    string
	FromState   string
	CacheSize   int
	MissCost    int
	SessionIdle time.Duration
	// RefusePrepare and SettleDelay make the node difficult on purpose,
	// for tests of a refused or slow prepare.
	RefusePrepare string
	SettleDelay   time.Duration
	HoldMax       time.Duration
	// Cloned starts the node as a clone waiting for its finalize: a VM
	// booted from a copy of its template's disk, which knows it.
	Cloned bool
	// SetHostname makes a finalize also set the kernel's host name to the
	// node's new id: only for a node alone in its VM.
	SetHostname bool
	LogLevel    slog.Level

	now         func() time.Time   // the clock, for tests; nil means time.Now
	sethostname func(string) error // for tests; nil means the system call
}

// TokenEnv is the environment variable the token may come from.
const TokenEnv = "DEMO_NODE_TOKEN"

// ParseConfig reads the flags in args and the environment through getenv.
// Usage and flag errors go to out.
func ParseConfig(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	var c Config
	var tokenFile, level string
	fs := flag.NewFlagSet("demo-node", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:8080", "address to serve work, metrics and the node API on")
	fs.BoolVar(&c.AllowRemote, "allow-remote", false, "allow a --listen address that is not loopback")
	fs.StringVar(&c.ID, "id", "", "the node's id (default: the host name); a node started --from-state keeps its template's until finalized")
	fs.StringVar(&tokenFile, "token-file", "", "file holding the node API's bearer token (else $"+TokenEnv+")")
	fs.StringVar(&c.StateDir, "state-dir", "", "directory snapshots may be written in (none: snapshots are refused)")
	fs.StringVar(&c.FromState, "from-state", "", "start as a clone from this state file")
	fs.IntVar(&c.CacheSize, "cache-size", 1000, "values the LRU cache holds")
	fs.IntVar(&c.MissCost, "miss-cost", 10, "extra work units of a cache miss (a hit costs 1 unit, about 0.25 ms of CPU)")
	fs.DurationVar(&c.SessionIdle, "session-idle", 10*time.Second, "a session idle this long ends")
	fs.StringVar(&c.RefusePrepare, "refuse-prepare", "", "decline every prepare with this reason (for tests)")
	fs.DurationVar(&c.SettleDelay, "settle-delay", 0, "stay unsettled this long after a prepare (for tests)")
	fs.DurationVar(&c.HoldMax, "hold-max", 5*time.Second, "how long a request held while prepared waits for the resume before a 503")
	fs.BoolVar(&c.Cloned, "cloned", false, "start as a clone waiting for its finalize (a VM booted from a copy of its template's disk)")
	fs.BoolVar(&c.SetHostname, "set-hostname", false, "on finalize, set the kernel's host name to the new id (only in a VM of its own)")
	fs.StringVar(&level, "log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if err := c.LogLevel.UnmarshalText([]byte(level)); err != nil {
		return c, fmt.Errorf("--log-level: %w", err)
	}
	if err := checkListen(c.Listen, c.AllowRemote); err != nil {
		return c, err
	}
	if err := checkStateDir(c.StateDir); err != nil {
		return c, err
	}
	switch {
	case c.CacheSize < 1:
		return c, errors.New("--cache-size: must be at least 1")
	case c.MissCost < 0:
		return c, errors.New("--miss-cost: must not be negative")
	case c.SessionIdle <= 0:
		return c, errors.New("--session-idle: must be positive")
	case c.HoldMax < 0 || c.SettleDelay < 0:
		return c, errors.New("--hold-max, --settle-delay: must not be negative")
	case c.Cloned && c.FromState != "":
		return c, errors.New("--cloned, --from-state: give one (a node started from a state file takes its protocol state from it)")
	}
	if c.ID == "" {
		h, err := os.Hostname()
		if err != nil {
			return c, fmt.Errorf("--id not given and no host name: %w", err)
		}
		c.ID = h
	}
	tok, src, err := readToken(tokenFile, getenv)
	if err != nil {
		return c, err
	}
	c.Token, c.TokenSource = tok, src
	return c, nil
}

// checkStateDir refuses a --state-dir that is not an existing directory:
// every snapshot would fail in it.
func checkStateDir(dir string) error {
	if dir == "" {
		return nil
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("--state-dir: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("--state-dir %s: not a directory", dir)
	}
	return nil
}

// readToken takes the token from the file, else from the environment.
func readToken(file string, getenv func(string) string) (secret, string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", "", fmt.Errorf("--token-file: %w", err)
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return "", "", fmt.Errorf("--token-file %s: empty", file)
		}
		return secret(tok), "file", nil
	}
	if tok := strings.TrimSpace(getenv(TokenEnv)); tok != "" {
		return secret(tok), "env", nil
	}
	return "", "", fmt.Errorf("no token: give --token-file or set %s", TokenEnv)
}

// validPort reports whether port is decimal digits only (no sign, no
// service name) with a value from 0 to 65535.
func validPort(port string) bool {
	if port == "" || strings.Trim(port, "0123456789") != "" {
		return false
	}
	p, err := strconv.Atoi(port)
	return err == nil && p <= 65535
}

// checkListen refuses an address that is not loopback unless allowed:
// the work endpoint and /metrics answer anyone who can reach them.
func checkListen(addr string, allowRemote bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--listen %q: %w", addr, err)
	}
	if !validPort(port) {
		return fmt.Errorf("--listen %q: the port must be a number from 0 to 65535 (0: any free port)", addr)
	}
	if allowRemote || host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("--listen %q: not a loopback address (give --allow-remote to serve other hosts)", addr)
}
