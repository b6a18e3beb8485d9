package sql

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tributary/tributary/adapters/poll"
	"github.com/tributary/tributary/core"
)

// fetcher reads a table for the poll adapter.
type fetcher struct {
	cfg    *Config
	q      *compiled
	db     *sql.DB
	paged  bool
	source core.SourceInfo
	// secrets are what errors must not quote; see dsnSecrets.
	secrets []string
}

var _ poll.Fetcher = (*fetcher)(nil)

// Fetch runs the query: in cursor mode page after page, keyset-paged on
// (cursor, key); in snapshot mode once, streamed in pages.
func (f *fetcher) Fetch(ctx context.Context, req poll.Request, emit func([]poll.Record) error) error {
	vars := queryVars{Cursor: req.Cursor != nil}
	values := map[string]any{ParamCursor: req.Cursor, ParamLimit: f.cfg.PageSize}
	for {
		q, args, err := f.q.render(vars, values)
		if err != nil {
			return core.Fatal(fmt.Errorf("render query: %w", err))
		}
		n, last, err := f.query(ctx, req.Mode, q, args, emit)
		if err != nil {
			return err
		}
		if req.Mode != poll.ModeCursor || !f.paged || n < f.cfg.PageSize {
			return nil
		}
		vars.Cursor, vars.After = true, true
		values[ParamCursor], values[ParamKey] = bindable(last.Cursor), bindable(last.Key[f.keyName(0)])
	}
}

// bindable converts a value read back into a bind parameter.
func bindable(v any) any {
	if n, ok := v.(json.Number); ok {
		return string(n)
	}
	return v
}

func (f *fetcher) keyName(i int) string { return unquote(f.cfg.Key[i]) }

// query runs one statement and emits its rows in pages. It returns the
// number of rows and the last record.
func (f *fetcher) query(ctx context.Context, mode poll.Mode, q string, args []any, emit func([]poll.Record) error) (int, poll.Record, error) {
	qctx, cancel := context.WithTimeout(ctx, f.cfg.QueryTimeout)
	defer cancel()
	var last poll.Record
	rows, err := f.db.QueryContext(qctx, q, args...)
	if err != nil {
		return 0, last, f.queryError(ctx, err)
	}
	defer rows.Close()
	cols, err := rows.ColumnTypes()
	if err != nil {
		return 0, last, f.queryError(ctx, err)
	}
	names := make([]string, len(cols))
	kinds := make([]valueKind, len(cols))
	for i, c := range cols {
		names[i] = c.Name()
		kinds[i] = kindOf(c.DatabaseTypeName())
	}
	keyIdx := make([]int, len(f.cfg.Key))
	for i := range f.cfg.Key {
		if keyIdx[i] = column(names, f.keyName(i)); keyIdx[i] < 0 {
			return 0, last, core.Fatal(fmt.Errorf("key column %q is not in the query's result (columns %s)", f.cfg.Key[i], strings.Join(names, ", ")))
		}
	}
	curIdx := -1
	if mode == poll.ModeCursor {
		if curIdx = column(names, unquote(f.cfg.Cursor.Column)); curIdx < 0 {
			return 0, last, core.Fatal(fmt.Errorf("cursor column %q is not in the query's result (columns %s)", f.cfg.Cursor.Column, strings.Join(names, ", ")))
		}
	}
	raw := make([]any, len(cols))
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	page := make([]poll.Record, 0, min(f.cfg.PageSize, 4096))
	n := 0
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return n, last, f.queryError(ctx, err)
		}
		data := make(map[string]any, len(cols))
		for i, v := range raw {
			vals[i] = convert(v, kinds[i])
			data[names[i]] = vals[i]
		}
		key := make(map[string]any, len(keyIdx))
		for _, i := range keyIdx {
			key[names[i]] = vals[i]
		}
		rec := poll.Record{Key: key, Data: data}
		if curIdx >= 0 {
			rec.Cursor = vals[curIdx]
		}
		page = append(page, rec)
		n++
		if len(page) == cap(page) {
			last = page[len(page)-1]
			if err := emit(page); err != nil {
				return n, last, err
			}
			page = page[:0] // the Source keeps no reference to a page after emit
		}
	}
	if err := rows.Err(); err != nil {
		return n, last, f.queryError(ctx, err)
	}
	if len(page) > 0 {
		last = page[len(page)-1]
		if err := emit(page); err != nil {
			return n, last, err
		}
	}
	return n, last, nil
}

func (f *fetcher) queryError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	what := f.cfg.Table
	if what == "" {
		what = "query"
	}
	return hide(classify(fmt.Errorf("query %s: %w", what, err)), f.secrets)
}

// column finds name among the result columns, ignoring case and a table
// prefix.
func column(names []string, name string) int {
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		name = name[i+1:]
	}
	for i, n := range names {
		if strings.EqualFold(n, name) {
			return i
		}
	}
	return -1
}

func unquote(s string) string {
	if i := strings.LastIndexByte(s, '.'); i >= 0 {
		s = s[i+1:]
	}
	return strings.Trim(s, "\"`[]")
}

// valueKind says how to read a column drivers return as bytes.
type valueKind int

const (
	kindText valueKind = iota
	kindBinary
	kindInt
	kindFloat
	kindDecimal
)

func kindOf(dbType string) valueKind {
	t := strings.ToUpper(dbType)
	switch {
	case strings.Contains(t, "BLOB") || strings.Contains(t, "BINARY") || t == "BYTEA" || t == "RAW" || t == "IMAGE":
		return kindBinary
	case strings.HasSuffix(t, "INT") || t == "INTEGER" || t == "INT2" || t == "INT4" || t == "INT8" || t == "SERIAL" || t == "BIGSERIAL" || t == "UNSIGNED BIGINT" || strings.HasPrefix(t, "UNSIGNED"):
		return kindInt
	case t == "FLOAT" || t == "DOUBLE" || t == "REAL" || t == "FLOAT4" || t == "FLOAT8" || t == "DOUBLE PRECISION":
		return kindFloat
	case t == "DECIMAL" || t == "NUMERIC" || t == "NUMBER" || t == "MONEY":
		return kindDecimal
	}
	return kindText
}

// convert turns a scanned value into a change value: text as string,
// numbers as int64, float64 or json.Number (exact decimals), bytes of
// binary columns copied.
func convert(v any, k valueKind) any {
	switch x := v.(type) {
	case []byte:
		switch k {
		case kindBinary:
			return append([]byte(nil), x...)
		case kindInt:
			if n, err := strconv.ParseInt(string(x), 10, 64); err == nil {
				return n
			}
		case kindFloat:
			if n, err := strconv.ParseFloat(string(x), 64); err == nil {
				return n
			}
		case kindDecimal:
			return json.Number(string(x))
		}
		return string(x)
	case string:
		if k == kindDecimal {
			if _, err := strconv.ParseFloat(x, 64); err == nil {
				return json.Number(x)
			}
		}
		return v // as it is: boxing x again would allocate
	case time.Time:
		return v
	case int:
		return int64(x)
	case int32:
		return int64(x)
	case int16:
		return int64(x)
	case int8:
		return int64(x)
	case uint8:
		return int64(x)
	case uint16:
		return int64(x)
	case uint32:
		return int64(x)
	case float32:
		return float64(x)
	}
	return v
}
