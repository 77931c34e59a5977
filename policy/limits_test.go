package policy

import (
	"context"
	"os"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// TestOneCallCannotAskForGigabytes: built-in calls whose result would be
// gigabytes made at once (which Go fails by ending the process, past any
// memory budget) are errors at the call, naming it; ordinary ones work.
func TestOneCallCannotAskForGigabytes(t *testing.T) {
	f, err := os.Open("testdata/input-4-nodes.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	in, err := ReadInput(f, "input-4-nodes.json")
	if err != nil {
		t.Fatal(err)
	}
	const prelude = "package mitosis\n\nimport rego.v1\n\n" +
		"big := tenfold(tenfold(tenfold(tenfold(\"0123456789\")))) # 100 KB\n\n" +
		"tenfold(s) := concat(\"\", [s, s, s, s, s, s, s, s, s, s])\n\n" +
		"refs := [big | some i in numbers.range(1, 4000)]\n\n"
	for _, c := range []struct{ call, expr string }{
		{"concat", `concat("", refs)`},
		{"sprintf", `sprintf("%0999999999d", [1])`},
		{"sprintf", `sprintf("%*d", [999999999, 1])`},
		{"sprintf", `sprintf("%s%s", [big, refs])`},
		{"replace", `replace(big, "0", big)`},
		{"strings.replace_n", `strings.replace_n({"0": big}, big)`},
		{"regex.replace", `regex.replace(big, "", big)`},
		{"regex.replace", `regex.replace(big, "(.)", "` + strings.Repeat("$1", 1000) + `")`},
		{"json.marshal", `json.marshal(refs)`},
		{"json.marshal_with_options", `json.marshal_with_options(refs, {"pretty": true})`},
		{"yaml.marshal", `yaml.marshal(refs)`},
	} {
		call, expr := c.call, c.expr
		rego := prelude + "decision := {\"action\": \"none\", \"reason\": substring(r, 0, 10)} if {\n\tr := " + expr + "\n}\n"
		e, err := LoadFS(fstest.MapFS{"p.rego": {Data: []byte(rego)}}, "bomb")
		if err != nil {
			t.Fatalf("%s: %v", call, err)
		}
		start := time.Now()
		_, err = e.Decide(context.Background(), in, time.Now())
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("%s: refused after %s", expr, took)
		}
		if err == nil || !strings.Contains(err.Error(), call+": its result could take") || !strings.Contains(err.Error(), "p.rego") {
			t.Errorf("%s: %v; want an error at the call naming it and the 64 MiB a value may take", expr, err)
		}
	}
	ok := `package mitosis

decision := {"action": "none", "reason": concat(" ", [sprintf("%05d", [7]), replace("a-b", "-", "+"), json.marshal({"n": 1}), regex.replace("web-c17", "c([0-9]+)", "clone $1")])}
`
	e, err := LoadFS(fstest.MapFS{"p.rego": {Data: []byte(ok)}}, "ok")
	if err != nil {
		t.Fatal(err)
	}
	if d, err := e.Decide(context.Background(), in, time.Now()); err != nil || d.Reason != `00007 a+b {"n":1} web-clone 17` {
		t.Errorf("ordinary calls: %+v, %v", d, err)
	}
}

// TestRenderTemplateIsRefused: a template's loops make results of no
// bound, so the built-in leaves the capabilities.
func TestRenderTemplateIsRefused(t *testing.T) {
	rego := "package mitosis\n\ndecision := {\"action\": \"none\", \"reason\": strings.render_template(\"{{.x}}\", {\"x\": 1})}\n"
	_, err := LoadFS(fstest.MapFS{"p.rego": {Data: []byte(rego)}}, "tmpl")
	if err == nil || !strings.Contains(err.Error(), "strings.render_template is not allowed") || !strings.Contains(err.Error(), "p.rego:3") {
		t.Errorf("a policy calling strings.render_template: %v; want refused at p.rego:3", err)
	}
}
