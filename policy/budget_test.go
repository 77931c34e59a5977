package policy

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestWatchMemoryCancelsPastItsBudget: memory held past the budget cancels
// the watched context with a *MemoryBudgetError; garbage does not.
func TestWatchMemoryCancelsPastItsBudget(t *testing.T) {
	const budget = 64 << 20
	ctx, stop := watchMemory(context.Background(), budget)
	defer stop()
	var held [][]byte
	deadline := time.Now().Add(10 * time.Second)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		held = append(held, make([]byte, 1<<20))
		time.Sleep(100 * time.Microsecond)
	}
	var mb *MemoryBudgetError
	if !errors.As(context.Cause(ctx), &mb) || mb.Budget != budget {
		t.Fatalf("after holding %d MiB: cause %v, want a memory budget of 64 MiB", len(held), context.Cause(ctx))
	}
	if len(held) > 2*budget>>20 {
		t.Errorf("cancelled only after %d MiB held, budget 64 MiB", len(held))
	}

	ctx, stop = watchMemory(context.Background(), budget)
	defer stop()
	for range 4 * budget >> 20 { // garbage: 4× the budget, none of it kept
		sink = make([]byte, 1<<20)
	}
	time.Sleep(10 * memoryWatchPeriod)
	if err := context.Cause(ctx); err != nil {
		t.Errorf("garbage cancelled the watch: %v", err)
	}
	stop()
	if !errors.Is(context.Cause(ctx), context.Canceled) {
		t.Errorf("after stop: %v, want context.Canceled", context.Cause(ctx))
	}
}

var sink []byte
