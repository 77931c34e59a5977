package policy

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxFileNameLen bounds a policy file's name, in bytes.
const MaxFileNameLen = 128

// CheckFileName says why name cannot be the name of a policy file, or
// nil. A policy's files are a flat set of plain names: the version frames
// them, errors and the audit trail print them, and a pushed policy is
// written into directories. So a name is valid UTF-8, at most
// MaxFileNameLen bytes, with no control character (NUL included) and no
// path separator (/ or \), and is not . or ..; the error quotes it.
func CheckFileName(name string) error {
	why := ""
	switch {
	case name == "":
		why = "empty"
	case len(name) > MaxFileNameLen:
		why = fmt.Sprintf("%d bytes long, at most %d", len(name), MaxFileNameLen)
	case !utf8.ValidString(name):
		why = "not valid UTF-8"
	case strings.ContainsFunc(name, unicode.IsControl):
		why = "it holds a control character"
	case strings.ContainsAny(name, `/\`):
		why = "it holds a path separator; a policy is the files of one directory"
	case name == "." || name == "..":
		why = "not a file's name"
	}
	if why == "" {
		return nil
	}
	shown := name
	if len(shown) > MaxFileNameLen {
		shown = shown[:MaxFileNameLen] + "…"
	}
	return fmt.Errorf("policy file name %q: %s", shown, why)
}
