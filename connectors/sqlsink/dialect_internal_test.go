package sqlsink

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tributary/tributary/core"
)

var update = flag.Bool("update", false, "rewrite the statements in testdata")

// TestStatements: the statements of each database and mode, two rows per
// write, are those in testdata/<driver>-<mode>.sql. SQL Server runs
// nowhere in the test services, so its statements are checked here only;
// the others also run against real databases in the black-box tests.
func TestStatements(t *testing.T) {
	for _, driver := range []string{DriverPostgres, DriverMySQL, DriverSQLite, DriverSQLServer} {
		for _, mode := range []string{ModeInsert, ModeUpsert} {
			t.Run(driver+"-"+mode, func(t *testing.T) {
				values := map[string]any{
					"driver": driver, "dsn": "x", "table": "erp.orders", "mode": mode,
					"columns": []any{
						map[string]any{"name": "order_id", "value": "event.data.order_id"},
						map[string]any{"name": "total", "value": "event.data.total", "type": "decimal", "sql_type": "NUMERIC(12,2)"},
						map[string]any{"name": "placed_at", "value": "event.time", "type": "timestamp"},
						map[string]any{"name": "doc", "value": "event.data", "type": "json"},
					},
				}
				if mode == ModeUpsert {
					values["key"], values["version"] = []any{"order_id"}, "placed_at"
				}
				s := New()
				if err := s.Configure(core.NewConfig("orders", values)); err != nil {
					t.Fatal(err)
				}
				d, tb := s.dialect, &s.table
				stmts := []string{d.createTable(tb), d.write(tb, 2), d.probe(tb)}
				if mode == ModeUpsert {
					stmts = append(stmts, d.remove(tb))
				}
				got := strings.Join(stmts, ";\n") + "\n"
				path := filepath.Join("testdata", driver+"-"+mode+".sql")
				if *update {
					if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (run go test -run TestStatements -update)", err)
				}
				if got != string(want) {
					t.Errorf("statements:\n%s\nwant (%s):\n%s", got, path, want)
				}
			})
		}
	}
}

// TestRowsPerStatement: a statement never carries more bind parameters
// than its database takes (2100 on SQL Server).
func TestRowsPerStatement(t *testing.T) {
	tb := &table{cols: make([]column, 7)}
	tests := []struct {
		name   string
		driver string
		bound  int
		want   int
	}{
		{name: "postgres takes the bound", driver: DriverPostgres, bound: 500, want: 500},
		{name: "sqlserver is limited by parameters", driver: DriverSQLServer, bound: 500, want: 285},
		{name: "at least one row", driver: DriverSQLServer, bound: 0, want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := dialectOf(tt.driver).rowsPerStatement(tb, tt.bound); got != tt.want {
				t.Errorf("rowsPerStatement = %d, want %d", got, tt.want)
			}
		})
	}
}
