package raftstore

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestRepeatedRaftLogLinesAreHeldBack(t *testing.T) {
	var out bytes.Buffer
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	w := newSlogWriter(slog.New(slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug})))
	w.now = func() time.Time { return now }
	for i := range 180 { // 10 s of a lone bootstrap node: ~18 lines a second
		fmt.Fprintf(w, "[WARN]  raft: heartbeat timeout reached, starting election: last-leader-addr= last-leader-id=\n")
		fmt.Fprintf(w, "[ERROR] raft: failed to make requestVote RPC: target=\"{Voter a2 127.0.0.1:7002}\" error=\"dial tcp 127.0.0.1:7002: connect: connection refused\" term=%d\n", i+2)
		now = now.Add(50 * time.Millisecond)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines logged in 9 s, want 2:\n%s", len(lines), out.String())
	}
	if !strings.Contains(lines[0], `"level":"WARN"`) || !strings.Contains(lines[1], `"level":"ERROR"`) {
		t.Errorf("levels lost:\n%s", out.String())
	}
	now = now.Add(time.Second)
	fmt.Fprintf(w, "[WARN]  raft: heartbeat timeout reached, starting election: last-leader-addr= last-leader-id=\n")
	if last := out.String()[strings.LastIndex(strings.TrimSpace(out.String()), "\n")+1:]; !strings.Contains(last, `"repeated":179`) {
		t.Errorf("after the window: %s, want the count of those held back", last)
	}
	fmt.Fprintf(w, "[WARN]  raft: something else\n")
	if !strings.Contains(out.String(), "something else") {
		t.Error("a new line was held back")
	}
}
