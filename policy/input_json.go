package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// InputError says why an input document (JSON) cannot be used, and where.
type InputError struct {
	File      string
	Line, Col int // 1-based; 0 when unknown
	// Path is the JSON path of the value at fault ("nodes[2].metrics"),
	// "" for the document.
	Path    string
	Message string
}

func (e *InputError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Col)
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path + ": ")
	}
	b.WriteString(e.Message)
	return b.String()
}

// ReadInput reads an input document as JSON, strictly, and says what is
// wrong with it and where (an *InputError with the line, the column and
// the field's path):
//
//   - a key the policy contract does not define, or one given twice;
//   - a field the contract defines that is missing: every field is always
//     present (only params and the metrics are free-form);
//   - a value of the wrong type, or null where the contract wants a value;
//   - a schema other than SchemaVersion;
//   - an input that contradicts itself where the engine relies on it: two
//     nodes with one id, a node state the contract does not define,
//     cluster.min above cluster.max, a negative min or size;
//   - anything after the document.
//
// name labels the document in errors. Inputs built in Go are not checked
// so: the engine decides on what it is given.
func ReadInput(r io.Reader, name string) (*Input, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, &InputError{File: name, Message: err.Error()}
	}
	w := &jsonWalker{dec: json.NewDecoder(bytes.NewReader(data)), data: data, file: name, at: map[string]int{}}
	w.dec.UseNumber()
	if err := w.value(reflect.TypeFor[Input](), ""); err != nil {
		return nil, err
	}
	end := int(w.dec.InputOffset())
	if _, err := w.dec.Token(); err != io.EOF {
		return nil, w.errAt(skipBlanks(data, end), "", "unexpected data after the input document")
	}
	var in Input
	if err := json.Unmarshal(data, &in); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, w.errAt(int(te.Offset), te.Field, fmt.Sprintf("cannot use a JSON %s as %s", te.Value, te.Type))
		}
		return nil, &InputError{File: name, Message: err.Error()}
	}
	if err := w.consistent(&in); err != nil {
		return nil, err
	}
	return &in, nil
}

// nodeStates are the node states of the contract (docs/policy.md).
var nodeStates = []string{"ready", "preparing", "draining", "failed"}

// consistent refuses an input whose values contradict each other or the
// contract where the engine relies on them.
func (w *jsonWalker) consistent(in *Input) error {
	if in.Schema != SchemaVersion {
		return w.errAt(w.at["schema"], "schema", fmt.Sprintf("contract version %d is not supported: want %d", in.Schema, SchemaVersion))
	}
	c := in.Cluster
	switch {
	case c.Min < 0:
		return w.errAt(w.at["cluster.min"], "cluster.min", fmt.Sprintf("%d is negative", c.Min))
	case c.Min > c.Max:
		return w.errAt(w.at["cluster.max"], "cluster.max", fmt.Sprintf("%d is below cluster.min, %d", c.Max, c.Min))
	case c.Size < 0:
		return w.errAt(w.at["cluster.size"], "cluster.size", fmt.Sprintf("%d is negative", c.Size))
	}
	first := make(map[string]int, len(in.Nodes))
	for i, n := range in.Nodes {
		if j, dup := first[n.ID]; dup {
			p := fmt.Sprintf("nodes[%d].id", i)
			return w.errAt(w.at[p], p, fmt.Sprintf("%q is also the id of nodes[%d]: node ids are unique", n.ID, j))
		}
		first[n.ID] = i
		if !slices.Contains(nodeStates, n.State) {
			p := fmt.Sprintf("nodes[%d].state", i)
			return w.errAt(w.at[p], p, fmt.Sprintf("%q is not a node state (%s)", n.State, strings.Join(nodeStates, ", ")))
		}
	}
	return nil
}

// jsonWalker walks a JSON document token by token beside the Go type it
// is read into, to find keys the type does not have (or that are missing,
// or given twice) and values of the wrong type, and say where they are.
type jsonWalker struct {
	dec  *json.Decoder
	data []byte
	file string
	// at is where each scalar value starts, by path.
	at map[string]int
}

var anyType = reflect.TypeFor[any]()

// value reads one value that goes into a t (anyType: anything).
func (w *jsonWalker) value(t reflect.Type, path string) error {
	start := valueStart(w.data, int(w.dec.InputOffset()))
	tok, err := w.dec.Token()
	if err != nil {
		return w.syntax(err, path)
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	d, isDelim := tok.(json.Delim)
	if !isDelim {
		w.at[path] = start
		return w.scalar(tok, t, start, path)
	}
	if want := jsonKind(t); t != anyType && want != kindOf(tok) {
		return w.mismatch(kindOf(tok), t, start, path)
	}
	switch d {
	case '{':
		seen := map[string]bool{}
		for w.dec.More() {
			before := int(w.dec.InputOffset())
			kt, err := w.dec.Token()
			if err != nil {
				return w.syntax(err, path)
			}
			k, _ := kt.(string)
			if seen[k] {
				return w.errAt(keyStart(w.data, before), path, fmt.Sprintf("field %q is given twice", k))
			}
			seen[k] = true
			var vt reflect.Type
			switch t.Kind() {
			case reflect.Struct:
				vt = fieldType(t, k)
				if vt == nil {
					return w.errAt(keyStart(w.data, before), path, fmt.Sprintf("unknown field %q (the fields are %s)", k, fieldNames(t)))
				}
			case reflect.Map:
				vt = t.Elem()
			default:
				vt = anyType
			}
			if err := w.value(vt, join(path, k)); err != nil {
				return err
			}
		}
		if t.Kind() == reflect.Struct {
			for f := range t.Fields() {
				if name := jsonName(f); name != "" && !seen[name] {
					return w.errAt(start, path, fmt.Sprintf("missing field %q: every field of the contract is always present", name))
				}
			}
		}
	case '[':
		et := anyType
		if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			et = t.Elem()
		}
		for i := 0; w.dec.More(); i++ {
			if err := w.value(et, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	if _, err := w.dec.Token(); err != nil { // the closing delimiter
		return w.syntax(err, path)
	}
	return nil
}

// scalar checks that the scalar tok can go into a t.
func (w *jsonWalker) scalar(tok json.Token, t reflect.Type, start int, path string) error {
	if t == anyType {
		return nil
	}
	got := kindOf(tok)
	if got != jsonKind(t) {
		return w.mismatch(got, t, start, path)
	}
	if n, ok := tok.(json.Number); ok {
		switch t.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			if _, err := strconv.ParseInt(string(n), 10, t.Bits()); err != nil {
				return w.errAt(start, path, fmt.Sprintf("cannot use the JSON number %s as %s: want a whole number", n, t))
			}
		case reflect.Float32, reflect.Float64:
			if _, err := strconv.ParseFloat(string(n), t.Bits()); err != nil {
				return w.errAt(start, path, fmt.Sprintf("cannot use the JSON number %s as %s", n, t))
			}
		}
	}
	return nil
}

func (w *jsonWalker) mismatch(got string, t reflect.Type, start int, path string) error {
	if path == "" {
		return w.errAt(start, path, fmt.Sprintf("the input must be a JSON object, not %s", article(got)))
	}
	return w.errAt(start, path, fmt.Sprintf("cannot use a JSON %s as %s", got, goName(t)))
}

// kindOf names a token as json.UnmarshalTypeError names values.
func kindOf(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		if v == '[' {
			return "array"
		}
		return "object"
	case string:
		return "string"
	case json.Number, float64:
		return "number"
	case bool:
		return "bool"
	}
	return "null"
}

// jsonKind is the kind of JSON value a t is read from.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "object"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "number"
	}
	return "any"
}

func goName(t reflect.Type) string {
	switch jsonKind(t) {
	case "object":
		return "an object"
	case "array":
		return "an array"
	}
	return t.String()
}

func article(kind string) string {
	switch kind {
	case "null":
		return "null"
	case "array", "object":
		return "an " + kind
	}
	return "a " + kind
}

// valueStart is where the value read after offset off starts: past the
// separators and blanks.
func valueStart(data []byte, off int) int {
	for off < len(data) && strings.IndexByte(" \t\r\n,:", data[off]) >= 0 {
		off++
	}
	return off
}

func (w *jsonWalker) syntax(err error, path string) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return w.errAt(int(se.Offset), path, "invalid JSON: "+se.Error())
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return w.errAt(len(w.data), path, "invalid JSON: unexpected end of the document")
	}
	return w.errAt(int(w.dec.InputOffset()), path, "invalid JSON: "+err.Error())
}

func (w *jsonWalker) errAt(off int, path, msg string) *InputError {
	line, col := lineCol(w.data, off)
	return &InputError{File: w.file, Line: line, Col: col, Path: path, Message: msg}
}

// lineCol turns a byte offset into a 1-based line and column.
func lineCol(data []byte, off int) (int, int) {
	off = min(max(off, 0), len(data))
	before := data[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	col := off - bytes.LastIndexByte(before, '\n')
	return line, col
}

// keyStart finds where the key read after offset before starts: the first
// quote after any separators and blanks.
func keyStart(data []byte, before int) int {
	for i := before; i < len(data); i++ {
		if data[i] == '"' {
			return i
		}
	}
	return before
}

// skipBlanks returns the offset of the first byte at or after off that is
// not JSON white space.
func skipBlanks(data []byte, off int) int {
	for off < len(data) && strings.IndexByte(" \t\r\n", data[off]) >= 0 {
		off++
	}
	return off
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

// fieldType is the type of t's field whose JSON name is exactly k.
func fieldType(t reflect.Type, k string) reflect.Type {
	for f := range t.Fields() {
		if jsonName(f) == k {
			return f.Type
		}
	}
	return nil
}

// jsonName is the JSON name of a field, "" for one JSON leaves out.
func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if name == "-" {
		return ""
	}
	return name
}

func fieldNames(t reflect.Type) string {
	var names []string
	for f := range t.Fields() {
		if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name != "" && name != "-" {
			names = append(names, strconv.Quote(name))
		}
	}
	return strings.Join(names, ", ")
}
