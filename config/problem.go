package config

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Problem is one thing wrong (or, as a warning, questionable) in a
// configuration file, located by file, line and column. Its JSON form, used
// by `tributary validate --json`, has the lower-case snake_case keys file,
// line, column, field and message, all always present.
type Problem struct {
	// File is the configuration file's name as given to Load or Parse, or
	// the name of a file it refers to (a plugin's manifest) when the
	// problem is in that file.
	File string `json:"file"`
	// Line and Column are 1-based; 0 means unknown.
	Line   int `json:"line"`
	Column int `json:"column"`
	// Field is the path of the offending field from the file's root, such
	// as "connectors[0].config.secret"; empty for the document itself.
	Field string `json:"field"`
	// Message says what is wrong and what would fix it.
	Message string `json:"message"`
}

// String formats the problem as "file:line:col: field: message", leaving out
// the parts that are unknown.
func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
	}
	if p.Line > 0 {
		if b.Len() > 0 {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%d", p.Line)
		if p.Column > 0 {
			fmt.Fprintf(&b, ":%d", p.Column)
		}
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Error is returned by Load and Parse when a configuration is invalid. It
// holds every problem found, in file order.
type Error struct {
	Problems []Problem
}

// Error returns one line per problem.
func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// sortProblems orders problems by position and drops exact duplicates (an
// aliased node reached twice reports once).
func sortProblems(ps []Problem) []Problem {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	seen := make(map[Problem]bool, len(ps))
	out := ps[:0]
	for _, p := range ps {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}
