package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
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

// ReadInput reads an input document as JSON, strictly: a key the policy
// contract does not define is an error naming it and its place, and so is
// a value of the wrong type or anything after the document. name labels
// the document in errors. A document that does not give its schema is
// taken to be of this contract's version.
func ReadInput(r io.Reader, name string) (*Input, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, &InputError{File: name, Message: err.Error()}
	}
	w := &jsonWalker{dec: json.NewDecoder(bytes.NewReader(data)), data: data, file: name}
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
	if in.Schema == 0 {
		in.Schema = SchemaVersion
	}
	return &in, nil
}

// jsonWalker walks a JSON document token by token beside the Go type it
// is read into, to find keys the type does not have and say where they are.
type jsonWalker struct {
	dec  *json.Decoder
	data []byte
	file string
}

var anyType = reflect.TypeFor[any]()

// value reads one value that goes into a t (anyType: anything).
func (w *jsonWalker) value(t reflect.Type, path string) error {
	tok, err := w.dec.Token()
	if err != nil {
		return w.syntax(err, path)
	}
	d, isDelim := tok.(json.Delim)
	if !isDelim {
		return nil // a scalar: its type is checked by json.Unmarshal
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch d {
	case '{':
		for w.dec.More() {
			before := int(w.dec.InputOffset())
			kt, err := w.dec.Token()
			if err != nil {
				return w.syntax(err, path)
			}
			k, _ := kt.(string)
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
		if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name == k {
			return f.Type
		}
	}
	return nil
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
