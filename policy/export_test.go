package policy

import (
	"io/fs"
	"sort"
)

// SourcesVersion is the version of the files at the root of fsys,
// digested without loading them (so without checking their names).
func SourcesVersion(fsys fs.FS) string {
	entries, _ := fs.ReadDir(fsys, ".")
	var srcs []source
	for _, de := range entries {
		text, _ := fs.ReadFile(fsys, de.Name())
		srcs = append(srcs, source{name: de.Name(), text: text})
	}
	sort.Slice(srcs, func(i, j int) bool { return srcs[i].name < srcs[j].name })
	return digest(srcs)
}
