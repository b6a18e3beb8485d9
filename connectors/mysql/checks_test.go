package mysql_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tributary/tributary/core"
)

// TestServerIDInUse: a second connector registering the server id another
// replica (a first connector, of another name) streams with fails to open,
// naming the id and the fix.
func TestServerIDInUse(t *testing.T) {
	d := newDB(t)
	d.exec(t, `CREATE TABLE a (id INT PRIMARY KEY)`)
	cfg := d.config("a")
	cfg["snapshot"] = map[string]any{"mode": "never"}
	cfg["server_id"] = 4242
	openSource(t, cfg, t.TempDir(), core.Position{})
	second := newSource(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := second.Open(ctx, core.Env{Name: "other", StateDir: t.TempDir()}, core.Position{})
	_ = second.Close(ctx)
	if !errors.Is(err, core.ErrFatal) || !strings.Contains(err.Error(), "server id 4242 is in use") || !strings.Contains(err.Error(), "server_id") {
		t.Fatalf("Open with a server id in use: %v", err)
	}
}

// TestMinimalRowImage: with binlog_row_image=MINIMAL (here for the writing
// session) an update's before image has the key only and its after image
// the columns changed; the others are absent, not null.
func TestMinimalRowImage(t *testing.T) {
	d := newDB(t)
	d.exec(t, `CREATE TABLE a (id INT PRIMARY KEY, x INT, y VARCHAR(5))`, `INSERT INTO a VALUES (1, 1, 'one')`)
	cfg := d.config("a")
	cfg["snapshot"] = map[string]any{"mode": "never"}
	src := openSource(t, cfg, t.TempDir(), core.Position{})
	d.exec(t, `SET SESSION binlog_row_image = 'MINIMAL'`, `UPDATE a SET x = 2 WHERE id = 1`, `SET SESSION binlog_row_image = 'FULL'`)
	ch := readN(t, src, 1)[0]
	if normal(ch.Before) != normal(map[string]any{"id": int64(1)}) || normal(ch.After) != normal(map[string]any{"x": int64(2)}) || normal(ch.Key) != normal(map[string]any{"id": int64(1)}) {
		t.Fatalf("minimal update: key %v before %v after %v", ch.Key, ch.Before, ch.After)
	}
}
