package sim

import (
	"os"
	"strings"
	"testing"
)

// Every configuration docs/simulation.md shows loads as it is shown: the
// whole files (those with clusters) as they are, the simulation section
// under a cluster.
func TestTheConfigurationsOfTheDocsLoad(t *testing.T) {
	doc, err := os.ReadFile("../docs/simulation.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(doc), "```yaml\n")[1:]
	if len(blocks) < 2 {
		t.Fatalf("%d yaml blocks in docs/simulation.md, want the whole file and the section", len(blocks))
	}
	for i, b := range blocks {
		b, _, _ = strings.Cut(b, "```\n")
		if !strings.Contains(b, "clusters:") {
			b = "clusters:\n  - {name: web, min: 1, max: 10}\n" + b
		}
		if _, err := ParseConfig([]byte(b), "docs/simulation.md"); err != nil {
			t.Errorf("yaml block %d of docs/simulation.md: %v\n%s", i+1, err, b)
		}
	}
}
