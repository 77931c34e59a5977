package policy

import (
	"fmt"
	"strings"
)

// Problem is one thing wrong with a policy source, at a place in a file.
type Problem struct {
	// File is the file's label: the directory given to Load (or the name
	// given to LoadFS) joined with the file's name.
	File string
	// Row and Col are 1-based; 0 when unknown.
	Row, Col int
	Message  string
}

func (p Problem) String() string {
	switch {
	case p.File == "":
		return p.Message
	case p.Row == 0:
		return p.File + ": " + p.Message
	}
	return fmt.Sprintf("%s:%d: %s", p.File, p.Row, p.Message)
}

// LoadError says why policy sources could not be loaded: a file that
// cannot be read, a syntax error, a strict-mode or type error, a built-in
// function that policies may not call, a missing decision rule. It lists
// every problem the compiler found, first problem first.
type LoadError struct {
	Problems []Problem
}

func (e *LoadError) Error() string {
	if len(e.Problems) == 0 {
		return "policy: load failed"
	}
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// First returns the first problem.
func (e *LoadError) First() Problem {
	if len(e.Problems) == 0 {
		return Problem{}
	}
	return e.Problems[0]
}

// DecisionError says why a policy's decision breaks the policy contract
// (or is undefined). File and Row locate the rule, or the else branch of
// it, that produced the decision. The engine never returns the decision
// itself then: no action is taken on it.
type DecisionError struct {
	File string
	Row  int
	// Field is the decision's key at fault ("" for the decision as a
	// whole); Message says what is wrong, starting with that key.
	Field   string
	Message string
}

func (e *DecisionError) Error() string {
	return Problem{File: e.File, Row: e.Row, Message: "decision: " + e.Message}.String()
}

// EvalError is an error raised while evaluating the policy: conflicting
// outputs of a rule, a built-in function given bad operands, a timeout or
// a cancelled context. File and Row come from OPA where it knows them.
type EvalError struct {
	File    string
	Row     int
	Message string
	// Err is OPA's error (or the context's).
	Err error
}

func (e *EvalError) Error() string {
	return Problem{File: e.File, Row: e.Row, Message: e.Message}.String()
}

func (e *EvalError) Unwrap() error { return e.Err }
