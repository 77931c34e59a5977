package policy

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/format"
)

// Check is `opa fmt --list` and `opa check --strict` for the .rego files
// directly in dir, tests included: every file must parse and all must
// compile together in strict mode with the policies' capabilities (else a
// *LoadError), and the files whose text differs from what `opa fmt` writes
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
	if _, err := compile(srcs, true); err != nil {
		return nil, err
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
