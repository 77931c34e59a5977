package demonode

import (
	"container/list"
	"crypto/sha256"
	"encoding/hex"
)

// The cost model. Work is counted in units, each a fixed amount of real
// CPU work (unitRounds SHA-256 rounds, roughly 0.25 ms), so that tests can
// assert on counts while the node is still really slower when cold. A hit
// costs one unit (reading and rendering the value); a miss costs one plus
// the miss cost (computing the value first).
const (
	unitRounds = 3000
	// windowSize is how many recent lookups the hit ratio is taken over.
	windowSize = 1000
)

// cache is a bounded LRU of computed values plus a window of recent
// lookups. It is not safe for concurrent use: App guards it.
type cache struct {
	size  int
	ll    *list.List // of *entry, most recently used first
	byKey map[string]*list.Element

	// window is a ring of the last lookups' outcomes (true: hit).
	window []bool
	next   int // where the next outcome goes once the ring is full
}

type entry struct {
	key, value string
}

func newCache(size int) *cache {
	return &cache{size: size, ll: list.New(), byKey: map[string]*list.Element{}}
}

// get returns key's value if cached, and records the lookup.
func (c *cache) get(key string) (string, bool) {
	el, ok := c.byKey[key]
	c.record(ok)
	if !ok {
		return "", false
	}
	c.ll.MoveToFront(el)
	return el.Value.(*entry).value, true
}

// put stores key's value, evicting the least recently used entry when full.
func (c *cache) put(key, value string) {
	if el, ok := c.byKey[key]; ok { // computed twice by concurrent misses
		el.Value.(*entry).value = value
		c.ll.MoveToFront(el)
		return
	}
	c.byKey[key] = c.ll.PushFront(&entry{key: key, value: value})
	for c.ll.Len() > c.size {
		old := c.ll.Remove(c.ll.Back()).(*entry)
		delete(c.byKey, old.key)
	}
}

func (c *cache) record(hit bool) {
	if len(c.window) < windowSize {
		c.window = append(c.window, hit)
		return
	}
	c.window[c.next] = hit
	c.next = (c.next + 1) % windowSize
}

// hitRatio is the share of hits among the recent lookups (0 with none).
func (c *cache) hitRatio() float64 {
	if len(c.window) == 0 {
		return 0
	}
	hits := 0
	for _, h := range c.window {
		if h {
			hits++
		}
	}
	return float64(hits) / float64(len(c.window))
}

func (c *cache) len() int { return c.ll.Len() }

// entries returns the cache contents, most recently used first.
func (c *cache) entries() []entry {
	out := make([]entry, 0, c.ll.Len())
	for el := c.ll.Front(); el != nil; el = el.Next() {
		out = append(out, *el.Value.(*entry))
	}
	return out
}

// recent returns the window's outcomes, oldest first.
func (c *cache) recent() []bool {
	out := make([]bool, 0, len(c.window))
	out = append(out, c.window[c.next:]...)
	return append(out, c.window[:c.next]...)
}

// restore replaces the contents with entries (most recently used first)
// and the window with recent (oldest first).
func (c *cache) restore(entries []entry, recent []bool) {
	c.ll.Init()
	clear(c.byKey)
	for i := len(entries) - 1; i >= 0; i-- {
		c.put(entries[i].key, entries[i].value)
	}
	c.window, c.next = nil, 0
	for _, h := range recent {
		c.record(h)
	}
}

// compute derives key's value with rounds SHA-256 rounds of real CPU work.
func compute(key string, rounds int) string {
	sum := sha256.Sum256([]byte(key))
	for range rounds {
		sum = sha256.Sum256(sum[:])
	}
	return hex.EncodeToString(sum[:])
}
