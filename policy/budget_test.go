package policy

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"testing/fstest"
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

// hungryRego builds 40,000 strings of a megabyte each (40 GB) for its
// reason, as a hostile policy did to take an agent down.
const hungryRego = `package mitosis

import rego.v1

big := concat("", [s | some i in numbers.range(1, 100000); s := "0123456789"])

decision := {"action": "none", "reason": r} if {
	r := concat("", [x | some i in numbers.range(1, 40000); x := sprintf("%s%d", [big, i])])
}
`

// TestAnEvaluationIsCutAtItsMemoryBudget: the hungry policy's evaluation
// fails naming the budget instead of taking the process's memory.
func TestAnEvaluationIsCutAtItsMemoryBudget(t *testing.T) {
	e, err := LoadFS(fstest.MapFS{"p.rego": {Data: []byte(hungryRego)}}, "hungry")
	if err != nil {
		t.Fatal(err)
	}
	if e.memory != DefaultMemoryBudget {
		t.Errorf("an engine's budget is %d, want DefaultMemoryBudget", e.memory)
	}
	e.memory = 64 << 20
	f, err := os.Open("testdata/input-4-nodes.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	in, err := ReadInput(f, "input-4-nodes.json")
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Decide(context.Background(), in, time.Now())
	var mb *MemoryBudgetError
	if !errors.As(err, &mb) || !strings.Contains(err.Error(), "memory budget of 64 MiB") {
		t.Fatalf("Decide = %v, want an error naming the memory budget of 64 MiB", err)
	}
}
