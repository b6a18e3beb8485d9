package mysql

import (
	"errors"
	"strings"
)

// This file splits DDL statements into tokens.

type tokKind uint8

const (
	tWord   tokKind = iota // an unquoted word: keyword or identifier
	tQuoted                // a `quoted` identifier
	tString                // a 'string' or "string"
	tNumber
	tPunct
)

type token struct {
	kind tokKind
	text string
}

// errUnterminated is returned for a statement that ends inside a quote or
// comment.
var errUnterminated = errors.New("unterminated quote or comment")

// tokenize splits a statement into tokens. Comments are dropped, except
// the executable /*!NNNNN ... */ comments MySQL tools write, whose content
// counts.
func tokenize(s string) ([]token, error) {
	var out []token
	exec := 0
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			i++
		case c == '#' || c == '-' && strings.HasPrefix(s[i:], "--") && (i+2 == len(s) || s[i+2] == ' ' || s[i+2] == '\t' || s[i+2] == '\n' || s[i+2] == '\r'):
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '/' && strings.HasPrefix(s[i:], "/*!") || strings.HasPrefix(s[i:], "/*M!"):
			i += 3
			if s[i-1] != '!' {
				i++
			}
			for i < len(s) && s[i] >= '0' && s[i] <= '9' {
				i++
			}
			exec++
		case c == '/' && strings.HasPrefix(s[i:], "/*"):
			j := strings.Index(s[i+2:], "*/")
			if j < 0 {
				return nil, errUnterminated
			}
			i += j + 4
		case c == '*' && exec > 0 && strings.HasPrefix(s[i:], "*/"):
			exec--
			i += 2
		case c == '`':
			var b strings.Builder
			i++
			for {
				if i >= len(s) {
					return nil, errUnterminated
				}
				if s[i] == '`' {
					if i+1 < len(s) && s[i+1] == '`' {
						b.WriteByte('`')
						i += 2
						continue
					}
					i++
					break
				}
				b.WriteByte(s[i])
				i++
			}
			out = append(out, token{tQuoted, b.String()})
		case c == '\'' || c == '"':
			var b strings.Builder
			q := c
			i++
			for {
				if i >= len(s) {
					return nil, errUnterminated
				}
				ch := s[i]
				if ch == '\\' && i+1 < len(s) {
					b.WriteByte(unescape(s[i+1]))
					i += 2
					continue
				}
				if ch == q {
					if i+1 < len(s) && s[i+1] == q {
						b.WriteByte(q)
						i += 2
						continue
					}
					i++
					break
				}
				b.WriteByte(ch)
				i++
			}
			out = append(out, token{tString, b.String()})
		case c >= '0' && c <= '9':
			j := i
			for j < len(s) && (isWordByte(s[j]) || s[j] == '.') {
				j++
			}
			out = append(out, token{tNumber, s[i:j]})
			i = j
		case isWordByte(c):
			j := i
			for j < len(s) && isWordByte(s[j]) {
				j++
			}
			out = append(out, token{tWord, s[i:j]})
			i = j
		default:
			out = append(out, token{tPunct, string(c)})
			i++
		}
	}
	return out, nil
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '$' || c >= 0x80
}

func unescape(c byte) byte {
	switch c {
	case 'n':
		return '\n'
	case 't':
		return '\t'
	case 'r':
		return '\r'
	case '0':
		return 0
	case 'b':
		return '\b'
	case 'Z':
		return 26
	}
	return c
}
