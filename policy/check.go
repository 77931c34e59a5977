package policy

import (
	"bytes"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/format"
)

// Check is `opa fmt --list` and `opa check --strict` for the .rego files
// directly in dir, tests included: every file must parse and all must
// compile together in strict mode with the policies' capabilities, and
// define decision in package mitosis outside the tests (else a
// *LoadError, as Load's), and the files whose text differs from what `opa fmt` writes
// are listed, as errors name them.
func Check(dir string) (unformatted []string, err error) {
	return CheckFS(os.DirFS(dir), filepath.ToSlash(filepath.Clean(dir)))
}

// CheckFS is Check for the files at the root of fsys, labelled name as in
// LoadFS.
func CheckFS(fsys fs.FS, name string) (unformatted []string, err error) {
	srcs, err := readSources(fsys, name, true)
	if err != nil {
		return nil, err
	}
	c, err := compile(srcs, true)
	if err != nil {
		return nil, err
	}
	// As Load refuses it: a directory of policy files must decide (a
	// decision in a test file would not count there).
	decides := false
	for _, r := range c.GetRules(decisionRef) {
		if r.Location == nil || !isTest(path.Base(r.Location.File)) {
			decides = true
		}
	}
	if !decides {
		return nil, &LoadError{Problems: []Problem{{File: name, Message: noDecision}}}
	}
	for _, s := range srcs {
		ok, err := Formatted(s.label, s.text)
		if err != nil {
			return nil, &LoadError{Problems: problems(err, s.label)}
		}
		if !ok {
			unformatted = append(unformatted, s.label)
		}
	}
	return unformatted, nil
}

// Formatted reports whether src is formatted as `opa fmt` formats Rego v1.
func Formatted(filename string, src []byte) (bool, error) {
	out, err := format.SourceWithOpts(filename, src, format.Opts{RegoVersion: ast.RegoV1})
	if err != nil {
		return false, err
	}
	return bytes.Equal(out, src), nil
}

// noDecision is why Load and Check refuse a directory that decides
// nothing.
const noDecision = "no decision: a policy must define `decision` in `package mitosis` (" + DecisionQuery + ")"
