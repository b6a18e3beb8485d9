package http

import (
	"errors"
	"net/url"
	"strings"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/rules"
)

// segment is a literal part of a template, or the code of one of its
// {{ expression }} parts.
type segment struct {
	text string
	expr bool
}

// splitTemplate splits s into its literal and {{ expression }} parts. An
// expression cannot hold "}}"; "{{" that is never closed is an error.
func splitTemplate(s string) ([]segment, error) {
	var out []segment
	for {
		open := strings.Index(s, "{{")
		if open < 0 {
			if s != "" {
				out = append(out, segment{text: s})
			}
			return out, nil
		}
		if open > 0 {
			out = append(out, segment{text: s[:open]})
		}
		rest := s[open+2:]
		end := strings.Index(rest, "}}")
		if end < 0 {
			return nil, errors.New(`has a "{{" that is not closed by "}}"`)
		}
		code := strings.TrimSpace(rest[:end])
		if code == "" {
			return nil, errors.New(`has an empty "{{ }}": write an expression inside, such as {{ event.subject }}`)
		}
		out = append(out, segment{text: code, expr: true})
		s = rest[end+2:]
	}
}

// template is a compiled url or header value: literal text and
// expressions over the event, whose text is escaped for where it stands.
type template struct {
	// constant is the value of a template with no expression.
	constant string
	parts    []part
}

// part is a literal, or an expression (prog) whose text goes through
// escape.
type part struct {
	literal string
	prog    *rules.EventProgram
	escape  func(string) string
}

// compileURL compiles the url: the text of an expression before the query
// is escaped as a path segment, in the query as a query value.
func compileURL(s string) (*template, error) {
	inQuery := false
	return compileTemplate("url", s, func(literal string) func(string) string {
		if strings.ContainsAny(literal, "?") {
			inQuery = true
		}
		if inQuery {
			return url.QueryEscape
		}
		return url.PathEscape
	})
}

// compileHeader compiles a header value: expressions' text goes as it is
// (a value holding a line break fails the delivery).
func compileHeader(name, s string) (*template, error) {
	return compileTemplate("headers."+name, s, func(string) func(string) string { return nil })
}

// compileTemplate compiles s, the value of the key at path. escapeAfter
// sees each literal in order and returns the escaping of the expressions
// that follow it.
func compileTemplate(path, s string, escapeAfter func(literal string) func(string) string) (*template, error) {
	segs, err := splitTemplate(s)
	if err != nil {
		return nil, core.FieldErrorf(path, "%v", err)
	}
	t := &template{}
	escape := escapeAfter("")
	var errs []error
	for _, seg := range segs {
		if !seg.expr {
			t.parts = append(t.parts, part{literal: seg.text})
			escape = escapeAfter(seg.text)
			continue
		}
		prog, err := rules.CompileEvent(path, seg.text)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		t.parts = append(t.parts, part{prog: prog, escape: escape})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(t.parts) == 1 && t.parts[0].prog == nil {
		t.constant, t.parts = t.parts[0].literal, nil
	}
	return t, nil
}

// render returns the template's value for the event env holds.
func (t *template) render(env *rules.EventEnv) (string, error) {
	if t.parts == nil {
		return t.constant, nil
	}
	var b strings.Builder
	for _, p := range t.parts {
		if p.prog == nil {
			b.WriteString(p.literal)
			continue
		}
		s, err := p.prog.Text(env)
		if err != nil {
			return "", err
		}
		if p.escape != nil {
			s = p.escape(s)
		}
		b.WriteString(s)
	}
	return b.String(), nil
}

// dynamic reports whether the template holds an expression.
func (t *template) dynamic() bool { return t.parts != nil }
