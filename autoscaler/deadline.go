package autoscaler

import "time"

// MaxPolicyDeadline caps how long one evaluation of the policy may take.
const MaxPolicyDeadline = 10 * time.Second

// PolicyDeadline is how long a tick's evaluation of the policy may take,
// per cluster: half the tick, at most MaxPolicyDeadline. An evaluation
// that overruns it is cut, and recorded as a failed one (it acts as none):
// a slow policy cannot hold the loop, which must go on deciding, advancing
// operations and taking operators' requests.
func (c Config) PolicyDeadline() time.Duration {
	return min(c.Tick.Duration/2, MaxPolicyDeadline)
}
