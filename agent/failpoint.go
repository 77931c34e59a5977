//go:build failpoints

package agent

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mitosis-autoscaler/mitosis/autoscaler"
	"github.com/mitosis-autoscaler/mitosis/plan"
)

// Failpoints, only in a binary built with -tags failpoints (the chaos
// test's): with MITOSIS_FAILPOINTS=DIR, an agent that finds DIR/arm
// holding "STEP before" or "STEP after" freezes its controller at that
// point of the next operation to reach STEP: once the step is committed,
// before its side effect ("before"), or once its side effect is done,
// before the step's end is committed ("after"). It first claims the arm by
// renaming it to DIR/hit-PID (one agent wins) and writes there what it
// froze on; the test then kills it with SIGKILL. Raft runs on, so the
// frozen agent stays leader until it dies.
func failpoints(r autoscaler.Registry, log *slog.Logger) autoscaler.Registry {
	dir := os.Getenv("MITOSIS_FAILPOINTS")
	if dir == "" {
		return r
	}
	log.Warn("failpoints armed from a directory: a test build", "dir", dir)
	return &failpointRegistry{Registry: r, dir: dir}
}

type failpointRegistry struct {
	autoscaler.Registry
	dir string
}

// armed reports whether DIR/arm asks to freeze at step, phase.
func (f *failpointRegistry) armed(step plan.Step, phase string) bool {
	b, err := os.ReadFile(filepath.Join(f.dir, "arm"))
	return err == nil && strings.TrimSpace(string(b)) == string(step)+" "+phase
}

// freeze claims the arm and never returns.
func (f *failpointRegistry) freeze(op string, step plan.Step, phase string) {
	hit := filepath.Join(f.dir, fmt.Sprintf("hit-%d", os.Getpid()))
	if os.Rename(filepath.Join(f.dir, "arm"), hit) != nil {
		return // another agent claimed it
	}
	_ = os.WriteFile(hit+".tmp", fmt.Appendf(nil, "%s %s %s %d\n", op, step, phase, time.Now().UnixNano()), 0o600)
	_ = os.Rename(hit+".tmp", hit+".op")
	select {}
}

func (f *failpointRegistry) RecordDecision(ctx context.Context, rec plan.DecisionRecord, s plan.ScalingState, ops []plan.Operation) (plan.DecisionRecord, error) {
	rec, err := f.Registry.RecordDecision(ctx, rec, s, ops)
	for _, op := range ops {
		if err == nil && f.armed(op.Step, "before") {
			f.freeze(op.ID, op.Step, "before")
		}
	}
	return rec, err
}

func (f *failpointRegistry) Transition(ctx context.Context, id string, t plan.Transition) (plan.Operation, error) {
	if f.armed(t.From, "after") {
		f.freeze(id, t.From, "after")
	}
	op, err := f.Registry.Transition(ctx, id, t)
	if err == nil && f.armed(op.Step, "before") {
		f.freeze(id, op.Step, "before")
	}
	return op, err
}
