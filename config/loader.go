package config

import (
	"fmt"
	"io"

	"go.yaml.in/yaml/v3"
)

// loader carries the state of one Load or Parse: where relative paths
// resolve, the problems found so far, and the nodes that need special care.
type loader struct {
	file string
	dir  string
	// openSecret opens ${file:...} references; nil means os.Open.
	openSecret func(string) (io.ReadCloser, error)

	problems []Problem
	warnings []Problem

	// failed holds scalars whose interpolation failed: their value is
	// meaningless, so type checks skip them instead of piling on.
	failed map[*yaml.Node]bool
	// fromFile holds scalars that read a ${file:...} reference: their
	// values are secrets whatever field they sit in.
	fromFile map[*yaml.Node]bool
	// secrets collects the field paths (from the file's root) whose values
	// Redacted hides.
	secrets map[string]bool

	// pairCache holds each mapping's pairs with merges applied.
	pairCache map[*yaml.Node][]pair
	// manifests holds the manifests read so far, by absolute path.
	manifests map[string]*manifest

	dropped   int
	visits    int
	exhausted bool
}

func newLoader(file, dir string) *loader {
	return &loader{
		file:      file,
		dir:       dir,
		failed:    map[*yaml.Node]bool{},
		fromFile:  map[*yaml.Node]bool{},
		secrets:   map[string]bool{},
		pairCache: map[*yaml.Node][]pair{},
		manifests: map[string]*manifest{},
	}
}

// problemAt records a problem at an explicit position.
func (l *loader) problemAt(line, col int, field, format string, args ...any) {
	l.add(Problem{File: l.file, Line: line, Column: col, Field: field, Message: fmt.Sprintf(format, args...)})
}

// add records a problem, or counts it once maxProblems are recorded.
func (l *loader) add(p Problem) {
	if len(l.problems) >= maxProblems {
		l.dropped++
		return
	}
	l.problems = append(l.problems, p)
}

// problem records a problem about the value of key (either may be nil).
func (l *loader) problem(key, value *yaml.Node, field, format string, args ...any) {
	line, col := position(key, value)
	l.problemAt(line, col, field, format, args...)
}

// warn records a warning about the value of key.
func (l *loader) warn(key, value *yaml.Node, field, format string, args ...any) {
	line, col := position(key, value)
	l.warnings = append(l.warnings, Problem{File: l.file, Line: line, Column: col, Field: field, Message: fmt.Sprintf(format, args...)})
}

// visit counts one node visit and reports whether the walk may go on. Alias
// expansion can make a small document describe an enormous tree; past a
// budget the walk stops with one problem.
func (l *loader) visit(n *yaml.Node, depth int) bool {
	if l.exhausted {
		return false
	}
	l.visits++
	if l.visits > maxVisits || depth > maxDepth {
		l.exhausted = true
		line, col := 0, 0
		if n != nil {
			line, col = n.Line, n.Column
		}
		l.problemAt(line, col, "", "the document nests or repeats too deeply (more than %d levels or %d values once aliases expand); simplify its aliases", maxDepth, maxVisits)
		return false
	}
	return true
}

// err returns the problems found as an *Error, in file order.
func (l *loader) err() *Error {
	ps := sortProblems(l.problems)
	if l.dropped > 0 {
		ps = append(ps, Problem{File: l.file, Message: fmt.Sprintf("%d more problems not shown; fix the ones above first", l.dropped)})
	}
	return &Error{Problems: ps}
}
