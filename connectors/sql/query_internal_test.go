package sql

import (
	"slices"
	"testing"
)

func TestBindNamed(t *testing.T) {
	const q = `SELECT a::text, ':cursor' AS s -- :key in a comment
FROM t WHERE (c > :cursor OR (c = :cursor AND k > :key)) /* :limit */ LIMIT :limit`
	vals := map[string]any{ParamCursor: 10, ParamKey: "k1", ParamLimit: 5}
	tests := []struct {
		name, driver, want string
		args               []any
	}{
		{name: "postgres", driver: DriverPostgres, args: []any{10, "k1", 5},
			want: `SELECT a::text, ':cursor' AS s -- :key in a comment
FROM t WHERE (c > $1 OR (c = $1 AND k > $2)) /* :limit */ LIMIT $3`},
		{name: "mysql", driver: DriverMySQL, args: []any{10, 10, "k1", 5},
			want: `SELECT a::text, ':cursor' AS s -- :key in a comment
FROM t WHERE (c > ? OR (c = ? AND k > ?)) /* :limit */ LIMIT ?`},
		{name: "sqlserver", driver: DriverSQLServer, args: []any{10, "k1", 5},
			want: `SELECT a::text, ':cursor' AS s -- :key in a comment
FROM t WHERE (c > @p1 OR (c = @p1 AND k > @p2)) /* :limit */ LIMIT @p3`},
		{name: "oracle", driver: DriverOracle, args: []any{10, "k1", 5},
			want: `SELECT a::text, ':cursor' AS s -- :key in a comment
FROM t WHERE (c > :1 OR (c = :1 AND k > :2)) /* :limit */ LIMIT :3`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, args, err := bindNamed(q, tt.driver, vals)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
			if !slices.Equal(args, tt.args) {
				t.Errorf("args %v, want %v", args, tt.args)
			}
		})
	}
}

func TestGeneratedQueryShapes(t *testing.T) {
	c := Config{Driver: DriverPostgres, Mode: ModeCursor, Table: "orders", Columns: "*", Where: "x = 1", Key: []string{"id"}, Cursor: CursorConfig{Column: "updated_at"}}
	q, err := compileQuery("t", generatedQuery(&c), c.Driver)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		vars queryVars
		want string
	}{
		{name: "first run", want: "SELECT * FROM orders WHERE (x = 1) AND 1 = 1 ORDER BY updated_at, id LIMIT $1"},
		{name: "from cursor", vars: queryVars{Cursor: true}, want: "SELECT * FROM orders WHERE (x = 1) AND updated_at >= $1 ORDER BY updated_at, id LIMIT $2"},
		{name: "next page", vars: queryVars{Cursor: true, After: true}, want: "SELECT * FROM orders WHERE (x = 1) AND updated_at >= $1 AND (updated_at > $1 OR (updated_at = $1 AND id > $2)) ORDER BY updated_at, id LIMIT $3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := q.render(tt.vars, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}
