package policy

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// MaxValueBytes is the most one built-in call may make of one string: a
// call that would make more is an error at the call, before anything is
// allocated.
//
// The memory budget (watchMemory) stops a policy that grows step by step;
// it cannot stop one call that asks for gigabytes at once (a concat of
// thousands of references to one large string), which Go fails by ending
// the process. The built-ins whose result can be much larger than what
// they are given are wrapped here, for every engine of the process, with
// a bound computed from their operands. (strings.render_template, whose
// loops make a result of no such bound, is refused: capabilities.go.)
const MaxValueBytes = 64 << 20

// sizeBounds are the wrapped built-ins and the bound of each one's result.
var sizeBounds = map[string]func(args []*ast.Term) uint64{
	ast.Concat.Name:                 func(a []*ast.Term) uint64 { return add(size(a[0]), mul(size(a[0]), count(a[1])), size(a[1])) },
	ast.Sprintf.Name:                sprintfBound,
	ast.Replace.Name:                replaceBound,
	ast.ReplaceN.Name:               func(a []*ast.Term) uint64 { return add(mul(size(a[0]), size(a[1])), size(a[1])) },
	ast.RegexReplace.Name:           regexReplaceBound,
	ast.JSONMarshal.Name:            marshalBound,
	ast.JSONMarshalWithOptions.Name: marshalBound,
	ast.YAMLMarshal.Name:            marshalBound,
}

func init() {
	for name, bound := range sizeBounds {
		inner := topdown.GetBuiltin(name)
		if inner == nil {
			panic("policy: no built-in " + name + " to bound")
		}
		topdown.RegisterBuiltinFunc(name, func(bctx topdown.BuiltinContext, args []*ast.Term, iter func(*ast.Term) error) error {
			if n := bound(args); n > MaxValueBytes {
				return &topdown.Error{Code: topdown.BuiltinErr, Location: bctx.Location,
					Message: fmt.Sprintf("%s: its result could take %s, more than the %d MiB a value may", name, human(n), MaxValueBytes>>20)}
			}
			return inner(bctx, args, iter)
		})
	}
}

// size is how many bytes t takes written out, counting a value each time
// it is referred to (a string repeated by reference costs each time it is
// written), saturating rather than overflowing.
func size(t *ast.Term) uint64 {
	if t == nil {
		return 0
	}
	switch v := t.Value.(type) {
	case ast.String:
		return uint64(len(v))
	case ast.Number:
		return uint64(len(v))
	case *ast.Array:
		n := uint64(v.Len()) + 2
		for i := range v.Len() {
			n = add(n, size(v.Elem(i)))
		}
		return n
	case ast.Set:
		n := uint64(v.Len()) + 2
		v.Foreach(func(e *ast.Term) { n = add(n, size(e)) })
		return n
	case ast.Object:
		n := uint64(v.Len())*2 + 2
		v.Foreach(func(k, e *ast.Term) { n = add(n, add(size(k), size(e))) })
		return n
	}
	return 8 // booleans, null, and what a built-in refuses anyway
}

// count is how many elements a collection operand has.
func count(t *ast.Term) uint64 {
	switch v := t.Value.(type) {
	case *ast.Array:
		return uint64(v.Len())
	case ast.Set:
		return uint64(v.Len())
	}
	return 0
}

// sprintfBound is the format's length, what its arguments write, and the
// widths and precisions it names (which may come from the arguments: *).
func sprintfBound(a []*ast.Term) uint64 {
	format, _ := a[0].Value.(ast.String)
	n := add(uint64(len(format)), size(a[1]))
	digits := uint64(0)
	for _, c := range string(format) {
		switch {
		case c >= '0' && c <= '9':
			digits = add(mul(digits, 10), uint64(c-'0'))
		case c == '*':
			n = add(n, size(a[1])) // a width from the arguments: bounded by their numbers below
			if arr, ok := a[1].Value.(*ast.Array); ok {
				for i := range arr.Len() {
					if num, ok := arr.Elem(i).Value.(ast.Number); ok {
						if f, err := strconv.ParseFloat(string(num), 64); err == nil && f > 0 {
							n = add(n, uint64(min(f, math.MaxUint32)))
						}
					}
				}
			}
		default:
			n, digits = add(n, digits), 0
		}
	}
	return add(n, digits)
}

// replaceBound: each occurrence of old (at most one a byte) becomes new.
func replaceBound(a []*ast.Term) uint64 {
	s, old, repl := size(a[0]), size(a[1]), size(a[2])
	return add(s, mul(add(s/max(old, 1), 1), repl))
}

// regexReplaceBound: at most one match a byte (and one more, empty, at
// the end), each replaced by the value, whose $ references expand to
// submatches, which, the matches not overlapping, add up to s at most once
// each.
func regexReplaceBound(a []*ast.Term) uint64 {
	s, repl := size(a[0]), size(a[2])
	refs := uint64(0)
	if v, ok := a[2].Value.(ast.String); ok {
		refs = uint64(strings.Count(string(v), "$"))
	}
	return add(s, mul(add(s, 1), repl), mul(refs, s))
}

// marshalBound: JSON and YAML escape a byte in at most six.
func marshalBound(a []*ast.Term) uint64 { return mul(size(a[0]), 6) }

func add(xs ...uint64) uint64 {
	var n uint64
	for _, x := range xs {
		if n > math.MaxUint64-x {
			return math.MaxUint64
		}
		n += x
	}
	return n
}

func mul(x, y uint64) uint64 {
	if x != 0 && y > math.MaxUint64/x {
		return math.MaxUint64
	}
	return x * y
}

func human(n uint64) string {
	if n == math.MaxUint64 {
		return "more than 16 EiB"
	}
	return fmt.Sprintf("%d MiB", n>>20)
}
