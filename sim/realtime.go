package sim

import (
	"context"
	"fmt"
	"time"
)

// RealTime paces a run so that its simulated time passes speed times as
// fast as the wall clock's (speed 60: a simulated minute a second), for a
// simulation that people and programs watch as it happens, like the
// agent's simulated mode. Give each run its own.
func RealTime(speed float64) (func(ctx context.Context, now time.Time) error, error) {
	if !(speed > 0) {
		return nil, fmt.Errorf("speed: %v must be above 0", speed)
	}
	var wallStart, simStart time.Time
	return func(ctx context.Context, now time.Time) error {
		if wallStart.IsZero() {
			wallStart, simStart = time.Now(), now
			return nil
		}
		due := wallStart.Add(time.Duration(float64(now.Sub(simStart)) / speed))
		wait := time.Until(due)
		if wait <= 0 {
			return ctx.Err()
		}
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return nil
		}
	}, nil
}
