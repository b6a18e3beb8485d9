package mysql

import (
	"fmt"
	"strings"
)

// This file reads the parts of DDL statements: names, data types, column
// definitions and key column lists.

type parser struct {
	toks []token
	i    int
	src  string
}

func (p *parser) eof() bool {
	return p.i >= len(p.toks) || p.toks[p.i].kind == tPunct && p.toks[p.i].text == ";"
}

func (p *parser) peek() token {
	if p.eof() {
		return token{tPunct, ""}
	}
	return p.toks[p.i]
}

// is reports whether the next tokens are the keywords kws.
func (p *parser) is(kws ...string) bool {
	for k, kw := range kws {
		j := p.i + k
		if j >= len(p.toks) || p.toks[j].kind != tWord || !strings.EqualFold(p.toks[j].text, kw) {
			return false
		}
	}
	return true
}

// accept consumes the keywords kws when they come next.
func (p *parser) accept(kws ...string) bool {
	if p.is(kws...) {
		p.i += len(kws)
		return true
	}
	return false
}

func (p *parser) isPunct(s string) bool {
	return !p.eof() && p.toks[p.i].kind == tPunct && p.toks[p.i].text == s
}

func (p *parser) acceptPunct(s string) bool {
	if p.isPunct(s) {
		p.i++
		return true
	}
	return false
}

func (p *parser) errorf(format string, args ...any) error {
	at := "the end"
	if !p.eof() {
		at = fmt.Sprintf("%q", p.toks[p.i].text)
	}
	return fmt.Errorf(format+" (at %s)", append(args, at)...)
}

func (p *parser) expectPunct(s string) error {
	if !p.acceptPunct(s) {
		return p.errorf("expected %q", s)
	}
	return nil
}

// ident reads an identifier.
func (p *parser) ident() (string, error) {
	if p.eof() {
		return "", p.errorf("expected a name")
	}
	t := p.toks[p.i]
	if t.kind != tWord && t.kind != tQuoted && !(t.kind == tNumber && isWordByte(t.text[len(t.text)-1])) {
		return "", p.errorf("expected a name")
	}
	p.i++
	return t.text, nil
}

// tableName reads [db.]table.
func (p *parser) tableName(defaultDB string) (db, name string, err error) {
	a, err := p.ident()
	if err != nil {
		return "", "", err
	}
	if p.acceptPunct(".") {
		b, err := p.ident()
		if err != nil {
			return "", "", err
		}
		return a, b, nil
	}
	return defaultDB, a, nil
}

// skipGroup skips a parenthesized group whose "(" is next.
func (p *parser) skipGroup() error {
	depth := 0
	for !p.eof() {
		t := p.toks[p.i]
		p.i++
		if t.kind == tPunct {
			switch t.text {
			case "(":
				depth++
			case ")":
				depth--
				if depth == 0 {
					return nil
				}
			}
		}
	}
	return p.errorf("unbalanced parentheses")
}

// skipItem skips to the next comma or closing parenthesis at this depth.
func (p *parser) skipItem() error {
	for !p.eof() {
		if p.isPunct(",") || p.isPunct(")") {
			return nil
		}
		if p.isPunct("(") {
			if err := p.skipGroup(); err != nil {
				return err
			}
			continue
		}
		p.i++
	}
	return nil
}

// columnType reads a data type and its modifiers (UNSIGNED, ZEROFILL,
// CHARACTER SET, COLLATE...).
func (p *parser) columnType() (column, error) {
	var c column
	w, err := p.ident()
	if err != nil {
		return c, err
	}
	name := strings.ToLower(w)
	switch {
	case name == "double" && p.accept("precision"):
	case name == "national" || name == "character" && p.is("varying"):
		if p.accept("varying") {
			name = "varchar"
		} else if nw, err := p.ident(); err == nil {
			name = strings.ToLower(nw)
			if p.accept("varying") {
				name = "varchar"
			}
		}
	case name == "long" && (p.is("varchar") || p.is("varbinary")):
		nw, _ := p.ident()
		if strings.EqualFold(nw, "varbinary") {
			name = "mediumblob"
		}
	case name == "serial":
		return column{Type: "bigint", Unsigned: true}, nil
	}
	if a, ok := typeAliases[name]; ok {
		name = a
	}
	if name == "nchar" {
		name = "char"
	}
	if !knownTypes[name] {
		return c, fmt.Errorf("unknown data type %q", w)
	}
	c.Type = name
	var args []token
	if p.acceptPunct("(") {
		for !p.acceptPunct(")") {
			if p.eof() {
				return c, p.errorf("unterminated type arguments")
			}
			t := p.toks[p.i]
			p.i++
			if t.kind != tPunct {
				args = append(args, t)
			}
		}
	}
	switch name {
	case "enum", "set":
		for _, a := range args {
			if a.kind != tString {
				return c, fmt.Errorf("%s label %q is not a string", name, a.text)
			}
			c.Labels = append(c.Labels, a.text)
		}
	case "bit", "binary":
		c.Length = 1
		if len(args) > 0 {
			fmt.Sscanf(args[0].text, "%d", &c.Length)
		}
	case "datetime", "timestamp", "time":
		if len(args) > 0 {
			fmt.Sscanf(args[0].text, "%d", &c.Length)
		}
	}
	if w := strings.ToLower(w); w == "bool" || w == "boolean" {
		c.Length = 1
	}
	for {
		switch {
		case p.accept("unsigned"), p.accept("zerofill"):
			c.Unsigned = true
		case p.accept("signed"):
		case p.accept("character", "set"), p.accept("charset"), p.accept("collate"), p.accept("char", "set"):
			cs, err := p.ident()
			if err != nil {
				return c, err
			}
			if strings.EqualFold(cs, "binary") {
				c.Type = binaryOf(c.Type)
			}
		case p.accept("binary"), p.accept("ascii"), p.accept("unicode"):
		case p.accept("byte"):
			c.Type = binaryOf(c.Type)
		default:
			return c, nil
		}
	}
}

// binaryOf returns the binary type of a character type (CHAR BYTE,
// CHARACTER SET binary).
func binaryOf(t string) string {
	switch t {
	case "char":
		return "binary"
	case "varchar":
		return "varbinary"
	case "tinytext", "text", "mediumtext", "longtext":
		return strings.TrimSuffix(t, "text") + "blob"
	}
	return t
}

// columnDef reads a column definition after its name: the type and its
// attributes, noting an inline PRIMARY KEY and a generated column.
func (p *parser) columnDef(name string) (c column, primary bool, err error) {
	c, err = p.columnType()
	if err != nil {
		return c, false, fmt.Errorf("column %s: %w", name, err)
	}
	c.Name = name
	for !p.eof() && !p.isPunct(",") && !p.isPunct(")") && !p.is("first") && !p.is("after") {
		switch {
		case p.accept("primary", "key"):
			primary = true
		case p.accept("generated", "always"), p.is("as") && p.i+1 < len(p.toks) && p.toks[p.i+1].text == "(":
			c.Generated = true
			p.accept("as")
		case p.isPunct("("):
			if err := p.skipGroup(); err != nil {
				return c, false, err
			}
		default:
			p.i++
		}
	}
	return c, primary, nil
}

// keyColumns reads "(a, b(10) DESC, ...)" as column names.
func (p *parser) keyColumns() ([]string, error) {
	if err := p.expectPunct("("); err != nil {
		return nil, err
	}
	var out []string
	for {
		n, err := p.ident()
		if err != nil {
			return nil, err
		}
		out = append(out, n)
		if err := p.skipItem(); err != nil {
			return nil, err
		}
		if p.acceptPunct(")") {
			return out, nil
		}
		if err := p.expectPunct(","); err != nil {
			return nil, err
		}
	}
}
