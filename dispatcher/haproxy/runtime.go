package haproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"
)

// CommandError is HAProxy refusing a runtime API command: the command and
// what HAProxy answered.
type CommandError struct {
	Command string
	Answer  string
}

func (e *CommandError) Error() string {
	return fmt.Sprintf("haproxy: %q: %s", e.Command, e.Answer)
}

// errNoSuchServer is how a CommandError for an absent server unwraps, so
// that idempotent callers can tell "already gone" from a failure.
var errNoSuchServer = errors.New("no such server")

func (e *CommandError) Unwrap() error {
	if strings.HasPrefix(e.Answer, "No such server") {
		return errNoSuchServer
	}
	return nil
}

// runtimeAPI sends one command per connection to HAProxy's runtime API
// (its "stats socket"), in non-interactive mode: HAProxy answers and
// closes the connection, so the end of the answer is the end of the
// stream. That costs a connection per command (a few per saga step) and
// spares the prompt mode's state: no connection to keep healthy, nothing
// shared between concurrent callers.
type runtimeAPI struct {
	socket  string
	timeout time.Duration
}

// run sends cmd and returns the answer with its trailing blank lines
// trimmed. HAProxy reports most errors as ordinary answers, so callers
// check the answer with expect.
func (r runtimeAPI) run(ctx context.Context, cmd string) (string, error) {
	if strings.ContainsAny(cmd, "\n;") {
		// A newline or semicolon would smuggle in a second command.
		return "", fmt.Errorf("haproxy: refusing command %q: it holds a command separator", cmd)
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", r.socket)
	if err != nil {
		return "", fmt.Errorf("haproxy: connecting to the runtime API at %s: %w", r.socket, err)
	}
	defer conn.Close()
	dl, _ := ctx.Deadline() // there is one: r.timeout
	_ = conn.SetDeadline(dl)
	// A cancelled context (not only an expired one) interrupts the call.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	if _, err := io.WriteString(conn, cmd+"\n"); err != nil {
		return "", fmt.Errorf("haproxy: %q: %w", cmd, r.ctxErr(ctx, err))
	}
	out, err := io.ReadAll(io.LimitReader(conn, 8<<20))
	if err != nil {
		return "", fmt.Errorf("haproxy: %q: reading the answer: %w", cmd, r.ctxErr(ctx, err))
	}
	return strings.TrimRight(string(out), "\n"), nil
}

// ctxErr reports a cancelled context or an expired timeout as such: the
// socket's deadline can expire a moment before the context's timer fires.
func (r runtimeAPI) ctxErr(ctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("no answer within %s: %w", r.timeout, context.DeadlineExceeded)
	}
	return err
}

// expect runs cmd and fails unless HAProxy's answer is one of ok ("" for
// the silent success of a "set" command) or starts with one of okPrefixes.
func (r runtimeAPI) expect(ctx context.Context, cmd string, ok []string, okPrefixes ...string) (string, error) {
	out, err := r.run(ctx, cmd)
	if err != nil {
		return "", err
	}
	first := strings.TrimSpace(out)
	for _, s := range ok {
		if first == s {
			return out, nil
		}
	}
	for _, p := range okPrefixes {
		if strings.HasPrefix(first, p) {
			return out, nil
		}
	}
	if first == "" {
		first = "(empty answer)"
	}
	return "", &CommandError{Command: cmd, Answer: firstLine(first)}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
