package mysql

import (
	"os"
	"path/filepath"
	"testing"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
)

// TestHistoryFormatV1 reads the frozen version 1 schema history: a
// checkpoint before the ALTER finds two columns, one at or after it three.
func TestHistoryFormatV1(t *testing.T) {
	dir := t.TempDir()
	b, err := os.ReadFile("testdata/schema_history_v1.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "schema_history.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := openHistory(dir, gomysql.MariaDBFlavor)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		at   string
		cols int
		ok   bool
	}{
		{"gtid:0-1-99", 0, false},
		{"gtid:0-1-100", 2, true},
		{"gtid:0-1-104", 2, true},
		{"gtid:0-1-105", 3, true},
		{"gtid:0-1-900,1-2-3", 3, true},
	}
	for _, tc := range tests {
		p, _ := parsePos(gomysql.MariaDBFlavor, tc.at)
		s, ok := h.at(p)
		if ok != tc.ok || ok && len(s["shop.orders"].Columns) != tc.cols {
			t.Fatalf("at %s: %v, %v", tc.at, s, ok)
		}
	}
	// Pruning at a checkpoint after the ALTER keeps the entry it needs.
	p, _ := parsePos(gomysql.MariaDBFlavor, "gtid:0-1-200")
	if err := h.prune(p); err != nil {
		t.Fatal(err)
	}
	again, err := openHistory(dir, gomysql.MariaDBFlavor)
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := again.at(p); !ok || len(again.entries) != 1 || len(s["shop.orders"].Columns) != 3 {
		t.Fatalf("after prune: %d entries, %v", len(again.entries), s)
	}
	if _, err := openHistory(dir, gomysql.MySQLFlavor); err == nil {
		t.Fatal("a MariaDB history opened for a MySQL server")
	}
}
