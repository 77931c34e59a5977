package raftstore

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// SlogLogger is a Config.Logger that hands raft's warnings and errors
// (hclog's Warn and above) to log, each as a record "raft" with the line
// in its "line" attribute, at the line's level, and holds back repeats
// (slogWriter): raft logs every failed heartbeat and election for as long
// as a peer is down.
func SlogLogger(log *slog.Logger) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn, Output: newSlogWriter(log), DisableTime: true})
}

// slogWriter hands raft's log lines to a slog logger, at their
// level, and holds back repeats: raft logs every failed heartbeat and
// election (a node alone logs ~18 lines a second, for ever). A line like
// one logged in the last repeatWindow (the same but for its numbers:
// times, backoffs, ports) is counted, not logged; the next one logged
// after the window says how many were held back ("repeated").
type slogWriter struct {
	log *slog.Logger
	now func() time.Time

	mu   sync.Mutex
	seen map[string]*logRepeat
}

type logRepeat struct {
	at   time.Time // when it was last logged
	held int       // held back since
}

const repeatWindow = 10 * time.Second

var digitRuns = regexp.MustCompile(`[0-9]+`)

func newSlogWriter(log *slog.Logger) *slogWriter {
	return &slogWriter{log: log, now: time.Now, seen: map[string]*logRepeat{}}
}

func (w *slogWriter) Write(p []byte) (int, error) {
	line := string(trimNewline(p))
	level, msg := hclogLevel(line)
	key := digitRuns.ReplaceAllLiteralString(msg, "#")
	now := w.now()
	w.mu.Lock()
	rep, ok := w.seen[key]
	if ok && now.Sub(rep.at) < repeatWindow {
		rep.held++
		w.mu.Unlock()
		return len(p), nil
	}
	held := 0
	if ok {
		held = rep.held
	}
	if len(w.seen) >= 1024 { // forget what no longer repeats
		for k, r := range w.seen {
			if now.Sub(r.at) >= repeatWindow {
				delete(w.seen, k)
			}
		}
	}
	w.seen[key] = &logRepeat{at: now}
	w.mu.Unlock()
	attrs := []any{"line", msg}
	if held > 0 {
		attrs = append(attrs, "repeated", held, "within", repeatWindow.String())
	}
	w.log.Log(context.Background(), level, "raft", attrs...)
	return len(p), nil
}

// hclogLevel splits hclog's "[WARN]  raft: …" into its level and the rest.
func hclogLevel(line string) (slog.Level, string) {
	for _, l := range []struct {
		tag   string
		level slog.Level
	}{{"[ERROR]", slog.LevelError}, {"[WARN]", slog.LevelWarn}, {"[INFO]", slog.LevelInfo}, {"[DEBUG]", slog.LevelDebug}, {"[TRACE]", slog.LevelDebug}} {
		if rest, ok := strings.CutPrefix(line, l.tag); ok {
			return l.level, strings.TrimSpace(rest)
		}
	}
	return slog.LevelWarn, line
}

func trimNewline(p []byte) []byte { return bytes.TrimRight(p, "\r\n") }

var _ io.Writer = (*slogWriter)(nil)
