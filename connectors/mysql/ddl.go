package mysql

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// This file follows the DDL statements of the binlog (tokens in
// ddl_lex.go, their parts in ddl_parse.go): the statements
// that change tables (CREATE, ALTER, DROP, RENAME,
// TRUNCATE TABLE and DROP DATABASE), applied to a schema. A statement that
// does not change a table (CREATE INDEX, GRANT, CREATE VIEW...) is ignored;
// one that changes a captured table in a way the parser cannot follow is an
// error naming the statement, never a guess.

// ddlEffect is what a statement did to one table.
type ddlEffect struct {
	// Kind is create, alter, drop, rename or truncate.
	Kind string
	// DB and Table name the table after the statement; From, for a
	// rename, its old name as db.table.
	DB, Table, From string
}

// ddlError is a DDL statement that changes a captured table in a way the
// parser cannot follow.
type ddlError struct {
	stmt string
	err  error
}

func (e *ddlError) Error() string {
	s := e.stmt
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return fmt.Sprintf("cannot follow DDL statement %q: %v", s, e.err)
}

func (e *ddlError) Unwrap() error { return e.err }

// ddlApplier applies statements to a schema: tracked says which databases
// the schema holds, captured which tables must be followed exactly.
type ddlApplier struct {
	tracked  func(db string) bool
	captured func(db, table string) bool
}

// apply applies stmt, run in database defaultDB, to s. It returns the
// schema after it (s itself when nothing changed; s is never modified) and
// the tables it changed.
func (a ddlApplier) apply(s schema, defaultDB, stmt string) (schema, []ddlEffect, error) {
	toks, err := tokenize(stmt)
	if err != nil {
		return s, nil, &ddlError{stmt, err}
	}
	p := &parser{toks: toks, src: stmt}
	st := &ddlState{a: a, s: s, p: p, db: defaultDB}
	if err := st.statement(); err != nil {
		return s, nil, &ddlError{stmt, err}
	}
	if st.out == nil {
		return s, st.effects, nil
	}
	return st.out, st.effects, nil
}

type ddlState struct {
	a       ddlApplier
	s       schema
	out     schema // copy on first write
	p       *parser
	db      string
	effects []ddlEffect
}

func (st *ddlState) cur() schema {
	if st.out != nil {
		return st.out
	}
	return st.s
}

func (st *ddlState) write() schema {
	if st.out == nil {
		st.out = st.s.clone()
	}
	return st.out
}

func (st *ddlState) follow(db, t string) bool { return st.a.tracked(db) }

func (st *ddlState) strict(db, t string) bool { return st.a.captured(db, t) }

func (st *ddlState) statement() error {
	p := st.p
	switch {
	case p.accept("alter"):
		p.accept("online")
		p.accept("ignore")
		if !p.accept("table") {
			return nil
		}
		return st.alter()
	case p.accept("create"):
		p.accept("or", "replace")
		if p.accept("temporary") {
			return nil
		}
		if !p.accept("table") {
			return nil
		}
		return st.create()
	case p.accept("drop"):
		if p.accept("database") || p.accept("schema") {
			p.accept("if", "exists")
			db, err := p.ident()
			if err != nil {
				return err
			}
			for k, t := range st.cur() {
				if strings.EqualFold(t.DB, db) {
					delete(st.write(), k)
					st.effects = append(st.effects, ddlEffect{Kind: "drop", DB: t.DB, Table: t.Name})
				}
			}
			return nil
		}
		if p.accept("temporary") {
			return nil
		}
		if !p.accept("table") && !p.accept("tables") {
			return nil
		}
		p.accept("if", "exists")
		for {
			db, name, err := p.tableName(st.db)
			if err != nil {
				return err
			}
			if k := tableKey(db, name); st.cur()[k] != nil {
				delete(st.write(), k)
				st.effects = append(st.effects, ddlEffect{Kind: "drop", DB: db, Table: name})
			}
			if !p.acceptPunct(",") {
				return nil
			}
		}
	case p.accept("rename"):
		if !p.accept("table") && !p.accept("tables") {
			return nil
		}
		for {
			db, name, err := p.tableName(st.db)
			if err != nil {
				return err
			}
			p.accept("wait")
			if p.peek().kind == tNumber {
				p.i++
			}
			p.accept("nowait")
			if !p.accept("to") {
				return p.errorf("expected TO")
			}
			ndb, nname, err := p.tableName(st.db)
			if err != nil {
				return err
			}
			if err := st.rename(db, name, ndb, nname); err != nil {
				return err
			}
			if !p.acceptPunct(",") {
				return nil
			}
		}
	case p.accept("truncate"):
		p.accept("table")
		db, name, err := p.tableName(st.db)
		if err != nil {
			return err
		}
		if st.cur()[tableKey(db, name)] != nil {
			st.effects = append(st.effects, ddlEffect{Kind: "truncate", DB: db, Table: name})
		}
	}
	return nil
}

func (st *ddlState) rename(db, name, ndb, nname string) error {
	old := st.cur()[tableKey(db, name)]
	if old == nil {
		if st.follow(ndb, nname) && st.strict(ndb, nname) {
			return fmt.Errorf("table %s.%s, renamed to the captured %s.%s, is not in the schema history", db, name, ndb, nname)
		}
		return nil
	}
	delete(st.write(), tableKey(db, name))
	if st.follow(ndb, nname) {
		t := old.clone()
		t.DB, t.Name = ndb, nname
		st.write()[tableKey(ndb, nname)] = t
	}
	st.effects = append(st.effects, ddlEffect{Kind: "rename", DB: ndb, Table: nname, From: db + "." + name})
	return nil
}

func (st *ddlState) create() error {
	p := st.p
	p.accept("if", "not", "exists")
	db, name, err := p.tableName(st.db)
	if err != nil {
		return err
	}
	if !st.follow(db, name) {
		return nil
	}
	strict := st.strict(db, name)
	fail := func(err error) error {
		if strict {
			return err
		}
		delete(st.write(), tableKey(db, name))
		return nil
	}
	if p.accept("like") || p.isPunct("(") && p.i+1 < len(p.toks) && p.toks[p.i+1].kind == tWord && strings.EqualFold(p.toks[p.i+1].text, "like") {
		if p.acceptPunct("(") {
			p.accept("like")
		}
		sdb, sname, err := p.tableName(st.db)
		if err != nil {
			return fail(err)
		}
		src := st.cur()[tableKey(sdb, sname)]
		if src == nil {
			return fail(fmt.Errorf("table %s.%s, copied by CREATE TABLE ... LIKE, is not in the schema history", sdb, sname))
		}
		t := src.clone()
		t.DB, t.Name = db, name
		st.write()[tableKey(db, name)] = t
		st.effects = append(st.effects, ddlEffect{Kind: "create", DB: db, Table: name})
		return nil
	}
	if !p.acceptPunct("(") {
		return fail(p.errorf("CREATE TABLE without a column list"))
	}
	t := &table{DB: db, Name: name}
	for {
		if err := st.createItem(t); err != nil {
			return fail(err)
		}
		if p.acceptPunct(")") {
			break
		}
		if err := p.expectPunct(","); err != nil {
			return fail(err)
		}
	}
	for !p.eof() {
		if p.is("select") || p.is("as") || p.is("ignore") || p.is("replace") {
			return fail(p.errorf("CREATE TABLE ... SELECT"))
		}
		p.i++
	}
	if err := checkKey(t); err != nil {
		return fail(err)
	}
	st.write()[tableKey(db, name)] = t
	st.effects = append(st.effects, ddlEffect{Kind: "create", DB: db, Table: name})
	return nil
}

// checkKey fails when the primary key names a column the table does not
// have: the parser lost track of the table.
func checkKey(t *table) error {
	for _, k := range t.Key {
		if t.colIndex(k) < 0 {
			return fmt.Errorf("primary key column %s is not a column of %s", k, t.qualified())
		}
	}
	return nil
}

// createItem reads a column or a constraint of CREATE TABLE.
func (st *ddlState) createItem(t *table) error {
	p := st.p
	if p.accept("constraint") {
		if !p.is("primary") && !p.is("unique") && !p.is("foreign") && !p.is("check") {
			if _, err := p.ident(); err != nil {
				return err
			}
		}
	}
	switch {
	case p.accept("primary", "key"):
		for !p.isPunct("(") && !p.eof() {
			p.i++
		}
		k, err := p.keyColumns()
		if err != nil {
			return err
		}
		t.Key = k
		return p.skipItem()
	case p.is("key"), p.is("index"), p.is("unique"), p.is("fulltext"), p.is("spatial"), p.is("foreign"), p.is("check"), p.is("period"):
		return p.skipItem()
	}
	if p.peek().kind == tWord && (p.is("constraint")) {
		return p.skipItem()
	}
	name, err := p.ident()
	if err != nil {
		return err
	}
	c, primary, err := p.columnDef(name)
	if err != nil {
		return err
	}
	t.Columns = append(t.Columns, c)
	if primary {
		t.Key = []string{name}
	}
	return nil
}

// tableOptions are the words that start an ALTER TABLE specification that
// changes no column: the rest of the specification is skipped.
var tableOptions = []string{
	"engine", "auto_increment", "avg_row_length", "checksum", "comment", "connection", "data", "delay_key_write",
	"encrypted", "encryption_key_id", "ieee_encryption", "index", "insert_method", "key_block_size", "max_rows", "min_rows",
	"pack_keys", "page_checksum", "password", "row_format", "stats_auto_recalc", "stats_persistent", "stats_sample_pages",
	"tablespace", "transactional", "union", "algorithm", "lock", "force", "order", "enable", "disable", "discard", "import",
	"partition", "coalesce", "reorganize", "exchange", "analyze", "check", "optimize", "rebuild", "repair", "remove",
	"truncate", "default", "character", "charset", "collate", "convert", "with", "without", "validation", "secondary_engine",
	"compression", "nowait", "wait", "alter", "storage", "sequence", "auto_extend_size", "engine_attribute",
}

func (st *ddlState) alter() error {
	p := st.p
	p.accept("if", "exists")
	db, name, err := p.tableName(st.db)
	if err != nil {
		return err
	}
	if !st.follow(db, name) {
		return nil
	}
	k := tableKey(db, name)
	old := st.cur()[k]
	strict := st.strict(db, name)
	if old == nil {
		if strict {
			return fmt.Errorf("table %s.%s is not in the schema history", db, name)
		}
		return nil
	}
	t := old.clone()
	kind := "alter"
	renamed := ""
	for !p.eof() {
		if err := st.alterSpec(t, &renamed); err != nil {
			if strict {
				return err
			}
			// An uncaptured table the parser cannot follow is forgotten:
			// it cannot become captured without a rename the next
			// statement would report.
			delete(st.write(), k)
			return nil
		}
		if !p.acceptPunct(",") {
			break
		}
	}
	if !p.eof() && !p.is("partition") {
		if strict {
			return p.errorf("unexpected")
		}
	}
	if err := checkKey(t); err != nil {
		if strict {
			return err
		}
		delete(st.write(), k)
		return nil
	}
	w := st.write()
	if renamed != "" {
		delete(w, k)
		kind = "rename"
		if !st.follow(t.DB, t.Name) {
			st.effects = append(st.effects, ddlEffect{Kind: kind, DB: t.DB, Table: t.Name, From: db + "." + name})
			return nil
		}
	}
	w[tableKey(t.DB, t.Name)] = t
	e := ddlEffect{Kind: kind, DB: t.DB, Table: t.Name}
	if renamed != "" {
		e.From = db + "." + name
	}
	st.effects = append(st.effects, e)
	return nil
}

// alterSpec applies one specification of an ALTER TABLE to t (a RENAME
// TO sets *renamed). alterSpec reads best whole: one case per
// specification of MySQL's and MariaDB's grammar, in the order the
// manuals list them, each short; split up, the grammar would be hard to
// check against theirs.
func (st *ddlState) alterSpec(t *table, renamed *string) error {
	p := st.p
	switch {
	case p.accept("add"):
		if p.accept("primary", "key") || p.is("constraint") && st.constraintPrimary() {
			for !p.isPunct("(") && !p.eof() {
				p.i++
			}
			k, err := p.keyColumns()
			if err != nil {
				return err
			}
			t.Key = k
			return p.skipItem()
		}
		if p.is("index") || p.is("key") || p.is("unique") || p.is("fulltext") || p.is("spatial") || p.is("foreign") || p.is("check") || p.is("constraint") || p.is("partition") || p.is("period") {
			return p.skipItem()
		}
		if p.is("system", "versioning") {
			return errors.New("ADD SYSTEM VERSIONING adds the hidden columns row_start and row_end, which the schema history does not model")
		}
		p.accept("column")
		ifNot := p.accept("if", "not", "exists")
		if p.acceptPunct("(") {
			for {
				n, err := p.ident()
				if err != nil {
					return err
				}
				c, primary, err := p.columnDef(n)
				if err != nil {
					return err
				}
				if !(ifNot && t.colIndex(n) >= 0) {
					t.Columns = append(t.Columns, c)
				}
				if primary {
					t.Key = []string{n}
				}
				if p.acceptPunct(")") {
					return nil
				}
				if err := p.expectPunct(","); err != nil {
					return err
				}
			}
		}
		n, err := p.ident()
		if err != nil {
			return err
		}
		c, primary, err := p.columnDef(n)
		if err != nil {
			return err
		}
		if ifNot && t.colIndex(n) >= 0 {
			return p.skipItem()
		}
		if err := st.place(t, -1, c); err != nil {
			return err
		}
		if primary {
			t.Key = []string{n}
		}
		return nil
	case p.accept("drop"):
		switch {
		case p.accept("primary", "key"):
			t.Key = nil
			return nil
		case p.is("system", "versioning"):
			return errors.New("DROP SYSTEM VERSIONING drops hidden columns the schema history does not model")
		case p.is("index"), p.is("key"), p.is("foreign"), p.is("constraint"), p.is("check"), p.is("partition"), p.is("period"):
			return p.skipItem()
		}
		p.accept("column")
		ifExists := p.accept("if", "exists")
		n, err := p.ident()
		if err != nil {
			return err
		}
		i := t.colIndex(n)
		if i < 0 {
			if ifExists {
				return p.skipItem()
			}
			return fmt.Errorf("column %s of %s is not in the schema history", n, t.qualified())
		}
		t.Columns = slices.Delete(t.Columns, i, i+1)
		t.Key = slices.DeleteFunc(t.Key, func(k string) bool { return strings.EqualFold(k, n) })
		if len(t.Key) == 0 {
			t.Key = nil
		}
		p.accept("restrict")
		p.accept("cascade")
		return nil
	case p.accept("modify"):
		p.accept("column")
		ifExists := p.accept("if", "exists")
		n, err := p.ident()
		if err != nil {
			return err
		}
		i := t.colIndex(n)
		c, primary, err := p.columnDef(n)
		if err != nil {
			return err
		}
		if i < 0 {
			if ifExists {
				return p.skipItem()
			}
			return fmt.Errorf("column %s of %s is not in the schema history", n, t.qualified())
		}
		c.Name = t.Columns[i].Name
		if err := st.place(t, i, c); err != nil {
			return err
		}
		if primary {
			t.Key = []string{c.Name}
		}
		return nil
	case p.accept("change"):
		p.accept("column")
		ifExists := p.accept("if", "exists")
		from, err := p.ident()
		if err != nil {
			return err
		}
		to, err := p.ident()
		if err != nil {
			return err
		}
		i := t.colIndex(from)
		c, primary, err := p.columnDef(to)
		if err != nil {
			return err
		}
		if i < 0 {
			if ifExists {
				return p.skipItem()
			}
			return fmt.Errorf("column %s of %s is not in the schema history", from, t.qualified())
		}
		for j, k := range t.Key {
			if strings.EqualFold(k, from) {
				t.Key[j] = to
			}
		}
		if err := st.place(t, i, c); err != nil {
			return err
		}
		if primary {
			t.Key = []string{to}
		}
		return nil
	case p.accept("rename"):
		switch {
		case p.accept("column"):
			from, err := p.ident()
			if err != nil {
				return err
			}
			if !p.accept("to") {
				return p.errorf("expected TO")
			}
			to, err := p.ident()
			if err != nil {
				return err
			}
			i := t.colIndex(from)
			if i < 0 {
				return fmt.Errorf("column %s of %s is not in the schema history", from, t.qualified())
			}
			t.Columns[i].Name = to
			for j, k := range t.Key {
				if strings.EqualFold(k, from) {
					t.Key[j] = to
				}
			}
			return nil
		case p.is("index"), p.is("key"):
			return p.skipItem()
		}
		if !p.accept("to") {
			p.accept("as")
		}
		db, name, err := p.tableName(t.DB)
		if err != nil {
			return err
		}
		*renamed = t.qualified()
		t.DB, t.Name = db, name
		return nil
	}
	for _, w := range tableOptions {
		if p.is(w) {
			return p.skipItem()
		}
	}
	return p.errorf("unknown ALTER TABLE specification")
}

// constraintPrimary reports whether "CONSTRAINT [name] PRIMARY KEY" comes
// next, consuming it when it does.
func (st *ddlState) constraintPrimary() bool {
	p := st.p
	save := p.i
	p.accept("constraint")
	if !p.is("primary") {
		_, _ = p.ident()
	}
	if p.accept("primary", "key") {
		return true
	}
	p.i = save
	return false
}

// place puts c at index i (a replacement) or appends it (i < 0), then moves
// it as a FIRST or AFTER clause says.
func (st *ddlState) place(t *table, i int, c column) error {
	p := st.p
	if i >= 0 {
		t.Columns = slices.Delete(t.Columns, i, i+1)
	} else {
		i = len(t.Columns)
	}
	switch {
	case p.accept("first"):
		i = 0
	case p.accept("after"):
		n, err := p.ident()
		if err != nil {
			return err
		}
		j := t.colIndex(n)
		if j < 0 {
			return fmt.Errorf("column %s of %s, named by AFTER, is not in the schema history", n, t.qualified())
		}
		i = j + 1
	}
	t.Columns = slices.Insert(t.Columns, i, c)
	return nil
}
