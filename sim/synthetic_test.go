package sim

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSyntheticShapes(t *testing.T) {
	zero := 0.0
	p := SyntheticParams{BaseRPS: 100, PeakRPS: 900, Noise: &zero, SpikeEvery: Duration{Duration: time.Hour}}
	rps := func(w *Workload, i int) float64 { return w.Values[i] / 60 }
	day := 24 * time.Hour

	d, err := Synthetic(Diurnal, p, day, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Values) != 1440 || math.Abs(rps(d, 4*60)-100) > 1e-9 || math.Abs(rps(d, 16*60)-900) > 1e-9 {
		t.Errorf("diurnal: %d points, 04:00 %v, 16:00 %v; want 1440, 100, 900", len(d.Values), rps(d, 240), rps(d, 960))
	}

	r, _ := Synthetic(Ramp, p, day, 1)
	if rps(r, 0) != 100 || math.Abs(rps(r, 1439)-900) > 1e-9 || math.Abs(rps(r, 720)-(100+800*720.0/1439)) > 1e-9 {
		t.Errorf("ramp: %v … %v", rps(r, 0), rps(r, 1439))
	}

	s, _ := Synthetic(Spike, p, day, 1)
	low, high := rps(s, 0), slices.Max(s.Values)/60
	if low < 100 || high < 700 || slices.Min(s.Values)/60 < 100-1e-9 {
		t.Errorf("spike: min %v, max %v; want spikes near 900 over a floor of 100", slices.Min(s.Values)/60, high)
	}

	ds, _ := Synthetic(DiurnalSpike, p, day, 1)
	var above int
	for i := range ds.Values {
		base := 100 + 400*(1-math.Cos(2*math.Pi*(float64(i)/60-4)/24))/2
		if rps(ds, i) < base-1e-9 {
			t.Fatalf("diurnal-spike at minute %d: %v below its diurnal %v", i, rps(ds, i), base)
		}
		if rps(ds, i) > base+100 {
			above++
		}
	}
	if above == 0 || slices.Max(ds.Values)/60 > 900+400*3 {
		t.Errorf("diurnal-spike: %d minutes of spikes, max %v", above, slices.Max(ds.Values)/60)
	}

	again, _ := Synthetic(DiurnalSpike, p, day, 1)
	other, _ := Synthetic(DiurnalSpike, p, day, 2)
	if !slices.Equal(ds.Values, again.Values) || slices.Equal(ds.Values, other.Values) {
		t.Error("the same seed must give the same workload, another seed another")
	}
	if _, err := Synthetic("sine", p, day, 1); err == nil || !strings.Contains(err.Error(), "diurnal-spike") {
		t.Errorf("unknown kind: %v", err)
	}
}

func TestRealTimePacesTheSimulatedClock(t *testing.T) {
	if _, err := RealTime(0); err == nil {
		t.Error("speed 0 accepted")
	}
	pace, err := RealTime(1000) // 10 simulated seconds: 10 ms
	if err != nil {
		t.Fatal(err)
	}
	sim0 := time.Unix(0, 0)
	start := time.Now()
	for s := range 11 {
		if err := pace(context.Background(), sim0.Add(time.Duration(s)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if took := time.Since(start); took < 10*time.Millisecond || took > 500*time.Millisecond {
		t.Errorf("10 simulated seconds at ×1000 took %s, want ~10 ms", took)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := pace(ctx, sim0.Add(time.Hour)); !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled pace: %v", err)
	}
}
