package sqlsink

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
)

// PostgreSQL's insert mode has a fast path: the rows of a transaction's
// jobs are sent as one COPY into the table, a single statement that the
// server commits on its own (COPY's text format, every value parsed by its
// column type's input function, as the statements' casts parse the same
// text). COPY writes new rows only: when any row cannot be written, a
// duplicate id (a redelivery) or a value the table refuses, the COPY
// writes nothing and the jobs take the statements' path, which leaves a
// duplicate as it is and refuses a bad row alone. After such a miss, the
// next copySkip transactions take the statements' path straight away, so
// that a run of redeliveries does not pay for a COPY each time.
//
// Upsert mode has the same path through a staging table: in one
// transaction, the rows are copied into a temporary table of the
// columns' types (emptied at each commit), each with its round: the
// first row of a key in the group is in round 0, its second in round 1,
// and so on. Then the statements' own INSERT ... ON CONFLICT DO UPDATE
// writes each round in turn, selecting from the stage, so that the rows
// of a key are applied in order, as the statements apply them, and no
// statement holds a key twice. A group with a delete takes the
// statements.

// copySkip is how many transactions skip COPY after one that missed.
const copySkip = 16

// copier is the state of the COPY path of one sink.
type copier struct {
	// stmt is the COPY statement; empty when the path is off (another
	// database).
	stmt string
	// stage is upsert mode's staging table, created by create and
	// written to the table, a round at a time, by mergeHead, the round
	// and mergeTail; empty in insert mode.
	stage, create, mergeHead, mergeTail string
	// skip counts the transactions still to skip COPY.
	skip atomic.Int64
	bufs sync.Pool
}

// newCopier returns the COPY path of t in dialect d, off unless d is
// PostgreSQL. write is the statements' write statement.
func newCopier(d dialect, t *table, write string) *copier {
	c := &copier{}
	if d.driver != DriverPostgres {
		c.bufs.New = func() any { return new(bytes.Buffer) }
		return c
	}
	cols := d.columnList(t, "")
	c.stmt = "COPY " + d.tableName(t) + " (" + cols + ") FROM STDIN"
	if t.upsert {
		h := fnv.New32a()
		h.Write([]byte(t.name + "\x00" + cols))
		c.stage = fmt.Sprintf("tributary_stage_%08x", h.Sum32())
		c.create = "CREATE TEMP TABLE IF NOT EXISTS " + c.stage + " ON COMMIT DELETE ROWS AS SELECT " + cols + ", 0 AS tributary_round FROM " + d.tableName(t) + " WITH NO DATA"
		c.stmt = "COPY " + c.stage + " (" + cols + ", tributary_round) FROM STDIN"
		// The write statement with the stage's round r as its rows:
		// mergeHead, r, mergeTail.
		src := "SELECT " + cols + " FROM " + c.stage + " WHERE tributary_round = "
		c.mergeHead, c.mergeTail, _ = strings.Cut(strings.Replace(write, d.unnest(t), src+"\x00", 1), "\x00")
	}
	c.bufs.New = func() any { return new(bytes.Buffer) }
	return c
}

// try reports whether a transaction takes the COPY path.
func (c *copier) try() bool {
	if c.stmt == "" {
		return false
	}
	if c.skip.Load() > 0 {
		c.skip.Add(-1)
		return false
	}
	return true
}

// copyable reports whether the rows of jobs may take the COPY path: in
// upsert mode, only writes.
func (s *Sink) copyable(jobs []*job) bool {
	if s.copier.stage == "" {
		return true
	}
	for _, j := range jobs {
		for _, r := range j.rows {
			if r.del {
				return false
			}
		}
	}
	return true
}

// copyGroup writes every row of jobs with one COPY, which commits them all
// or none. It returns nil once they are committed; any error means none
// is, and the jobs take the statements' path.
func (s *Sink) copyGroup(ctx context.Context, db *sql.DB, jobs []*job) error {
	buf := s.copier.bufs.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= 8<<20 {
			buf.Reset()
			s.copier.bufs.Put(buf)
		}
	}()
	last := s.copyText(buf, jobs)
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("sql sink %q: connect for COPY: %w", s.name, err)
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("sql sink %q: the PostgreSQL connection is a %T, not pgx's", s.name, dc)
		}
		pc := c.Conn().PgConn()
		if s.copier.stage == "" {
			_, err := pc.CopyFrom(ctx, buf, s.copier.stmt)
			return err
		}
		err := pc.Exec(ctx, "BEGIN; "+s.copier.create).Close()
		if err == nil {
			_, err = pc.CopyFrom(ctx, buf, s.copier.stmt)
		}
		if err == nil {
			var q strings.Builder
			for r := range last + 1 {
				q.WriteString(s.copier.mergeHead)
				q.WriteString(strconv.Itoa(r))
				q.WriteString(s.copier.mergeTail)
				q.WriteString("; ")
			}
			q.WriteString("COMMIT")
			err = pc.Exec(ctx, q.String()).Close()
		}
		if err != nil && !pc.IsClosed() {
			// Ends the transaction if a statement failed in it; after
			// a failed COMMIT there is none, and nothing to undo.
			_ = pc.Exec(ctx, "ROLLBACK").Close()
		}
		return err
	})
	if err != nil {
		s.copier.skip.Store(copySkip)
		return fmt.Errorf("sql sink %q: COPY into table %s: %w", s.name, s.cfg.Table, err)
	}
	return nil
}

// copyText writes the rows of jobs to buf as COPY's text, and returns
// the last round (upsert mode; 0 in insert mode).
func (s *Sink) copyText(buf *bytes.Buffer, jobs []*job) int {
	// rounds counts the rows of each key so far (upsert mode).
	var rounds map[string]int
	if s.copier.stage != "" {
		rounds = map[string]int{}
	}
	last := 0
	for _, j := range jobs {
		for _, r := range j.rows {
			line := appendCopyRow(buf.AvailableBuffer(), r.args)
			if rounds != nil {
				n := rounds[r.key]
				rounds[r.key] = n + 1
				last = max(last, n)
				line = append(strconv.AppendInt(append(line[:len(line)-1], '\t'), int64(n), 10), '\n')
			}
			buf.Write(line)
		}
	}
	return last
}

// appendCopyRow appends the values of one row as a line of COPY's text
// format: tab-separated, \N for NULL.
func appendCopyRow(b []byte, args []any) []byte {
	for i, v := range args {
		if i > 0 {
			b = append(b, '\t')
		}
		b = appendCopyValue(b, v)
	}
	return append(b, '\n')
}

// appendCopyValue appends v, a converted value, as the text its column's
// input function reads: the text pgText gives, escaped for COPY.
func appendCopyValue(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, `\N`...)
	case string:
		return appendCopyText(b, x)
	case int64:
		return strconv.AppendInt(b, x, 10)
	case float64:
		return strconv.AppendFloat(b, x, 'g', -1, 64)
	case bool:
		return strconv.AppendBool(b, x)
	case time.Time:
		return x.UTC().AppendFormat(b, time.RFC3339Nano)
	}
	return appendCopyText(b, *pgText(v))
}

// appendCopyText appends s escaped for COPY's text format: a backslash,
// a tab, a newline and a carriage return are written as escapes.
func appendCopyText(b []byte, s string) []byte {
	for {
		i := copyPlain(s)
		b = append(b, s[:i]...)
		if i == len(s) {
			return b
		}
		var esc byte
		switch s[i] {
		case '\\':
			esc = '\\'
		case '\t':
			esc = 't'
		case '\n':
			esc = 'n'
		case '\r':
			esc = 'r'
		}
		b = append(b, '\\', esc)
		s = s[i+1:]
	}
}

// copyPlain returns the length of the start of s that COPY's text format
// takes as it is: up to the first backslash, tab, newline or carriage
// return.
func copyPlain(s string) int {
	i := 0
	// Eight bytes at a time while none is a backslash or below '\r'+1
	// (which holds the tab and the newline).
	for ; i+8 <= len(s); i += 8 {
		x := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		if hasLess(x, '\r'+1) || hasByte(x, '\\') {
			break
		}
	}
	for ; i < len(s); i++ {
		switch s[i] {
		case '\\', '\t', '\n', '\r':
			return i
		}
	}
	return i
}
