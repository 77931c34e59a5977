package policy

import (
	"context"
	"fmt"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// DefaultMemoryBudget is how much the heap may grow while one evaluation,
// or one run of a policy's tests, is under way. The default policy needs
// a few megabytes at 10,000 nodes; a policy that builds strings or arrays
// of gigabytes is stopped long before the machine runs out.
const DefaultMemoryBudget = 512 << 20

// MemoryBudgetError is the cause of an evaluation stopped for memory.
type MemoryBudgetError struct{ Budget uint64 }

func (e *MemoryBudgetError) Error() string {
	return fmt.Sprintf("the policy used more than its memory budget of %d MiB", e.Budget>>20)
}

// memoryWatchPeriod is how often a watch samples the heap: an evaluation
// shorter than it (the default policy's are) costs the watch one timer.
const memoryWatchPeriod = 2 * time.Millisecond

// watchMemory returns a context that is cancelled, with a
// *MemoryBudgetError as its cause, when the heap grows more than budget
// bytes past where it stood at the call, and a function that ends the
// watch. OPA checks its context between evaluation steps and inside the
// built-ins that loop (numbers.range, …), so a runaway policy stops there.
//
// The heap is the process's: what other goroutines allocate meanwhile
// counts too. Where it stood is the larger of the heap and the collector's
// goal for it, so that garbage, which the collector lets grow to its goal,
// is not held against the policy. An evaluation that grew the heap by half
// its budget or more leaves garbage enough to collect at once, or the next
// evaluation would start on top of it. A budget of 0 watches nothing.
func watchMemory(ctx context.Context, budget uint64) (context.Context, func()) {
	if budget == 0 {
		return ctx, func() {}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/gc/heap/goal:bytes"}}
	metrics.Read(sample)
	heap, base := sample[0].Value.Uint64(), max(sample[0].Value.Uint64(), sample[1].Value.Uint64())
	heapNow := func() uint64 {
		metrics.Read(sample[:1])
		return sample[0].Value.Uint64()
	}
	go func() {
		t := time.NewTicker(memoryWatchPeriod)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if heapNow() > base+budget {
				cancel(&MemoryBudgetError{Budget: budget})
				return
			}
		}
	}()
	return ctx, func() {
		cancel(context.Canceled)
		if heapNow() > heap+budget/2 {
			debug.FreeOSMemory()
		}
	}
}
