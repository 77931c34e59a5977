package policy_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/mitosis-autoscaler/mitosis/policy"
)

// collidingSets are the two policies of issue 17: two files, and one file
// whose name embeds the first file (its name, length and text, framed as
// the version used to frame them) and the second one's name. Under the
// old framing (name NUL length NUL text) both hashed the same bytes.
func collidingSets() (two, one fstest.MapFS) {
	lib := "package lib\n\nx := 1\n"
	decide := "package mitosis\n\ndecision := {\"action\": \"none\"}\n"
	two = fstest.MapFS{"a.rego": {Data: []byte(lib)}, "b.rego": {Data: []byte(decide)}}
	name := fmt.Sprintf("a.rego\x00%d\x00%sb.rego", len(lib), lib)
	one = fstest.MapFS{name: {Data: []byte(decide)}}
	return two, one
}

// TestDifferentPoliciesGetDifferentVersions: the version frames names and
// contents by length, so a name cannot pass for a file; and it is 128 bits.
func TestDifferentPoliciesGetDifferentVersions(t *testing.T) {
	two, one := collidingSets()
	a, b := policy.SourcesVersion(two), policy.SourcesVersion(one)
	if a == b {
		t.Fatalf("two different policies got one version %s", a)
	}
	e, err := policy.LoadFS(two, "p")
	if err != nil {
		t.Fatal(err)
	}
	if v := e.Version(); v != a || len(v) != 32 || strings.Trim(v, "0123456789abcdef") != "" {
		t.Errorf("version %q: want 32 hex digits, %s", v, a)
	}
}

// TestBadPolicyFileNames: a name that is not a plain file name is refused
// wherever a policy is loaded, and the error quotes it.
func TestBadPolicyFileNames(t *testing.T) {
	_, one := collidingSets()
	for name := range one {
		_, err := policy.LoadFS(one, "p")
		var le *policy.LoadError
		if !errors.As(err, &le) || !strings.Contains(err.Error(), fmt.Sprintf("%q", name)) ||
			!strings.Contains(err.Error(), "control character") {
			t.Errorf("LoadFS of a name with NUL: %v", err)
		}
	}
	for _, c := range []struct{ name, why string }{
		{"", "empty"},
		{".", "not a file's name"},
		{"..", "not a file's name"},
		{"a/b.rego", "path separator"},
		{`..\b.rego`, "path separator"},
		{"a\nb.rego", "control character"},
		{"a\x00.rego", "control character"},
		{"a\x7f.rego", "control character"},
		{"\xff.rego", "UTF-8"},
		{strings.Repeat("a", policy.MaxFileNameLen-4) + ".rego", "at most"},
	} {
		err := policy.CheckFileName(c.name)
		if err == nil || !strings.Contains(err.Error(), c.why) || !strings.Contains(err.Error(), "policy file name") {
			t.Errorf("CheckFileName(%q) = %v, want it to say %q", c.name, err, c.why)
		}
	}
	for _, ok := range []string{"scale.rego", "scale_test.rego", "é.rego", strings.Repeat("a", policy.MaxFileNameLen-5) + ".rego"} {
		if err := policy.CheckFileName(ok); err != nil {
			t.Errorf("CheckFileName(%q): %v", ok, err)
		}
	}
}
