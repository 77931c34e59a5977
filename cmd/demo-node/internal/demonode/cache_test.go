package demonode

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestCacheEvictsTheLeastRecentlyUsed(t *testing.T) {
	c := newCache(2)
	c.put("a", "1")
	c.put("b", "2")
	if _, ok := c.get("a"); !ok { // a is now the most recent
		t.Fatal("a: want a hit")
	}
	c.put("c", "3") // evicts b
	if _, ok := c.get("b"); ok {
		t.Error("b: want evicted")
	}
	if got := c.entries(); !slices.Equal(got, []entry{{"c", "3"}, {"a", "1"}}) {
		t.Errorf("entries %v, want c then a", got)
	}
}

func TestHitRatioIsOverTheRecentWindow(t *testing.T) {
	c := newCache(10)
	if r := c.hitRatio(); r != 0 {
		t.Errorf("no lookup: ratio %v, want 0", r)
	}
	c.put("k", "v")
	for range windowSize {
		c.get("missing")
	}
	for range windowSize / 2 {
		c.get("k")
	}
	if r := c.hitRatio(); r != 0.5 {
		t.Errorf("ratio %v, want 0.5: half the window hits once the old misses roll out", r)
	}
	rec := c.recent()
	if len(rec) != windowSize || rec[0] || !rec[windowSize-1] {
		t.Errorf("recent: %d outcomes, oldest %v, newest %v; want %d, a miss, a hit", len(rec), rec[0], rec[windowSize-1], windowSize)
	}
}

// zipfKeys draws n keys from a skewed distribution over space keys, the
// way clients of a cache do: a few keys are hot, most are rare.
func zipfKeys(seed uint64, n, space int) []string {
	z := rand.NewZipf(rand.New(rand.NewPCG(seed, seed)), 1.2, 1, uint64(space-1))
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%d", z.Uint64())
	}
	return keys
}

func unitsOver(a *App, keys []string) int {
	total := 0
	for _, k := range keys {
		_, _, _, units := a.lookup(k)
		total += units
	}
	return total
}

// The cost model, by count: the same requests cost a cold node several
// times what they cost a warm one, and its hit ratio rises as it serves.
func TestWarmNodeIsSeveralTimesCheaperThanCold(t *testing.T) {
	keys := zipfKeys(1, 2550, 1000)
	batch := keys[2500:]
	opts := AppOptions{ID: "n", CacheSize: 1000, MissCost: 10, SessionIdle: time.Minute, unitRounds: 1}
	warmNode := NewApp(opts)
	unitsOver(warmNode, keys[:2500])
	coldNode := NewApp(opts)

	cold, warm := unitsOver(coldNode, batch), unitsOver(warmNode, batch)
	coldRatio, warmRatio := coldNode.Warmth().CacheHitRatio, warmNode.Warmth().CacheHitRatio
	t.Logf("units for %d requests: cold %d, warm %d; hit ratio cold %.2f, warm %.2f", len(batch), cold, warm, coldRatio, warmRatio)
	if warm*4 > cold {
		t.Errorf("warm %d units, cold %d: want warm at least 4 times cheaper", warm, cold)
	}
	if warmRatio < coldRatio+0.3 {
		t.Errorf("hit ratio %.2f warm, %.2f cold: want it well up after serving", warmRatio, coldRatio)
	}
	if got := coldNode.WorkUnits(); got != int64(cold) {
		t.Errorf("the cold node's work units %d, want the %d its requests cost", got, cold)
	}
}

func TestCostIsOneUnitPerHitAndOnePlusMissCostPerMiss(t *testing.T) {
	a := NewApp(AppOptions{ID: "n", CacheSize: 10, MissCost: 7, SessionIdle: time.Minute})
	v1, _, hit1, u1 := a.lookup("k")
	v2, _, hit2, u2 := a.lookup("k")
	if hit1 || u1 != 8 || !hit2 || u2 != 1 || v1 != v2 {
		t.Errorf("miss (%v, %d units), then hit (%v, %d units), values %q %q: want a miss of 8, a hit of 1, one value", hit1, u1, hit2, u2, v1, v2)
	}
	if got := a.WorkUnits(); got != 9 {
		t.Errorf("work units %d, want 9", got)
	}
}

// The wall clock agrees with the count; see the ratio with
// go test -bench Work ./cmd/demo-node/...
func BenchmarkWork(b *testing.B) {
	keys := zipfKeys(2, 4096, 2000)
	for _, tc := range []struct {
		name  string
		cache int
	}{{"cold", 1}, {"warm", 4096}} {
		b.Run(tc.name, func(b *testing.B) {
			a := NewApp(AppOptions{ID: "n", CacheSize: tc.cache, MissCost: 10, SessionIdle: time.Minute})
			if tc.cache > 1 {
				unitsOver(a, keys)
			}
			i := 0
			for b.Loop() {
				a.lookup(keys[i%len(keys)])
				i++
			}
		})
	}
}
