package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// toaster fills in the unchanged TOAST columns of an update, which pgoutput
// sends as a placeholder: from the before-image when the replica identity
// is FULL, otherwise by reading the row again by its key. The value read
// again is the row's current one, which may be newer than the update; a
// later change then carries the same value again. When the row is gone,
// the columns are left out of After and named in Meta["toast_unavailable"].
type toaster struct {
	pool  *pgxpool.Pool
	types *types
}

// fill sets the unchanged columns of after, and returns those it could not
// find.
func (t *toaster) fill(rel *relation, newT *pglogrepl.TupleData, before, after map[string]any, unchanged []string) ([]string, error) {
	var missing []string
	for _, name := range unchanged {
		if v, ok := before[name]; ok {
			after[name] = v
			continue
		}
		missing = append(missing, name)
	}
	if len(missing) == 0 {
		return nil, nil
	}
	if len(rel.keyIdx) == 0 || newT == nil {
		return missing, nil
	}
	cols := make([]string, len(missing))
	for i, n := range missing {
		cols[i] = ident(n)
	}
	var where []string
	var args []any
	for _, i := range rel.keyIdx {
		if i >= len(newT.Columns) || newT.Columns[i].DataType != pglogrepl.TupleDataTypeText {
			return missing, nil
		}
		args = append(args, string(newT.Columns[i].Data))
		where = append(where, fmt.Sprintf("%s = $%d::text::%s", ident(rel.names[i]), len(args), rel.meta.colType(rel.names[i])))
	}
	sql := "SELECT " + strings.Join(cols, ", ") + " FROM " + pgx.Identifier{rel.schema, rel.table}.Sanitize() + " WHERE " + strings.Join(where, " AND ")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := t.pool.Query(ctx, sql, append([]any{pgx.QueryResultFormats{pgx.TextFormatCode}}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("read unchanged TOAST columns of %s.%s again: %w", rel.schema, rel.table, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read unchanged TOAST columns of %s.%s again: %w", rel.schema, rel.table, err)
		}
		return missing, nil
	}
	fds := rows.FieldDescriptions()
	for i, raw := range rows.RawValues() {
		if raw == nil {
			after[missing[i]] = nil
			continue
		}
		v, err := t.types.decode(fds[i].DataTypeOID, raw)
		if err != nil {
			return nil, fmt.Errorf("decode column %q of %s.%s: %w", missing[i], rel.schema, rel.table, err)
		}
		after[missing[i]] = v
	}
	rows.Close()
	if err := rows.Err(); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("read unchanged TOAST columns of %s.%s again: %w", rel.schema, rel.table, err)
	}
	return nil, nil
}
