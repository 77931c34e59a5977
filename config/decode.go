// Package config is mitosis's configuration file: its schema (the
// controller's keys, autoscaler.Config, and a section per back-end), its
// strict decoder, its defaults and its validation. Decoding goes
// file → defaults → validation, and every error names the key at fault
// and, for what the decoder refuses, its line.
//
// It reads and checks; it opens nothing. The agent opens the back-ends a
// File chooses (agent/backends); `mitosis simulate` reads its own view of
// the same file with the same decoder (package sim).
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/mitosis-autoscaler/mitosis/autoscaler"
)

// DecodeStrict decodes YAML into v, refusing unknown keys; the error
// names each offending key and its line, in the file's words (a key and
// what it expects), not Go's types. An empty document leaves v as is; a
// second document is refused, since it would be ignored.
func DecodeStrict(data []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(v)
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err == nil {
		var next yaml.Node
		switch err := dec.Decode(&next); {
		case errors.Is(err, io.EOF):
			return nil
		case err != nil:
			return errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
		case !emptyDocument(&next):
			return fmt.Errorf("line %d: a second YAML document: a configuration file holds one (remove the ---, or everything after it)", next.Line)
		}
		return nil
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if strings.Contains(msg, "UTF-8") {
			if line, ok := invalidUTF8Line(data); ok {
				msg = fmt.Sprintf("line %d: not UTF-8 text (%s)", line, msg)
			}
		}
		return errors.New(msg)
	}
	var root yaml.Node
	_ = yaml.Unmarshal(data, &root) // it parsed: only the types were wrong
	msgs := make([]string, len(te.Errors))
	for i, m := range te.Errors {
		if sm := unmarshalError.FindStringSubmatch(m); sm != nil {
			msgs[i] = describeTypeError(&root, reflect.TypeOf(v), sm)
			continue
		}
		msgs[i] = unknownField.ReplaceAllString(m, `line $1: unknown key "$2"`)
	}
	return errors.New(strings.Join(msgs, "; "))
}

func emptyDocument(doc *yaml.Node) bool {
	for _, n := range doc.Content {
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!null" || n.Value != "" {
			return false
		}
	}
	return true
}

// invalidUTF8Line is the line of the first byte that is not UTF-8.
func invalidUTF8Line(data []byte) (int, bool) {
	line := 1
	for len(data) > 0 {
		r, size := utf8.DecodeRune(data)
		if r == utf8.RuneError && size <= 1 {
			return line, true
		}
		if r == '\n' {
			line++
		}
		data = data[size:]
	}
	return 0, false
}

// unmarshalError is yaml's "line 3: cannot unmarshal !!map into
// []autoscaler.ClusterConfig": line, tag, value (scalars only, maybe
// cut short with "...") and Go type.
var unmarshalError = regexp.MustCompile("^line (\\d+): cannot unmarshal (!!\\w+)(?: `(.*)`)? into (.+)$")

// describeTypeError rewrites yaml's type error sm as the key the value is
// under and what that key expects.
func describeTypeError(root *yaml.Node, t reflect.Type, sm []string) string {
	line, _ := strconv.Atoi(sm[1])
	tag, value, goType := sm[2], strings.TrimSuffix(sm[3], "..."), sm[4]
	given := map[string]string{"!!map": "a mapping", "!!seq": "a list"}[tag]
	if given == "" {
		given = fmt.Sprintf("%q", sm[3])
	}
	// Of the values on the line that look like the one refused, the one
	// whose Go type is the one named; several may (flow style).
	var path []string
	found := false
	for _, p := range findValues(root, nil, line, tag, value) {
		pt := typeAt(t, p)
		for pt != nil && pt.Kind() == reflect.Pointer {
			pt = pt.Elem()
		}
		if pt != nil && pt.String() == goType {
			path, found = p, true
			break
		}
	}
	if !found {
		return fmt.Sprintf("line %d: %s is not what is expected here", line, given)
	}
	if len(path) == 0 {
		return fmt.Sprintf("line %d: the file must be a mapping of keys (such as tick: and clusters:), not %s", line, given)
	}
	return fmt.Sprintf("line %d: %s: %s is expected, not %s", line, joinPath(path), expected(typeAt(t, path)), given)
}

// findValues finds, in document order, the nodes on line with tag whose
// value starts with value, each as the keys and indices that lead to it.
func findValues(n *yaml.Node, path []string, line int, tag, value string) [][]string {
	var found [][]string
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 1 {
			return findValues(n.Content[0], path, line, tag, value)
		}
		return nil
	case yaml.AliasNode:
		return nil
	}
	if n.Line == line && n.ShortTag() == tag && (n.Kind != yaml.ScalarNode || strings.HasPrefix(n.Value, value)) {
		found = append(found, path)
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			found = append(found, findValues(n.Content[i+1], append(slices.Clip(path), n.Content[i].Value), line, tag, value)...)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			found = append(found, findValues(c, append(slices.Clip(path), fmt.Sprintf("[%d]", i)), line, tag, value)...)
		}
	}
	return found
}

func joinPath(path []string) string {
	var b strings.Builder
	for i, p := range path {
		if i > 0 && !strings.HasPrefix(p, "[") {
			b.WriteByte('.')
		}
		b.WriteString(p)
	}
	return b.String()
}

// typeAt is the Go type the value at path decodes into, or nil.
func typeAt(t reflect.Type, path []string) reflect.Type {
	for _, p := range path {
		for t != nil && t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t == nil {
			return nil
		}
		switch t.Kind() {
		case reflect.Slice, reflect.Array:
			t = t.Elem()
		case reflect.Map:
			t = t.Elem()
		case reflect.Struct:
			t = fieldType(t, p)
		default:
			return nil
		}
	}
	return t
}

// fieldType is the type of t's field with yaml key, looking into
// inlined structs.
func fieldType(t reflect.Type, key string) reflect.Type {
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if strings.Contains(opts, "inline") {
			if ft := fieldType(f.Type, key); ft != nil {
				return ft
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		if name == key {
			return f.Type
		}
	}
	return nil
}

// expected says in the file's words what a value of type t looks like.
func expected(t reflect.Type) string {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return "another kind of value"
	}
	if t == reflect.TypeFor[time.Duration]() || t == reflect.TypeFor[autoscaler.Duration]() {
		return "a duration such as 30s"
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a mapping (key: value)"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	}
	return "another kind of value"
}

var unknownField = regexp.MustCompile(`^line (\d+): field (\S+) not found in type .*$`)

// DecodeNode decodes a mapping into v (a pointer to a struct of
// yaml-tagged fields) as DecodeStrict does a file: yaml checks no keys
// under a type that unmarshals itself (KnownFields stops there), so a
// section's UnmarshalYAML calls this to refuse the keys it does not know.
// Its error is a *yaml.TypeError, each problem naming its line, so that
// DecodeStrict words it as it does its own.
func DecodeNode(n *yaml.Node, v any) error {
	known := map[string]bool{"<<": true}
	t := reflect.TypeOf(v).Elem()
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); name != "" && name != "-" {
			known[name] = true
		}
	}
	var msgs []string
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k := n.Content[i]; !known[k.Value] {
				msgs = append(msgs, fmt.Sprintf("line %d: field %s not found in type %s", k.Line, k.Value, t))
			}
		}
	}
	if err := n.Decode(v); err != nil {
		te, ok := err.(*yaml.TypeError)
		if !ok {
			return err
		}
		msgs = append(msgs, te.Errors...)
	}
	if len(msgs) > 0 {
		return &yaml.TypeError{Errors: msgs}
	}
	return nil
}
