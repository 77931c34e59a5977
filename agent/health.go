package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/mitosis-autoscaler/mitosis/config"
)

// timing is how long the agent waits on itself: its HTTP server, and its
// loop. Tests shorten it.
type timing struct {
	// writeTimeout is the HTTP server's: a handler still busy then gets
	// its connection closed, and the client an empty reply.
	writeTimeout time.Duration
	// stuckAfter is how long the loop may go without a pass before
	// /-/ready says it is stuck.
	stuckAfter time.Duration
}

// minStuck is the least stuckAfter.
const minStuck = time.Minute

func defaultTiming(cfg config.File) timing {
	// Between two passes the loop waits a tick at most, and a pass
	// evaluates the policy for at most its deadline per cluster: three
	// ticks and a deadline without a pass is no slow pass. At least a
	// minute: a pass also runs saga steps (a clone call, a takeover),
	// which a short tick does not make shorter.
	return timing{writeTimeout: 30 * time.Second,
		stuckAfter: max(3*cfg.Tick.Duration+cfg.Config.PolicyDeadline(), minStuck)}
}

// handlerBudget is how long a handler may wait (on the loop, on a
// policy's tests): a sixth less than the server's write timeout, so that
// its answer, a 503 that says why, is written before the server closes
// the connection.
func (t timing) handlerBudget() time.Duration { return t.writeTimeout - t.writeTimeout/6 }

// ready is "" when the agent is ready: it serves raft (if it has it),
// every cluster has a decision recorded, and its loop is not stuck;
// otherwise why it is not.
func (a *Agent) ready(ctx context.Context) string {
	if !a.raftServes() { // removed from the cluster: it serves nothing current
		return "mitosis is not ready: removed from the raft cluster"
	}
	if last := a.loop.LastPass(); !last.IsZero() {
		if idle := time.Since(last); idle > a.timing.stuckAfter {
			return fmt.Sprintf("mitosis is not ready: its loop is stuck: no pass for %s (more than %s: three ticks and the policy's deadline, at least a minute)",
				idle.Round(time.Millisecond), a.timing.stuckAfter)
		}
	}
	for _, cl := range a.cfg.Clusters {
		if recs, err := a.reg.Decisions(ctx, cl.Name, 1); err != nil || len(recs) == 0 {
			return "mitosis is starting: no tick yet"
		}
	}
	return ""
}
