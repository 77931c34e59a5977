package sim

import (
	"context"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/autoscaler"
)

func testConfig(min, max int) autoscaler.Config {
	c := autoscaler.Config{Clusters: []autoscaler.ClusterConfig{{Name: "app", Min: min, Max: max}}}
	c.ApplyDefaults()
	return c
}

func TestRunFollowsADiurnalDay(t *testing.T) {
	load, err := Synthetic(Diurnal, SyntheticParams{}, 24*time.Hour, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []Mode{LiveClone, ColdBoot} {
		res, err := Run(context.Background(), Options{
			Workload: load, Config: testConfig(1, 20), Params: DefaultParams(), Mode: mode,
			Policy: targetPolicy{0.7, 0.35}, Seed: 1,
		})
		if err != nil {
			t.Fatal(err)
		}
		s := res.Summary
		t.Logf("%s: %+v ops=%d tickErr=%d %s actErr=%d wall=%s", mode, s, len(res.Ops), res.TickErrors, res.FirstTickError, res.ActuateErrors, res.Wall)
	}
}
