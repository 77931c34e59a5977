package policy

import (
	"context"
	"fmt"
	"runtime"
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
// *MemoryBudgetError as its cause, when the live heap grows by more than
// budget bytes over what it was at the call, and a function that ends the
// watch. OPA checks its context between evaluation steps and inside the
// built-ins that loop (numbers.range, …), so a runaway policy stops there.
//
// The heap is the process's: what other goroutines allocate meanwhile
// counts too. Garbage is not held against the policy: past the budget, the
// watch collects once and looks again before it cancels. A budget of 0
// watches nothing.
func watchMemory(ctx context.Context, budget uint64) (context.Context, func()) {
	if budget == 0 {
		return ctx, func() {}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	heap := func() uint64 {
		metrics.Read(sample)
		return sample[0].Value.Uint64()
	}
	base := heap()
	go func() {
		t := time.NewTicker(memoryWatchPeriod)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if heap() <= base+budget {
				continue
			}
			runtime.GC() // what is past the budget may be garbage
			if heap() > base+budget {
				cancel(&MemoryBudgetError{Budget: budget})
				return
			}
		}
	}()
	return ctx, func() { cancel(context.Canceled) }
}
